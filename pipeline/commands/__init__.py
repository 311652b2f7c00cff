"""Command line: compile, run offline, list runs, inspect images (and the Vertex AI commands).

Start-up is kept short (``--help``, ``runs`` and ``validate`` in well under 1.5 s): kfp, the
Google SDKs and the pipeline definition are imported inside the commands that need them, and
the commands of other modules (``LAZY_MODULES``) are imported only when one of them runs.
"""

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup

from pipeline.champion import DATA_DIR_HELP, LOCAL_BUCKET, LOCAL_PROJECT, Unreachable, local_data_dir
from pipeline.terminal import console, fail, on_terminal

# Modules with a ``register(app)`` that adds their commands. Their help lines are read from
# the source for ``--help``; the module is imported only when one of its commands runs
# (pipeline.vertex alone pulls kfp and the Vertex AI SDK: seconds on a busy machine).
LAZY_MODULES = ("pipeline.validate", "pipeline.champion", "pipeline.vertex", "pipeline.vertex_smoke", "pipeline.models")


def registered_commands(module: str) -> dict[str, str]:
    """{command name: first paragraph of its docstring} for ``module``'s ``register``, read
    from the source without importing it (it registers with ``app.command("name")(function)``)."""
    import ast
    import importlib.util

    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    found = {}
    for call in ast.walk(functions["register"]):
        decorator = call.func if isinstance(call, ast.Call) else None
        if (
            isinstance(decorator, ast.Call)
            and getattr(decorator.func, "attr", "") == "command"
            and decorator.args
            and isinstance(decorator.args[0], ast.Constant)
            and call.args
            and isinstance(call.args[0], ast.Name)
        ):
            doc = ast.get_docstring(functions[call.args[0].id]) if call.args[0].id in functions else ""
            found[decorator.args[0].value] = (doc or "").split("\n\n")[0].strip()
    return found


class LazyGroup(TyperGroup):
    """The root command group: lists LAZY_MODULES' commands from their source, imports on use."""

    def _lazy(self) -> dict[str, tuple[str, str]]:
        """{command: (module, help)} of the commands not imported yet."""
        if not hasattr(self, "_lazy_commands"):
            self._lazy_commands = {
                name: (module, text) for module in LAZY_MODULES for name, text in registered_commands(module).items()
            }
        return {name: entry for name, entry in self._lazy_commands.items() if name not in self.commands}

    def list_commands(self, ctx) -> list[str]:
        return [*self.commands, *self._lazy()]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        lazy = self._lazy().get(cmd_name)
        # A stand-in with the help line, for the command list; resolve_command loads the real one.
        return TyperCommand(cmd_name, help=lazy[1]) if lazy else None

    def resolve_command(self, ctx, args):
        if args and args[0] in self._lazy():
            self.load(self._lazy()[args[0]][0])
        return super().resolve_command(ctx, args)

    def load(self, module: str) -> None:
        """Imports ``module`` and adds the commands its ``register`` defines."""
        import importlib

        try:
            loaded = importlib.import_module(module)
        except ImportError as error:  # the Vertex AI commands are optional for offline use
            fail(f"{module} cannot be imported ({error}): `pip install -e .` installs what it needs", code=1)
        holder = typer.Typer()
        holder.callback()(lambda: None)  # a callback keeps even a single command inside a group
        loaded.register(holder)
        self.commands.update(typer.main.get_command(holder).commands)


app = typer.Typer(
    cls=LazyGroup,
    help="Explainable visual quality-control inspector: a Kubeflow pipeline that tunes Gemini.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def __getattr__(name: str):
    """TASK_TITLES and COMPILED_YAML of pipeline.pipeline, imported (with kfp) only when asked for."""
    if name in ("TASK_TITLES", "COMPILED_YAML"):
        from pipeline import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)


def say(text: str) -> None:
    """One line for the user, as it is: no markup, never wrapped (paths and names are copied from it)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command("compile")
def compile_command(output: Path | None = typer.Option(None, help="Where to write the pipeline YAML.")):
    """Compile the pipeline to YAML (the file Vertex AI and the offline run both use)."""
    from pipeline.pipeline import COMPILED_YAML, compile_pipeline

    path = compile_pipeline(output or COMPILED_YAML)
    console.print(f"compiled [bold]{path}[/bold]")


@app.command("run")
def run_command(
    num_images: int | None = typer.Option(None, help="Images to synthesize (default 200)."),
    epochs: int | None = typer.Option(None, help="Tuning epochs, passes over the data (default 5)."),
    adapter_size: int | None = typer.Option(None, help="Adapter size: 1, 2, 4, 8 or 16 (default 4)."),
    seed: int | None = typer.Option(None, help="Random seed of images and split (default 42)."),
    variation: str | None = typer.Option(
        None, help="Synthetic images: standard (the notebook's look, default), strong or photo (photo-like parts)."
    ),
    dataset: Path | None = typer.Option(
        None,
        exists=True,
        help="Tune on your own labelled images: a folder <class>/<image> or a .csv/.jsonl "
        "manifest, uploaded to the local storage first.",
    ),
    label_template: str | None = typer.Option(
        None, help='Answer for defect classes, e.g. "Status: Defect - {defect_type} found."'
    ),
    param: list[str] = typer.Option([], "--param", "-p", help="Any pipeline parameter as key=value (repeatable)."),
    cache: bool = typer.Option(False, help="Reuse kfp.local results of identical data steps."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
):
    """Run the whole pipeline offline: compiled YAML, kfp.local, local Vertex AI."""
    from localvertex import DataDirInUse
    from pipeline import offline
    from pipeline import params as pipeline_params
    from pipeline.pipeline import COMPILED_YAML
    from pipeline.uploads import DatasetUploadError

    given = {"num_images": num_images, "epoch_count": epochs, "adapter_size": adapter_size, "seed": seed}
    given.update(variation=variation, label_template=label_template)
    overrides = {**offline.LOCAL_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    if not COMPILED_YAML.exists():
        fail(f"{COMPILED_YAML} is missing: run `python -m pipeline compile` first")
    try:
        overrides.update(pipeline_params.parse_assignments(param))
        params = pipeline_params.resolve(overrides)
    except pipeline_params.ParameterError as error:
        fail(str(error))

    if dataset and num_images is not None:
        console.print("[yellow]note:[/yellow] --num-images is ignored with --dataset")
    say(f"data folder: {local_data_dir(data_dir)}")
    try:
        with task_view() as on_event:
            result = offline.run_offline(
                params, on_event, data_dir=data_dir, local_dataset=dataset, enable_caching=cache
            )
    except (DatasetUploadError, DataDirInUse) as error:
        fail(str(error))
    _report(result)
    print(json.dumps(json.loads((result.run_dir / "metrics.json").read_text()), sort_keys=True), flush=True)
    if not result.ok:
        raise typer.Exit(1)


def dag_position(task: str) -> int:
    """Where ``task`` stands in the pipeline (TASK_TITLES is in DAG order); unknown tasks last."""
    from pipeline.pipeline import TASK_TITLES

    order = list(TASK_TITLES)
    return order.index(task) if task in order else len(order)


def task_view():
    """The view of a run's events: live and redrawn on a terminal, plain lines off one."""
    return LiveView() if on_terminal() else PlainView()


class PlainView:
    """Off a terminal (CI, ``nohup``, ``make run > log``): a plain line for each task start, end,
    warning and progress step, written when it happens; at the end the tasks in DAG order.

    A redrawn progress view there shows nothing until the run ends (rich only prints its last frame).
    """

    PROGRESS_STEP, PROGRESS_SECONDS = 0.1, 30.0  # a progress line per 10 % done, or per 30 s

    def __init__(self):
        from pipeline.pipeline import TASK_TITLES

        self.titles = TASK_TITLES
        self.started: dict[str, float] = {}
        self.ended: dict[str, tuple[str, float]] = {}  # task: (status, seconds)
        self.last_progress: dict[str, tuple[float, float]] = {}  # task: (time, fraction) of its last line

    def __enter__(self):
        return self.on_event

    def __exit__(self, *exc) -> None:
        if not self.ended:
            return
        say("tasks, in pipeline order:")
        for task in sorted(self.ended, key=dag_position):
            status, seconds = self.ended[task]
            mark = "ok    " if status == "SUCCESS" else f"{status:<6}"
            say(f"  {mark} {self.titles.get(task, task)}  ({seconds:.1f} s)")

    def on_event(self, event) -> None:
        title = self.titles.get(event.task, event.task)
        if event.kind == "start":
            self.started[event.task] = time.monotonic()
            say(f"started  {title}")
        elif event.kind == "progress" and self._progress_due(event):
            say(f"         {title}: {event.done}/{event.total}")
        elif event.kind == "end":
            seconds = time.monotonic() - self.started.get(event.task, time.monotonic())
            self.ended[event.task] = (event.status, seconds)
            say(f"{'finished' if event.status == 'SUCCESS' else 'FAILED  '} {title} ({event.status}, {seconds:.1f} s)")
        elif event.kind == "warning":
            say(f"warning  {title}: {event.text}")

    def _progress_due(self, event) -> bool:
        """True for the first and last step, and after PROGRESS_STEP of the work or PROGRESS_SECONDS."""
        now, fraction = time.monotonic(), event.done / event.total if event.total else 0.0
        last_time, last_fraction = self.last_progress.get(event.task, (0.0, -1.0))
        due = (
            event.done == event.total
            or fraction - last_fraction >= self.PROGRESS_STEP
            or now - last_time >= self.PROGRESS_SECONDS
        )
        if due:
            self.last_progress[event.task] = (now, fraction)
        return due


class LiveView:
    """On a terminal: a rich progress view, one row per task in DAG order, warnings above it."""

    def __init__(self):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from pipeline.pipeline import TASK_TITLES

        self.titles = TASK_TITLES
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),  # the estimate left, from the rate of the task's progress records
            console=console,
        )
        # Every row exists from the start, hidden until its task starts: rows stay in DAG order
        # whatever order the tasks run and finish in.
        self.rows = {
            task: self.progress.add_task(title, total=None, visible=False, start=False)
            for task, title in TASK_TITLES.items()
        }

    def __enter__(self):
        self.progress.start()
        return self.on_event

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_event(self, event) -> None:
        title = self.titles.get(event.task, event.task)
        if event.task not in self.rows and event.kind == "start":
            self.rows[event.task] = self.progress.add_task(title, total=None)
        row = self.rows.get(event.task)
        if row is None:
            return
        if event.kind == "start":
            self.progress.start_task(row)  # its clock starts now, not when the run did
            self.progress.update(row, visible=True)
        elif event.kind == "progress":
            self.progress.update(row, completed=event.done, total=event.total or None)
        elif event.kind == "end":
            mark = "[green]✓[/green]" if event.status == "SUCCESS" else "[red]✗[/red]"
            self.progress.update(row, description=f"{mark} {title}", total=1, completed=1)
        elif event.kind == "warning":
            self.progress.console.print(
                f"[yellow]warning[/yellow] {title}: {event.text}", highlight=False, soft_wrap=True
            )


def _report(result) -> None:
    """Prints the run's outcome: metrics, summary, report path, endpoint or the failure."""
    from rich.markup import escape
    from rich.table import Table

    from pipeline import offline

    say(f"run {result.run_id} in {result.seconds:.1f} s; log: {result.run_dir / 'pipeline.log'}")
    if not result.ok:
        task = result.failed_task or "the pipeline"
        # Unwrapped, every line of the error: an import lists its bad rows under the first line.
        console.print(f"[red]failed in {task}:[/red] {escape(result.error)}", highlight=False, soft_wrap=True)
        if result.failed_task and "Error" not in result.error:  # no exception found: show the task's last lines
            say(offline.task_log_tail(result.run_dir, result.failed_task))
        return
    table = Table("metric", "value", title="Metrics of every step (as Vertex AI Experiments shows them)")
    for name, value in sorted(result.metrics.items()):
        table.add_row(name, f"{value:.4g}")
    console.print(table)
    say(result.summary.strip())
    say(f"report:   {result.report}\nendpoint: {result.tuned_endpoint} (the chosen checkpoint)")
    outcome = json.loads((result.run_dir / "result.json").read_text())
    if outcome.get("decision"):
        applied = {"promoted": "it is the champion now", "not promoted": "another run changed the champion first"}
        say(
            f"decision: {outcome['decision']} ({applied.get(outcome.get('promotion', ''), 'the champion stays')}): "
            f"{outcome.get('decision_reason', '')}\nchampion: python -m pipeline champion"
        )


@app.command("runs")
def runs_command(
    compare: tuple[str, str] | None = typer.Option(None, help="Two run ids to show side by side (rows that differ)."),
    all_rows: bool = typer.Option(False, "--all", help="With --compare: every row, not only those that differ."),
    limit: int = typer.Option(20, help="Most recent runs to list."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
):
    """List past offline runs on a data folder, with their state (the local counterpart of Vertex Experiments)."""
    from pipeline import offline

    everything = offline.load_runs()
    if compare:
        by_id = {run["run_id"]: run for run in everything}
        missing = [r for r in compare if r not in by_id]
        if missing:
            fail(f"unknown run id(s): {', '.join(missing)}; see `python -m pipeline runs`")
        table, differing, total = comparison_table([by_id[r] for r in compare], all_rows)
        console.print(table)
        if not all_rows:
            say(f"{differing} of {total} rows differ; --all shows every row")
        return
    folder = local_data_dir(data_dir)
    runs = [run for run in everything if run["data_dir"] and Path(run["data_dir"]).resolve() == folder]
    say(f"data folder: {folder}")
    if not runs:
        fail(f"no runs yet on {folder} in {offline.RUNS_DIR}: start one with `make run`", code=1)
    console.print(runs_table(runs[:limit]))
    if len(everything) > len(runs):
        say(f"{len(everything) - len(runs)} run(s) on other data folders: --data-dir FOLDER lists them")


def runs_table(runs: list[dict]):
    """Runs as rows: id, date, state, parameters that differ between runs (whole), eval metrics, duration."""
    from rich.table import Table

    varying = sorted(
        {k for run in runs for k, v in run["params"].items() if any(other["params"].get(k) != v for other in runs)}
    )
    metric_names = {
        "eval_status_accuracy": "status acc",
        "eval_defect_type_accuracy": "type acc",
        "eval_examples": "tested",
    }
    table = Table(title=f"{len(runs)} offline run(s), newest first")
    for name in ("run id", "date (UTC)", "state"):
        table.add_column(name, no_wrap=True)
    for name in varying:  # whole values: a cut dataset_uri or prompt cannot be told apart or copied
        table.add_column(name, overflow="fold")
    for name in [*metric_names.values(), "seconds"]:
        table.add_column(name, justify="right", no_wrap=True)
    for run in runs:
        m, rid = run["metrics"], run["run_id"]
        date = f"{rid[:4]}-{rid[4:6]}-{rid[6:8]} {rid[9:11]}:{rid[11:13]}"
        table.add_row(
            rid,
            date,
            run["state"],
            *[str(run["params"].get(k, "-")) for k in varying],
            *[f"{m[n]:.4g}" if n in m else "-" for n in metric_names],
            f"{m['seconds']:.0f}" if "seconds" in m else "-",
        )
    return table


def comparison_table(runs: list[dict], all_rows: bool = False):
    """(table, rows that differ, rows in all): runs side by side, only the rows that differ
    unless ``all_rows`` (then differences in bold)."""
    from rich.table import Column, Table

    table = Table("", *[Column(run["run_id"], overflow="fold") for run in runs])
    rows = [("run state", [run["state"] for run in runs]), ("run data_dir", [run["data_dir"] or "-" for run in runs])]
    for section in ("params", "metrics"):
        for key in sorted({k for run in runs for k in run[section]} - {"run_id", "task_seconds"}):
            rows.append((f"{section[:-1]} {key}", [str(run[section].get(key, "-")) for run in runs]))
    differing = 0
    for label, values in rows:
        differs = len(set(values)) > 1
        differing += differs
        if differs or all_rows:
            table.add_row(label, *values, style="bold yellow" if differs and all_rows else None)
    return table, differing, len(rows)


@app.command("inspect")
def inspect_command(
    images: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    endpoint: str | None = typer.Option(
        None, help="Endpoint to ask (default: the inspector's champion, the one `champion` shows)."
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Inspector whose champion to ask (default: the latest successful run's on the data folder, as `champion`).",
    ),
    latest: bool = typer.Option(False, "--latest", help="Ask the latest successful run's endpoint, not the champion."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
):
    """Ask the inspector about images (sent inline, as a camera client would): the champion by default."""
    from components.clients import endpoint_location, genai_client
    from localvertex import DataDirInUse
    from pipeline.champion import choose_inspector, local_services

    folder = local_data_dir(data_dir)
    inspector, run, why = choose_inspector(folder, name)
    params = run["params"] if run else {}
    say(f"data folder: {folder}")
    try:
        with local_services(folder) as (env, where), _environment(env):
            target, source = _inspect_target(env, inspector, why, run, endpoint, latest)
            say(f"asking {source} on {where}:\n  {target['endpoint']}")
            # A tuned Gemini 3 model answers on its multi-region endpoint ("us", "eu"), named in the endpoint.
            location = endpoint_location(target["endpoint"], params.get("location", "us-central1"))
            client = genai_client(params.get("project", LOCAL_PROJECT), location, 2)
            if not target.get("base_model"):  # a given endpoint or a run's checkpoint: the run's base model
                target["base_model"] = params.get("base_model", "")
            rows = [_inspect_image(client, target, image) for image in images]
    except (DataDirInUse, Unreachable) as error:
        fail(str(error), code=1)
    for row in rows:
        if as_json:
            print(json.dumps(row), flush=True)
        elif row["error"]:
            print(f"{row['file']}\terror: {row['error']}", flush=True)
        else:
            print(f"{row['file']}\t{row['answer']}\t{row['status']}\t{row['defect_type'] or '-'}", flush=True)
    if any(row["error"] for row in rows):
        say(f"some images got no answer from {target['endpoint']} ({source}, data folder {folder})")
        raise typer.Exit(1)


@contextmanager
def _environment(env: dict):
    """``env`` set in os.environ for the block (the SDKs read their addresses there), then restored."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _inspect_target(env: dict, inspector: str, why: str, run: dict | None, endpoint: str | None, latest: bool):
    """({"endpoint", "prompt", "system_instruction"}, a phrase naming it): what `inspect` asks.

    The champion is asked the way it was tuned (its own prompt and system instruction); without
    one, the latest successful run's chosen checkpoint, saying so.
    """
    from components.labels import PROMPT
    from pipeline.champion import load_champion, storage_bucket, target_of

    params = run["params"] if run else {}
    asked_as = {"prompt": params.get("prompt", PROMPT), "system_instruction": params.get("system_instruction", "")}
    if endpoint:
        return {**asked_as, "endpoint": endpoint}, "the given endpoint"
    if not latest:
        bucket = params.get("bucket", LOCAL_BUCKET).removeprefix("gs://").split("/")[0]
        home = storage_bucket(env, bucket, params.get("project", LOCAL_PROJECT))
        champion = target_of(load_champion(home, inspector)[0])
        if champion:
            champion["prompt"] = champion["prompt"] or asked_as["prompt"]
            return champion, f"the champion of {inspector} ({why}; promoted by run {champion['run']})"
        if run:
            say(f"note: {inspector} has no champion yet: asking the latest successful run's chosen checkpoint")
    if not run:
        fail("no successful offline run on this data folder yet: `make run` tunes an inspector first", code=1)
    return {**asked_as, "endpoint": run["result"]["tuned_endpoint"]}, f"the chosen checkpoint of run {run['run_id']}"


def _inspect_image(client, target: dict, image: Path) -> dict:
    """One image's answer, parsed status and defect type; or the error that stopped it."""
    import mimetypes

    from google.genai import errors, types

    from components.labels import answer_status, defect_type_of
    from components.manifests import image_mime_types
    from platform_facts.gemini import thinking_config_for

    row = {"file": str(image), "answer": "", "status": "", "defect_type": None, "error": ""}
    mime = (
        image_mime_types().get(image.suffix.lower().lstrip(".")) or mimetypes.guess_type(image.name)[0] or "image/png"
    )
    try:  # as little thinking as the champion's base model allows, as evaluation asks it
        thinking = thinking_config_for(target.get("base_model") or "", "least")
    except ValueError:  # an endpoint of unknown base model: no thinking config
        thinking = {}
    try:
        response = client.models.generate_content(
            model=target["endpoint"],
            contents=[
                types.Part.from_text(text=target["prompt"]),
                types.Part.from_bytes(data=image.read_bytes(), mime_type=mime),
            ],
            config=types.GenerateContentConfig(
                temperature=0.0,
                system_instruction=target["system_instruction"] or None,
                thinking_config=types.ThinkingConfig(**thinking) if thinking else None,
            ),
        )
    except errors.APIError as error:
        return {**row, "error": f"{error.code} {error.status}: {error.message}"}
    answer = (response.text or "").strip()
    status = answer_status(answer)
    return {
        **row,
        "answer": answer,
        "status": status,
        "defect_type": defect_type_of(answer) if status == "Defect" else None,
    }

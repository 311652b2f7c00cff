"""Command line: compile, run offline, list runs, inspect images (and the Vertex AI commands)."""

import json
import os
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from localvertex import DataDirInUse, LocalStack
from pipeline import champion, offline, validate
from pipeline import params as pipeline_params
from pipeline.datasets import DatasetUploadError
from pipeline.pipeline import COMPILED_YAML, TASK_TITLES, compile_pipeline
from pipeline.terminal import console, fail

app = typer.Typer(
    help="Explainable visual quality-control inspector: a Kubeflow pipeline that tunes Gemini.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.command("compile")
def compile_command(output: Path = typer.Option(COMPILED_YAML, help="Where to write the pipeline YAML.")):
    """Compile the pipeline to YAML (the file Vertex AI and the offline run both use)."""
    path = compile_pipeline(output)
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
    data_dir: Path | None = typer.Option(None, help="Local Vertex AI data folder (default .localvertex/)."),
):
    """Run the whole pipeline offline: compiled YAML, kfp.local, local Vertex AI."""
    overrides = {
        **offline.LOCAL_DEFAULTS,
        **_given(
            num_images=num_images,
            epoch_count=epochs,
            adapter_size=adapter_size,
            seed=seed,
            variation=variation,
            label_template=label_template,
        ),
    }
    if not COMPILED_YAML.exists():
        fail(f"{COMPILED_YAML} is missing: run `python -m pipeline compile` first")
    try:
        overrides.update(pipeline_params.parse_assignments(param))
        params = pipeline_params.resolve(overrides)
    except pipeline_params.ParameterError as error:
        fail(str(error))

    if dataset and num_images is not None:
        console.print("[yellow]note:[/yellow] --num-images is ignored with --dataset")
    try:
        with _progress_view() as on_event:
            result = offline.run_offline(
                params, on_event, data_dir=data_dir, local_dataset=dataset, enable_caching=cache
            )
    except (DatasetUploadError, DataDirInUse) as error:
        fail(str(error))
    _report(result)
    print(json.dumps(json.loads((result.run_dir / "metrics.json").read_text()), sort_keys=True))
    if not result.ok:
        raise typer.Exit(1)


def _given(**options) -> dict:
    """The options the user actually set."""
    return {name: value for name, value in options.items() if value is not None}


def _progress_view():
    """A rich progress view fed by offline.Event objects; yields the callback."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),  # the estimate left, from the rate of the task's progress records
        console=console,
    )
    rows = {}

    def on_event(event: offline.Event) -> None:
        title = TASK_TITLES.get(event.task, event.task)
        if event.kind == "start":
            rows[event.task] = progress.add_task(title, total=None)
        elif event.kind == "progress" and event.task in rows:
            progress.update(rows[event.task], completed=event.done, total=event.total or None)
        elif event.kind == "end" and event.task in rows:
            mark = "[green]✓[/green]" if event.status == "SUCCESS" else "[red]✗[/red]"
            progress.update(rows[event.task], description=f"{mark} {title}", total=1, completed=1)

    class View:
        def __enter__(self):
            progress.start()
            return on_event

        def __exit__(self, *exc):
            progress.stop()

    return View()


def _report(result: offline.RunResult) -> None:
    """Prints the run's outcome: metrics, summary, report path, endpoint or the failure."""
    console.print(f"run [bold]{result.run_id}[/bold] in {result.seconds:.1f} s; log: {result.run_dir / 'pipeline.log'}")
    if not result.ok:
        task = result.failed_task or "the pipeline"
        # Unwrapped, every line of the error: an import lists its bad rows under the first line.
        console.print(f"[red]failed in {task}:[/red] {escape(result.error)}", highlight=False, soft_wrap=True)
        if result.failed_task and "Error" not in result.error:  # no exception found: show the task's last lines
            console.print(offline.task_log_tail(result.run_dir, result.failed_task), highlight=False, markup=False)
        return
    table = Table("metric", "value", title="Metrics of every step (as Vertex AI Experiments shows them)")
    for name, value in sorted(result.metrics.items()):
        table.add_row(name, f"{value:.4g}")
    console.print(table)
    console.print(result.summary.strip(), markup=False)
    console.print(
        f"report:   {result.report}\nendpoint: {result.tuned_endpoint} (the chosen checkpoint)", highlight=False
    )
    outcome = json.loads((result.run_dir / "result.json").read_text())
    if outcome.get("decision"):
        applied = {"promoted": "it is the champion now", "not promoted": "another run changed the champion first"}
        console.print(
            f"decision: {outcome['decision']} ({applied.get(outcome.get('promotion', ''), 'the champion stays')}): "
            f"{outcome.get('decision_reason', '')}\nchampion: python -m pipeline champion",
            highlight=False,
        )


@app.command("runs")
def runs_command(
    compare: tuple[str, str] | None = typer.Option(None, help="Two run ids to show side by side."),
    limit: int = typer.Option(20, help="Most recent runs to list."),
):
    """List past offline runs (the local counterpart of Vertex Experiments)."""
    runs = offline.load_runs()
    if not runs:
        fail(f"no runs yet in {offline.RUNS_DIR}: start one with `make run`", code=1)
    if compare:
        by_id = {run["run_id"]: run for run in runs}
        missing = [r for r in compare if r not in by_id]
        if missing:
            fail(f"unknown run id(s): {', '.join(missing)}; see `python -m pipeline runs`")
        console.print(_comparison_table([by_id[r] for r in compare]))
        return
    console.print(_runs_table(runs[:limit]))


def _runs_table(runs: list[dict]) -> Table:
    """Runs as rows: id, date, parameters that differ between runs, eval metrics, duration."""
    varying = sorted(
        {k for run in runs for k, v in run["params"].items() if any(other["params"].get(k) != v for other in runs)}
    )
    metric_names = {
        "eval_status_accuracy": "status acc",
        "eval_defect_type_accuracy": "type acc",
        "eval_examples": "tested",
    }
    table = Table(title=f"{len(runs)} offline run(s), newest first")
    table.add_column("run id", no_wrap=True)
    table.add_column("date (UTC)", no_wrap=True)
    for name in varying:  # long values (prompts, URIs) are cut here; `--compare` shows them whole
        table.add_column(name, max_width=18, overflow="ellipsis", no_wrap=True)
    for name in [*metric_names.values(), "ok", "seconds"]:
        table.add_column(name, justify="right")
    for run in runs:
        m, rid = run["metrics"], run["run_id"]
        date = f"{rid[:4]}-{rid[4:6]}-{rid[6:8]} {rid[9:11]}:{rid[11:13]}"
        table.add_row(
            rid,
            date,
            *[str(run["params"].get(k, "-")) for k in varying],
            *[f"{m[n]:.4g}" if n in m else "-" for n in metric_names],
            "✓" if m.get("ok") else "✗",
            f"{m.get('seconds', 0):.0f}",
        )
    return table


def _comparison_table(runs: list[dict]) -> Table:
    """Two runs side by side: every parameter and metric, differences in bold."""
    table = Table("", *[run["run_id"] for run in runs])
    for section in ("params", "metrics"):
        for key in sorted({k for run in runs for k in run[section]} - {"run_id", "task_seconds"}):
            values = [str(run[section].get(key, "-")) for run in runs]
            style = "bold yellow" if len(set(values)) > 1 else None
            table.add_row(f"{section[:-1]} {key}", *values, style=style)
    return table


@app.command("inspect")
def inspect_command(
    images: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    endpoint: str | None = typer.Option(
        None,
        help="Endpoint to ask (default: the inspector's champion; without one, the latest run's chosen checkpoint).",
    ),
    name: str | None = typer.Option(
        None, "--name", help="Inspector whose champion to ask (default: the latest run's tuned_model_display_name)."
    ),
    latest: bool = typer.Option(False, "--latest", help="Ask the latest successful run's endpoint, not the champion."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image."),
):
    """Ask the inspector about images (sent inline, as a camera client would): the champion by default."""
    from components.helpers import genai_client
    from pipeline.champion import champion_target

    run_dir = _latest_run_dir()
    outcome = json.loads((run_dir / "result.json").read_text())
    params = json.loads((run_dir / "params.json").read_text())
    prompt, system = params["prompt"], params.get("system_instruction", "")
    inspector = name or params.get("tuned_model_display_name", "visual-defect-inspector")
    source = "given endpoint" if endpoint else f"latest run {run_dir.name}"

    # Use a local Vertex AI the user already started (`make serve`), else start one.
    running = "GOOGLE_VERTEX_BASE_URL" in os.environ
    try:
        with nullcontext() if running else LocalStack(outcome["data_dir"], project=params["project"]) as stack:
            if stack:
                stack.apply_env()
            if not endpoint and not latest:
                # The champion is asked the way it was tuned: its own prompt and system instruction.
                target = champion_target(None, inspector, params["bucket"], params["project"])
                if target:
                    endpoint, prompt, system = (
                        target["endpoint"],
                        target["prompt"] or prompt,
                        target["system_instruction"],
                    )
                    source = f"champion of {inspector} (run {target['run']})"
                else:
                    console.print(
                        f"[yellow]note:[/yellow] {inspector} has no champion yet: asking the latest run's endpoint"
                    )
            endpoint = endpoint or outcome["tuned_endpoint"]
            console.print(f"asking the {source}: {endpoint}", highlight=False)
            client = genai_client(params["project"], params["location"], attempts=2)
            rows = [_inspect_image(client, endpoint, prompt, image, system) for image in images]
    except DataDirInUse as error:
        fail(str(error), code=1)
    for row in rows:
        if as_json:
            print(json.dumps(row))
        elif row["error"]:
            print(f"{row['file']}\terror: {row['error']}")
        else:
            print(f"{row['file']}\t{row['answer']}\t{row['status']}\t{row['defect_type'] or '-'}")
    if any(row["error"] for row in rows):
        console.print(
            f"[red]some images got no answer[/red] (endpoint {endpoint}, the {source}, "
            f"data folder {outcome['data_dir']})",
            highlight=False,
        )
        raise typer.Exit(1)


def _inspect_image(client, endpoint: str, prompt: str, image: Path, system_instruction: str = "") -> dict:
    """One image's answer, parsed status and defect type; or the error that stopped it."""
    import mimetypes

    from google.genai import errors, types

    from components.helpers import answer_status, defect_type_of, image_mime_types

    row = {"file": str(image), "answer": "", "status": "", "defect_type": None, "error": ""}
    mime = (
        image_mime_types().get(image.suffix.lower().lstrip(".")) or mimetypes.guess_type(image.name)[0] or "image/png"
    )
    try:
        response = client.models.generate_content(
            model=endpoint,
            contents=[
                types.Part.from_text(text=prompt),
                types.Part.from_bytes(data=image.read_bytes(), mime_type=mime),
            ],
            config=types.GenerateContentConfig(temperature=0.0, system_instruction=system_instruction or None),
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


def _latest_run_dir() -> Path:
    for run in offline.load_runs():
        if run["metrics"].get("ok"):
            return offline.RUNS_DIR / run["run_id"]
    fail("no successful offline run yet: `make run` tunes an inspector first", code=1)


def _register_vertex_commands() -> None:
    try:
        from pipeline import vertex, vertex_smoke
    except ImportError:  # the Vertex AI commands are optional for offline use
        return
    vertex.register(app)
    vertex_smoke.register(app)


_register_vertex_commands()
validate.register(app)
champion.register(app)

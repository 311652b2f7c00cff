"""``python -m pipeline run``: the whole pipeline offline (pipeline/offline.py runs it under
kfp.local; pipeline/task_views.py shows its progress; pipeline/params.py checks its parameters)."""

import json
from pathlib import Path

import typer

from pipeline.commands.options import DATA_DIR_HELP, require_compiled
from pipeline.terminal import console, fail, say


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
    from pipeline.champion import local_data_dir
    from pipeline.pipeline import COMPILED_YAML
    from pipeline.task_views import task_view
    from pipeline.uploads import DatasetUploadError

    given = {"num_images": num_images, "epoch_count": epochs, "adapter_size": adapter_size, "seed": seed}
    given.update(variation=variation, label_template=label_template)
    overrides = {**offline.LOCAL_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    require_compiled(COMPILED_YAML)
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

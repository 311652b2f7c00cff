"""``python -m pipeline compare`` (``make compare``): the runs of a Vertex AI Experiment, best
first (pipeline/vertex.py reads and orders them)."""

from pathlib import Path

import typer

from pipeline.commands import options
from pipeline.terminal import fail
from pipeline.vertex import (
    check_experiment_name,
    cloud_errors,
    console,
    experiment_runs,
    init_vertex,
    order_runs,
    out,
    runs_table,
)


def compare_command(
    experiment: str = typer.Option(..., "--experiment", help="Vertex AI Experiment name."),
    project: str | None = options.PROJECT,
    location: str = options.LOCATION,
    csv: Path | None = typer.Option(None, "--csv", help="Also write the table (all columns) to this CSV file."),
    labelled: bool = typer.Option(
        True, "--labelled/--experiment-only", help="Also show runs labelled experiment=NAME (scheduled runs)."
    ),
):
    """Compare the runs of an Experiment: eval metrics first, best eval_status_accuracy first."""
    with cloud_errors():
        check_experiment_name(experiment)
        aiplatform, project = init_vertex(project, location)
        df = experiment_runs(aiplatform, experiment, include_labelled=labelled)
    if df.empty:
        fail(f"no runs in experiment {experiment!r} ({project}/{location})", 1)
    ordered = order_runs(df)
    out.print(runs_table(ordered, title=f"Experiment {experiment}: {len(ordered)} run(s)"))
    if csv:
        csv.parent.mkdir(parents=True, exist_ok=True)
        ordered.to_csv(csv, index=False)
        console.print(f"wrote {csv}", highlight=False)

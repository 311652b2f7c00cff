"""``python -m pipeline champion``: an inspector's champion and its promotion history (what
pipeline/champion.py finds), as tables or JSON."""

import json
from pathlib import Path

import typer
from rich.table import Column, Table

from components.champion import inspector_paths
from pipeline.champion import (
    LOCAL_BUCKET,
    LOCAL_PROJECT,
    Unreachable,
    choose_inspector,
    default_inspector,
    inspector_bucket,
    load_champion,
    load_history,
    local_data_dir,
    offline_run_id,
    retirement,
)
from pipeline.commands.options import DATA_DIR_HELP
from pipeline.terminal import console, fail


def _pct(figures: dict, key: str) -> str:
    return f"{100 * float(figures[key]):.1f}%" if figures and key in figures else "-"


def _champion_table(record: dict, generation: int, where: str) -> Table:
    table = Table(
        Column("", no_wrap=True),
        Column("champion", overflow="fold"),  # resource names are shown whole, folded, never cut
        title=f"Champion of {record['inspector']} ({where})",
        show_header=False,
    )
    local_id = offline_run_id(record["run"])
    rows = [
        ("run", record["run"] + (f"  (offline run {local_id})" if local_id else "")),
        ("promoted at", record["promoted_at"]),
        ("endpoint", record["endpoint"]),
        ("model", record["model"] or "-"),
        ("checkpoint", f"{record['checkpoint_id'] or '-'} (epoch {record['epoch']})"),
        ("base model", record["base_model"]),
        ("base model retires", retirement(record["base_model"])),
        ("golden set", f"{record['golden_id']}, {int(float(record['golden'].get('examples', 0)))} images"),
        ("golden status accuracy", _pct(record["golden"], "status_accuracy")),
        ("golden miss rate", _pct(record["golden"], "miss_rate")),
        ("golden overkill rate", _pct(record["golden"], "overkill_rate")),
        ("golden defect-type accuracy", _pct(record["golden"], "defect_type_accuracy")),
        ("test status accuracy (its run)", _pct(record.get("test", {}), "status_accuracy")),
        ("why promoted", record.get("decision_reason", "")),
        ("record generation", str(generation)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _history_table(history: list[dict]) -> Table:
    table = Table(
        *(Column(name, overflow="fold") for name in ("promoted at", "run", "epoch", "golden status acc")),
        Column("golden miss rate", overflow="fold"),
        Column("endpoint id", overflow="fold"),
        title=f"{len(history)} promotion(s), oldest first",
    )
    for entry in history:
        table.add_row(
            entry["promoted_at"],
            entry["run"],
            str(entry["epoch"]),
            _pct(entry["golden"], "status_accuracy"),
            _pct(entry["golden"], "miss_rate"),
            entry["endpoint"].rsplit("/", 1)[-1],
        )
    return table


def champion_command(
    name: str | None = typer.Option(
        None,
        "--name",
        help="Inspector (tuned_model_display_name; default: the latest successful run's on the data folder, "
        "else the pipeline's default). inspect uses the same.",
    ),
    history: int = typer.Option(10, help="Most recent promotions to list (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"champion\", \"generation\", \"history\"} as JSON."),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    bucket: str = typer.Option(LOCAL_BUCKET, help="Bucket holding inspectors/ (offline: gs://local-bucket)."),
    project: str = typer.Option(LOCAL_PROJECT, help="Project of the bucket (with --remote)."),
    remote: bool = typer.Option(False, help="Read the real Cloud Storage bucket (ADC) instead of the local one."),
):
    """Show an inspector's champion (what `inspect` asks by default) and its promotion history."""
    from localvertex import DataDirInUse

    folder = local_data_dir(data_dir)
    if remote:
        name, why = name or default_inspector(), "--name" if name else "the pipeline's default inspector"
    else:
        name, _, why = choose_inspector(folder, name)
        console.print(f"data folder: {folder}", highlight=False, soft_wrap=True)
    console.print(f"inspector:   {name} ({why})", highlight=False, soft_wrap=True)
    try:
        with inspector_bucket(bucket, project, folder, remote) as home:
            record, generation = load_champion(home, name)
            entries = load_history(home, name, history)
    except DataDirInUse as error:
        fail(f"{error} (a run is starting on it: try again in a few seconds)", code=1)
    except Unreachable as error:
        fail(str(error), code=1)
    if as_json:
        retires = retirement(record["base_model"]) if record else ""
        document = {"champion": record, "generation": generation, "history": entries, "retires": retires}
        print(json.dumps(document, sort_keys=True))
        return
    where = f"{bucket}/{inspector_paths(name)['champion']}"
    if record is None:
        console.print(
            f"no champion yet for [bold]{name}[/bold] in {where}: a run promotes one when its challenger "
            "meets the thresholds on the golden set",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(_champion_table(record, generation, where))
    console.print(f"endpoint: {record['endpoint']}", highlight=False, soft_wrap=True)  # whole, to copy
    if entries:
        console.print(_history_table(entries))

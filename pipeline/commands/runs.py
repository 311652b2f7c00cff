"""``python -m pipeline runs``: the offline runs on a data folder (pipeline/offline.py reads them),
as a table or two runs side by side."""

from pathlib import Path

import typer

from pipeline.champion import local_data_dir
from pipeline.commands.options import DATA_DIR_HELP
from pipeline.terminal import console, fail, say


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

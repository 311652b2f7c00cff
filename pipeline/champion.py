"""``python -m pipeline champion``: an inspector's champion and its promotion history.

Offline by default: the champion lives in the local storage of the local Vertex AI's data
folder (``gs://local-bucket/inspectors/<inspector>/champion.json``), so the command starts the
local stack on that folder (or uses a running ``make serve``). ``--remote`` reads a real
bucket with Application Default Credentials instead. ``inspect`` asks the champion by default
through ``champion_target``.
"""

import json
from contextlib import contextmanager, nullcontext
from pathlib import Path

import typer
from rich.table import Column, Table

from components.champion import inspector_paths
from components.champion_store import list_json_objects, read_json_object
from components.helpers import parse_gcs_uri
from pipeline.terminal import console, fail

LOCAL_BUCKET, LOCAL_PROJECT = "gs://local-bucket", "local-project"


def default_inspector() -> str:
    """The pipeline's default ``tuned_model_display_name`` (the compiled YAML's)."""
    from pipeline.params import pipeline_inputs

    return pipeline_inputs()["tuned_model_display_name"]["default"]


@contextmanager
def inspector_bucket(
    bucket: str = LOCAL_BUCKET, project: str = LOCAL_PROJECT, data_dir: Path | None = None, remote: bool = False
):
    """Yields the ``google.cloud.storage`` bucket that holds the inspectors' state.

    ``remote``: the real Cloud Storage bucket (Application Default Credentials). Otherwise the
    local storage: of a running local stack when ``STORAGE_EMULATOR_HOST`` is set and no
    ``data_dir`` is given, else of a local stack started here on ``data_dir`` (default
    ``.localvertex/``). The local client is bound to that stack's address explicitly, so the
    caller's environment is left as it is.
    """
    import os

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    if remote:
        yield storage.Client(project=project).bucket(bucket_name)
        return
    from localvertex import LocalStack

    running = os.environ.get("STORAGE_EMULATOR_HOST") if data_dir is None else None
    with nullcontext() if running else LocalStack(data_dir, bucket=bucket_name, project=project) as stack:
        url = running or stack.storage_url
        client = storage.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
        )
        yield client.bucket(bucket_name)


def load_champion(home, name: str) -> tuple[dict | None, int]:
    """(the champion record of inspector ``name`` or None, its generation)."""
    return read_json_object(home, inspector_paths(name)["champion"])


def load_history(home, name: str, limit: int = 0) -> list[dict]:
    """The inspector's promotions, oldest first (the last ``limit`` when positive)."""
    return list_json_objects(home, inspector_paths(name)["history"], limit)


def offline_run_id(run_name: str) -> str:
    """The offline run (``python -m pipeline runs``) whose kfp.local run is ``run_name``, or ""."""
    from pipeline import offline

    found = sorted(offline.RUNS_DIR.glob(f"*/pipeline_root/{run_name}")) if run_name else []
    return found[-1].parent.parent.name if found else ""


def champion_target(data_dir: Path, name: str, bucket: str = LOCAL_BUCKET, project: str = LOCAL_PROJECT) -> dict | None:
    """What ``inspect`` asks by default: the champion's endpoint, prompt and system instruction
    ({"endpoint", "prompt", "system_instruction", "run"}), or None when there is no champion."""
    with inspector_bucket(bucket, project, data_dir) as home:
        record, _ = load_champion(home, name)
    if record is None:
        return None
    return {key: record.get(key, "") for key in ("endpoint", "prompt", "system_instruction", "run")}


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
        None, "--name", help="Inspector (tuned_model_display_name; default: the pipeline's default)."
    ),
    history: int = typer.Option(10, help="Most recent promotions to list (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"champion\", \"generation\", \"history\"} as JSON."),
    data_dir: Path | None = typer.Option(None, help="Local Vertex AI data folder (default .localvertex/)."),
    bucket: str = typer.Option(LOCAL_BUCKET, help="Bucket holding inspectors/ (offline: gs://local-bucket)."),
    project: str = typer.Option(LOCAL_PROJECT, help="Project of the bucket (with --remote)."),
    remote: bool = typer.Option(False, help="Read the real Cloud Storage bucket (ADC) instead of the local one."),
):
    """Show an inspector's champion (what `inspect` asks by default) and its promotion history."""
    from localvertex import DataDirInUse

    name = name or default_inspector()
    try:
        with inspector_bucket(bucket, project, data_dir, remote) as home:
            record, generation = load_champion(home, name)
            entries = load_history(home, name, history)
    except DataDirInUse as error:
        fail(f"{error} (a run is using it: try again when it ends, or use `make serve` and run this beside it)", code=1)
    if as_json:
        print(json.dumps({"champion": record, "generation": generation, "history": entries}, sort_keys=True))
        return
    where = f"{bucket}/{inspector_paths(name)['champion']}"
    if record is None:
        console.print(
            f"no champion yet for [bold]{name}[/bold] in {where}: a run promotes one when its challenger "
            "meets the thresholds on the golden set",
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(_champion_table(record, generation, where))
    if entries:
        console.print(_history_table(entries))


def register(app: typer.Typer) -> None:
    """Adds ``champion`` to the CLI."""
    app.command("champion")(champion_command)

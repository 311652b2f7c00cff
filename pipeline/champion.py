"""An inspector's champion and its promotion history, where ``champion`` and ``inspect`` find them.

Offline by default: the champion lives in the local storage of a local Vertex AI data folder
(``gs://local-bucket/inspectors/<inspector>/champion.json``). ``champion``, ``inspect`` and
``runs`` default to the same folder (``--data-dir``, else $LOCALVERTEX_DATA_DIR or
``.localvertex/``) and to the same inspector (``--name``, else the one of the latest successful
run on that folder), so ``inspect`` asks the champion that ``champion`` shows. A stack already
running on the folder (``make serve``, or a run) is used where it is; otherwise one is started
for the command. ``--remote`` reads a real bucket with Application Default Credentials instead.
The commands' options and output are in pipeline/commands/champion.py and inspect.py.
"""

import json
import time
from contextlib import contextmanager
from pathlib import Path

from components.champion import inspector_paths
from components.champion_store import list_json_objects, read_json_object
from components.clients import parse_gcs_uri

LOCAL_BUCKET, LOCAL_PROJECT = "gs://local-bucket", "local-project"


class Unreachable(RuntimeError):
    """The local Vertex AI recorded for a data folder does not answer."""


def default_inspector() -> str:
    """The pipeline's default ``tuned_model_display_name`` (the compiled YAML's)."""
    from pipeline.params import pipeline_inputs

    return pipeline_inputs()["tuned_model_display_name"]["default"]


def local_data_dir(data_dir: Path | None = None) -> Path:
    """The data folder ``inspect``, ``champion`` and ``runs`` use: ``data_dir``, else the local Vertex AI's default."""
    from localvertex.stack import default_data_dir

    return Path(data_dir or default_data_dir()).resolve()


def runs_on(data_dir: Path) -> list[dict]:
    """The offline runs (offline.load_runs) made on ``data_dir``, newest first."""
    from pipeline import offline

    return [run for run in offline.load_runs() if run["data_dir"] and Path(run["data_dir"]).resolve() == data_dir]


def latest_successful_run(data_dir: Path) -> dict | None:
    """The newest offline run on ``data_dir`` that succeeded, with its "result" (result.json), or None."""
    from pipeline import offline

    for run in runs_on(data_dir):
        if run["state"] == "succeeded":
            return {**run, "result": json.loads((offline.RUNS_DIR / run["run_id"] / "result.json").read_text())}
    return None


def choose_inspector(data_dir: Path, name: str | None) -> tuple[str, dict | None, str]:
    """(inspector, the latest successful run on ``data_dir`` or None, why this inspector).

    One rule for ``champion`` and ``inspect``: ``name`` when given, else the inspector of the
    latest successful run on the folder (the one it competed for), else the pipeline's default.
    """
    latest = latest_successful_run(data_dir)
    if name:
        return name, latest, "--name"
    if latest:
        inspector = latest["result"].get("inspector") or latest["params"].get("tuned_model_display_name")
        if inspector:
            return inspector, latest, f"the inspector of run {latest['run_id']}, the latest successful run on it"
    return default_inspector(), latest, "the pipeline's default inspector"


def wait_reachable(url: str, what: str, fix: str, seconds: float = 3.0) -> None:
    """Returns once ``url``'s port accepts connections; Unreachable naming it after ``seconds``.

    Checked before any SDK call: on a refused connection the storage client retries for 120 s
    and then prints a long traceback.
    """
    import socket
    from urllib.parse import urlparse

    address = urlparse(url)
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((address.hostname, address.port or 80), timeout=1).close()
            return
        except OSError as error:
            if time.monotonic() >= deadline:
                reason = error.strerror or type(error).__name__
                raise Unreachable(f"cannot reach {what} at {url} ({reason}): {fix}") from None
            time.sleep(0.2)


@contextmanager
def local_services(data_dir: Path, bucket: str = "local-bucket", project: str = LOCAL_PROJECT):
    """Yields (SDK environment, which local Vertex AI it is) for the data folder ``data_dir``.

    The stack already running there (``make serve``, or a run) is used at the addresses it
    recorded; otherwise one is started here for as long as the block runs.
    """
    from localvertex import LocalStack
    from localvertex.stack import running_stack

    running = running_stack(data_dir)
    if running:
        what = f"the local Vertex AI running on {data_dir} (pid {running['pid']})"
        fix = f"it is starting or stopping: try again, or stop pid {running['pid']} and let this command start its own"
        wait_reachable(running["storage_url"], what, fix)
        wait_reachable(running["vertex_url"], what, fix)
        yield running["env"], what
        return
    with LocalStack(data_dir, bucket=bucket, project=project) as stack:
        yield stack.env, f"a local Vertex AI started on {data_dir} for this command"


def storage_bucket(env: dict, bucket_name: str, project: str):
    """The local storage's bucket, through a client bound to ``env``'s address (the caller's environment stays as it is)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": env["STORAGE_EMULATOR_HOST"]},
    )
    return client.bucket(bucket_name)


@contextmanager
def inspector_bucket(
    bucket: str = LOCAL_BUCKET, project: str = LOCAL_PROJECT, data_dir: Path | None = None, remote: bool = False
):
    """Yields the ``google.cloud.storage`` bucket that holds the inspectors' state.

    ``remote``: the real Cloud Storage bucket (Application Default Credentials). Otherwise the
    local storage of the data folder ``data_dir`` (see local_data_dir and local_services).
    """
    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    if remote:
        from google.cloud import storage

        yield storage.Client(project=project).bucket(bucket_name)
        return
    with local_services(local_data_dir(data_dir), bucket_name, project) as (env, _):
        yield storage_bucket(env, bucket_name, project)


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


def champion_target(
    data_dir: Path | None, name: str, bucket: str = LOCAL_BUCKET, project: str = LOCAL_PROJECT
) -> dict | None:
    """What ``inspect`` asks by default: the champion's endpoint, prompt, system instruction and
    base model ({"endpoint", "prompt", "system_instruction", "run", "base_model"}), or None when
    there is no champion."""
    with inspector_bucket(bucket, project, data_dir) as home:
        return target_of(load_champion(home, name)[0])


def target_of(record: dict | None) -> dict | None:
    """The parts of a champion record a client needs to ask it; None for no champion."""
    if record is None:
        return None
    return {key: record.get(key, "") for key in ("endpoint", "prompt", "system_instruction", "run", "base_model")}


def retirement(base_model: str) -> str:
    """The champion's retirement (a tuned model shares its base model's date), with its source."""
    from platform_facts.gemini import lifecycle_warning, model_lifecycle

    life = model_lifecycle(base_model)
    if not life["known"]:
        return f"unknown ({base_model} is not in platform_facts/gemini.py)"
    if life["retired"]:
        return f"RETIRED since {life['retires']}: the champion no longer answers; the next run replaces it"
    text = f"{life['retires'] or 'no date published'} ({life['source']})"
    warning = lifecycle_warning(base_model, within_days=60)
    return f"{text}; {warning}" if warning else text

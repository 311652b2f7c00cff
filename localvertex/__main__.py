"""``python -m localvertex serve``: run the local Vertex AI + Cloud Storage server in the foreground."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import sys
import time
from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Local stand-in for Vertex AI tuning/prediction and Cloud Storage."
)


@app.callback()
def _main() -> None:
    """Local Vertex AI + Cloud Storage emulator."""


def _say(message: str, err: bool = False) -> None:
    """Prints a line; a closed pipe (``make serve | tee`` after tee exits, a dead parent) is
    ignored, so shutting down never fails on it and never leaves the server running."""
    with contextlib.suppress(BrokenPipeError, ValueError, OSError):  # ValueError: the stream was closed
        typer.echo(message, err=err)


def _ignore_closed_output() -> None:
    """After output breaks, Python's own flush at exit and logging must not raise again."""
    logging.raiseExceptions = False
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives until exit


def _dump_stacks_on_sigusr1(data_dir: Path):
    """``kill -USR1 <pid>`` writes every thread's stack to <data_dir>/stacks.txt (a server that
    will not stop, seen from outside even when its output is gone). Returns the open file."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        stacks = open(data_dir / "stacks.txt", "a")  # noqa: SIM115 - faulthandler writes to it until exit
    except OSError:
        return None
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    return stacks


@app.command()
def serve(
    port: int = typer.Option(8080, help="Port of the Vertex AI API (0: any free port)."),
    storage_port: int = typer.Option(9023, help="Port of the Cloud Storage server (0: any free port)."),
    data_dir: Path | None = typer.Option(
        None, help="Data directory (default: $LOCALVERTEX_DATA_DIR or <repo>/.localvertex)."
    ),
    bucket: str = typer.Option("local-bucket", help="Bucket created at start-up."),
    project: str = typer.Option("local-project", help="Project id written to credentials.json."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request."),
) -> None:
    """Start everything on 127.0.0.1 and print the environment to point the SDKs at it."""
    from .emulator import StorageStartError
    from .stack import DataDirInUse, LocalStack

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger("localvertex")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)

    # A plain flag, not a threading.Event: the handler runs in the main thread, and Event.set
    # there deadlocked when the signal came while Event.wait held the Event's own lock.
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: stopping.append(number))
    stack = LocalStack(data_dir, vertex_port=port, storage_port=storage_port, bucket=bucket, project=project)
    stacks = _dump_stacks_on_sigusr1(stack.data_dir)
    try:
        stack.start()
    except (OSError, DataDirInUse, StorageStartError) as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        _say("# local Vertex AI is up; paste these lines into your shell:")
        for line in stack.export_lines():
            _say(line)
        _say(f"# data: {stack.data_dir}  (log: {stack.data_dir / 'localvertex.log'})")
        _say("# Ctrl-C to stop", err=True)
        _ignore_closed_output()
        try:
            while not stopping:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    finally:
        # Stop first: a message to a closed pipe must never keep the server (and its lock) alive.
        _say("stopping...", err=True)
        stack.stop()
        _ignore_closed_output()
        if stacks is not None:
            faulthandler.unregister(signal.SIGUSR1)
            stacks.close()


@app.command()
def env(
    data_dir: Path | None = typer.Option(
        None, help="Data directory of the running stack (default: $LOCALVERTEX_DATA_DIR or <repo>/.localvertex)."
    ),
    location: str = typer.Option("us-central1", help="LOCATION for the Vertex commands (a tuning region)."),
    experiment: str = typer.Option(
        # Not the pipeline's name, visual-defect-sft: that is the ID of its runs' system.Pipeline context.
        "visual-defect-sft-runs",
        help="EXPERIMENT for submit, schedule and compare.",
    ),
) -> None:
    """Print the export lines of the stack running on the data directory (``serve`` or a run):
    the SDKs' variables, then the settings of ``make submit | schedule | upload | compare |
    vertex-smoke`` (env.sh's PROJECT, LOCATION, BUCKET, EXPERIMENT, REPO, CRON), so
    ``. <(python -m localvertex env)`` or ``python -m localvertex env > env.sh`` points them here."""
    import shlex

    from .pipelines.registry import host_url
    from .stack import default_data_dir, running_stack

    d = (data_dir or default_data_dir()).resolve()
    stack = running_stack(d)
    if stack is None:
        # Printing default ports here would point the SDKs at nothing (or at another stack).
        typer.echo(
            f"no local Vertex AI is running on {d}: start one with `make serve` (or `python -m localvertex serve`)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"# local Vertex AI of {d} (pid {stack['pid']})")
    for key, value in stack["env"].items():
        typer.echo(f"export {key}={shlex.quote(value)}")
    project = stack["project"]
    settings = {
        "PROJECT": project,
        "LOCATION": location,
        "BUCKET": f"gs://{stack.get('bucket', 'local-bucket')}",
        "EXPERIMENT": experiment,
        "REPO": host_url(stack["vertex_url"], project, location),
        "CRON": "0 2 * * *",
        "SERVICE_ACCOUNT": "",  # runs execute as the twin's worker; none to name
    }
    typer.echo("# settings of make submit | schedule | upload | compare | vertex-smoke (env.sh's variables)")
    for key, value in settings.items():
        typer.echo(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    app()

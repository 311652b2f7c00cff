"""``python -m localvertex.console`` (``make console``): print the console's login URL.

If a local Vertex AI already runs on the data folder (``make serve``), the URL is that
server's, with the login token it accepts. Otherwise this starts one (as ``make serve``
does, in the foreground) with a fresh token, which ends the sessions of earlier ones.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import typer

from .security import new_keys, read_keys

app = typer.Typer(add_completion=False)


def login_url(vertex_url: str, token: str) -> str:
    return f"{vertex_url.rstrip('/')}/console/login?token={token}"


@app.command()
def main(
    port: int = typer.Option(8080, help="Port of the Vertex AI API and console (0: any free port)."),
    storage_port: int = typer.Option(9023, help="Port of the Cloud Storage server (0: any free port)."),
    data_dir: Path | None = typer.Option(
        None, help="Data directory (default: $LOCALVERTEX_DATA_DIR or <repo>/.localvertex)."
    ),
) -> None:
    """Print the console URL (with its login token); start the server first if none runs."""
    from ..emulator import StorageStartError
    from ..stack import DataDirInUse, LocalStack, default_data_dir, running_stack

    folder = (data_dir or default_data_dir()).resolve()
    running = running_stack(folder)
    if running is not None:
        keys = read_keys(folder / "auth")
        typer.echo(f"# the local Vertex AI of {folder} (pid {running['pid']}) serves the console; open:")
        typer.echo(login_url(running["vertex_url"], keys.login_token))
        return
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: stopping.append(number))
    stack = LocalStack(folder, vertex_port=port, storage_port=storage_port)
    try:
        stack.start()
    except (OSError, DataDirInUse, StorageStartError) as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        (folder / "auth").mkdir(parents=True, exist_ok=True)
        keys = new_keys(folder / "auth")
        typer.echo("# local Vertex AI and its console are up; open this URL (it logs you in):")
        typer.echo(login_url(stack.vertex_url, keys.login_token))
        typer.echo("# SDK environment (paste into a shell):")
        for line in stack.export_lines():
            typer.echo(line)
        typer.echo("# Ctrl-C to stop", err=True)
        sys.stdout.flush()
        while not stopping:
            time.sleep(0.2)
    finally:
        typer.echo("stopping...", err=True)
        stack.stop()


if __name__ == "__main__":
    app()

"""The command line's shared output: messages on stderr, one-line errors."""

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Prints one red line (never wrapped, so it greps whole) and exits with ``code``."""
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)

"""The command line's shared output: messages on stderr, one-line errors.

Off a terminal (``make run > log``, CI, ``nohup``) rich would wrap every line at 80 columns and
cut table cells, breaking paths and endpoint names in two; there the console is as wide as a
line needs and never wraps, so whatever is printed can be copied or grepped whole.
"""

import sys

import typer
from rich.console import Console

# Off a terminal no line is wrapped: tables get this many columns, text is never folded.
UNWRAPPED_WIDTH = 10_000


def on_terminal() -> bool:
    """True when both stdout and stderr are terminals: only then is a live, redrawn view readable."""
    return all(stream.isatty() for stream in (sys.stdout, sys.stderr) if hasattr(stream, "isatty"))


def make_console() -> Console:
    """A console on stderr: rich's own on a terminal; off one, wide and never wrapping."""
    if on_terminal():
        return Console(stderr=True)
    return Console(stderr=True, width=UNWRAPPED_WIDTH, soft_wrap=True)


console = make_console()


def fail(message: str, code: int = 2) -> None:
    """Prints one red line (never wrapped, so it greps whole) and exits with ``code``."""
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(text: str) -> None:
    """One line for the user, as it is: no markup, never wrapped (paths and names are copied from it)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)

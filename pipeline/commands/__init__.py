"""``python -m pipeline``: the command line, one module per command.

Where to change what: a command's options and what it prints are in its module here, named in
``COMMANDS``; what it does is in the modules it calls, outside this package:

- ``compile.py`` → pipeline/pipeline.py (the DAG);
- ``run.py`` → pipeline/offline.py (kfp.local runs), pipeline/task_views.py (live progress),
  pipeline/params.py (parameter checks), pipeline/uploads.py (``--dataset``);
- ``runs.py`` → pipeline/offline.py (``load_runs``);
- ``inspect.py`` → pipeline/inspector.py (what to ask, one image's answer), pipeline/champion.py;
- ``champion.py`` → pipeline/champion.py (the champion's records, the data folder's stack);
- ``models.py`` → pipeline/models.py (the rows), platform_facts/gemini.py (the facts);
- ``validate.py`` → pipeline/validate.py (the checks), components/dataset_rules.py (the rules);
- ``submit.py``, ``schedule.py``, ``upload.py``, ``compare.py`` → pipeline/vertex.py (Vertex AI
  requests, credentials, errors, Experiments rows);
- ``vertex_smoke.py`` → pipeline/vertex_smoke/ (one module per check, and their runner);
- ``options.py``: what several commands share (options, the compiled-YAML check).

Start-up is kept short (``--help``, ``runs`` and ``validate --help`` in well under 1.5 s): a
command's module is imported only when that command runs; ``--help`` reads the help lines from
the modules' source. kfp, the Google SDKs and the pipeline definition are imported by the
commands that need them.
"""

import ast
import importlib
import importlib.util
from pathlib import Path

import typer
from typer.core import TyperCommand, TyperGroup

from pipeline.terminal import fail

# Command: "module:function" in this package, in the order --help lists them.
COMMANDS = {
    "compile": "compile:compile_command",
    "run": "run:run_command",
    "runs": "runs:runs_command",
    "inspect": "inspect:inspect_command",
    "validate": "validate:validate_command",
    "champion": "champion:champion_command",
    "submit": "submit:submit_command",
    "schedule": "schedule:schedule_command",
    "upload": "upload:upload_command",
    "compare": "compare:compare_command",
    "vertex-smoke": "vertex_smoke:smoke_command",
    "models": "models:models_command",
}


def _where(name: str) -> tuple[str, str]:
    """(module, function) of command ``name``."""
    module, function = COMMANDS[name].split(":")
    return f"{__name__}.{module}", function


def help_line(name: str) -> str:
    """The first paragraph of command ``name``'s docstring, read from the source without importing it."""
    module, function = _where(name)
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return (ast.get_docstring(node) or "").split("\n\n")[0].strip()
    raise LookupError(f"{module} has no function {function}")


def load(name: str):
    """Command ``name``'s function (its module imported now)."""
    module, function = _where(name)
    try:
        return getattr(importlib.import_module(module), function)
    except ImportError as error:  # the Vertex AI commands are optional for offline use
        fail(f"{module} cannot be imported ({error}): `pip install -e .` installs what it needs", code=1)


class LazyGroup(TyperGroup):
    """The root command group: lists COMMANDS with help lines read from their source, imports one on use."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name: str):
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        # A stand-in with the help line, for the command list; resolve_command loads the real one.
        return TyperCommand(cmd_name, help=help_line(cmd_name)) if cmd_name in COMMANDS else None

    def resolve_command(self, ctx, args):
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            holder = typer.Typer()
            holder.callback()(lambda: None)  # a callback keeps even a single command inside a group
            holder.command(args[0])(load(args[0]))
            self.commands.update(typer.main.get_command(holder).commands)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    help="Explainable visual quality-control inspector: a Kubeflow pipeline that tunes Gemini.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root() -> None:
    # A callback makes the app a group before any command is loaded (typer needs one or the other).
    pass

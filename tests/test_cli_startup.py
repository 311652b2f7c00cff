"""Issue 35: the CLI starts fast, because `--help`, `runs` and `validate --help` import none of the
heavy packages (kfp, the Google SDKs, torch, pandas); bench/bench_cli_startup.py times them."""

import subprocess
import sys

import pytest

from pipeline import offline

HEAVY = ("kfp", "google.cloud", "google.genai", "torch", "pandas", "pipeline.pipeline")


@pytest.mark.parametrize("args", [["--help"], ["runs"], ["validate", "--help"]])
def test_light_commands_import_no_heavy_package(args, tmp_path):
    env = {"PIPELINE_RUNS_DIR": str(tmp_path), "LOCALVERTEX_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        cwd=offline.REPO,
        env=env,
        timeout=120,
    )
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert not [name for name in imported if name.startswith(HEAVY)], "imported at start-up"


def test_every_command_is_listed_and_runs_after_lazy_loading():
    from typer.testing import CliRunner

    from pipeline.commands import app

    listing = CliRunner().invoke(app, ["--help"])
    for name in ("run", "runs", "inspect", "champion", "validate", "submit", "schedule", "compare", "vertex-smoke"):
        assert f" {name} " in listing.output, name
    helped = CliRunner().invoke(app, ["validate", "--help"])
    assert helped.exit_code == 0 and "--json" in helped.output


def test_every_command_module_is_listed_and_its_help_line_is_its_docstring():
    """pipeline/commands/: one module per command, each in COMMANDS; --help reads the same first
    paragraph from the source that the imported function carries."""
    import inspect
    from pathlib import Path

    from pipeline import commands

    modules = {p.stem for p in Path(commands.__file__).parent.glob("*.py")} - {"__init__", "options"}
    assert modules == {entry.split(":")[0] for entry in commands.COMMANDS.values()}
    for name in commands.COMMANDS:
        function = commands.load(name)
        assert commands.help_line(name) == inspect.getdoc(function).split("\n\n")[0].strip() != "", name

"""What several commands share: their common options and the check that the compiled pipeline exists."""

from pathlib import Path

import typer

from pipeline.terminal import fail

DATA_DIR_HELP = "Local Vertex AI data folder (default: $LOCALVERTEX_DATA_DIR or .localvertex/); the same for inspect, champion and runs."
PROJECT = typer.Option(None, "--project", help="Google Cloud project (default: the project of your ADC).")
LOCATION = typer.Option("us-central1", "--location", help="Vertex AI region (pipelines and tuning).")


def template_option():
    """``--template``: the compiled pipeline YAML (imports the pipeline definition, and with it kfp)."""
    from pipeline.pipeline import COMPILED_YAML

    return typer.Option(COMPILED_YAML, "--template", help="Compiled pipeline YAML.", show_default=False)


def require_compiled(template: Path) -> None:
    """Exits with one line when the compiled pipeline ``template`` is missing."""
    if not template.exists():
        fail(f"{template} is missing: run `python -m pipeline compile` first")

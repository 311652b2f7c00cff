"""``python -m pipeline compile``: the pipeline as YAML (pipeline/pipeline.py builds it)."""

from pathlib import Path

import typer

from pipeline.terminal import console


def compile_command(output: Path | None = typer.Option(None, help="Where to write the pipeline YAML.")):
    """Compile the pipeline to YAML (the file Vertex AI and the offline run both use)."""
    from pipeline.pipeline import COMPILED_YAML, compile_pipeline

    path = compile_pipeline(output or COMPILED_YAML)
    console.print(f"compiled [bold]{path}[/bold]")

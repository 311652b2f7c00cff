"""``python -m pipeline``: the command line."""

from pipeline.commands import app

app(prog_name="python -m pipeline")

"""``python -m pipeline models``: which Gemini models can be tuned today, read before choosing
``base_model`` (the rows come from pipeline/models.py), as a table or JSON."""

import json

import typer
from rich.table import Table

from pipeline.models import model_rows
from pipeline.terminal import console
from platform_facts.gemini import gemini_facts_read, gemini_sources, recommended_models


def _thinking_text(thinking: dict) -> str:
    if "levels" in thinking:
        return "levels " + ", ".join(level.lower() for level in thinking["levels"])
    low, high = thinking["budget"]
    return f"budget {low}-{high}" + (" (0 = off)" if thinking["can_turn_off"] else "")


def _table(rows: list[dict]) -> Table:
    table = Table(title=f"Gemini models for supervised tuning (facts read {gemini_facts_read()})")
    for column in ("model", "stage", "retires", "tuning regions", "served at", "adapters", "thinking", "media"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "" if row["tunable_today"] else "dim"
        regions = (
            ", ".join(row["tuning_regions"])
            if len(row["tuning_regions"]) <= 3
            else f"{len(row['tuning_regions'])} regions"
        )
        retires = row["retires"] + (f" → {row['replacement']}" if row["replacement"] else "")
        table.add_row(
            row["model"],
            row["stage"],
            retires or "-",
            regions,
            ", ".join(row["served_at"]) if len(row["served_at"]) <= 3 else "tuning region",
            ",".join(map(str, row["adapter_sizes"])),
            _thinking_text(row["thinking"]),
            ", ".join(f"{k} {v}" for k, v in row["media_resolutions"].items()) or "-",
            style=style,
        )
    return table


def models_command(as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout.")):
    """Which Gemini models can be tuned today: stage, regions, limits, retirement dates and sources."""
    rows = model_rows()
    if as_json:
        document = {"read": gemini_facts_read(), "defaults": recommended_models(), "models": rows}
        print(json.dumps(document, indent=2))
        return
    console.print(_table(rows))
    defaults = recommended_models()
    console.print(f"Default base_model: {defaults['base_model']}; summary model: {defaults['summary_model']}.")
    console.print("Sources (one line each, not wrapped):")
    for key, url in gemini_sources().items():
        console.print(f"  {key}: {url}", soft_wrap=True, highlight=False)

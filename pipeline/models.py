"""``python -m pipeline models``: which Gemini models can be tuned today, read before choosing
``base_model``. Everything shown comes from platform_facts/gemini.py, with its sources and the
day they were read; the stage is computed for the day the command runs."""

import json

import typer
from rich.table import Table

from pipeline.terminal import console
from platform_facts.gemini import (
    gemini_facts_read,
    gemini_models,
    gemini_sources,
    model_lifecycle,
    recommended_models,
    serving_location,
)


def model_rows(today: str = "") -> list[dict]:
    """One row per model in the table, tunable and current first: what ``models`` prints."""
    rows = []
    for model, facts in gemini_models().items():
        life = model_lifecycle(model, today)
        thinking = facts["thinking"]
        rows.append(
            {
                "model": model,
                "stage": life["label"],
                "tunable_today": bool(facts["tuning"]) and not life["retired"],
                "released": life["released"],
                "retires": life["retires"],
                "days_left": life["days_left"],
                "replacement": life["replacement"],
                "tuning_regions": list(facts["tuning_regions"]),
                "served_at": sorted({serving_location(model, r) for r in facts["tuning_regions"]}),
                "adapter_sizes": list(facts["adapter_sizes"]),
                "max_example_tokens": facts["max_example_tokens"],
                "thinking": (
                    {"levels": list(thinking["levels"])}
                    if thinking["control"] == "level"
                    else {"budget": [thinking["min"], thinking["max"]], "can_turn_off": thinking["can_turn_off"]}
                ),
                "media_resolutions": facts["media_resolutions"],
                "continuous_tuning": facts["continuous_tuning"],
                "sources": {fact: gemini_sources()[key] for fact, key in facts["sources"].items()},
            }
        )
    return sorted(rows, key=lambda r: (not r["tunable_today"], r["retires"] == "", r["model"]))


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


def register(app: typer.Typer) -> None:
    """Adds ``models`` to the root CLI."""
    app.command("models")(models_command)

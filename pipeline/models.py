"""Which Gemini models can be tuned today, one row each (what ``python -m pipeline models`` shows,
from pipeline/commands/models.py). Everything comes from platform_facts/gemini.py, with its
sources and the day they were read; the stage is computed for the day asked about."""

from platform_facts.gemini import gemini_models, gemini_sources, model_lifecycle, serving_location


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

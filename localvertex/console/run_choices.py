"""Choices for the run form's fields, from the published facts (platform_facts/gemini.py)
and the pipeline's own tables, so the form offers what ``make submit`` would accept today.

A parameter with no entry here is a plain typed input."""

from __future__ import annotations

Choices = tuple[list[tuple[str, str]] | None, bool]  # (value, label) pairs; open (suggestions only)?


def _base_models() -> Choices:
    """The models Google tunes today and that have not retired: the values submit accepts."""
    from platform_facts.gemini import gemini_models, lifecycle_problem

    pairs = []
    for model, facts in gemini_models().items():
        if not facts.get("tuning") or lifecycle_problem(model):
            continue
        stage = "preview" if facts["tuning"] == "preview" else "GA"
        retires = f", retires {facts['retires']}" if facts.get("retires") else ""
        pairs.append((model, f"{model} (tuning {stage}{retires})"))
    return pairs, False


def _thinking() -> Choices:
    # Open: a Gemini 2.5 model takes a budget in tokens, any integer in its range.
    return [(v, v) for v in ("least", "dynamic", "none", "minimal", "low", "medium", "high")], True


def _media_resolution() -> Choices:
    from platform_facts.gemini import gemini_models

    levels: dict[str, int] = {}
    for facts in gemini_models().values():
        levels.update(facts.get("media_resolutions", {}))
    return [("", "(the model's default)")] + [(k, f"{k} ({v} tokens per image)") for k, v in levels.items()], False


def _locations() -> Choices:
    from platform_facts.gemini import gemini_models, lifecycle_problem

    regions = sorted(
        {
            r
            for model, facts in gemini_models().items()
            if facts.get("tuning") and not lifecycle_problem(model)
            for r in facts["tuning_regions"]
        }
    )
    return [(r, r) for r in regions], False


def _variation() -> Choices:
    from components.drawing import drawing_variations

    return [(v, v) for v in drawing_variations()], False


def _adapter_size() -> Choices:
    from pipeline.params import ADAPTER_SIZES

    return [(str(v), str(v)) for v in ADAPTER_SIZES], False


def _tune_from() -> Choices:
    return [("base", "base (a new model from the base model)"), ("champion", "champion (continue from it)")], False


CHOICES = {
    "base_model": _base_models,
    "thinking": _thinking,
    "media_resolution": _media_resolution,
    "location": _locations,
    "variation": _variation,
    "adapter_size": _adapter_size,
    "tune_from": _tune_from,
}


def choices_for(name: str) -> Choices:
    make = CHOICES.get(name)
    return make() if make else (None, False)

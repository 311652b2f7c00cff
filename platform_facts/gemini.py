"""Gemini on Vertex AI: what each model tunes and serves, until when, and what it costs in tokens.

Every function is self-contained (imports inside, no module constants) so that components
can ship it (components/shipping.py copies the functions a component reaches). Dates are compared with the day the code runs (``today=""``), so a model
that retires turns a run, a submission and the test suite red on that day, not when
someone next edits this file.

Every fact names its source and the day it was read (``gemini_sources``). Where Google's
pages disagree the table takes the safer reading and says so:
- Retirement of the 2.5 family: model-versions snapshots give June 17, Oct 16 and Oct 20,
  2026; the earliest is used (all are past on 2026-12-07).
- Gemini 3.5 Flash-Lite tuning: the tuning reference lists it, the supervised-tuning page
  (updated 2026-09-25) does not; it is not tuned here.
- Thinking levels of 3.5 Flash and 3.1 Flash-Lite: Google's table rows for them were not
  readable, so only the levels every Gemini 3 row shows (LOW, MEDIUM, HIGH) are sent.
- Image tokens per media resolution: Google states 1,120 for a Gemini 3 image at the
  default resolution; 280 (low) and 560 (medium) come from the per-part resolution docs'
  ratios as quoted elsewhere. ULTRA_HIGH has no published count, so the pipeline does not
  offer it (the cost guard could not count it).
- Prices per 1M training tokens: none could be read from Google's pricing page; the
  table stays empty and the cost guard asks for a price rather than guess one.
"""


def gemini_facts_read():
    """The day the table below was last checked against Google's pages (ISO date)."""
    return "2026-12-07"


def gemini_sources():
    """Source URL of each kind of fact, read on ``gemini_facts_read()``."""
    agent = "https://docs.cloud.google.com/gemini-enterprise-agent-platform"
    return {
        "supervised_tuning": f"{agent}/models/tuning/supervised-tuning",
        "tuning_reference": f"{agent}/reference/models/tuning",
        "image_tuning": f"{agent}/models/tuning/image",
        "model_versions": f"{agent}/models/model-versions",
        "continuous_tuning": f"{agent}/models/tuning/continuous-tuning",
        "thinking": f"{agent}/models/thinking",
        "gemini_3_flash_card": f"{agent}/models/gemini/3-flash",
        "gemini_3_5_flash_lite_card": f"{agent}/models/gemini/3-5-flash-lite",
        "media_resolution": "https://ai.google.dev/gemini-api/docs/media-resolution",
        "tokens_2_5": "https://ai.google.dev/gemini-api/docs/tokens",
        "thinking_2_5": "https://ai.google.dev/gemini-api/docs/thinking",
        "pricing": "https://cloud.google.com/products/gemini-enterprise-agent-platform/pricing",
        "regions_2_5": "https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-region-settings",
    }


def gemini_2_5_family():
    """What the Gemini 2.5 models share: GA tuning in 29 regions, served where tuned, budget thinking."""
    regions_2_5 = (
        "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast3", "asia-south1", "asia-southeast1",
        "australia-southeast1", "europe-central2", "europe-north1", "europe-southwest1", "europe-west1",
        "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9",
        "me-central1", "me-central2", "me-west1", "northamerica-northeast1", "southamerica-east1",
        "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west4",
    )  # fmt: skip
    return {
        "stage": "GA",
        "tuning": "GA",
        "retires": "2026-06-17",  # the earliest of the model-versions snapshots (see module docstring)
        "tuning_regions": regions_2_5,
        "serving": "regional",
        "adapter_sizes": (1, 2, 4, 8, 16),
        "max_example_tokens": 131_072,
        "continuous_tuning": True,
        "media_resolutions": {},  # part-level resolution is for Gemini 3 models
        "default_image_tokens": 258,
        "sources": {
            "tuning": "supervised_tuning",
            "dates": "model_versions",
            "regions": "regions_2_5",
            "thinking": "thinking_2_5",
            "image_tokens": "tokens_2_5",
            "continuous_tuning": "continuous_tuning",
        },
    }


def gemini_3_family():
    """What the tunable Gemini 3 models share: two tuning regions, served on the us / eu
    multi-region endpoints only, thinking levels, part-level media resolution."""
    return {
        "stage": "GA",
        "tuning": "GA",
        "tuning_regions": ("us-central1", "europe-west4"),
        "serving": {"us-central1": "us", "europe-west4": "eu"},  # "us and eu multi-region endpoints only"
        "adapter_sizes": (1, 2, 4, 8, 16),
        "max_example_tokens": 131_072,
        "continuous_tuning": True,
        "thinking": {"control": "level", "levels": ("LOW", "MEDIUM", "HIGH"), "least": "LOW"},
        "media_resolutions": {"low": 280, "medium": 560, "high": 1120},
        "default_image_tokens": 1120,
        "sources": {
            "tuning": "supervised_tuning",
            "dates": "model_versions",
            "regions": "supervised_tuning",
            "thinking": "thinking",
            "image_tokens": "gemini_3_flash_card",
            "media_resolution": "media_resolution",
            "continuous_tuning": "continuous_tuning",
        },
    }


def gemini_models():
    """Model id -> facts. Keys of each entry:

    stage: launch stage of the model ("GA" or "preview"); tuning: launch stage of its
    supervised tuning, or "" where Google does not tune it; released / retires: ISO dates
    from the model-versions page ("" when none is published); replacement: the model that
    page names; tuning_regions: where tuning jobs run; serving: "regional" (a tuned model
    answers in its tuning region) or {tuning region: multi-region endpoint location};
    adapter_sizes; max_example_tokens; continuous_tuning: may start from a tuned model;
    thinking: {"control": "budget", min, max, can_turn_off} or {"control": "level",
    levels, least}; media_resolutions: part-level resolution -> tokens per image (empty:
    the model takes no part-level resolution); default_image_tokens: tokens of one image
    up to 384 px at the default resolution ("tiled": 258 per 768 px tile above that);
    sources: fact -> source key (gemini_sources).
    """
    gemini_2_5, gemini_3 = gemini_2_5_family(), gemini_3_family()
    return {
        "gemini-3.5-flash": {**gemini_3, "released": "2026-05-19", "retires": "2027-05-19", "replacement": ""},
        "gemini-3.1-flash-lite": {
            **gemini_3,
            "tuning": "preview",  # tuning launched in preview (release notes, May 20, 2026)
            "released": "2026-05-07",
            "retires": "2027-05-07",
            "replacement": "",
        },
        "gemini-3.5-flash-lite": {
            **gemini_3,
            "tuning": "",  # listed by the tuning reference, not by the supervised-tuning page
            "continuous_tuning": False,
            "released": "2026-07-21",
            "retires": "2027-07-21",
            "replacement": "",
            "thinking": {"control": "level", "levels": ("MINIMAL", "LOW", "MEDIUM", "HIGH"), "least": "MINIMAL"},
        },
        "gemini-2.5-pro": {
            **gemini_2_5,
            "adapter_sizes": (1, 2, 4, 8),
            "released": "2025-06-17",
            "replacement": "gemini-3.5-flash",
            "thinking": {"control": "budget", "min": 128, "max": 32_768, "can_turn_off": False},
        },
        "gemini-2.5-flash": {
            **gemini_2_5,
            "released": "2025-06-17",
            "replacement": "gemini-3.5-flash",
            "thinking": {"control": "budget", "min": 0, "max": 24_576, "can_turn_off": True},
        },
        "gemini-2.5-flash-lite": {
            **gemini_2_5,
            "released": "2025-07-22",
            "replacement": "gemini-3.1-flash-lite",
            "thinking": {"control": "budget", "min": 512, "max": 24_576, "can_turn_off": True},
        },
    }


def recommended_models():
    """The defaults: the GA model Google tunes for images today, and the model that writes summaries."""
    return {"base_model": "gemini-3.5-flash", "summary_model": "gemini-3.5-flash"}


def tuning_limits():
    """Dataset limits Vertex AI enforces for every tunable model (supervised-tuning and image-tuning pages)."""
    return {"max_validation_examples": 5000, "max_images_per_example": 30, "max_image_bytes": 20 * 1024 * 1024}


def continuous_tuning_since():
    """Only models tuned on or after this day can be tuned onward (continuous-tuning page)."""
    return "2025-07-11"


def base_model_id(base_model):
    """``gemini-3.5-flash`` from ``gemini-3.5-flash``, ``publishers/google/models/gemini-3.5-flash``
    or ``projects/p/locations/l/publishers/google/models/gemini-3.5-flash``."""
    return (base_model or "").strip().rsplit("/", 1)[-1]


def model_lifecycle(base_model, today=""):
    """Where a model stands on ``today`` (ISO date; "" is the day the code runs).

    Returns {"model", "known", "stage", "tuning", "released", "retires", "replacement",
    "days_left" (None without a date), "retired", "label", "source"}; ``label`` is what a
    user reads: "GA", "preview", "retired since 2026-06-17", "not tunable".
    """
    import datetime

    model = base_model_id(base_model)
    facts = gemini_models().get(model)
    day = datetime.date.fromisoformat(today) if today else datetime.date.today()
    if facts is None:
        return {"model": model, "known": False, "stage": "", "tuning": "", "released": "", "retires": "",
                "replacement": "", "days_left": None, "retired": False, "label": "unknown", "source": ""}  # fmt: skip
    retires = facts.get("retires", "")
    days_left = (datetime.date.fromisoformat(retires) - day).days if retires else None
    retired = days_left is not None and days_left <= 0
    label = f"retired since {retires}" if retired else facts["tuning"] or "not tunable"
    return {
        "model": model,
        "known": True,
        "stage": facts["stage"],
        "tuning": facts["tuning"],
        "released": facts.get("released", ""),
        "retires": retires,
        "replacement": facts.get("replacement", ""),
        "days_left": days_left,
        "retired": retired,
        "label": label,
        "source": gemini_sources()[facts["sources"]["dates"]],
    }


def lifecycle_problem(base_model, today=""):
    """Why ``base_model`` must not be used on ``today`` (retired), as a sentence naming the
    replacement and the source, or None."""
    life = model_lifecycle(base_model, today)
    if not life["retired"]:
        return None
    instead = life["replacement"] or recommended_models()["base_model"]
    return (
        f"{life['model']} was retired on {life['retires']} (a model tuned on it stops answering too); "
        f"use {instead} instead (source: {life['source']}, read {gemini_facts_read()})"
    )


def lifecycle_warning(base_model, today="", within_days=60):
    """A warning when ``base_model`` retires within ``within_days`` of ``today``, or None."""
    life = model_lifecycle(base_model, today)
    if life["retired"] or life["days_left"] is None or life["days_left"] > within_days:
        return None
    instead = f"; plan the move to {life['replacement']}" if life["replacement"] else ""
    return (
        f"{life['model']} retires on {life['retires']}, in {life['days_left']} days (source: {life['source']}){instead}"
    )


def tuning_problems(base_model, adapter_size=None, location=None, today=""):
    """What Vertex AI would refuse in a tuning request, as sentences naming the fix ([] if none)."""
    table = gemini_models()
    model = base_model_id(base_model)
    tunable = [m for m, f in table.items() if f["tuning"] and not model_lifecycle(m, today)["retired"]]
    if model not in table or not table[model]["tuning"]:
        return [
            f"base_model {base_model!r} is not a Gemini model that supervised tuning supports; "
            f"use one of {', '.join(tunable)} (source: {gemini_sources()['supervised_tuning']})"
        ]
    retired = lifecycle_problem(model, today)
    if retired:
        return [f"base_model {retired}"]
    problems = []
    sizes = table[model]["adapter_sizes"]
    if adapter_size is not None and adapter_size not in sizes:
        problems.append(
            f"adapter_size {adapter_size} is not supported for {model}; use one of {', '.join(map(str, sizes))}"
        )
    regions = table[model]["tuning_regions"]
    if location is not None and location not in regions:
        shown = ", ".join(regions) if len(regions) <= 4 else "a tuning region such as us-central1 or europe-west4"
        problems.append(f"location {location!r} does not run {model} tuning jobs; use {shown}")
    return problems


def serving_location(base_model, tuning_location):
    """Where Vertex AI serves a model tuned from ``base_model`` in ``tuning_location``: the
    same region, or the multi-region endpoint ("us", "eu") for models served only there."""
    facts = gemini_models().get(base_model_id(base_model))
    serving = facts["serving"] if facts else "regional"
    return tuning_location if serving == "regional" else serving.get(tuning_location, tuning_location)


def thinking_choices():
    """The values of the pipeline's ``thinking`` parameter and what each means per model."""
    return {
        "least": "as little as the model allows: budget 0 (2.5 Flash, Flash-Lite), 128 (2.5 Pro), "
        "the lowest level a Gemini 3 model takes (LOW, or MINIMAL where Google lists it)",
        "dynamic": "the model decides: budget -1 (2.5), HIGH (Gemini 3, its dynamic default)",
        "none": "no thinking config at all (the model's default)",
        "minimal, low, medium, high": "a thinking level (Gemini 3 models only)",
        "an integer": "a thinking budget in tokens (Gemini 2.5 models only)",
    }


def thinking_config_for(base_model, thinking):
    """The thinking config to send for ``thinking`` (thinking_choices) to a model tuned from
    ``base_model``: {"thinking_budget": n}, {"thinking_level": "LOW"} or {} (send none).

    Raises ValueError naming what the model accepts when it takes no such control (Vertex
    AI answers 400): a level for a 2.5 model, a budget for a Gemini 3 model, a level or
    budget outside the model's range.
    """
    model = base_model_id(base_model)
    rules = gemini_models().get(model.lower(), {}).get("thinking")
    value = str(thinking).strip().lower()
    if value == "none":
        return {}
    if rules is None:
        raise ValueError(
            f"thinking {thinking!r}: {model} is not in the model table, so its thinking control is unknown"
        )
    if rules["control"] == "level":
        levels = rules["levels"]
        level = {"least": rules["least"], "dynamic": "HIGH"}.get(value, value.upper())
        if level not in levels:
            raise ValueError(
                f"thinking {thinking!r} is not valid for {model}: it takes a thinking level, "
                f"one of {', '.join(v.lower() for v in levels)}, or least, dynamic, none"
            )
        return {"thinking_level": level}
    off = rules["min"] if not rules["can_turn_off"] else 0
    named = {"least": off, "dynamic": -1}
    if value in named:
        return {"thinking_budget": named[value]}
    try:
        budget = int(value)
    except ValueError:
        budget = None
    if budget is None or not (budget == -1 or rules["min"] <= budget <= rules["max"] or (budget == 0 and off == 0)):
        turn_off = "0 (off), " if rules["can_turn_off"] else ""
        raise ValueError(
            f"thinking {thinking!r} is not valid for {model}: it takes a thinking budget, "
            f"{turn_off}-1 (dynamic) or {rules['min']}..{rules['max']}, or least, dynamic, none"
        )
    return {"thinking_budget": budget}


def media_resolution_level(media_resolution):
    """The Part.mediaResolution.level enum name for a parameter value ("" for none)."""
    value = (media_resolution or "").strip().lower().removeprefix("media_resolution_")
    return f"MEDIA_RESOLUTION_{value.upper()}" if value else ""


def media_resolution_problem(base_model, media_resolution):
    """Why ``media_resolution`` ("", "low", "medium", "high") cannot be sent per image part
    for ``base_model``, or None."""
    value = (media_resolution or "").strip().lower().removeprefix("media_resolution_")
    if not value:
        return None
    model = base_model_id(base_model)
    offered = gemini_models().get(model, {}).get("media_resolutions", {})
    if not offered:
        return (
            f"media_resolution {media_resolution!r}: {model} takes no per-image media resolution "
            f"(Gemini 3 models only, {gemini_sources()['media_resolution']}); leave it empty"
        )
    if value not in offered:
        return f"media_resolution {media_resolution!r} is not offered for {model}; use one of {', '.join(offered)}, or empty"
    return None


def text_token_count(characters):
    """Tokens of text, at the usual 4 characters a token."""
    import math

    return math.ceil(int(characters) / 4)


def image_token_count(width, height, base_model="", media_resolution=""):
    """Tokens one image counts for ``base_model`` at ``media_resolution``.

    Gemini 3: the resolution's fixed count (gemini_models' media_resolutions), the default
    resolution's without one. Gemini 2.5 (and unknown sizes): "Image inputs with both
    dimensions <=384 pixels are counted as 258 tokens. Images larger ... into tiles of
    768x768 pixels, each counted as 258 tokens" (read as ceil(w/768) x ceil(h/768)).
    """
    import math

    facts = gemini_models().get(base_model_id(base_model), {})
    value = (media_resolution or "").strip().lower().removeprefix("media_resolution_")
    fixed = facts.get("media_resolutions", {}).get(value) if value else None
    if fixed is None and facts.get("media_resolutions"):
        fixed = facts["default_image_tokens"]
    if fixed is not None:
        return fixed
    if not width or not height or (width <= 384 and height <= 384):
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def example_token_count(characters, image_sizes, base_model="", media_resolution=""):
    """Tokens of one example: its text plus each image ((width, height) or None if unknown)."""
    return text_token_count(characters) + sum(
        image_token_count(*(size or (0, 0)), base_model, media_resolution) for size in image_sizes
    )


def tuning_prices():
    """Supervised-tuning prices (USD per 1M training tokens) by base model, with source.

    Empty on purpose: no figure could be read from Google's pricing page when the table was
    checked; the supervised-tuning page states only that training tokens are the dataset's
    tokens times the epochs. Pass ``training_price_per_million_tokens_usd`` from the page, or
    use ``max_training_tokens``, which needs no price.
    """
    return {
        "source": gemini_sources()["pricing"],
        "checked": gemini_facts_read(),
        "note": "no price could be verified from the source; the table is empty",
        "usd_per_million_training_tokens": {},
    }


def continuous_tuning_problem(base_model, pretuned_base_model, pretuned_tuned_on, today=""):
    """Why a job cannot tune onward from a model tuned from ``pretuned_base_model`` on
    ``pretuned_tuned_on`` (ISO date) for ``base_model``, or None (continuous-tuning page)."""
    model, earlier = base_model_id(base_model), base_model_id(pretuned_base_model)
    facts = gemini_models().get(earlier)
    if facts is None or not facts.get("continuous_tuning"):
        return f"{earlier} does not support continuous tuning ({gemini_sources()['continuous_tuning']})"
    if model and model != earlier:
        return f"the champion was tuned from {earlier}, not {model}: continuous tuning keeps the base model"
    retired = lifecycle_problem(earlier, today)
    if retired:
        return retired
    since = continuous_tuning_since()
    if not pretuned_tuned_on or pretuned_tuned_on[:10] < since:
        return f"only models tuned on or after {since} can be tuned onward; this one was tuned on {pretuned_tuned_on or 'an unknown day'}"
    return None

"""One table of what Vertex AI's Gemini supervised tuning accepts, per base model.

Used before submit (pipeline/params.py), by launch_tuning and evaluate_inspector (shipped
with ``additional_funcs``: functions only, imports inside) and by the local Vertex AI, so
an offline run refuses what Vertex AI would refuse.

Sources (read 2026-11):
- Supervised tuning page, "Last updated 2026-09-25": docs.cloud.google.com/
  gemini-enterprise-agent-platform/models/tuning/supervised-tuning (formerly
  cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning): adapter
  sizes "1, 2, 4, and 8" for 2.5 Pro, 1-16 for 2.5 Flash and Flash-Lite; 131,072 tokens per
  example; validation set of at most 5000 examples; 30 images of at most 20 MB per example.
- Thinking (ai.google.dev/gemini-api/docs/thinking, "Last updated 2025-11-18"): 2.5 Pro
  128-32768 and "Cannot disable thinking"; 2.5 Flash 0-24576, 0 turns it off; 2.5 Flash-Lite
  512-24576, 0 turns it off; -1 is dynamic.
- Regions: cloud.google.com/vertex-ai/generative-ai/docs/models/
  gemini-supervised-tuning-region-settings (the us-* entries as in the 2.5 models'
  availability lists).
Models the page no longer lists (2.0 Flash) and models whose limits we have not verified
(3.x) are left out: refusing them here costs a user an edit of this table, accepting them
wrongly could cost a failed billed run.
"""


def tuning_capabilities():
    """Base model id -> what tuning and inference accept for it."""
    flash_like = {"adapter_sizes": (1, 2, 4, 8, 16), "max_example_tokens": 131_072}
    return {
        "gemini-2.5-pro": {
            "adapter_sizes": (1, 2, 4, 8),
            "max_example_tokens": 131_072,
            "thinking": {"min": 128, "max": 32_768, "can_turn_off": False},
        },
        "gemini-2.5-flash": {**flash_like, "thinking": {"min": 0, "max": 24_576, "can_turn_off": True}},
        "gemini-2.5-flash-lite": {**flash_like, "thinking": {"min": 512, "max": 24_576, "can_turn_off": True}},
    }


def tuning_regions():
    """Regions where Gemini supervised tuning jobs run."""
    return (
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast3",
        "asia-south1",
        "asia-southeast1",
        "australia-southeast1",
        "europe-central2",
        "europe-north1",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "southamerica-east1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west4",
    )


def tuning_limits():
    """Dataset limits Vertex AI enforces for every base model."""
    return {"max_validation_examples": 5000, "max_images_per_example": 30, "max_image_bytes": 20 * 1024 * 1024}


def base_model_id(base_model):
    """``gemini-2.5-flash`` from ``gemini-2.5-flash``, ``publishers/google/models/gemini-2.5-flash``
    or ``projects/p/locations/l/publishers/google/models/gemini-2.5-flash``."""
    return (base_model or "").strip().rsplit("/", 1)[-1]


def tuning_problems(base_model, adapter_size=None, location=None):
    """What Vertex AI would refuse in a tuning request, as sentences naming the fix ([] if none)."""
    table = tuning_capabilities()
    model = base_model_id(base_model)
    if model not in table:
        return [
            f"base_model {base_model!r} is not a Gemini model that supervised tuning supports; "
            f"use one of {', '.join(table)}"
        ]
    problems = []
    sizes = table[model]["adapter_sizes"]
    if adapter_size is not None and adapter_size not in sizes:
        problems.append(
            f"adapter_size {adapter_size} is not supported for {model}; use one of {', '.join(map(str, sizes))}"
        )
    if location is not None and location not in tuning_regions():
        problems.append(
            f"location {location!r} does not run Gemini tuning jobs; use a tuning region such as "
            "us-central1 or europe-west4"
        )
    return problems


def thinking_budget_for(base_model, requested):
    """The thinking budget to send for a requested one, or None to send no thinking config.

    ``requested``: 0 asks for as little thinking as the model allows (off where it can be
    turned off, else its minimum: 128 for 2.5 Pro); a positive value is a budget that must lie
    in the model's range; -1 is dynamic; below -1 sends no thinking config at all.
    Raises ValueError for a budget the model refuses (Vertex AI answers 400).
    """
    # Looked up case-insensitively: this only chooses what to send, never admits a model.
    rules = tuning_capabilities().get(base_model_id(base_model).lower(), {}).get("thinking")
    if requested < -1:
        return None
    if rules is None:  # a model this table does not describe: send what was asked
        return requested
    if requested == 0:
        return 0 if rules["can_turn_off"] else rules["min"]
    if requested == -1 or rules["min"] <= requested <= rules["max"]:
        return requested
    off = "0 (off), " if rules["can_turn_off"] else ""
    raise ValueError(
        f"thinking budget {requested} is not valid for {base_model_id(base_model)}: "
        f"use {off}-1 (dynamic) or {rules['min']}..{rules['max']}"
    )

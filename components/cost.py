"""The cost guard's arithmetic: billable training tokens of a tuning file and the refusal above
a limit. Token counts and prices are Google's facts, in platform_facts/gemini.py."""

from platform_facts.gemini import image_token_count, text_token_count, tuning_prices


def sft_line_parts(line):
    """(text characters, image references) of one Gemini SFT JSONL line: every text part,
    the system instruction included; each image as ("uri", fileUri) or ("inline", base64)."""
    import json

    record = json.loads(line)
    characters, images = 0, []
    system = record.get("systemInstruction") or record.get("system_instruction") or {}
    turns = list(record.get("contents") or []) + ([system] if isinstance(system, dict) else [])
    if isinstance(system, str):
        characters += len(system)
    for turn in turns:
        for part in turn.get("parts") or []:
            if isinstance(part.get("text"), str):
                characters += len(part["text"])
            file_data = part.get("fileData") or part.get("file_data")
            inline = part.get("inlineData") or part.get("inline_data")
            if isinstance(file_data, dict):
                images.append(("uri", file_data.get("fileUri") or file_data.get("file_uri") or ""))
            elif isinstance(inline, dict):
                images.append(("inline", inline.get("data") or ""))
    return characters, images


def estimate_training_tokens(examples, epochs, base_model="", media_resolution=""):
    """Billable training tokens: tokens in the training file times epochs.

    Args:
        examples: one (text characters, [(width, height) or None per image]) per line.
        epochs: the job's epoch count.
        base_model, media_resolution: how an image counts (platform_facts.gemini.image_token_count:
            a fixed count per resolution for Gemini 3, by size for 2.5).

    Returns:
        {"tokens": per epoch x epochs, "tokens_per_epoch", "examples", "images",
        "unknown_images" (counted as 258 each)}.
    """
    per_epoch, images, unknown = 0, 0, 0
    for characters, sizes in examples:
        per_epoch += text_token_count(characters)
        for size in sizes:
            images += 1
            unknown += size is None
            per_epoch += image_token_count(*(size or (0, 0)), base_model, media_resolution)
    return {
        "tokens": per_epoch * int(epochs),
        "tokens_per_epoch": per_epoch,
        "examples": len(examples),
        "images": images,
        "unknown_images": unknown,
    }


def training_price(base_model, override_usd_per_million=0.0):
    """(USD per 1M training tokens or None, where the figure comes from) for ``base_model``."""
    if override_usd_per_million and override_usd_per_million > 0:
        return float(override_usd_per_million), "training_price_per_million_tokens_usd parameter"
    table = tuning_prices()
    model = (base_model or "").rsplit("/", 1)[-1]
    price = table["usd_per_million_training_tokens"].get(model)
    if price is None:
        return None, f"no verified price for {model} ({table['source']}, checked {table['checked']})"
    return float(price), f"{table['source']} (checked {table['checked']})"


def cost_guard_problem(estimate, epochs, base_model, price, max_training_tokens, max_tuning_cost_usd):
    """Why a run must not start a tuning job, or None.

    ``estimate`` is ``estimate_training_tokens``'s result; ``price`` USD per 1M tokens or None.
    ``max_training_tokens`` and ``max_tuning_cost_usd`` of 0 mean no limit. A cost limit for a
    model without a verified price is refused rather than guessed.
    """
    tokens = int(estimate["tokens"])
    what = (
        f"estimated {tokens:,} training tokens ({estimate['examples']} examples, "
        f"{estimate['tokens_per_epoch']:,} tokens per epoch x {epochs} epochs)"
    )
    if max_training_tokens and tokens > max_training_tokens:
        return f"refusing to start tuning: {what} exceed max_training_tokens={max_training_tokens:,}"
    if max_tuning_cost_usd and max_tuning_cost_usd > 0:
        if price is None:
            source = tuning_prices()["source"]
            return (
                f"refusing to start tuning: max_tuning_cost_usd={max_tuning_cost_usd:g} is set, but there is no "
                f"verified price for {base_model} in platform_facts/gemini.py; set "
                f"training_price_per_million_tokens_usd from {source}, or limit tokens with max_training_tokens"
            )
        cost = tokens / 1e6 * price
        if cost > max_tuning_cost_usd:
            return (
                f"refusing to start tuning: {what} at ${price:g} per 1M tokens cost about ${cost:,.2f}, "
                f"above max_tuning_cost_usd={max_tuning_cost_usd:g}"
            )
    return None

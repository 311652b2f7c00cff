"""What vertex-smoke costs, stated before it asks to start (pure).

The smoke run's training tokens are counted by the cost guard's own arithmetic
(components/cost.py: ``estimate_training_tokens``, ``training_price``, the code of
``check_tuning_cost``) on Google's token counts and prices (platform_facts/gemini.py), for the
examples ``build_tuning_jsonl`` would write: one 100 px synthesized image, the prompt, the
system instruction and the expected answer (averaged over the synthesized class mix).
"""

import math
from dataclasses import dataclass

from components.cost import estimate_training_tokens, training_price
from components.labels import DEFECT_TYPES, LABELS
from pipeline.vertex_smoke.plan import CANCEL_EPOCHS
from platform_facts.gemini import example_token_count, image_token_count, text_token_count, tuning_prices

PRICING_URL = tuning_prices()["source"]
IMAGE_SIZE = (100, 100)  # what synthesize_images draws


@dataclass(frozen=True)
class CostEstimate:
    base_model: str
    train_examples: int
    tokens_per_example: int
    epochs: int
    training_tokens: int  # per tuning job
    price_per_m_tokens: float | None
    price_source: str  # where the price comes from ("" without one)
    usd: float | None  # per tuning job
    test_images: int
    eval_calls: int  # generateContent calls of one evaluation
    eval_input_tokens: int  # per call
    eval_output_tokens: int  # per call


def split_counts(num_images: int, train_fraction: float, validation_fraction: float) -> tuple[int, int, int]:
    """Train, validation and test sizes as ``split_manifest`` targets them (e.g. 32/4/4 of 40)."""
    validation = round(num_images * validation_fraction)
    train = round(num_images * train_fraction)
    return train, validation, max(0, num_images - train - validation)


def estimate_cost(params: dict, prices: dict[str, float] | None = None) -> CostEstimate:
    """Billed training tokens (and USD where a price is known) of one tuning job of ``params``.

    Training examples: 80 % of the images by default (``split_counts``), more with oversampling,
    each counted as a line of the tuning file is (``example_token_count``), times the epochs
    (``estimate_training_tokens``). ``prices`` (USD per 1M training tokens by model) replaces
    the recorded prices (``training_price``).
    """
    train, _, test = split_counts(params["num_images"], params["train_fraction"], params["validation_fraction"])
    defect_ratio = params["defect_ratio"]
    if params.get("oversample_rare_classes"):  # every class repeated up to the largest one's count
        largest_share = max(1 - defect_ratio, defect_ratio / len(DEFECT_TYPES))
        train = math.ceil(train * largest_share * (len(DEFECT_TYPES) + 1))
    defect_chars = sum(len(LABELS[t]) for t in DEFECT_TYPES) / len(DEFECT_TYPES)
    label_chars = (1 - defect_ratio) * len(LABELS[None]) + defect_ratio * defect_chars
    asked_chars = len(params["prompt"].strip()) + len(params.get("system_instruction", "").strip())
    model, resolution = params["base_model"], params.get("media_resolution", "")
    example = (asked_chars + label_chars, [IMAGE_SIZE])
    tokens = estimate_training_tokens([example] * train, params["epoch_count"], model, resolution)["tokens"]
    if prices is None:
        price, source = training_price(model)
        source = source if price is not None else ""
    else:
        price, source = prices.get(model), ""
    calls = test * (2 if params.get("evaluate_base_model") else 1)
    return CostEstimate(
        base_model=model,
        train_examples=train,
        tokens_per_example=example_token_count(*example, model, resolution),
        epochs=params["epoch_count"],
        training_tokens=tokens,
        price_per_m_tokens=price,
        price_source=source,
        usd=tokens / 1e6 * price if price is not None else None,
        test_images=test,
        eval_calls=calls,
        eval_input_tokens=example_token_count(asked_chars, [IMAGE_SIZE], model, resolution),
        eval_output_tokens=text_token_count(label_chars),
    )


def cost_lines(estimate: CostEstimate, price_source: str = "") -> list[str]:
    """What the user reads before confirming: the tuning estimate, its basis, the other charges."""
    e = estimate
    price_source = price_source or e.price_source or PRICING_URL
    lines = [
        f"Tuning {e.base_model}: {e.train_examples} training examples × ~{e.tokens_per_example} tokens "
        f"({image_token_count(100, 100, e.base_model):,} per image at the default resolution + prompt and "
        "answer at ~4 characters per token) × "
        f"{e.epochs} epoch(s) ≈ {e.training_tokens:,} training tokens per tuning job."
    ]
    if e.usd is not None:
        lines.append(
            f"At ${e.price_per_m_tokens:g} per 1M training tokens ({price_source}): ≈ ${e.usd:.2f} per tuning job "
            f"of {e.epochs} epoch(s), the checked run's. The cancelled run's job plans {max(e.epochs, CANCEL_EPOCHS)} epochs so "
            "that it is still training when cancelled, minutes after it starts; were it never stopped it "
            f"would cost ≈ ${e.usd * max(e.epochs, CANCEL_EPOCHS) / e.epochs:.2f}."
        )
    else:
        lines.append(
            f"No tuning price for {e.base_model} is recorded here (none from a cited source): multiply "
            f"the training tokens by the price per 1M training tokens at {PRICING_URL}. Two tuning jobs "
            f"are started; the second plans {max(e.epochs, CANCEL_EPOCHS)} epochs, so that it is still training "
            "when it is cancelled, minutes after it starts."
        )
    lines.append(
        f"Evaluation calls the tuned endpoint once per test image: {e.eval_calls} call(s) of ~"
        f"{e.eval_input_tokens} input and ~{e.eval_output_tokens} output tokens, billed at "
        f"{e.base_model}'s prediction price; the summary step calls {e.base_model} once."
    )
    lines.append(
        "Also billed: two Vertex AI Pipelines runs and their task machines while they run (wait-for-tuning's "
        "for as long as the tuning), and a few MB in your bucket. The tuned model and its endpoint stay "
        "in the project."
    )
    return lines

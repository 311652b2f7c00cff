"""Component: the cost guard. Estimates what tuning will bill and refuses a run above its limits,
before any tuning job exists."""

from typing import NamedTuple

from kfp.dsl import Metrics, Output

from components.clients import parse_gcs_uri
from components.cost import cost_guard_problem, estimate_training_tokens, sft_line_parts, training_price
from components.packages import BASE_IMAGE, IMAGE_PACKAGES
from components.shipping import lightweight_component


def image_size_of(data):
    """(width, height) of an image from its first bytes (a header read), or None."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # a truncated header, or a format Pillow cannot read (HEIC)
        return None


def training_token_estimate(project, train_jsonl_uri, epochs, base_model="", media_resolution="", workers=8):
    """estimate_training_tokens for a training JSONL in Cloud Storage: each line's text, and
    each image's dimensions read from its first 64 KB (the whole image when that is not
    enough); inline images are decoded where they are."""
    import base64
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud import storage

    client = storage.Client(project=project)

    def blob_bytes(uri, end=None):
        bucket, name = parse_gcs_uri(uri)
        blob = client.bucket(bucket).blob(name)
        return blob.download_as_bytes(start=0, end=end) if end else blob.download_as_bytes()

    def size_of_uri(uri):
        try:
            return image_size_of(blob_bytes(uri, 65535)) or image_size_of(blob_bytes(uri))
        except Exception:  # an image the job cannot read fails the job; here it just counts as 258
            return None

    text = blob_bytes(train_jsonl_uri).decode("utf-8")
    lines = [sft_line_parts(line) for line in text.splitlines() if line.strip()]
    uris = sorted({ref for _, images in lines for kind, ref in images if kind == "uri" and ref.startswith("gs://")})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = dict(zip(uris, pool.map(size_of_uri, uris), strict=True))

    def size_of(kind, ref):
        if kind == "uri":
            return sizes.get(ref)
        try:
            return image_size_of(
                base64.b64decode(ref + "=" * (-len(ref) % 4), altchars=b"-_" if "-" in ref or "_" in ref else None)
            )
        except ValueError:
            return None

    return estimate_training_tokens(
        [(characters, [size_of(*image) for image in images]) for characters, images in lines],
        epochs,
        base_model,
        media_resolution,
    )


# Not retried in the pipeline: a refusal is final, and launch_tuning (which is retried) only
# starts after this has passed.
@lightweight_component(base_image=BASE_IMAGE, packages_to_install=IMAGE_PACKAGES, install_kfp_package=False)
def check_tuning_cost(
    project: str,
    train_jsonl_uri: str,
    cost_metrics: Output[Metrics],
    base_model: str = "gemini-3.5-flash",
    epoch_count: int = 5,
    max_training_tokens: int = 0,
    max_tuning_cost_usd: float = 0.0,
    training_price_per_million_tokens_usd: float = 0.0,
    media_resolution: str = "",
) -> NamedTuple("Outputs", [("estimated_tokens", int), ("estimated_cost_usd", float)]):
    """Estimates the billable training tokens and their cost; fails above the limits.

    Gemini tuning bills training tokens: the tokens in the training file times the epochs
    (Vertex AI's supervised tuning page). Text counts 4 characters a token; an image counts
    what platform_facts.gemini says for the base model: for Gemini 3 a fixed count per
    ``media_resolution`` (1,120 at the default), for 2.5 258 tokens when both sides are at
    most 384 px, else 258 per 768x768 tile, its size read from the image's first bytes. The
    price per 1M training tokens comes from the same module's table (with its source and
    date; empty, since no price could be verified) or ``training_price_per_million_tokens_usd``.

    Above ``max_training_tokens`` or ``max_tuning_cost_usd`` the task fails with one error
    naming the estimate and the limit, and the pipeline never reaches launch_tuning, so no
    tuning job exists. A cost limit for a base model without a known price is refused rather
    than guessed. wait_for_tuning later logs Vertex AI's own ``totalBillableTokenCount``
    next to this estimate.

    Args:
        project: Google Cloud project of the bucket.
        train_jsonl_uri: ``gs://`` URI of the training JSONL, as the job will read it.
        cost_metrics: ``train_estimated_tokens`` and, with a price, ``train_estimated_cost_usd``.
        base_model: the Gemini model to tune (chooses the price and how images count).
        epoch_count: passes over the training data.
        max_training_tokens: refuse above this many estimated training tokens; 0 no limit.
        max_tuning_cost_usd: refuse above this estimated cost in USD; 0 no limit.
        training_price_per_million_tokens_usd: the base model's tuning price per 1M training
            tokens from the Vertex AI pricing page; 0 uses the table.
        media_resolution: the images' media resolution ("" default, "low", "medium", "high").

    Returns:
        estimated_tokens: the estimated billable training tokens.
        estimated_cost_usd: their cost, or -1.0 when no price is known.
    """
    import json
    from collections import namedtuple

    estimate = training_token_estimate(project, train_jsonl_uri, epoch_count, base_model, media_resolution)
    price, price_source = training_price(base_model, training_price_per_million_tokens_usd)
    cost = round(estimate["tokens"] / 1e6 * price, 4) if price is not None else -1.0
    unknown = estimate["unknown_images"]
    print(
        f"estimated {estimate['tokens']:,} billable training tokens: {estimate['examples']} examples, "
        f"{estimate['images']} images, {estimate['tokens_per_epoch']:,} tokens per epoch x {epoch_count} epochs"
        + (f" ({unknown} image(s) of unknown size counted as one small image)" if unknown else "")
        + (
            f"; about ${cost:,.4f} at ${price:g} per 1M tokens ({price_source})"
            if price is not None
            else f"; cost not estimated: {price_source}"
        ),
        flush=True,
    )
    problem = cost_guard_problem(estimate, epoch_count, base_model, price, max_training_tokens, max_tuning_cost_usd)
    if problem:
        raise ValueError(problem + "; no tuning job was created")

    cost_metrics.log_metric("train_estimated_tokens", int(estimate["tokens"]))
    if price is not None:
        cost_metrics.log_metric("train_estimated_cost_usd", cost)
    with open(cost_metrics.path, "w") as f:
        json.dump({**estimate, "price_usd_per_million": price, "price_source": price_source}, f)
    return namedtuple("Outputs", ["estimated_tokens", "estimated_cost_usd"])(int(estimate["tokens"]), float(cost))

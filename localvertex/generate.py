"""``generateContent`` on a tuned endpoint: request parsing (pure), image loading (I/O) and
the response body. The model call itself is :class:`localvertex.prediction.Predictor`.

The body arrives parsed against the published GenerateContentRequest schema (routes), so
unknown fields and wrong types are already refused. Checks here run in this order, so the
first problem of a request is the one reported: the shape of ``contents``, then the image
(URI, object, bytes), then ``generationConfig``, then its ``thinkingConfig`` against the
tuned model's base model, then each image part's ``mediaResolution`` (platform_facts/gemini.py:
a 2.5 Pro-tuned endpoint refuses budget 0, a 2.5 endpoint refuses a thinking level and a
part-level resolution, a Gemini 3 endpoint refuses a level it does not list).
"""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from platform_facts.gemini import (
    base_model_id,
    gemini_models,
    image_token_count,
    media_resolution_problem,
    text_token_count,
)

from .errors import invalid
from .storage import GsUri, InvalidUri, ObjectNotFound, parse_gs_uri
from .tuning_data import decode_b64

MAX_OUTPUT_TOKENS = 1024

# Runs a blocking function off the event loop: ``await run(fn, *args)``.
RunBlocking = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Prompt:
    """What the inspector reads from ``contents``: the last image part of the last user turn
    (a ``fileData`` or ``inlineData`` part); text and image counts are for usage metadata."""

    image_part: dict[str, Any]
    text: str
    image_count: int
    levels: tuple[str, ...] = ()  # each image part's mediaResolution level ("" for none)


@dataclass(frozen=True)
class GenerationConfig:
    temperature: float = 0.0
    max_new_tokens: int | None = None
    seed: int | None = None


def parse_prompt(body: Any) -> Prompt:
    """Validate the shape of a (camelCase) request body; raise 400 otherwise."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("contents must be a non-empty list")
    user_turns = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
    if not user_turns:
        raise invalid("contents has no user turn")
    texts: list[str] = []
    last_image = None
    image_count, levels = 0, []
    for turn in contents:
        if not isinstance(turn, dict) or not isinstance(turn.get("parts"), list):
            raise invalid("each content needs a 'parts' list")
        for part in turn["parts"]:
            if not isinstance(part, dict):
                raise invalid("each part must be an object")
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            if "fileData" in part or "inlineData" in part:
                image_count += 1
                levels.append(
                    ((part.get("mediaResolution") or {}).get("level") or "").replace("MEDIA_RESOLUTION_UNSPECIFIED", "")
                )
                if turn is user_turns[-1]:
                    last_image = part
    if last_image is None:
        raise invalid(
            "the last user turn has no image part: the tuned inspector needs an image "
            "(fileData with a gs:// URI or inlineData)"
        )
    return Prompt(last_image, "\n".join(texts), image_count, tuple(levels))


def check_media_resolution(prompt: Prompt, base_model: str) -> None:
    """Each image part's ``mediaResolution`` against the tuned model's base model; 400 otherwise."""
    for level in prompt.levels:
        problem = media_resolution_problem(base_model, level) if level else None
        if problem:
            raise invalid(f"Unable to submit request because {problem}.")


def _file_uri(part: dict[str, Any]) -> GsUri:
    fd = part["fileData"]
    if not isinstance(fd, dict):
        raise invalid("fileData must be an object with a fileUri")
    try:
        return parse_gs_uri(fd.get("fileUri"))
    except InvalidUri as exc:
        raise invalid(f"fileData.fileUri: {exc}") from None


def _inline_bytes(part: dict[str, Any]) -> bytes:
    inline = part["inlineData"]
    if not isinstance(inline, dict):
        raise invalid("inlineData must be an object with base64 data")
    try:
        data = decode_b64(str(inline.get("data") or ""))
    except (binascii.Error, ValueError):
        raise invalid("inlineData.data is not valid base64") from None
    if not data:
        raise invalid("inlineData.data is empty")
    return data


async def image_bytes(part: dict[str, Any], read_bytes: Callable[[GsUri], bytes], run: RunBlocking) -> bytes:
    """The bytes of an image part: fetched from storage (``fileData``) or decoded inline."""
    if "fileData" not in part:
        return _inline_bytes(part)
    ref = _file_uri(part)
    try:
        return await run(read_bytes, ref)
    except ObjectNotFound:
        raise invalid(f"fileData.fileUri: object {ref} does not exist") from None
    except ValueError as exc:
        raise invalid(f"fileData.fileUri: {exc}") from None


async def decode_image(data: bytes, run: RunBlocking) -> Any:
    from .model import load_image  # torch: imported on first use only

    try:
        return await run(load_image, data)
    except ValueError as exc:
        raise invalid(f"cannot decode the image: {exc}") from None


def parse_generation_config(body: dict[str, Any]) -> GenerationConfig:
    """``generationConfig``: temperature in [0, 2], maxOutputTokens (capped), seed; 400 otherwise."""
    cfg = body.get("generationConfig") or {}
    if not isinstance(cfg, dict):
        raise invalid("generationConfig must be an object")
    try:
        temperature = float(cfg.get("temperature", 0.0) or 0.0)
        max_tokens = cfg.get("maxOutputTokens")
        max_tokens = None if max_tokens is None else int(max_tokens)
        seed = cfg.get("seed")
        seed = None if seed is None else int(seed)
        candidates = int(cfg.get("candidateCount") or 1)
    except (TypeError, ValueError, OverflowError):
        raise invalid(
            "generationConfig: temperature must be a number, maxOutputTokens, seed and candidateCount integers"
        ) from None
    if not 0.0 <= temperature <= 2.0:
        raise invalid("generationConfig.temperature must be in [0, 2]")
    if max_tokens is not None:
        if max_tokens < 1:
            raise invalid("generationConfig.maxOutputTokens must be positive")
        max_tokens = min(max_tokens, MAX_OUTPUT_TOKENS)
    if candidates != 1:
        raise invalid("generationConfig.candidateCount must be 1 here")
    return GenerationConfig(temperature, max_tokens, seed)


def check_thinking(body: dict[str, Any], base_model: str) -> None:
    """``generationConfig.thinkingConfig`` against the base model's thinking control in
    platform_facts.gemini; 400 with Vertex AI's words otherwise.

    Gemini 2.5 takes a budget: -1 is dynamic; 0 turns thinking off where the model allows
    it ("Unable to submit request because The model does not support setting
    thinking_budget to 0." for 2.5 Pro); another budget lies in the model's range ("The
    thinking budget (N) is invalid."); a level is refused (Google's thinking page: a model
    earlier than Gemini 3 returns an error). Gemini 3 takes a level from the model's list.
    A budget sent to a Gemini 3 model is refused too: stricter than Vertex AI, which may
    accept one for compatibility, so code that passes here sends what Google documents.
    """
    cfg = (body.get("generationConfig") or {}).get("thinkingConfig")
    if not isinstance(cfg, dict):
        return
    model = base_model_id(base_model)
    rules = gemini_models().get(model, {}).get("thinking")
    if rules is None:
        return
    level = cfg.get("thinkingLevel")
    level = None if level in (None, "THINKING_LEVEL_UNSPECIFIED") else level
    budget = cfg.get("thinkingBudget")
    if level is not None and budget is not None:
        raise invalid("Unable to submit request because thinking_budget and thinking_level cannot both be set.")
    if rules["control"] == "level":
        _check_level(level, budget, model, rules)
    else:
        _check_budget(level, budget, model, rules)


def _check_level(level: Any, budget: Any, model: str, rules: dict[str, Any]) -> None:
    levels = ", ".join(rules["levels"])
    if budget is not None:
        raise invalid(
            f"Unable to submit request because thinking_budget is not supported by this model "
            f"({model} tuned); use thinking_level ({levels})."
        )
    if level is not None and level not in rules["levels"]:
        raise invalid(
            f"Unable to submit request because thinking_level {level} is not supported by this model "
            f"({model} tuned); use one of {levels}."
        )


def _check_budget(level: Any, budget: Any, model: str, rules: dict[str, Any]) -> None:
    if level is not None:
        raise invalid(
            f"Unable to submit request because thinking_level is not supported by "
            f"this model ({model} tuned); use thinking_budget."
        )
    if budget is None or budget == -1:
        return
    if budget == 0:
        if rules["can_turn_off"]:
            return
        raise invalid(
            "Unable to submit request because The model does not support setting "
            f"thinking_budget to 0. ({model} thinks with a budget of "
            f"{rules['min']} to {rules['max']} tokens, or -1 for dynamic.)"
        )
    if not rules["min"] <= budget <= rules["max"]:
        off = "0 (off), " if rules["can_turn_off"] else ""
        raise invalid(
            f"Unable to submit request because The thinking budget ({budget}) is "
            f"invalid. ({model}: {off}-1 (dynamic) or {rules['min']} to "
            f"{rules['max']}.)"
        )


def response_body(
    text: str, finish_reason: str, prompt: Prompt, model_version: str, create_time: str, base_model: str = ""
) -> dict[str, Any]:
    """A GenerateContentResponse with one candidate and estimated usage metadata (images
    counted as ``base_model`` counts them at their media resolution)."""
    image_tokens = sum(image_token_count(0, 0, base_model, level) for level in prompt.levels)
    image_tokens += image_token_count(0, 0, base_model) * (prompt.image_count - len(prompt.levels))
    prompt_tokens = text_token_count(len(prompt.text)) + image_tokens
    out_tokens = text_token_count(len(text))
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish_reason, "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens,
            "trafficType": "ON_DEMAND",
        },
        "modelVersion": model_version,
        "createTime": create_time,
        "responseId": secrets.token_urlsafe(12),
    }

"""Gemini supervised-tuning JSONL: parsing and validation, as Vertex AI checks it.

A line looks like::

    {"systemInstruction": {...}?,
     "contents": [{"role": "user", "parts": [{"text": "..."},
                                             {"fileData": {"mimeType": "image/png",
                                                           "fileUri": "gs://b/images/x.png"}}]},
                  {"role": "model", "parts": [{"text": "Status: Pass"}]}]}

The local model learns image -> text, so one training example is (the last image of the
last user turn, the text of the final model turn). ``inlineData`` images are accepted too.
Every error names the file, the 1-based line number and the reason.

Limits are Vertex AI's, from platform_facts/gemini.py (``tuning_limits`` and the base
model's ``max_example_tokens``): tokens per example (estimated: 4 characters a token, an
image as the base model counts it at its part's ``mediaResolution``), images per example,
bytes per image, validation examples. A part-level ``mediaResolution`` the base model does
not take (any, for Gemini 2.5; a level it lacks, for Gemini 3) fails the job. A line over a
limit fails the job, naming the line (Vertex may instead drop such examples and count them
in ``totalTruncatedExampleCount``; failing is the stricter answer).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from platform_facts.gemini import (
    gemini_models,
    image_token_count,
    media_resolution_problem,
    text_token_count,
    tuning_limits,
)

from .storage import GsUri, InvalidUri, ObjectNotFound, parse_gs_uri

HISTOGRAM_BUCKETS = 10
MEDIA_RESOLUTION_LEVELS = (
    "MEDIA_RESOLUTION_LOW",
    "MEDIA_RESOLUTION_MEDIUM",
    "MEDIA_RESOLUTION_HIGH",
    "MEDIA_RESOLUTION_ULTRA_HIGH",
)


def default_limits(base_model: str | None = None) -> dict[str, Any]:
    """Vertex AI's dataset limits for ``base_model`` (its id in platform_facts.gemini), or
    the strictest over the table when it is None; ``base_model`` names the model whose image
    token counts and media resolutions apply ("" for none known)."""
    table = gemini_models()
    tokens = (
        table[base_model]["max_example_tokens"]
        if base_model in table
        else min(c["max_example_tokens"] for c in table.values())
    )
    return {**tuning_limits(), "max_example_tokens": tokens, "base_model": base_model or ""}


_DEFAULT_LIMITS = default_limits()
MAX_IMAGES_PER_EXAMPLE = _DEFAULT_LIMITS["max_images_per_example"]
MAX_IMAGE_BYTES = _DEFAULT_LIMITS["max_image_bytes"]
MAX_TOKENS_PER_EXAMPLE = _DEFAULT_LIMITS["max_example_tokens"]
MAX_VALIDATION_EXAMPLES = _DEFAULT_LIMITS["max_validation_examples"]


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest) if rest else key


def camelize(obj: Any, keep: frozenset[str] = frozenset({"labels"})) -> Any:
    """Proto-JSON accepts both ``file_uri`` and ``fileUri`` (google-genai 2.x sends the
    former inside ``fileData``); normalise keys to camelCase, except inside ``keep`` maps."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            ck = _camel(k) if isinstance(k, str) else k
            out[ck] = v if ck in keep else camelize(v, keep)
        return out
    if isinstance(obj, list):
        return [camelize(v, keep) for v in obj]
    return obj


class DatasetError(ValueError):
    """A dataset problem; ``str()`` is ``"<source> line <n>: <reason>"``."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


@dataclass
class ImageRef:
    mime_type: str
    uri: GsUri | None = None  # fileData
    data: bytes | None = None  # inlineData


@dataclass
class SftRecord:
    line: int
    image: ImageRef
    label: str
    prompt: str
    characters: int
    image_count: int
    contents: list[dict[str, Any]] = field(repr=False, default_factory=list)
    image_tokens: int = 0  # every image, as the base model counts it at its media resolution
    output_characters: int = 0  # text of the model turns
    message_count: int = 0  # entries of ``contents``

    @property
    def estimated_tokens(self) -> int:
        return text_token_count(self.characters) + self.image_tokens

    @property
    def output_tokens(self) -> int:
        return text_token_count(self.output_characters)

    @property
    def input_tokens(self) -> int:
        return self.estimated_tokens - self.output_tokens


def decode_b64(text: str) -> bytes:
    """Standard or URL-safe base64 (pydantic, hence google-genai, sends URL-safe), padding optional."""
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.b64decode(cleaned, validate=True)


def _part_kind(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise ValueError(f"{where} must be an object")
    kinds = [k for k in ("text", "fileData", "inlineData") if k in part]
    if len(kinds) != 1:
        other = sorted(set(part) - {"thought", "thoughtSignature"})
        raise ValueError(f"{where} must have exactly one of text, fileData, inlineData (has {other or 'none'})")
    return kinds[0]


def _image_from_part(kind: str, part: dict, where: str, max_bytes: int = MAX_IMAGE_BYTES) -> ImageRef | None:
    if kind == "fileData":
        fd = part["fileData"]
        if not isinstance(fd, dict):
            raise ValueError(f"{where}.fileData must be an object")
        mime = fd.get("mimeType")
        if not isinstance(mime, str) or not mime:
            raise ValueError(f"{where}.fileData.mimeType is required")
        try:
            uri = parse_gs_uri(fd.get("fileUri"))
        except InvalidUri as exc:
            raise ValueError(f"{where}.fileData.fileUri: {exc}") from None
        if not mime.startswith("image/"):
            raise ValueError(f"{where}: unsupported mimeType {mime!r} (only images)")
        return ImageRef(mime_type=mime, uri=uri)
    if kind == "inlineData":
        inline = part["inlineData"]
        if not isinstance(inline, dict):
            raise ValueError(f"{where}.inlineData must be an object")
        mime = inline.get("mimeType")
        if not isinstance(mime, str) or not mime.startswith("image/"):
            raise ValueError(f"{where}.inlineData.mimeType must be an image type, got {mime!r}")
        raw = inline.get("data")
        if not isinstance(raw, str) or not raw:
            raise ValueError(f"{where}.inlineData.data must be base64 text")
        try:
            data = decode_b64(raw)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}.inlineData.data is not valid base64") from None
        if len(data) > max_bytes:
            raise ValueError(f"{where}: image larger than {max_bytes // (1024 * 1024)} MB")
        return ImageRef(mime_type=mime, data=data)
    return None


@dataclass
class _Turn:
    role: str
    texts: list[str]
    images: list[ImageRef]
    characters: int
    levels: list[str] = field(default_factory=list)  # each image's mediaResolution level ("" for none)


def _system_characters(system: Any) -> int:
    """Characters of ``systemInstruction`` (text parts only), 0 when absent."""
    if system is None:
        return 0
    if not isinstance(system, dict) or not isinstance(system.get("parts"), list):
        raise ValueError("systemInstruction must be an object with a 'parts' list")
    characters = 0
    for j, part in enumerate(system["parts"]):
        if _part_kind(part, f"systemInstruction.parts[{j}]") != "text":
            raise ValueError("systemInstruction parts must be text")
        characters += len(str(part["text"]))
    return characters


def _contents(obj: dict[str, Any]) -> list[Any]:
    contents = obj.get("contents")
    if not isinstance(contents, list) or not contents:
        if "messages" in obj:
            raise ValueError("'messages' (chat format) is not supported; use 'contents'")
        raise ValueError("'contents' must be a non-empty list")
    return contents


def _media_resolution(part: dict, where: str, base_model: str) -> str:
    """An image part's ``mediaResolution.level`` ("" for none), checked against the schema's
    enum and the base model (platform_facts.gemini: part-level resolution is Gemini 3's)."""
    value = part.get("mediaResolution")
    if value is None:
        return ""
    if not isinstance(value, dict) or set(value) - {"level"}:
        raise ValueError(f"{where}.mediaResolution must be an object with a 'level'")
    level = value.get("level") or "MEDIA_RESOLUTION_UNSPECIFIED"
    if level == "MEDIA_RESOLUTION_UNSPECIFIED":
        return ""
    if level not in MEDIA_RESOLUTION_LEVELS:
        raise ValueError(f"{where}.mediaResolution.level: invalid value {level!r}")
    problem = media_resolution_problem(base_model, level) if base_model else None
    if problem:
        raise ValueError(f"{where}.{problem}")
    return level


def _parse_turn(turn: Any, where: str, expected: str, max_image_bytes: int, base_model: str = "") -> _Turn:
    """One entry of ``contents``; ``expected`` is the role that must come next."""
    if not isinstance(turn, dict):
        raise ValueError(f"{where} must be an object")
    role = turn.get("role")
    if role not in ("user", "model"):
        raise ValueError(f"{where}.role must be 'user' or 'model', got {role!r}")
    if role != expected:
        raise ValueError(
            f"{where}.role is {role!r} but roles must alternate user/model starting with user (expected {expected!r})"
        )
    parts = turn.get("parts")
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"{where}.parts must be a non-empty list")
    out = _Turn(role, [], [], 0)
    for j, part in enumerate(parts):
        pw = f"{where}.parts[{j}]"
        kind = _part_kind(part, pw)
        if kind == "text":
            if not isinstance(part["text"], str):
                raise ValueError(f"{pw}.text must be a string")
            out.texts.append(part["text"])
            out.characters += len(part["text"])
        elif role == "model":
            raise ValueError(f"{pw}: model turns may contain only text")
        else:
            out.images.append(_image_from_part(kind, part, pw, max_image_bytes))
            out.levels.append(_media_resolution(part, pw, base_model))
    return out


def _parse_turns(contents: list[Any], max_image_bytes: int, base_model: str = "") -> list[_Turn]:
    turns: list[_Turn] = []
    expected = "user"
    for i, turn in enumerate(contents):
        turns.append(_parse_turn(turn, f"contents[{i}]", expected, max_image_bytes, base_model))
        expected = "model" if turns[-1].role == "user" else "user"
    return turns


def parse_record(obj: Any, line: int, limits: dict[str, Any] | None = None) -> SftRecord:
    """Validate one decoded JSONL object against ``limits`` (:func:`default_limits`);
    raise ``ValueError(reason)``."""
    limits = limits or _DEFAULT_LIMITS
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    obj = camelize(obj)
    system_characters = _system_characters(obj.get("systemInstruction"))
    contents = _contents(obj)
    base_model = limits.get("base_model", "")
    turns = _parse_turns(contents, limits["max_image_bytes"], base_model)
    last_user = next((t for t in reversed(turns) if t.role == "user"), None)
    image_count = sum(len(t.images) for t in turns)
    if turns[-1].role != "model":
        raise ValueError("the last turn must have role 'model' (the label to learn)")
    if last_user is None or not last_user.images:
        raise ValueError("the last user turn has no image part (fileData or inlineData)")
    if image_count > limits["max_images_per_example"]:
        raise ValueError(f"{image_count} images; at most {limits['max_images_per_example']} per example")
    label = "".join(turns[-1].texts)
    if not label.strip():
        raise ValueError("the final model turn has no text label")
    rec = SftRecord(
        line=line,
        image=last_user.images[-1],
        label=label.strip(),
        prompt="\n".join(last_user.texts),
        characters=system_characters + sum(t.characters for t in turns),
        image_count=image_count,
        contents=contents,
        output_characters=sum(t.characters for t in turns if t.role == "model"),
        message_count=len(contents),
        image_tokens=sum(image_token_count(0, 0, base_model, level) for t in turns for level in t.levels),
    )
    if rec.estimated_tokens > limits["max_example_tokens"]:
        raise ValueError(
            f"example has about {rec.estimated_tokens} tokens; the limit is {limits['max_example_tokens']}"
        )
    return rec


def parse_jsonl(data: bytes | str, source: str, limits: dict[str, Any] | None = None) -> list[SftRecord]:
    """Parse a whole JSONL file; raise :class:`DatasetError` at the first bad line."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(source, None, f"not UTF-8 text ({exc.reason})") from None
    else:
        text = data
    records: list[SftRecord] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DatasetError(source, n, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        try:
            records.append(parse_record(obj, n, limits))
        except ValueError as exc:
            raise DatasetError(source, n, str(exc)) from None
    if not records:
        raise DatasetError(source, None, "the dataset has no examples")
    return records


def check_validation_size(records: list[SftRecord], source: str, limits: dict[str, Any] | None = None) -> None:
    """The validation dataset's size limit (Vertex AI: at most 5000 examples)."""
    limit = (limits or _DEFAULT_LIMITS)["max_validation_examples"]
    if len(records) > limit:
        raise DatasetError(
            source, None, f"the validation dataset has {len(records)} examples; at most {limit} are allowed"
        )


def load_images(
    records: list[SftRecord],
    source: str,
    read_bytes: Callable[[GsUri], bytes],
    load_image: Callable[[bytes], Any],
    max_image_bytes: int = MAX_IMAGE_BYTES,
) -> list[tuple[SftRecord, Any]]:
    """Fetch and decode each record's image; errors name the JSONL file and line."""
    out = []
    cache: dict[str, Any] = {}
    for rec in records:
        ref = rec.image
        if ref.uri is not None:
            key = str(ref.uri)
            if key not in cache:
                try:
                    blob = read_bytes(ref.uri)
                except ObjectNotFound:
                    raise DatasetError(source, rec.line, f"image not found: {ref.uri}") from None
                if len(blob) > max_image_bytes:
                    raise DatasetError(
                        source, rec.line, f"image {ref.uri} is larger than {max_image_bytes // (1024 * 1024)} MB"
                    )
                try:
                    cache[key] = load_image(blob)
                except ValueError as exc:
                    raise DatasetError(source, rec.line, f"{ref.uri}: {exc}") from None
            image = cache[key]
        else:
            try:
                image = load_image(ref.data)
            except ValueError as exc:
                raise DatasetError(source, rec.line, f"inlineData: {exc}") from None
        out.append((rec, image))
    return out


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def distribution(values: list[int], billable: list[int] | None = None) -> dict[str, Any]:
    """A ``SupervisedTuningDatasetDistribution`` of ``values`` (one per example): sums as
    int64 strings, order statistics, and an equal-width histogram of at most 10 buckets."""
    ordered = sorted(values)
    lo, hi = ordered[0], ordered[-1]
    count = min(HISTOGRAM_BUCKETS, hi - lo + 1)
    width = (hi - lo + 1) / count
    buckets = [{"count": 0.0, "left": lo + i * width, "right": lo + (i + 1) * width} for i in range(count)]
    for v in ordered:
        buckets[min(int((v - lo) / width), count - 1)]["count"] += 1
    return {
        "sum": str(sum(values)),
        "billableSum": str(sum(billable if billable is not None else values)),
        "min": float(lo),
        "max": float(hi),
        "mean": sum(values) / len(values),
        "median": _percentile(ordered, 0.5),
        "p5": _percentile(ordered, 0.05),
        "p95": _percentile(ordered, 0.95),
        "buckets": buckets,
    }


def _example_content(turn: dict[str, Any]) -> dict[str, Any]:
    """A ``Content`` for ``userDatasetExamples``: role, and its text and fileData parts."""
    parts = []
    for part in turn.get("parts", []):
        if isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif isinstance(part.get("fileData"), dict):
            fd = part["fileData"]
            parts.append({"fileData": {"mimeType": str(fd.get("mimeType", "")), "fileUri": str(fd.get("fileUri", ""))}})
    return {"role": str(turn.get("role", "")), "parts": parts}


def dataset_stats(records: list[SftRecord], epochs: int) -> dict[str, Any]:
    """``supervisedTuningDataStats`` as measured here: counts, the token and message
    distributions per example (tokens estimated as in :class:`SftRecord`), and no dropped
    examples (a bad line fails the job instead). Billable figures count every epoch."""
    chars = sum(r.characters for r in records)
    tokens = sum(r.estimated_tokens for r in records)
    return {
        "tuningDatasetExampleCount": str(len(records)),
        "totalTuningCharacterCount": str(chars),
        "totalBillableCharacterCount": str(chars * epochs),
        "totalBillableTokenCount": str(tokens * epochs),
        "userDatasetExamples": [_example_content(t) for r in records[:3] for t in r.contents if isinstance(t, dict)][
            :6
        ],
        "userInputTokenDistribution": distribution(
            [r.input_tokens for r in records], [r.input_tokens * epochs for r in records]
        ),
        "userOutputTokenDistribution": distribution(
            [r.output_tokens for r in records], [r.output_tokens * epochs for r in records]
        ),
        "userMessagePerExampleDistribution": distribution([r.message_count for r in records]),
        "totalTruncatedExampleCount": "0",
        "truncatedExampleIndices": [],
        "droppedExampleReasons": [],
    }

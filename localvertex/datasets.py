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
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .storage import GsUri, InvalidUri, ObjectNotFound, parse_gs_uri

MAX_IMAGES_PER_EXAMPLE = 30
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_TOKENS_PER_EXAMPLE = 131_072
IMAGE_TOKENS = 258  # what Gemini bills for one image
MAX_LINES = 100_000


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

    @property
    def estimated_tokens(self) -> int:
        return math.ceil(self.characters / 4) + IMAGE_TOKENS * self.image_count


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


def _image_from_part(kind: str, part: dict, where: str) -> ImageRef | None:
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
        if len(data) > MAX_IMAGE_BYTES:
            raise ValueError(f"{where}: image larger than 20 MB")
        return ImageRef(mime_type=mime, data=data)
    return None


@dataclass
class _Turn:
    role: str
    texts: list[str]
    images: list[ImageRef]
    characters: int


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


def _parse_turn(turn: Any, where: str, expected: str) -> _Turn:
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
            out.images.append(_image_from_part(kind, part, pw))
    return out


def _parse_turns(contents: list[Any]) -> list[_Turn]:
    turns: list[_Turn] = []
    expected = "user"
    for i, turn in enumerate(contents):
        turns.append(_parse_turn(turn, f"contents[{i}]", expected))
        expected = "model" if turns[-1].role == "user" else "user"
    return turns


def parse_record(obj: Any, line: int) -> SftRecord:
    """Validate one decoded JSONL object; raise ``ValueError(reason)``."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    obj = camelize(obj)
    system_characters = _system_characters(obj.get("systemInstruction"))
    contents = _contents(obj)
    turns = _parse_turns(contents)
    last_user = next((t for t in reversed(turns) if t.role == "user"), None)
    image_count = sum(len(t.images) for t in turns)
    if turns[-1].role != "model":
        raise ValueError("the last turn must have role 'model' (the label to learn)")
    if last_user is None or not last_user.images:
        raise ValueError("the last user turn has no image part (fileData or inlineData)")
    if image_count > MAX_IMAGES_PER_EXAMPLE:
        raise ValueError(f"{image_count} images; at most {MAX_IMAGES_PER_EXAMPLE} per example")
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
    )
    if rec.estimated_tokens > MAX_TOKENS_PER_EXAMPLE:
        raise ValueError(f"example has about {rec.estimated_tokens} tokens; the limit is {MAX_TOKENS_PER_EXAMPLE}")
    return rec


def parse_jsonl(data: bytes | str, source: str) -> list[SftRecord]:
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
        if n > MAX_LINES:
            raise DatasetError(source, n, f"more than {MAX_LINES} lines")
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DatasetError(source, n, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        try:
            records.append(parse_record(obj, n))
        except ValueError as exc:
            raise DatasetError(source, n, str(exc)) from None
    if not records:
        raise DatasetError(source, None, "the dataset has no examples")
    return records


def load_images(
    records: list[SftRecord], source: str, read_bytes: Callable[[GsUri], bytes], load_image: Callable[[bytes], Any]
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
                if len(blob) > MAX_IMAGE_BYTES:
                    raise DatasetError(source, rec.line, f"image {ref.uri} is larger than 20 MB")
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


def dataset_stats(records: list[SftRecord], epochs: int) -> dict[str, Any]:
    """Counts in the shape of ``supervisedTuningDataStats`` (measured, not guessed)."""
    chars = sum(r.characters for r in records)
    tokens = sum(r.estimated_tokens for r in records)
    return {
        "tuningDatasetExampleCount": str(len(records)),
        "totalTuningCharacterCount": str(chars),
        "totalBillableCharacterCount": str(chars * epochs),
        "totalBillableTokenCount": str(tokens * epochs),
        "userDatasetExamples": [
            {"role": t.get("role"), "parts": [p for p in t.get("parts", []) if "text" in p or "fileData" in p]}
            for r in records[:3]
            for t in r.contents
        ][:6],
    }

"""Checking a Gemini tuning JSONL before anyone pays (``python -m pipeline validate``, whose
options and report are in pipeline/commands/validate.py).

Every line is checked against what Vertex AI's Gemini supervised tuning accepts (JSON per line,
roles and their order, part types, MIME types, images per example, image size, tokens per
example, the system instruction's place) and what this inspector needs (an image in every
example). A chat ``messages`` file is checked as the ``contents`` lines it converts to.

One rule set: the rules are the pipeline's own, in components/dataset_rules.py
(``jsonl_lines``, ``jsonl_line_object``, ``jsonl_line_problems``, ``jsonl_file_problems``) and
platform_facts/gemini.py (each base model's token limit and media resolutions). This module only reads the
file (a local path, or gs:// through google-cloud-storage, which honours
STORAGE_EMULATOR_HOST), looks up the size of each gs:// image, and returns a ``Report``.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from components.clients import parse_gcs_uri
from components.dataset_rules import (
    example_image_uris,
    jsonl_file_problems,
    jsonl_line_format,
    jsonl_line_object,
    jsonl_line_problems,
    jsonl_lines,
    jsonl_problem,
    jsonl_problem_kinds,
)
from platform_facts.gemini import base_model_id, gemini_models, recommended_models

CONVERSION = (
    "chat 'messages' lines are checked as the Gemini 'contents' they convert to: a first 'system' message becomes "
    "systemInstruction, 'user' stays user, 'assistant' (or 'model') becomes model, text content becomes text parts, "
    "and image_url / fileData parts and gs:// URIs in a user message's text become fileData parts with the MIME type "
    "of the file extension. Vertex AI's Gemini tuning reads only 'contents': convert the file before tuning, or give "
    "it to the pipeline as dataset_uri (import_dataset takes each line's image and final answer)"
)
LOOKUP_WORKERS = 8
LOOKUP_TIMEOUT_S = 20


class SourceError(Exception):
    """The file cannot be read (exit code 2)."""


@dataclass
class Report:
    """The outcome of one validation; ``problems`` are jsonl_problem dicts."""

    source: str
    base_model: str
    max_example_tokens: int
    format: str = "unknown"
    lines: int = 0  # non-blank lines
    examples: int = 0
    problems: list[dict] = field(default_factory=list)
    images: int = 0
    looked_up: int = 0
    not_checked: Counter = field(default_factory=Counter)  # reason -> images

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        found = Counter(p["kind"] for p in self.problems)
        return {kind: found[kind] for kind in jsonl_problem_kinds() if found[kind]}

    def as_json(self) -> dict:
        return {
            "file": self.source,
            "ok": self.ok,
            "format": self.format,
            "conversion": CONVERSION if self.format in ("messages", "mixed") else None,
            "base_model": self.base_model,
            "max_example_tokens": self.max_example_tokens,
            "lines": self.lines,
            "examples": self.examples,
            "examples_with_problems": len({p["line"] for p in self.problems if p["line"] is not None}),
            "problem_counts": self.counts(),
            "problems": [{"file": self.source, **p} for p in self.problems],
            "images": {
                "referenced": self.images,
                "looked_up": self.looked_up,
                "not_checked": sum(self.not_checked.values()),
                "not_checked_reasons": dict(self.not_checked),
            },
        }


# --------------------------------------------------------------------------- reading


def storage_client(project: str | None):
    """A google-cloud-storage client (anonymous against STORAGE_EMULATOR_HOST, else ADC)."""
    from google.cloud import storage

    return storage.Client(project=project)


def read_source(source: str, project: str | None = None) -> bytes:
    """The bytes of a local file or a gs:// object; SourceError saying why not."""
    if not source.startswith("gs://"):
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"{source} does not exist" if not path.exists() else f"{source} is not a file")
        try:
            return path.read_bytes()
        except OSError as error:
            raise SourceError(f"cannot read {source}: {error.strerror or error}") from None
    try:
        bucket, name = parse_gcs_uri(source)
    except ValueError:
        raise SourceError(f"{source} is not a gs://bucket/object URI") from None
    import google.auth.exceptions
    from google.api_core import exceptions as api_errors

    try:
        blob = storage_client(project).bucket(bucket).get_blob(name, timeout=LOOKUP_TIMEOUT_S)
        if blob is None:
            raise SourceError(f"{source} does not exist")
        return blob.download_as_bytes(timeout=LOOKUP_TIMEOUT_S)
    except google.auth.exceptions.DefaultCredentialsError:
        raise SourceError(
            f"cannot read {source}: no Google credentials (run `gcloud auth application-default "
            "login`, or set STORAGE_EMULATOR_HOST for a local emulator)"
        ) from None
    except api_errors.NotFound:
        raise SourceError(f"{source} does not exist") from None
    except (api_errors.GoogleAPICallError, google.auth.exceptions.GoogleAuthError, OSError) as error:
        raise SourceError(f"cannot read {source}: {_first_line(error)}") from None
    except Exception as error:  # requests' connection errors and the like
        raise SourceError(f"cannot read {source}: {type(error).__name__}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


# --------------------------------------------------------------------------- image sizes


def image_sizes(uris: list[str], project: str | None, lookup: bool) -> tuple[dict, Counter, int]:
    """({uri: size, or None when it could not be looked up}, {reason: images not checked},
    images looked up).

    Objects that do not exist are left out (jsonl_line_problems reports them). Each bucket is
    tried once first: a bucket that cannot be reached (no credentials, no permission, no
    network) marks all its images as not checked instead of failing once per image.
    """
    not_checked: Counter = Counter()
    sizes: dict[str, int | None] = {}
    by_bucket: dict[str, list[str]] = {}
    for uri in dict.fromkeys(uris):
        if uri.startswith(("http://", "https://")):
            not_checked["http(s) URLs are not looked up (Vertex AI fetches them when tuning)"] += 1
            continue
        try:
            bucket, _ = parse_gcs_uri(uri)
        except ValueError:
            continue  # not a valid URI: jsonl_line_problems reports it
        by_bucket.setdefault(bucket, []).append(uri)
    if not by_bucket:
        return sizes, not_checked, 0
    if not lookup:
        sizes.update((uri, None) for uris_ in by_bucket.values() for uri in uris_)
        not_checked["not looked up (--no-lookup)"] += len(sizes)
        return sizes, not_checked, 0

    import google.auth.exceptions
    from google.api_core import exceptions as api_errors

    try:
        client = storage_client(project)
    except google.auth.exceptions.DefaultCredentialsError:
        sizes.update((uri, None) for uris_ in by_bucket.values() for uri in uris_)
        not_checked["not looked up: no Google credentials (run `gcloud auth application-default login`)"] += len(sizes)
        return sizes, not_checked, 0

    def size(uri: str) -> tuple[str, int | None, str | None]:
        """(uri, size or None, why it could not be looked up or None); a missing object has size -1."""
        bucket, name = parse_gcs_uri(uri)
        try:
            blob = client.bucket(bucket).get_blob(name, timeout=LOOKUP_TIMEOUT_S, retry=None)
        except api_errors.NotFound:
            return uri, -1, None
        except (api_errors.GoogleAPICallError, google.auth.exceptions.GoogleAuthError) as error:
            return uri, None, f"gs://{bucket}: {getattr(error, 'code', '') or ''} {_first_line(error)}".strip()
        except Exception as error:  # connection errors: the bucket's host cannot be reached
            return uri, None, f"gs://{bucket}: cannot be reached ({type(error).__name__})"
        return uri, (blob.size if blob is not None else -1), None

    results = []
    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        firsts = list(pool.map(size, [uris_[0] for uris_ in by_bucket.values()]))
        rest = []
        for uris_, first in zip(by_bucket.values(), firsts, strict=True):
            results.append(first)
            if first[2] is None:
                rest += uris_[1:]
            else:  # the bucket cannot be read: its other images are not tried
                results += [(uri, None, first[2]) for uri in uris_[1:]]
        results += list(pool.map(size, rest))
    for uri, found, reason in results:
        if reason is not None:
            sizes[uri] = None
            not_checked[reason] += 1
        elif found != -1:
            sizes[uri] = found
    return sizes, not_checked, sum(1 for _, _, reason in results if reason is None)


# --------------------------------------------------------------------------- checking


def validate_data(
    data: bytes,
    source: str,
    base_model: str = recommended_models()["base_model"],
    validation: bool = False,
    project: str | None = None,
    lookup: bool = True,
) -> Report:
    """Checks a tuning JSONL's bytes; every problem of every line, then the file's."""
    model = base_model_id(base_model)
    report = Report(source=source, base_model=model, max_example_tokens=gemini_models()[model]["max_example_tokens"])
    parsed = []
    for number, raw in jsonl_lines(data):
        report.lines += 1
        obj, problems = jsonl_line_object(raw, number)
        report.problems += problems
        if obj is not None:
            parsed.append((number, obj))
    formats = Counter(jsonl_line_format(obj) for _, obj in parsed)
    first = next((jsonl_line_format(obj) for _, obj in parsed if jsonl_line_format(obj)), None)
    report.format = first or "unknown"
    if first and len({f for f in formats if f}) > 1:
        report.format = "mixed"
    report.examples = len(parsed)

    uris = [uri for _, obj in parsed for uri in example_image_uris(obj)]
    report.images = len(set(uris))
    sizes, report.not_checked, report.looked_up = image_sizes(uris, project, lookup)

    for number, obj in parsed:
        line_format = jsonl_line_format(obj)
        if first and line_format and line_format != first:
            report.problems.append(
                jsonl_problem(
                    number,
                    "format",
                    f"this line uses '{line_format}' but the file's first example uses '{first}'",
                    "use one format for the whole file",
                )
            )
        report.problems += jsonl_line_problems(obj, number, sizes, model)
    report.problems += jsonl_file_problems(report.examples, validation)
    report.problems.sort(key=lambda p: (p["line"] is None, p["line"] or 0))
    return report

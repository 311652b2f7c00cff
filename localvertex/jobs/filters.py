"""The ``filter`` of ``tuningJobs.list``: a subset of AIP-160 (google.aip.dev/160).

Grammar served here (anything else is 400 INVALID_ARGUMENT, never silently ignored)::

    filter      = restriction { "AND" restriction }
    restriction = "state" ("=" | "!=") value
                | "labels." key ("=" | "!=") value
                | "labels." key ":" "*"          (the label is set)
                | "labels." key ":" value        (":" on a map value compares like "=")
    value       = "quoted string" | bare-word

``state`` values are JobState names (``JOB_STATE_SUCCEEDED``). ``AND`` is upper case, as
AIP-160 requires. OR, NOT, ``-`` and parentheses are not served.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import invalid

JOB_STATES = (
    "JOB_STATE_UNSPECIFIED",
    "JOB_STATE_QUEUED",
    "JOB_STATE_PENDING",
    "JOB_STATE_RUNNING",
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLING",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_PAUSED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_UPDATING",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|:)|(?P<word>[^\s=!:"()]+)'
    r'|(?P<other>\S))'
)
_LABEL_KEY = re.compile(r"[^\s.]+")

Predicate = Callable[[dict[str, Any]], bool]


def _bad(filter_text: str, why: str) -> Exception:
    return invalid(
        f"Invalid filter {filter_text[:200]!r}: {why}. The local Vertex AI serves "
        'state=..., labels.KEY="VALUE", labels.KEY:*, != and AND.'
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = m.end()
    return out


def _restriction(field: str, op: str, kind: str, value: str, text: str) -> Predicate:
    if field == "state":
        if op == ":" or value not in JOB_STATES:
            raise _bad(text, f"state takes = or != and a JobState name, got {op}{value!r}")
        return (lambda j: j.get("state") == value) if op == "=" else (lambda j: j.get("state") != value)
    if field.startswith("labels."):
        key = field[len("labels.") :]
        if not _LABEL_KEY.fullmatch(key):
            raise _bad(text, f"bad label key {key!r}")
        if op == ":" and kind == "word" and value == "*":
            return lambda j: key in (j.get("labels") or {})
        if op == "!=":
            return lambda j: (j.get("labels") or {}).get(key) != value
        return lambda j: (j.get("labels") or {}).get(key) == value
    raise _bad(text, f"unknown field {field!r}")


def parse_filter(text: str) -> Predicate:
    """A predicate on job resources for an AIP-160 filter; 400 if it cannot be parsed."""
    if not text.strip():
        return lambda job: True
    tokens = _tokens(text)
    if "".join(v for _, v in tokens).strip() == "" or any(k == "other" for k, _ in tokens):
        raise _bad(text, "unexpected character")
    predicates: list[Predicate] = []
    i = 0
    while True:
        if i + 3 > len(tokens):
            raise _bad(text, "expected FIELD OPERATOR VALUE")
        (fk, field), (ok, op), (vk, value) = tokens[i : i + 3]
        if fk != "word" or ok != "op" or vk not in ("word", "string"):
            raise _bad(text, "expected FIELD OPERATOR VALUE")
        if field in ("AND", "OR", "NOT"):
            raise _bad(text, f"unexpected {field}")
        predicates.append(_restriction(field, op, vk, value, text))
        i += 3
        if i == len(tokens):
            break
        if tokens[i] != ("word", "AND"):
            raise _bad(text, f"expected AND, got {tokens[i][1]!r}")
        i += 1
    return lambda job: all(p(job) for p in predicates)

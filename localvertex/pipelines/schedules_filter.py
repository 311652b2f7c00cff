"""The ``filter`` and ``orderBy`` of ``schedules.list``, as the discovery document lists them.

Filter fields (anything else is 400 INVALID_ARGUMENT, never silently ignored):

* ``display_name``: ``=``, ``!=``, and ``:`` with ``*`` wildcards (``display_name:"nightly-*"``);
* ``state``: ``=``, ``!=`` (ACTIVE, PAUSED, COMPLETED);
* ``create_pipeline_job_request:*`` (the schedule starts pipeline runs; all of them here);
* ``create_time``, ``start_time``, ``end_time``, ``next_run_time``: ``= != < > <= >=`` with an
  RFC 3339 value; ``end_time:*`` (an end time is set).

Combined with ``AND``, ``OR``, ``NOT`` (or ``-``) and parentheses, AIP-160's grammar
(google.aip.dev/160): ``OR`` binds tighter than ``AND`` (``a AND b OR c`` is
``a AND (b OR c)``), and terms side by side are ANDed. Field names may be snake_case or
camelCase, as the SDK's docs allow.

``orderBy``: a comma-separated list of ``display_name``, ``create_time``, ``update_time``,
``start_time``, ``end_time``, ``next_run_time``, each optionally followed by ``desc``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from ..errors import invalid

Predicate = Callable[[dict[str, Any]], bool]

STATES = ("STATE_UNSPECIFIED", "ACTIVE", "PAUSED", "COMPLETED")
TIME_FIELDS = {
    "create_time": "createTime",
    "start_time": "startTime",
    "end_time": "endTime",
    "next_run_time": "nextRunTime",
    "update_time": "updateTime",
}
ORDER_FIELDS = {"display_name": "displayName", **TIME_FIELDS}
_COMPARATORS = ("<=", ">=", "!=", "=", "<", ">", ":")
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|=|<|>|:)|(?P<paren>[()])'
    r'|(?P<word>[^\s=!<>:"()]+)|(?P<other>\S))'
)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _bad(text: str, why: str) -> Exception:
    return invalid(f"Invalid filter {text[:200]!r}: {why}.")


def _timestamp(value: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad(text, f"{value[:40]!r} is not an RFC 3339 timestamp")
    return moment


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return op == "!="
    return {
        "=": left == right,
        "!=": left != right,
        "<": left < right,
        ">": left > right,
        "<=": left <= right,
        ">=": left >= right,
    }[op]


def _restriction(field: str, op: str, kind: str, value: str, text: str) -> Predicate:
    name = _snake(field)
    if name == "display_name":
        if op == ":":
            return lambda s: fnmatchcase(s.get("displayName", ""), value)
        if op in ("=", "!="):
            return lambda s: (s.get("displayName", "") == value) == (op == "=")
    elif name == "state":
        if op in ("=", "!=") and value in STATES:
            return lambda s: (s.get("state") == value) == (op == "=")
        raise _bad(text, f"state takes = or != and one of {', '.join(STATES[1:])}")
    elif name == "create_pipeline_job_request":
        if op == ":" and kind == "word" and value == "*":
            return lambda s: "createPipelineJobRequest" in s
    elif name in TIME_FIELDS and name != "update_time":
        key = TIME_FIELDS[name]
        if op == ":" and kind == "word" and value == "*" and name == "end_time":
            return lambda s: bool(s.get(key))
        if op != ":":
            moment = _timestamp(value, text)
            return lambda s: _compare(op, _timestamp(s[key], text) if s.get(key) else None, moment)
    else:
        raise _bad(text, f"unknown field {field!r}")
    raise _bad(text, f"{field} does not take {op}{value[:40]}")


class _Parser:
    """Recursive descent over AIP-160's expression / sequence / factor / term grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        out, pos = [], 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                break
            kind = m.lastgroup
            value = m.group(kind)
            if kind == "other":
                raise _bad(text, f"unexpected character {value!r}")
            if kind == "string":
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            out.append((kind, value))
            pos = m.end()
        return out

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _bad(self.text, "unexpected end")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.expression()
        if self.peek() is not None:
            raise _bad(self.text, f"unexpected {self.peek()[1]!r}")
        return predicate

    def expression(self) -> Predicate:
        """sequence {AND sequence}; a sequence is factors side by side (implicit AND)."""
        parts = [self.factor()]
        while (token := self.peek()) is not None and token != ("paren", ")"):
            if token == ("word", "AND"):
                self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda s: all(p(s) for p in parts))

    def factor(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda s: any(p(s) for p in parts))

    def term(self) -> Predicate:
        token = self.take()
        if token in (("word", "NOT"), ("word", "-")):
            inner = self.term()
            return lambda s: not inner(s)
        if token == ("paren", "("):
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise _bad(self.text, "expected )")
            return inner
        kind, field = token
        if kind != "word" or field in ("AND", "OR"):
            raise _bad(self.text, f"unexpected {field!r}")
        if field.startswith("-") and len(field) > 1:  # "-state=ACTIVE": negation glued to the field
            inner = self._restriction(field[1:])
            return lambda s: not inner(s)
        return self._restriction(field)

    def _restriction(self, field: str) -> Predicate:
        op_kind, op = self.take()
        value_kind, value = self.take()
        if op_kind != "op" or op not in _COMPARATORS or value_kind not in ("word", "string"):
            raise _bad(self.text, "expected FIELD OPERATOR VALUE")
        return _restriction(field, op, value_kind, value, self.text)


def parse_filter(text: str) -> Predicate:
    """A predicate on schedule resources (canonical form) for ``text``; 400 if unparseable."""
    if not text.strip():
        return lambda s: True
    return _Parser(text).parse()


def parse_order_by(text: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """A sort for ``orderBy``; 400 for an unknown field. Unset values sort first, ties keep
    creation order (the default order: oldest first)."""
    keys: list[tuple[str, bool]] = []
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        words = part.split()
        name = _snake(words[0]) if words else ""
        if name not in ORDER_FIELDS or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise invalid(
                f"Invalid order_by {text[:200]!r}: use a comma-separated list of "
                f"{', '.join(ORDER_FIELDS)}, each optionally followed by desc."
            )
        keys.append((ORDER_FIELDS[name], len(words) == 2 and words[1].lower() == "desc"))

    def sort(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = sorted(items, key=lambda s: (s.get("createTime", ""), s["name"]))
        for key, desc in reversed(keys):  # stable sorts, least significant key first
            out.sort(key=lambda s, k=key: (bool(s.get(k)), s.get(k) or ""), reverse=desc)
        return out

    return sort

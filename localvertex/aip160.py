"""AIP-160 filters (google.aip.dev/160) for pipelineJobs.list and the ML Metadata lists.

Grammar (anything else is 400 INVALID_ARGUMENT naming what was wrong)::

    filter     = term { "AND" term }
    term       = factor { "OR" factor }          (OR binds tighter than AND, as AIP-160 says)
    factor     = [ "NOT" | "-" ] ( "(" filter ")" | call | comparison )
    call       = name "(" value { "," value } ")"          e.g. in_context("projects/...")
    comparison = name op value { "," value }             op: = != < <= > >= :
    value      = "quoted string" | bare-word

Which names exist, and what they compare as, is the caller's :class:`Fields`: a string, an
enum (its value must be one of the enum's names), a timestamp (RFC 3339, compared as
instants), a map (``labels.KEY``; ``labels.KEY:*`` means the key is set) or a list (``:``
means "holds one of the values").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from .errors import invalid

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|!=|=|<|>|:)|(?P<punct>[(),])|(?P<word>[^\s=!<>:"(),]+))'
)
Predicate = Callable[[Any], bool]


@dataclass
class Fields:
    """What a list's filter may name. Each getter takes the resource and returns the value."""

    strings: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    enums: dict[str, tuple[Callable[[Any], Any], tuple[str, ...]]] = field(default_factory=dict)
    times: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    maps: dict[str, Callable[[Any], dict]] = field(default_factory=dict)
    lists: dict[str, Callable[[Any], list]] = field(default_factory=dict)
    functions: dict[str, Callable[[list[str]], Predicate]] = field(default_factory=dict)


def snake_case(name: str) -> str:
    """``display_name`` for ``displayName`` (a dotted map key after the first part is kept)."""
    head, dot, key = name.partition(".")
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), head) + dot + key


def bad_filter(text: str, why: str):
    return invalid(f"Invalid filter: {text[:200]!r}: {why}")


def tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise bad_filter(text, f"unexpected character at {pos}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = m.end()
    return out


def parse(text: str, fields: Fields) -> Predicate:
    """The predicate of ``text`` (every resource matches an empty filter)."""
    if not text.strip():
        return lambda _r: True
    parser = _Parser(text, tokenize(text), fields)
    pred = parser.filter()
    if parser.pos != len(parser.tokens):
        raise bad_filter(text, f"unexpected {parser.tokens[parser.pos][1]!r}")
    return pred


def _instant(text: str, value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise bad_filter(text, f"{value!r} is not an RFC 3339 timestamp") from None


COMPARE = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, str]], fields: Fields) -> None:
        self.text, self.tokens, self.fields, self.pos = text, tokens, fields, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            want = value or kind or "more"
            raise bad_filter(self.text, f"expected {want} at token {self.pos + 1}")
        self.pos += 1
        return tok[1]

    def keyword(self, word: str) -> bool:
        if self.peek() == ("word", word):
            self.pos += 1
            return True
        return False

    def filter(self) -> Predicate:
        preds = [self.term()]
        while self.keyword("AND"):
            preds.append(self.term())
        return preds[0] if len(preds) == 1 else (lambda r: all(p(r) for p in preds))

    def term(self) -> Predicate:
        preds = [self.factor()]
        while self.keyword("OR"):
            preds.append(self.factor())
        return preds[0] if len(preds) == 1 else (lambda r: any(p(r) for p in preds))

    def factor(self) -> Predicate:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].startswith("-") and len(tok[1]) > 1:  # "-state=X" is NOT
            self.tokens[self.pos] = ("word", tok[1][1:])
            inner = self.simple()
            return lambda r: not inner(r)
        if self.keyword("NOT") or self.keyword("-"):
            inner = self.simple()
            return lambda r: not inner(r)
        return self.simple()

    def simple(self) -> Predicate:
        if self.peek() == ("punct", "("):
            self.take()
            pred = self.filter()
            self.take("punct", ")")
            return pred
        name = self.take("word")
        if self.peek() == ("punct", "("):
            return self.call(name)
        op = self.take("op")
        values = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            values.append(self.value())
        return self.comparison(name, op, values)

    def value(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] not in ("string", "word"):
            raise bad_filter(self.text, f"expected a value at token {self.pos + 1}")
        self.pos += 1
        return tok[1]

    def call(self, name: str) -> Predicate:
        fn = self.fields.functions.get(name)
        if fn is None:
            raise bad_filter(self.text, f"unknown function {name!r}")
        self.take("punct", "(")
        args = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            args.append(self.value())
        self.take("punct", ")")
        return fn(args)

    def comparison(self, name: str, op: str, values: list[str]) -> Predicate:
        f, text = self.fields, self.text
        name = snake_case(name)  # the SDKs' docs use both spellings (displayName, display_name)
        if len(values) > 1 and op != ":":
            raise bad_filter(text, f"a list of values needs ':' ({name})")
        value = values[0]
        head, _, key = name.partition(".")
        if key and head in f.maps:
            get_map = f.maps[head]
            if op == ":" and value == "*":
                return lambda r: key in (get_map(r) or {})
            if op not in ("=", "!=", ":"):
                raise bad_filter(text, f"{name} takes =, != or :")
            cmp = COMPARE["=" if op == ":" else op]
            return lambda r: cmp((get_map(r) or {}).get(key), value)
        if name in f.lists:
            if op != ":":
                raise bad_filter(text, f"{name} takes ':'")
            get_list, wanted = f.lists[name], set(values)
            return lambda r: bool(wanted & set(get_list(r) or ()))
        if op == ":" and value == "*" and name in {**f.strings, **f.enums, **f.times}:
            getter = {**f.strings, **f.times, **{k: g for k, (g, _) in f.enums.items()}}[name]
            return lambda r: bool(getter(r))
        cmp = COMPARE.get("=" if op == ":" else op)
        if name in f.times:
            get_time, when = f.times[name], _instant(text, value)
            return lambda r: bool(get_time(r)) and cmp(_instant(text, get_time(r)), when)
        if name in f.enums:
            get_enum, names = f.enums[name]
            if value not in names:
                raise bad_filter(text, f"{value!r} is not a value of {name} ({', '.join(names)})")
            if op not in ("=", "!=", ":"):
                raise bad_filter(text, f"{name} takes = or !=")
            return lambda r: cmp(get_enum(r), value)
        if name in f.strings:
            get_str = f.strings[name]
            if op == ":" and "*" in value:  # AIP-160's wildcard: "*" matches any characters
                return lambda r: fnmatchcase(get_str(r) or "", value)
            return lambda r: (get_str(r) is not None or op == "!=") and cmp(get_str(r) or "", value)
        raise bad_filter(text, f"unknown field {name!r}")

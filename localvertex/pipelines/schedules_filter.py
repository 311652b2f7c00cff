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
from typing import Any

from .. import aip160
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


def _fields() -> aip160.Fields:
    """What a schedules.list filter may name (canonical, camelCase resources)."""
    times = {name: (lambda s, k=key: s.get(k)) for name, key in TIME_FIELDS.items() if name != "update_time"}
    return aip160.Fields(
        strings={
            "display_name": lambda s: s.get("displayName", ""),
            # "the schedule starts pipeline runs": every schedule here does
            "create_pipeline_job_request": lambda s: "createPipelineJobRequest" in s,
        },
        enums={"state": (lambda s: s.get("state"), STATES[1:])},
        times=times,
    )


def parse_filter(text: str) -> Predicate:
    """A predicate on schedule resources (canonical form) for ``text``; 400 if unparseable
    (AIP-160, the shared parser of the twin's lists: localvertex/pipelines/aip160.py)."""
    return aip160.parse(text, _fields())


def parse_order_by(text: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """A sort for ``orderBy``; 400 for an unknown field. Unset values sort first, ties keep
    creation order (the default order: oldest first)."""
    keys: list[tuple[str, bool]] = []
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        words = part.split()
        name = aip160.snake_case(words[0]) if words else ""
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

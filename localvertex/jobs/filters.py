"""The ``filter`` of ``tuningJobs.list``: AIP-160 (google.aip.dev/160) over ``state`` (a
JobState name) and ``labels.KEY`` (``=``, ``!=``, ``:*`` for "the label is set"), with AND,
OR, NOT and parentheses. Anything else is 400 INVALID_ARGUMENT, never silently ignored. The
parser is the one every list of the twin uses: localvertex/aip160.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import aip160

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

Predicate = Callable[[dict[str, Any]], bool]


def parse_filter(text: str) -> Predicate:
    """A predicate on job resources for an AIP-160 filter; 400 if it cannot be parsed."""
    fields = aip160.Fields(
        enums={"state": (lambda job: job.get("state"), JOB_STATES)},
        maps={"labels": lambda job: job.get("labels") or {}},
    )
    return aip160.parse(text, fields)

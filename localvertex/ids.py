"""Resource ids and name segments: the gate between request data and file names.

Every id that reaches a path (``jobs/<id>.json``, ``models/<id>/``) passes :func:`check_id`.
"""

from __future__ import annotations

import re
import secrets

from .errors import invalid

# Used with fullmatch: match's "$" would also accept a trailing newline.
ID_RE = re.compile(r"[0-9a-z][0-9a-z-]{0,63}")
NAME_SEGMENT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def new_id() -> str:
    """A numeric id like Vertex's (18-19 digits)."""
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise invalid(f"invalid {what}: {str(value)[:80]!r} (expected [0-9a-z-], at most 64 chars)")
    return value


def check_segment(value: str, what: str) -> str:
    if not NAME_SEGMENT_RE.fullmatch(value or ""):
        raise invalid(f"invalid {what}: {value[:80]!r}")
    return value

"""Paged lists as Vertex AI serves them: ``pageSize`` (0 is the list's default, capped at
1,000; negative is 400) and an opaque ``pageToken`` that holds the offset and is bound to the
request's other parameters (a token of another request is 400)."""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from .errors import invalid
from .httputil import b64url_decode, b64url_encode

MAX_PAGE_SIZE = 1000


def page_token(offset: int, key: str) -> str:
    """The token of the page at ``offset`` of the list asked for with ``key`` (its other parameters)."""
    return b64url_encode(json.dumps({"o": offset, "f": key}).encode())


def parse_page_token(token: str, key: str) -> int:
    """The offset in ``token``; 400 unless it came from a list asked for with the same ``key``."""
    try:
        data = json.loads(b64url_decode(token))
        offset = int(data["o"])
        if offset < 0 or data.get("f", "") != key:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise invalid("Invalid pageToken (it must come from the previous page of the same list request).") from None


@dataclass(frozen=True)
class Page:
    """Where one page of a list starts and how long it is."""

    offset: int
    size: int
    key: str

    def of(self, items: list[Any]) -> list[Any]:
        return items[self.offset : self.offset + self.size]

    def next_token(self, total: int) -> str:
        """The next page's token, or "" when this page reaches the end of ``total`` items."""
        end = self.offset + self.size
        return page_token(end, self.key) if end < total else ""


def parse_page(page_size: int, token: str, key: str, default_size: int) -> Page:
    """The page a request asks for: 400 for a negative ``page_size`` or a token of another request."""
    if page_size < 0:
        raise invalid(f"Invalid value at 'page_size' (TYPE_INT32), {page_size}: must not be negative")
    offset = parse_page_token(token, key) if token else 0
    return Page(offset, min(page_size or default_size, MAX_PAGE_SIZE), key)

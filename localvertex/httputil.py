"""Small HTTP helpers shared by the stack, the storage emulator and the API (stdlib only)."""

from __future__ import annotations

import base64
import time
import urllib.request


def wait_http(url: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200; raise ``RuntimeError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.05)


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as in JWTs (and our page tokens)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

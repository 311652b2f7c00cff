"""The console's guards: the Host check, the login token, the session cookie, CSRF tokens
and the security headers.

The console can start and cancel runs, so it is treated as a real web application on
localhost, as Jupyter is:

* **Host**: only ``127.0.0.1``, ``localhost`` and ``[::1]`` are served. A page on
  ``evil.example`` whose name an attacker re-binds to 127.0.0.1 sends its own Host, and is
  refused (DNS rebinding).
* **Login token**: ``make console`` prints ``/console/login?token=...``. The token lives in
  ``<data_dir>/auth/console.json`` (0600, in the 0700 auth folder), so only the user who
  owns the data folder can read it. Opening that URL sets a session cookie (HttpOnly,
  SameSite=Strict, path /console) and redirects to a URL without the token, so the token
  does not stay in the address bar or the history. A new token (``make console`` starting
  a server) ends every earlier session: the session key changes with it.
* **Sessions** are signed, not stored: ``<id>.<expiry>.<HMAC>``; the server keeps nothing.
* **CSRF**: every form carries ``csrf`` = HMAC(session key, session id); a POST without
  it, with another session's, or with a cross-site ``Origin`` / ``Sec-Fetch-Site`` is
  refused (403) before the handler runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

COOKIE = "lv_console"
SESSION_TTL_S = 12 * 3600
ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
KEYS_FILE = "console.json"

# No inline script or style: scripts and styles come from /console/static only. Images may
# be data: URIs (thumbnails of an upload); frames only from the console itself (the report).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# An artifact's HTML (the evaluation report) is someone else's page: no script at all, its
# own inline styles and data: images, framed only by the console, in a sandbox.
ARTIFACT_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make browsers send Origin: null
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class Refused(Exception):
    """A request the guards turn away: (HTTP status, one line saying why)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Keys:
    login_token: str
    session_key: bytes


def keys_path(auth_dir: Path) -> Path:
    return Path(auth_dir) / KEYS_FILE


def new_keys(auth_dir: Path) -> Keys:
    """A fresh login token and session key, written 0600 (earlier sessions end)."""
    keys = Keys(secrets.token_urlsafe(24), secrets.token_bytes(32))
    path = keys_path(auth_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"login_token": keys.login_token, "session_key": keys.session_key.hex()}, fh)
    os.replace(tmp, path)
    return keys


def read_keys(auth_dir: Path) -> Keys:
    """The keys in the data folder, made on first use. Read on every check (a small file in
    the page cache), so a new token from ``make console`` applies at once."""
    try:
        data = json.loads(keys_path(auth_dir).read_text())
        return Keys(str(data["login_token"]), bytes.fromhex(data["session_key"]))
    except (OSError, ValueError, KeyError, TypeError):
        return new_keys(auth_dir)


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:40]


def new_session(keys: Keys, now: float | None = None) -> str:
    sid = secrets.token_hex(12)
    expiry = int((now or time.time()) + SESSION_TTL_S)
    return f"{sid}.{expiry}.{_mac(keys.session_key, f'session:{sid}.{expiry}')}"


def session_id(keys: Keys, cookie: str | None, now: float | None = None) -> str | None:
    """The session id of a valid, unexpired cookie, or None."""
    try:
        sid, expiry, mac = (cookie or "").split(".")
        alive = int(expiry) > (now or time.time())
    except ValueError:
        return None
    ok = hmac.compare_digest(mac, _mac(keys.session_key, f"session:{sid}.{expiry}"))
    return sid if ok and alive else None


def csrf_token(keys: Keys, sid: str) -> str:
    return _mac(keys.session_key, f"csrf:{sid}")


def check_host(request: Request) -> None:
    """Refuse a Host that is not this machine's loopback name (DNS rebinding)."""
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name.lower() not in ALLOWED_HOSTS:
        raise Refused(403, f"The console answers only at 127.0.0.1 or localhost, not at Host {host[:80]!r}.")


def check_login_token(keys: Keys, token: str) -> None:
    if not token or not hmac.compare_digest(token.encode(), keys.login_token.encode()):
        raise Refused(403, "That login token is not this console's: open the URL that `make console` prints.")


def check_same_site(request: Request) -> None:
    """A state-changing request must come from a console page: browsers send Origin on a
    POST and Sec-Fetch-Site on every request; a cross-site value is refused outright."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Refused(403, f"Cross-site request refused (Sec-Fetch-Site: {site[:40]}).")
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        raise Refused(403, "Cross-site request refused (its Origin is not this console).")


def check_csrf(keys: Keys, sid: str, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(submitted.encode(), csrf_token(keys, sid).encode()):
        raise Refused(403, "The form's CSRF token is missing or not this session's: reload the page and try again.")


def cookie_header(value: str, secure: bool = False) -> str:
    """The session cookie: not readable by scripts, never sent from another site."""
    flags = f"Path=/console; HttpOnly; SameSite=Strict; Max-Age={SESSION_TTL_S}"
    return f"{COOKIE}={value}; {flags}{'; Secure' if secure else ''}"

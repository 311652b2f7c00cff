"""Authentication: a fake service-account key, the OAuth token exchange that accepts JWTs
signed by it, and the bearer-token check on API paths.

``google-auth`` reads ``<data_dir>/credentials.json`` (written by :meth:`Auth.write_credentials`).
Two kinds of bearer token are accepted, as Google accepts both for a service account:

* an access token from ``/token``: the client signs an RS256 JWT with the key and posts it
  there (the OAuth JWT-bearer grant, :func:`token_grant`); ``google-genai`` and
  ``google-cloud-storage`` do this;
* a self-signed JWT (google.aip.dev/auth/4111), sent directly as the bearer token:
  google-cloud-aiplatform's generated clients do this (``always_use_jwt_access``). It must
  be RS256, carry the key's id as ``kid``, be signed by the local key, have ``iss`` and
  ``sub`` equal to the service account's email, be unexpired with ``exp - iat`` at most one
  hour, and name the API: ``aud`` ``https://aiplatform.googleapis.com/`` (the audience the
  REST and gRPC transports put in it, their ``DEFAULT_HOST``) or, with no ``aud``, a
  ``scope`` claim that includes cloud-platform.

:class:`BearerAuthMiddleware` checks one or the other on every API request.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .httputil import b64url_decode, b64url_encode
from .middleware import error_response

TOKEN_TTL_S = 3600
JWT_CLOCK_SKEW_S = 300
KEY_ID = "local"  # credentials.json private_key_id; the kid of every JWT the client signs
# Self-signed JWTs: the audience aiplatform's transports use (DEFAULT_HOST), the scope
# that may stand in for it (AIP-4111), and the longest lifetime Google accepts.
SELF_SIGNED_AUDIENCES = ("https://aiplatform.googleapis.com/",)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_JWT_LIFETIME_S = 3600
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. (Local Vertex AI: use an access token "
    "from its /token endpoint, or a JWT self-signed with the key in credentials.json.)"
)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read_or_create(path: Path, create) -> bytes:
    """The file's bytes, written first (0600) from ``create()`` if it does not exist."""
    if not path.exists():
        _write_private(path, create())
    return path.read_bytes()


def _new_private_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _split_jwt(assertion: str) -> tuple[dict, dict, bytes, bytes]:
    """(header, payload, signature, signed bytes) of a compact JWT; ValueError if malformed."""
    try:
        header_b64, payload_b64, sig_b64 = assertion.split(".")
        header = json.loads(b64url_decode(header_b64))
        payload = json.loads(b64url_decode(payload_b64))
        sig = b64url_decode(sig_b64)
    except (ValueError, binascii.Error):
        raise ValueError("malformed JWT") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("malformed JWT: header and payload must be JSON objects")
    return header, payload, sig, f"{header_b64}.{payload_b64}".encode("ascii")


class Auth:
    """Fake service-account key + an OAuth token endpoint that accepts JWTs signed by it.

    Access tokens are HMAC-signed (secret kept in the data dir), so they survive a server
    restart on the same data dir and are never stored or logged.
    """

    def __init__(self, data_dir: Path, project: str) -> None:
        from cryptography.hazmat.primitives import serialization

        self.project = project
        self.dir = Path(data_dir) / "auth"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.private_pem = _read_or_create(self.dir / "private_key.pem", _new_private_key_pem)
        self.public_key = serialization.load_pem_private_key(self.private_pem, None).public_key()
        self._secret = _read_or_create(self.dir / "token_secret", lambda: secrets.token_bytes(32))
        self.client_email = f"local@{project}.iam.gserviceaccount.com"
        self._jwt_cache: dict[str, float] = {}  # verified self-signed JWT -> exp

    def write_credentials(self, path: Path, token_uri: str) -> Path:
        data = {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": KEY_ID,
            "private_key": self.private_pem.decode("ascii"),
            "client_email": self.client_email,
            "client_id": "1",
            "auth_uri": token_uri,
            "token_uri": token_uri,
        }
        _write_private(path, json.dumps(data, indent=1).encode("utf-8"))
        return path

    def verify_assertion(self, assertion: str) -> dict[str, Any]:
        """The payload of an RS256 JWT signed with the local key; ValueError otherwise."""
        return self._verified(assertion)[1]

    def _verified(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, payload) of an unexpired RS256 JWT signed with the local key."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header, payload, sig, signed = _split_jwt(token)
        if header.get("alg") != "RS256":
            raise ValueError("JWT must be RS256")
        try:
            self.public_key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ValueError("JWT signature does not match the local key") from None
        exp = payload.get("exp")
        if isinstance(exp, (int, float)) and exp < time.time() - JWT_CLOCK_SKEW_S:
            raise ValueError("JWT expired")
        return header, payload

    def verify_self_signed(self, token: str) -> dict[str, Any]:
        """The payload of a self-signed service-account JWT for this API (module docstring);
        ValueError saying what is wrong otherwise."""
        header, payload = self._verified(token)
        if header.get("kid") != KEY_ID:
            raise ValueError("JWT kid is not the id of the service account's key")
        if payload.get("iss") != self.client_email or payload.get("sub") != self.client_email:
            raise ValueError("JWT iss and sub must be the service account's email")
        iat, exp, now = payload.get("iat"), payload.get("exp"), time.time()
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (iat, exp)):
            raise ValueError("JWT needs numeric iat and exp")
        if iat > now + JWT_CLOCK_SKEW_S:
            raise ValueError("JWT issued in the future")
        if not 0 < exp - iat <= MAX_JWT_LIFETIME_S:
            raise ValueError(f"JWT lifetime must be at most {MAX_JWT_LIFETIME_S} s")
        if exp <= now - JWT_CLOCK_SKEW_S:
            raise ValueError("JWT expired")
        aud = payload.get("aud")
        if aud is not None:
            if aud not in SELF_SIGNED_AUDIENCES:
                raise ValueError(f"JWT audience {str(aud)[:80]!r} is not this API")
        elif CLOUD_PLATFORM_SCOPE not in str(payload.get("scope", "")).split():
            raise ValueError("JWT has neither this API's audience nor the cloud-platform scope")
        return payload

    def _sign(self, payload: str) -> str:
        return b64url_encode(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self) -> str:
        payload = b64url_encode(json.dumps({"exp": int(time.time()) + TOKEN_TTL_S, "n": secrets.token_hex(8)}).encode())
        return f"lv1.{payload}.{self._sign(payload)}"

    def check(self, token: str) -> bool:
        """Whether ``token`` is an unexpired access token issued by :meth:`issue`, or a valid
        self-signed JWT (:meth:`verify_self_signed`)."""
        try:
            prefix, payload, sig = token.split(".")
        except ValueError:
            return False
        if prefix != "lv1":
            return self._check_self_signed(token)
        if not hmac.compare_digest(self._sign(payload), sig):
            return False
        try:
            exp = json.loads(b64url_decode(payload))["exp"]
        except (ValueError, KeyError, binascii.Error):
            return False
        return exp > time.time()

    def _check_self_signed(self, token: str) -> bool:
        now = time.time()
        exp = self._jwt_cache.get(token)
        if exp is not None:
            return exp > now - JWT_CLOCK_SKEW_S
        try:
            payload = self.verify_self_signed(token)
        except ValueError:
            return False
        if len(self._jwt_cache) > 256:
            self._jwt_cache.clear()
        self._jwt_cache[token] = payload["exp"]
        return True


def token_grant(auth: Auth, form_body: bytes) -> tuple[int, dict[str, Any]]:
    """The OAuth JWT-bearer grant: (HTTP status, JSON answer) for a form-encoded request."""
    form = urllib.parse.parse_qs(form_body.decode("utf-8", "replace"))
    assertion = (form.get("assertion") or [""])[0]
    grant = (form.get("grant_type") or [""])[0]
    if not assertion:
        return 400, {"error": "invalid_request", "error_description": f"missing assertion (grant_type {grant!r})"}
    try:
        auth.verify_assertion(assertion)
    except ValueError as exc:
        return 400, {"error": "invalid_grant", "error_description": str(exc)}
    return 200, {"access_token": auth.issue(), "expires_in": TOKEN_TTL_S, "token_type": "Bearer"}


def bearer_token(scope) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    headers = dict(scope.get("headers") or [])
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class BearerAuthMiddleware:
    """ASGI middleware: 401 on paths under ``prefixes`` without a valid access token."""

    def __init__(self, app, auth: Auth, prefixes: tuple[str, ...]) -> None:
        self.app, self.auth, self.prefixes = app, auth, prefixes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path", "").startswith(self.prefixes):
            token = bearer_token(scope)
            if token is None or not self.auth.check(token):
                resp = error_response(401, UNAUTHENTICATED_MESSAGE, "UNAUTHENTICATED")
                resp.headers["WWW-Authenticate"] = "Bearer"
                return await resp(scope, receive, send)
        return await self.app(scope, receive, send)

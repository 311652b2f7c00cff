"""Expired and forged bearer tokens against the local Vertex AI (localvertex/auth.py).

Every one gets 401 ``UNAUTHENTICATED`` in Google's error shape with ``WWW-Authenticate: Bearer``.
An expired access token is refreshed by google-auth: ``AuthorizedSession`` (google-auth's own
HTTP client) answers the 401 by fetching a new token from ``/token`` and repeating the request;
google-genai refreshes *before* sending, from the token's expiry (minus google-auth's margin),
so it never sends an expired token; a token it believes valid but the server refuses is not
refreshed by it (the 401 surfaces as ``ClientError``).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import time

import httpx
import pytest

from localvertex.httputil import b64url_encode
from tests.faults import counts
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.faults

PROJECT, LOCATION = "local-project", "us-central1"
JOBS = f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/tuningJobs"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def access_token(secret: bytes, exp: float, **extra) -> str:
    """An access token in the server's format, signed with ``secret``."""
    payload = b64url_encode(json.dumps({"exp": int(exp), "n": "0123456789abcdef", **extra}).encode())
    return f"lv1.{payload}.{b64url_encode(hmac.new(secret, payload.encode(), hashlib.sha256).digest())}"


def jwt(header: dict, payload: dict, sign) -> str:
    signed = f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(json.dumps(payload).encode())}"
    return f"{signed}.{b64url_encode(sign(signed.encode()))}"


def rs256(key):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture(scope="module")
def keys(local_stack):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    auth = local_stack.data_dir / "auth"
    pem = (auth / "private_key.pem").read_bytes()
    return {
        "secret": (auth / "token_secret").read_bytes(),
        "pem": pem,
        "key": serialization.load_pem_private_key(pem, None),
        "other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "email": f"local@{PROJECT}.iam.gserviceaccount.com",
    }


def forged_tokens(keys) -> dict[str, str | None]:
    now, secret, email = time.time(), keys["secret"], keys["email"]
    good = access_token(secret, now + 3600)
    prefix, payload, signature = good.split(".")
    claims = {
        "iss": email,
        "sub": email,
        "aud": "https://aiplatform.googleapis.com/",
        "iat": int(now),
        "exp": int(now) + 600,
    }
    return {
        "expired": access_token(secret, now - 5),
        "expired-an-hour-ago": access_token(secret, now - 3600),
        "payload-swapped": f"{prefix}.{b64url_encode(json.dumps({'exp': int(now) + 10**6}).encode())}.{signature}",
        "other-secret": access_token(b"not the server's secret", now + 3600),
        "signature-cut": good[:-3],
        "empty-parts": "lv1..",
        "garbage": "abc",
        "unicode": "lv1.画像.x",
        "long": "lv1." + "A" * 8_000 + ".x",
        "no-header": None,
        "jwt-alg-none": jwt({"alg": "none", "kid": "local"}, claims, lambda data: b""),
        "jwt-other-key": jwt({"alg": "RS256", "kid": "local"}, claims, rs256(keys["other"])),
        "jwt-hs256-with-public-key": jwt(
            {"alg": "HS256", "kid": "local"}, claims, lambda data: hmac.new(keys["pem"], data, hashlib.sha256).digest()
        ),
        "jwt-expired": jwt(
            {"alg": "RS256", "kid": "local"},
            {**claims, "iat": int(now) - 4000, "exp": int(now) - 400},
            rs256(keys["key"]),
        ),
        "jwt-too-long-lived": jwt(
            {"alg": "RS256", "kid": "local"}, {**claims, "exp": int(now) + 7200}, rs256(keys["key"])
        ),
        "jwt-wrong-audience": jwt(
            {"alg": "RS256", "kid": "local"}, {**claims, "aud": "https://evil.example/"}, rs256(keys["key"])
        ),
        "jwt-other-issuer": jwt(
            {"alg": "RS256", "kid": "local"}, {**claims, "iss": "x@y", "sub": "x@y"}, rs256(keys["key"])
        ),
    }


def test_expired_and_forged_tokens_get_401_unauthenticated(local_stack, keys):
    tokens = forged_tokens(keys)
    counts.add_bad_inputs(len(tokens) + 2)
    good = access_token(keys["secret"], time.time() + 60)
    for name, authorization in [
        *((n, None if t is None else f"Bearer {t}") for n, t in tokens.items()),
        ("basic-scheme", "Basic bG9jYWw6c2VjcmV0"),
        ("no-scheme", good),
    ]:
        headers = {} if authorization is None else {"Authorization": authorization.encode()}
        response = httpx.get(f"{local_stack.vertex_url}{JOBS}", headers=headers, timeout=30)
        assert response.status_code == 401, (name, response.status_code, response.text[:200])
        assert response.headers["WWW-Authenticate"] == "Bearer", name
        error = response.json()["error"]
        assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED"), name
        assert "/token" in error["message"] and len(error["message"]) < 400, name
    # Their good twin is accepted: the 401s are the tokens' doing.
    assert (
        httpx.get(
            f"{local_stack.vertex_url}{JOBS}", headers={"Authorization": f"Bearer {good}"}, timeout=30
        ).status_code
        == 200
    )


def test_google_auth_refreshes_a_token_the_server_calls_expired(local_stack, keys):
    """AuthorizedSession believes its token valid for 30 more minutes; the server says it expired."""
    import google.auth.transport.requests
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(
        local_stack.env["GOOGLE_APPLICATION_CREDENTIALS"], scopes=[CLOUD_PLATFORM]
    )
    expired = access_token(keys["secret"], time.time() - 1)
    credentials.token = expired
    credentials.expiry = datetime.datetime.utcnow() + datetime.timedelta(minutes=30)
    with FaultProxy(local_stack.vertex_url, rate=0.0, faults=()) as proxy:
        session = google.auth.transport.requests.AuthorizedSession(credentials)
        response = session.get(f"{proxy.url}{JOBS}", timeout=30)
    counts.add_faults()
    assert response.status_code == 200, response.text[:300]
    assert [status for method, path, status in proxy.answers] == [401, 200]
    assert credentials.token != expired and credentials.valid
    counts.add_runs()


def test_genai_refreshes_an_expired_token_before_sending_it(local_stack, keys):
    from google import genai
    from google.genai import errors

    with FaultProxy(local_stack.vertex_url, rate=0.0, faults=()) as proxy:
        os.environ["GOOGLE_VERTEX_BASE_URL"], saved = proxy.url, os.environ["GOOGLE_VERTEX_BASE_URL"]
        try:
            client = genai.Client(vertexai=True, project=PROJECT, location=LOCATION)
            list(client.tunings.list())
            credentials = client._api_client._credentials
            # 1. Expired by the client's own clock: refreshed before the request goes out.
            stale = access_token(keys["secret"], time.time() - 1)
            credentials.token, credentials.expiry = stale, datetime.datetime.utcnow() - datetime.timedelta(seconds=1)
            list(client.tunings.list())
            assert credentials.token != stale
            assert [status for method, path, status in proxy.answers] == [200, 200]
            # 2. Believed valid, refused by the server: google-genai does not refresh on a 401
            #    (it sends through httpx, not AuthorizedSession); the error names /token.
            credentials.token, credentials.expiry = stale, datetime.datetime.utcnow() + datetime.timedelta(minutes=30)
            with pytest.raises(errors.ClientError) as caught:
                list(client.tunings.list())
            assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
            assert "/token" in caught.value.message
        finally:
            os.environ["GOOGLE_VERTEX_BASE_URL"] = saved
    counts.add_faults(2)
    counts.add_runs()

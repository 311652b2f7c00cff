"""The Google clients the components use, made the same way online and offline (the
local Vertex AI is reached through the environment variables the SDKs honour): Cloud
Storage, google-genai with retries and bounded waits, and where a resource lives.
"""


def parse_gcs_uri(uri):
    """Splits "gs://bucket/path/to/object" into ("bucket", "path/to/object")."""
    if not isinstance(uri, str) or not uri.startswith("gs://") or "/" not in uri[5:].strip("/"):
        raise ValueError(f"expected a gs://bucket/object URI, got {uri!r}")
    bucket, _, name = uri[5:].partition("/")
    return bucket, name


def storage_client(project, connections=10):
    """A google-cloud-storage client for ``connections`` threads at once (requests keeps 10
    connections per host unless told otherwise). Against a storage emulator on this machine
    (STORAGE_EMULATOR_HOST names a loopback address), its session ignores the environment's
    proxy, netrc and CA-bundle settings: none applies to a loopback plain-HTTP server (a proxy
    would only break it), and looking them up took 15 % of each upload's CPU."""
    import ipaddress
    import os
    import socket
    from urllib.parse import urlsplit

    from google.cloud import storage

    client = storage.Client(project=project)
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    host = urlsplit(emulator if "://" in emulator else f"http://{emulator}").hostname
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)} if host else set()
        loopback = bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    except OSError:  # a name that does not resolve
        loopback = False
    http = getattr(client, "_http", None)
    if loopback and http is not None:
        http.trust_env = False
    if connections > 10 and http is not None:
        from requests.adapters import HTTPAdapter

        for prefix in ("https://", "http://"):
            http.mount(prefix, HTTPAdapter(pool_connections=4, pool_maxsize=connections))
    return client


def genai_client(project, location, attempts=6, timeout_seconds=120):
    """A google-genai client for Vertex AI that retries transient errors with backoff.

    Every request is bounded by ``timeout_seconds``. Use ``attempts=1`` for calls that must
    not be repeated blindly (creating a tuning job: a retried POST could start two).
    Offline, GOOGLE_VERTEX_BASE_URL and GOOGLE_APPLICATION_CREDENTIALS point the SDK at
    the local Vertex AI; this code is the same in both worlds.
    """
    from google import genai
    from google.genai import types

    retry = types.HttpRetryOptions(
        attempts=attempts,
        initial_delay=1.0,
        max_delay=30.0,
        exp_base=2.0,
        http_status_codes=[408, 429, 500, 502, 503, 504],
    )
    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        http_options=types.HttpOptions(retry_options=retry, timeout=timeout_seconds * 1000),
    )


def endpoint_location(resource_name, default):
    """The location in ``projects/P/locations/L/...`` (``default`` for another form): a model
    tuned from Gemini 3 is served on a multi-region endpoint ("us", "eu"), not in the
    tuning region, and its client must be made for that location."""
    parts = (resource_name or "").split("/")
    return parts[3] if len(parts) > 3 and parts[0] == "projects" and parts[2] == "locations" else default

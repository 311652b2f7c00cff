"""``gs://`` URIs and reading objects (the emulator itself is in emulator.py).

* :func:`parse_gs_uri` is the single gate for every ``gs://`` URI that arrives in a
  request or a dataset: anything that is not ``gs://bucket/object`` (``file://``,
  absolute paths, ``..`` segments, control characters) is refused.
* :class:`GcsReader` reads objects through ``google-cloud-storage`` pointed at the
  emulator (anonymous credentials, thread-local clients).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

# Bucket names: 3-63 chars of lowercase letters, digits, '-', '_' and '.', starting and
# ending with a letter or digit (the dotted 222-char form is not needed here).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
_MAX_OBJECT_NAME = 1024


class InvalidUri(ValueError):
    """A URI that is not an acceptable ``gs://bucket/object`` reference."""


class ObjectNotFound(LookupError):
    """The bucket or object does not exist."""


@dataclass(frozen=True)
class GsUri:
    bucket: str
    name: str

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def parse_gs_uri(uri: object) -> GsUri:
    """Validate and split ``gs://bucket/object``; raise :class:`InvalidUri` otherwise."""
    if not isinstance(uri, str) or not uri:
        raise InvalidUri("fileUri must be a non-empty string")
    if not uri.startswith("gs://"):
        scheme = uri.split(":", 1)[0] if ":" in uri else ""
        what = f"scheme {scheme!r}" if scheme and "/" not in scheme else "a path"
        raise InvalidUri(f"only gs://bucket/object URIs are supported, got {what}: {uri[:200]!r}")
    rest = uri[len("gs://") :]
    bucket, sep, name = rest.partition("/")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise InvalidUri(f"invalid bucket name in {uri[:200]!r}")
    if not sep or not name:
        raise InvalidUri(f"missing object name in {uri[:200]!r}")
    if len(name.encode("utf-8")) > _MAX_OBJECT_NAME:
        raise InvalidUri("object name too long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or "\\" in name:
        raise InvalidUri(f"object name contains forbidden characters: {uri[:200]!r}")
    if name.startswith("/") or any(seg in ("", ".", "..") for seg in name.split("/")):
        raise InvalidUri(f"object name has empty, '.' or '..' segments: {uri[:200]!r}")
    for marker in ("?", "#"):
        if marker in name:
            raise InvalidUri(f"object name must not contain {marker!r}: {uri[:200]!r}")
    return GsUri(bucket, name)


class GcsReader:
    """Reads ``gs://`` objects through ``google-cloud-storage`` at ``endpoint``."""

    def __init__(self, endpoint: str, project: str = "local-project", max_bytes: int = 64 * 1024 * 1024) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.project = project
        self.max_bytes = max_bytes
        self.timeout = 30.0
        self._local = threading.local()
        from google.cloud.storage.retry import DEFAULT_RETRY

        # Fail within seconds, not the client's default two minutes, if the emulator is gone.
        self._retry = DEFAULT_RETRY.with_timeout(10.0)

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            client = storage.Client(
                project=self.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}
            )
            self._local.client = client
        return client

    def _blob(self, uri: str | GsUri):
        ref = uri if isinstance(uri, GsUri) else parse_gs_uri(uri)
        return ref, self._client().bucket(ref.bucket).blob(ref.name)

    def exists(self, uri: str | GsUri) -> bool:
        _, blob = self._blob(uri)
        return blob.exists(timeout=self.timeout, retry=self._retry)

    def read_bytes(self, uri: str | GsUri) -> bytes:
        from google.api_core import exceptions as gexc

        ref, blob = self._blob(uri)
        try:
            blob.reload(timeout=self.timeout, retry=self._retry)
            if blob.size is not None and blob.size > self.max_bytes:
                raise ValueError(f"{ref} is larger than {self.max_bytes} bytes")
            # A fresh Blob: download from api_endpoint, not from the stored mediaLink.
            return (
                self._client()
                .bucket(ref.bucket)
                .blob(ref.name)
                .download_as_bytes(timeout=self.timeout, retry=self._retry)
            )
        except gexc.NotFound as exc:
            raise ObjectNotFound(f"object not found: {ref}") from exc

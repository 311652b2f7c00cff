"""``gs://`` URIs and reading objects (the emulator itself is in emulator.py).

* :func:`parse_gs_uri` is the single gate for every ``gs://`` URI that arrives in a
  request or a dataset: anything that is not ``gs://bucket/object`` (``file://``,
  absolute paths, ``..`` segments, control characters) is refused.
* :class:`GcsReader` reads objects through ``google-cloud-storage`` pointed at the
  storage server (anonymous credentials, thread-local clients, one request per read), or
  straight from the server's files when it runs in the same stack.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

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
    """Reads ``gs://`` objects through ``google-cloud-storage`` at ``endpoint``.

    With ``files_root`` (the storage server's filesystem root, when it runs in the same
    stack) an object is read straight from its file, ``<files_root>/<bucket>/<name>``,
    which is how fake-gcs-server lays objects out: ~20 us instead of an HTTP request that
    costs ~2 ms of this process's CPU (and GIL) per image. Anything else (no such file)
    goes through the API, so answers stay those of Cloud Storage.
    """

    def __init__(
        self,
        endpoint: str,
        project: str = "local-project",
        max_bytes: int = 64 * 1024 * 1024,
        files_root: str | Path | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.project = project
        self.max_bytes = max_bytes
        self.files_root = os.path.realpath(files_root) if files_root else None
        self.timeout = 30.0
        self._local = threading.local()
        from google.cloud.storage.retry import DEFAULT_RETRY

        # Fail within seconds, not the client's default two minutes, if the server is gone.
        self._retry = DEFAULT_RETRY.with_timeout(10.0)

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            client = storage.Client(
                project=self.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}
            )
            # Loopback: proxy variables must not apply, and requests would otherwise scan
            # os.environ for them on every request.
            client._http.trust_env = False
            self._local.client = client
        return client

    def _blob(self, uri: str | GsUri):
        ref = uri if isinstance(uri, GsUri) else parse_gs_uri(uri)
        return ref, self._client().bucket(ref.bucket).blob(ref.name)

    def exists(self, uri: str | GsUri) -> bool:
        _, blob = self._blob(uri)
        return blob.exists(timeout=self.timeout, retry=self._retry)

    def _read_file(self, ref: GsUri) -> bytes | None:
        """The object's bytes from the storage server's files, or None to ask the API."""
        if self.files_root is None:
            return None
        path = os.path.join(self.files_root, ref.bucket, *ref.name.split("/"))
        # parse_gs_uri admits no '..', '.' or empty segments; realpath also rules out links.
        if not os.path.realpath(path).startswith(self.files_root + os.sep):
            return None
        try:
            with open(path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size > self.max_bytes:
                    raise ValueError(f"{ref} is larger than {self.max_bytes} bytes")
                return fh.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return None

    def read_bytes(self, uri: str | GsUri) -> bytes:
        from google.api_core import exceptions as gexc

        ref = uri if isinstance(uri, GsUri) else parse_gs_uri(uri)
        data = self._read_file(ref)
        if data is not None:
            return data
        ref, blob = self._blob(ref)
        try:
            # One request: the first max_bytes + 1 bytes tell whether the object is too big.
            data = blob.download_as_bytes(end=self.max_bytes, timeout=self.timeout, retry=self._retry, checksum=None)
        except gexc.NotFound as exc:
            raise ObjectNotFound(f"object not found: {ref}") from exc
        except gexc.RequestRangeNotSatisfiable:  # an empty object
            return b""
        if len(data) > self.max_bytes:
            raise ValueError(f"{ref} is larger than {self.max_bytes} bytes")
        return data

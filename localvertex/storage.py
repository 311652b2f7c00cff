"""Cloud Storage side of the local stack.

* :class:`StorageEmulator` runs ``gcp-storage-emulator`` in-process (its HTTP server
  lives in a daemon thread) with its files under ``<data_dir>/storage/.cloudstorage``.
* :func:`parse_gs_uri` is the single gate for every ``gs://`` URI that arrives in a
  request or a dataset: anything that is not ``gs://bucket/object`` (``file://``,
  absolute paths, ``..`` segments, control characters) is refused.
* :class:`GcsReader` reads objects through ``google-cloud-storage`` pointed at the
  emulator (anonymous credentials, thread-local clients).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("localvertex.storage")

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
    rest = uri[len("gs://"):]
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


class StorageEmulator:
    """``gcp-storage-emulator`` on 127.0.0.1 with on-disk data under ``root``."""

    def __init__(self, root: Path, port: int = 0, default_bucket: str | None = "local-bucket",
                 host: str = "127.0.0.1") -> None:
        self.root = Path(root).resolve()
        self.host = host
        self.requested_port = port
        self.default_bucket = default_bucket
        self._server = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("storage emulator not started")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        from gcp_storage_emulator.server import create_server

        from .stack import _wait_http

        # The emulator logs every request at INFO; keep our logs readable.
        for name in ("gcp_storage_emulator", "gcp_storage_emulator.server", "api.bucket",
                     "api.object", "gcp_storage_emulator.storage"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.root.mkdir(parents=True, exist_ok=True)
        # data_dir must be absolute; the emulator stores under <data_dir>/.cloudstorage and
        # never looks at the CWD when data_dir is given.
        self._server = create_server(self.host, self.requested_port, in_memory=False,
                                     default_bucket=self.default_bucket,
                                     data_dir=str(self.root))
        self._server.start()
        httpd = self._server._api._httpd  # bound by now (start() waits for is_running)
        self.port = httpd.server_address[1]
        self._rebase_media_links()
        try:
            _wait_http(f"{self.url}/storage/v1/b", timeout)
        except RuntimeError:
            self.stop()
            raise
        log.info("storage emulator on %s (data in %s)", self.url, self.root)

    def _rebase_media_links(self) -> None:
        """The emulator stores each object's ``mediaLink`` with the host:port it had at
        upload time, and google-cloud-storage downloads from it after a metadata fetch.
        After a restart on another port, point the stored links at the new address."""
        storage = self._server._storage
        changed = False
        for objects in storage.objects.values():
            for obj in objects.values():
                link = obj.get("mediaLink")
                if isinstance(link, str) and "/download/storage/v1/" in link:
                    rebased = self.url + link[link.index("/download/storage/v1/"):]
                    if rebased != link:
                        obj["mediaLink"] = rebased
                        changed = True
        if changed:
            storage._write_config_to_file()

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.stop()
            finally:
                self._server = None


class GcsReader:
    """Reads ``gs://`` objects through ``google-cloud-storage`` at ``endpoint``."""

    def __init__(self, endpoint: str, project: str = "local-project",
                 max_bytes: int = 64 * 1024 * 1024) -> None:
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

            client = storage.Client(project=self.project, credentials=AnonymousCredentials(),
                                    client_options={"api_endpoint": self.endpoint})
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
            return self._client().bucket(ref.bucket).blob(ref.name).download_as_bytes(
                timeout=self.timeout, retry=self._retry)
        except gexc.NotFound as exc:
            raise ObjectNotFound(f"object not found: {ref}") from exc

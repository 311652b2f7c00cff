"""The Cloud Storage emulator behind ``STORAGE_EMULATOR_HOST``.

:class:`StorageEmulator` runs ``gcp-storage-emulator`` in-process (its HTTP server lives
in a daemon thread) with its files under ``<data_dir>/storage/.cloudstorage``. The stack
needs only what :class:`StorageBackend` lists, so another emulator can replace this one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from .httputil import wait_http

log = logging.getLogger("localvertex.storage")

_QUIET_LOGGERS = (
    "gcp_storage_emulator",
    "gcp_storage_emulator.server",
    "api.bucket",
    "api.object",
    "gcp_storage_emulator.storage",
)
_MEDIA_PATH = "/download/storage/v1/"


class StorageBackend(Protocol):
    """A storage server speaking the Cloud Storage JSON API on ``url``."""

    @property
    def url(self) -> str: ...

    def start(self, timeout: float = 15.0) -> None: ...

    def stop(self) -> None: ...


class StorageEmulator:
    """``gcp-storage-emulator`` on 127.0.0.1 with on-disk data under ``root``."""

    def __init__(
        self, root: Path, port: int = 0, default_bucket: str | None = "local-bucket", host: str = "127.0.0.1"
    ) -> None:
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

        # The emulator logs every request at INFO; keep our logs readable.
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.root.mkdir(parents=True, exist_ok=True)
        # data_dir must be absolute; the emulator stores under <data_dir>/.cloudstorage and
        # never looks at the CWD when data_dir is given.
        self._server = create_server(
            self.host, self.requested_port, in_memory=False, default_bucket=self.default_bucket, data_dir=str(self.root)
        )
        self._server.start()
        # The emulator has no public way to tell its port (ours may be 0 = any free one).
        httpd = self._server._api._httpd  # bound by now (start() waits for is_running)
        self.port = httpd.server_address[1]
        self._rebase_media_links()
        try:
            wait_http(f"{self.url}/storage/v1/b", timeout)
        except RuntimeError:
            self.stop()
            raise
        log.info("storage emulator on %s (data in %s)", self.url, self.root)

    def _rebase_media_links(self) -> None:
        """The emulator stores each object's ``mediaLink`` with the host:port it had at
        upload time, and google-cloud-storage downloads from it after a metadata fetch.
        After a restart on another port, point the stored links at the new address."""
        storage = self._server._storage  # the emulator's own metadata store
        changed = False
        for objects in storage.objects.values():
            for obj in objects.values():
                link = obj.get("mediaLink")
                if isinstance(link, str) and _MEDIA_PATH in link:
                    rebased = self.url + link[link.index(_MEDIA_PATH) :]
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

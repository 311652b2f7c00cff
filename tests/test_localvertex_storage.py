"""The Cloud Storage server (fake-gcs-server as a child process) through the real
google-cloud-storage client: uploads, resumable uploads, listing, restarts, bucket names,
binding, confinement, child cleanup, start-up errors and the gcp-storage-emulator migration."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from localvertex.emulator import FakeGcsServer, StorageStartError

PROJECT, BUCKET = "local-project", "local-bucket"
REPO = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")


def _client(server: FakeGcsServer):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=server.url)
    )


@pytest.fixture
def server(tmp_path):
    srv = FakeGcsServer(tmp_path / "storage" / "fake-gcs", default_bucket=BUCKET, project=PROJECT)
    srv.start()
    yield srv
    srv.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return not LINUX


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_upload_download_and_content_type(server):
    bucket = _client(server).bucket(BUCKET)
    bucket.blob("images/a.png").upload_from_string(b"\x89PNG fake", content_type="image/png")
    blob = bucket.get_blob("images/a.png")
    assert blob.content_type == "image/png" and blob.size == 9
    assert blob.download_as_bytes() == b"\x89PNG fake"
    assert bucket.blob("images/a.png").exists() and not bucket.blob("images/b.png").exists()


def test_resumable_upload_of_9_mib(server):
    """google-cloud-storage switches to a resumable upload above 8 MiB."""
    data = os.urandom(9 * 1024 * 1024 + 123)
    blob = _client(server).bucket(BUCKET).blob("big/nine.bin")
    blob.chunk_size = 4 * 1024 * 1024  # three chunks, to exercise the resumable protocol
    import io

    blob.upload_from_file(io.BytesIO(data), size=len(data), content_type="application/octet-stream")
    got = _client(server).bucket(BUCKET).blob("big/nine.bin").download_as_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_list_with_prefix_and_delimiter(server):
    client = _client(server)
    bucket = client.bucket(BUCKET)
    for name in ("a/1.txt", "a/2.txt", "a/sub/3.txt", "b/4.txt", "top.txt"):
        bucket.blob(name).upload_from_string(name)
    assert [b.name for b in client.list_blobs(BUCKET, prefix="a/")] == ["a/1.txt", "a/2.txt", "a/sub/3.txt"]
    page = client.list_blobs(BUCKET, prefix="a/", delimiter="/")
    assert [b.name for b in page] == ["a/1.txt", "a/2.txt"] and page.prefixes == {"a/sub/"}
    paged = list(client.list_blobs(BUCKET, max_results=10, page_size=2))
    assert len(paged) == 5


def test_restart_keeps_objects_and_media_links(tmp_path):
    root = tmp_path / "gcs"
    first = FakeGcsServer(root, default_bucket=BUCKET)
    first.start()
    try:
        _client(first).bucket(BUCKET).blob("keep/me.txt").upload_from_string(b"still here")
    finally:
        first.stop()
    second = FakeGcsServer(root, default_bucket=BUCKET)
    second.start()
    try:
        blob = _client(second).bucket(BUCKET).get_blob("keep/me.txt")
        assert blob.media_link.startswith(second.url + "/")  # links name the current port
        assert blob.download_as_bytes() == b"still here"
    finally:
        second.stop()


@pytest.mark.parametrize("name", ["x", "Upper-Case", "bad_end-", "-bad-start", "has space"])
def test_invalid_bucket_names_are_refused(server, name):
    """By the server itself (google-cloud-storage checks some names before sending)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{server.url}/storage/v1/b?project={PROJECT}",
        method="POST",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400


def test_invalid_bucket_name_through_the_client(server):
    from google.api_core import exceptions

    with pytest.raises(exceptions.BadRequest):
        _client(server).create_bucket("x")
    assert _client(server).create_bucket("ok-name").name == "ok-name"


def test_default_bucket_with_invalid_name_is_one_clear_error(tmp_path):
    srv = FakeGcsServer(tmp_path / "gcs", default_bucket="Not_A_Bucket")
    with pytest.raises(StorageStartError, match="cannot create bucket 'Not_A_Bucket'"):
        srv.start()
    assert srv.pid is None


@pytest.mark.skipif(not LINUX, reason="reads /proc/net/tcp")
def test_binds_loopback_only(server):
    port = f"{server.port:04X}"
    listening = [
        line.split()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[3] == "0A" and line.split()[1].endswith(":" + port)
    ]
    assert listening == [f"0100007F:{port}"]  # 127.0.0.1 only
    assert not any(
        line.split()[1].endswith(":" + port) and line.split()[3] == "0A"
        for line in Path("/proc/net/tcp6").read_text().splitlines()[1:]
    )


def test_port_in_use_is_one_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        srv = FakeGcsServer(tmp_path / "gcs", port=taken.getsockname()[1])
        with pytest.raises(StorageStartError, match="already in use"):
            srv.start()


def test_missing_binary_is_one_clear_error(tmp_path, monkeypatch):
    from localvertex import emulator

    monkeypatch.setattr(emulator, "binary_path", lambda: tmp_path / "no-such-binary")
    with pytest.raises(StorageStartError, match="cannot run"):
        FakeGcsServer(tmp_path / "gcs").start()


def test_stop_ends_the_child(tmp_path):
    srv = FakeGcsServer(tmp_path / "gcs")
    srv.start()
    pid = srv.pid
    assert _alive(pid)
    srv.stop()
    assert _wait_gone(pid, 5)


_CHILD_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from localvertex.emulator import FakeGcsServer
    srv = FakeGcsServer(Path({root!r}))
    srv.start()
    print(srv.pid, flush=True)
    if {exit_plainly}:
        sys.exit(0)  # no stop(): the interpreter just ends
    time.sleep(600)
""")


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_child_dies_with_its_parent(tmp_path, how):
    script = _CHILD_SCRIPT.format(repo=str(REPO), root=str(tmp_path / "gcs"), exit_plainly=how == "exit")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        if how == "sigkill":
            parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert _wait_gone(child), f"fake-gcs-server (pid {child}) outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux-only")
def test_storage_child_dies_with_a_killed_stack(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from localvertex import LocalStack
        stack = LocalStack({str(tmp_path / 'lv')!r}).start()
        print(stack._storage.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert _wait_gone(child), "the storage server outlived a SIGKILLed stack"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_object_names_cannot_escape_the_root(server, tmp_path):
    """The binary joins object names to paths unchecked; the Landlock rule keeps writes
    below the root (where the kernel has Landlock: Linux >= 5.13)."""
    import urllib.error
    import urllib.request

    if not server.sandboxed:
        pytest.skip("no Landlock on this system")
    url = f"{server.url}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=..%2F..%2F..%2Fescaped.txt"
    request = urllib.request.Request(url, data=b"x", method="POST", headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=10)
    assert not list(tmp_path.rglob("escaped.txt"))


@pytest.mark.skipif(not LINUX, reason="seccomp is Linux-only")
def test_fsync_is_skipped_unless_asked(tmp_path, monkeypatch):
    def seccomp_mode(pid: int) -> str:
        status = Path(f"/proc/{pid}/status").read_text()
        return status.split("Seccomp:")[1].split()[0]

    fast = FakeGcsServer(tmp_path / "a")
    fast.start()
    try:
        assert seccomp_mode(fast.pid) == "2"  # a filter: fsync answered without syncing
    finally:
        fast.stop()
    monkeypatch.setenv("LOCALVERTEX_STORAGE_FSYNC", "1")
    durable = FakeGcsServer(tmp_path / "b")
    durable.start()
    try:
        assert durable.fsync
        assert seccomp_mode(durable.pid) == "0"  # no filter: fsync does its work
    finally:
        durable.stop()


def test_reader_reads_the_servers_files_directly(server, tmp_path):
    """GcsReader with the server's root reads object files; what is not a file goes to the API."""
    from localvertex.storage import GcsReader, ObjectNotFound, parse_gs_uri

    bucket = _client(server).bucket(BUCKET)
    bucket.blob("imgs/a.png").upload_from_string(b"A" * 100, content_type="image/png")
    direct = GcsReader(server.url, PROJECT, files_root=server.root)
    assert direct._read_file(parse_gs_uri(f"gs://{BUCKET}/imgs/a.png")) == b"A" * 100
    assert direct.read_bytes(f"gs://{BUCKET}/imgs/a.png") == b"A" * 100
    with pytest.raises(ObjectNotFound):
        direct.read_bytes(f"gs://{BUCKET}/imgs/missing.png")
    with pytest.raises(ObjectNotFound):
        direct.read_bytes(f"gs://{BUCKET}/imgs")  # a folder on disk, no object
    direct.max_bytes = 99
    with pytest.raises(ValueError, match="larger than 99 bytes"):
        direct.read_bytes(f"gs://{BUCKET}/imgs/a.png")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (server.root / BUCKET / "link").symlink_to(outside)
    with pytest.raises(ObjectNotFound):  # a link out of the root is not followed
        GcsReader(server.url, PROJECT, files_root=server.root).read_bytes(f"gs://{BUCKET}/link")


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux-only")
def test_die_with_parent_from_a_long_lived_thread(tmp_path):
    """childproc.die_with_parent, as the prediction process is started: forked by a thread
    that lives on, the child dies when the parent is SIGKILLed."""
    script = textwrap.dedent(f"""
        import subprocess, sys, threading, time
        sys.path.insert(0, {str(REPO)!r})
        from localvertex.childproc import die_with_parent
        def start():
            proc = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent())
            print(proc.pid, flush=True)
            time.sleep(600)  # the forking thread stays alive, as the dispatcher does
        threading.Thread(target=start, daemon=True).start()
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        time.sleep(0.2)
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert _wait_gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()

"""`python -m localvertex serve` stops cleanly, even when the pipe its output goes to has closed."""

import os
import signal
import subprocess
import sys
import time

import pytest

from localvertex.stack import LocalStack


def start_serve(data_dir):
    """The server as `make serve | tee log` starts it: stdout and stderr into one pipe."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localvertex",
            "serve",
            "--port",
            "0",
            "--storage-port",
            "0",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def read_until_up(server, timeout=60.0):
    deadline, seen = time.monotonic() + timeout, b""
    while b"Ctrl-C to stop" not in seen:
        assert time.monotonic() < deadline, f"server did not come up: {seen.decode(errors='replace')}"
        chunk = os.read(server.stdout.fileno(), 4096)
        assert chunk, f"server exited early: {seen.decode(errors='replace')}"
        seen += chunk
    return seen.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_after_its_output_pipe_closed(tmp_path, sig):
    """Issue 15, failure 1: the reader (tee) is gone; a signal must still stop the server."""
    server = start_serve(tmp_path / "lv")
    try:
        assert "export GOOGLE_VERTEX_BASE_URL=http://127.0.0.1:" in read_until_up(server)
        server.stdout.close()  # the reader goes away: the next write hits a closed pipe
        time.sleep(0.5)
        server.send_signal(sig)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    # The data folder's lock went with it: a new stack starts on the same folder at once.
    with LocalStack(tmp_path / "lv", log_file=False) as again:
        assert again.vertex_url.startswith("http://127.0.0.1:")


def test_serve_stops_on_sigterm_with_its_reader_alive(tmp_path):
    server = start_serve(tmp_path / "lv")
    try:
        read_until_up(server)
        server.send_signal(signal.SIGTERM)
        rest = server.stdout.read().decode()
        assert server.wait(timeout=30) == 0
        assert "stopping..." in rest
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

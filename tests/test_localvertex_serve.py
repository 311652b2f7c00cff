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


def wait_stopped(server, data_dir, timeout=30.0) -> int:
    """The server's exit code; if it has not stopped in time, the test fails showing where its
    threads are (SIGUSR1 makes it write them to <data_dir>/stacks.txt)."""
    try:
        return server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        stacks = data_dir / "stacks.txt"
        where = stacks.read_text()[-8000:] if stacks.exists() else "(no stacks.txt)"
        pytest.fail(f"the server did not stop within {timeout:.0f} s; its threads:\n{where}")


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
        assert wait_stopped(server, tmp_path / "lv") == 0
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
        assert wait_stopped(server, tmp_path / "lv") == 0
        assert "stopping..." in rest
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_sigusr1_writes_every_threads_stack_into_the_data_folder(tmp_path):
    server = start_serve(tmp_path / "lv")
    try:
        read_until_up(server)
        server.send_signal(signal.SIGUSR1)
        stacks = tmp_path / "lv" / "stacks.txt"
        deadline = time.monotonic() + 10
        # The main thread's stack ends in runpy (python -m): the dump is complete.
        while "_run_module_as_main" not in (stacks.read_text() if stacks.exists() else ""):
            assert time.monotonic() < deadline, "no stacks.txt written"
            time.sleep(0.1)
        text = stacks.read_text()
        assert "Current thread" in text and "in serve" in text and text.count("Thread 0x") >= 2, text[-2000:]
        server.send_signal(signal.SIGTERM)
        assert wait_stopped(server, tmp_path / "lv") == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

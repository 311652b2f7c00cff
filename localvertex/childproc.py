"""Child processes that never outlive their parent (standard library only).

``PR_SET_PDEATHSIG`` asks Linux to send a signal to a child when its parent goes away: when
the parent exits, crashes or is SIGKILLed, which no cleanup code in the parent survives.
The signal fires when the *thread* that forked the child ends, not the process, so a child
must be forked by a thread that lives at least as long as the child should (the thread
that then waits on it, or a long-lived worker thread). Elsewhere than Linux this is a no-op,
and only the parent's orderly shutdown stops its children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def libc():
    """The C library through ctypes on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen`` that makes the child receive ``sig`` when
    the forking thread ends, and exit at once if the parent is already gone. Everything is
    prepared here, in the parent; the child only calls into libc. None off Linux."""
    c = libc()
    if c is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        c.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def wait_or_kill(proc: subprocess.Popen, timeout_s: float = 5) -> None:
    """Wait up to ``timeout_s`` for ``proc`` to exit; past that, SIGKILL it and reap it."""
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

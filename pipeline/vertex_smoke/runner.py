"""The runner: the five checks in the order that costs least, each phase guarded so that an
error in one is a ✗ for its checks and the others still run; interrupted, it cancels what it started."""

from collections.abc import Callable

from pipeline.vertex_smoke import cancel, schedule, succeeds
from pipeline.vertex_smoke.checklist import Check, not_run
from pipeline.vertex_smoke.observe import error_line
from pipeline.vertex_smoke.session import Smoke


def guarded(smoke: Smoke, numbers: list[int], phase: Callable[[], list[Check]]) -> list[Check]:
    """A phase's checks, or ✗ for each of them if it broke off with an error (after cleaning up)."""
    try:
        return phase()
    except Exception as error:
        smoke.clean_up("stopped by an error")
        return [not_run(n, f"stopped by an error: {error_line(error)}") for n in numbers]


def run_all(smoke: Smoke) -> list[Check]:
    """Schedule first (seconds, free), then the cancel run, then the successful run (its data
    steps are cache hits of the cancel run's). If interrupted, cancels what it started."""
    try:
        checks = guarded(smoke, [5], lambda: [schedule.schedule_check(smoke)])
        checks += guarded(smoke, [4], lambda: [cancel.cancel_check(smoke)])
        checks += guarded(smoke, [1, 2, 3], lambda: succeeds.run_checks(smoke))
    except BaseException:  # Ctrl-C: nothing goes on running (and billing) unseen
        smoke.clean_up("interrupted")
        raise
    return sorted(checks, key=lambda c: c.number)

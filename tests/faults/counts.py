"""Counters the fault tests add to; tests/faults/conftest.py prints them as the run's closing line.

from tests.faults import counts
counts.add_bad_inputs()        # one bad input tried (a fuzzed line, image, request, ...)
counts.add_faults(3)           # faults injected (a killed process, a dropped connection, ...)
counts.add_runs()              # runs completed despite them
counts.add_data_lost(0)        # records, files or results lost: the number that must stay 0
"""

_totals = {"bad_inputs": 0, "faults": 0, "runs": 0, "data_lost": 0}


def _add(name: str, n: int) -> int:
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"add a count of 0 or more, not {n!r}")
    _totals[name] += n
    return _totals[name]


def add_bad_inputs(n: int = 1) -> int:
    """Counts bad inputs tried; returns the new total."""
    return _add("bad_inputs", n)


def add_faults(n: int = 1) -> int:
    """Counts faults injected; returns the new total."""
    return _add("faults", n)


def add_runs(n: int = 1) -> int:
    """Counts runs completed; returns the new total."""
    return _add("runs", n)


def add_data_lost(n: int = 1) -> int:
    """Counts data lost (records, files, results); returns the new total."""
    return _add("data_lost", n)


def totals() -> dict[str, int]:
    """A copy of the counters."""
    return dict(_totals)


def summary_line() -> str:
    """``faults: N bad inputs tried, N faults injected, N runs completed, N data lost``."""
    t = _totals
    return (
        f"faults: {t['bad_inputs']} bad inputs tried, {t['faults']} faults injected, "
        f"{t['runs']} runs completed, {t['data_lost']} data lost"
    )

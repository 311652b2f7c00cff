"""The fault tests' marker and their closing line (the counters of tests/faults/counts.py)."""

import pytest

from tests.faults import counts


def pytest_configure(config):
    # Also in pyproject.toml's markers; registered here too so --strict-markers accepts it either way.
    config.addinivalue_line("markers", "faults: fuzzed inputs and injected faults (deselect with -m 'not faults')")


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminalreporter.write_line(counts.summary_line())

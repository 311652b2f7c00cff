"""The checklist vertex-smoke prints (pure): one ``Check`` per row, ✓ or ✗ with its evidence."""

from dataclasses import dataclass, field


@dataclass
class Check:
    number: int
    title: str
    ok: bool
    evidence: list[str] = field(default_factory=list)


CHECK_TITLES = {
    1: "A smallest run succeeds within the bound",
    2: "The run is linked to its experiment",
    3: "launch-tuning's gcp_resources names a tuning job that exists",
    4: "Cancelling a run leaves its tuning job JOB_STATE_CANCELLED",
    5: "A schedule is created with maxConcurrentActiveRunCount=1, paused and deleted",
}


def not_run(number: int, reason: str) -> Check:
    return Check(number, CHECK_TITLES[number], False, [f"not checked: {reason}"])


def checklist_lines(checks: list[Check]) -> list[str]:
    """The checklist as text: ``✓ 1. title`` / ``✗ 1. title`` then the evidence, indented."""
    lines = []
    for check in sorted(checks, key=lambda c: c.number):
        lines.append(f"{'✓' if check.ok else '✗'} {check.number}. {check.title}")
        lines += [f"    {item}" for item in check.evidence]
    passed = sum(c.ok for c in checks)
    lines.append(f"{passed}/{len(checks)} checks passed")
    return lines

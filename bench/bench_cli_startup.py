"""CLI start-up: median wall time of `python -m pipeline --help`, `runs` and `validate --help`.

Each command runs in a fresh interpreter (subprocess), REPEATS times; the target (issue 35) is
at most 1.5 s each on an idle machine. `runs` lists an empty, temporary runs folder, so the
figure is the start-up, not the listing. Run alone: `python bench/bench_cli_startup.py`.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPEATS = 5
TARGET_S = 1.5
COMMANDS = {"--help": ["--help"], "runs": ["runs"], "validate --help": ["validate", "--help"]}


def wall_times(args: list[str], env: dict) -> list[float]:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "PIPELINE_RUNS_DIR": empty, "LOCALVERTEX_DATA_DIR": empty}
        wall_times(["--help"], env)  # warms the file cache and bytecode once, not counted
        print(f"load average: {os.getloadavg()[0]:.2f}; {REPEATS} runs each; target <= {TARGET_S} s")
        slow = 0
        for name, args in COMMANDS.items():
            times = wall_times(args, env)
            median = statistics.median(times)
            slow += median > TARGET_S
            print(f"python -m pipeline {name:<16} median {median:.2f} s  (min {min(times):.2f}, max {max(times):.2f})")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())

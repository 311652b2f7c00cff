"""Benchmark of the whole offline pipeline: end-to-end and per-step seconds, and accuracy.

Runs what `make run` runs (the checked-in compiled YAML under kfp.local, against a fresh
local Vertex AI) and prints figures; it asserts nothing. From the repository root:
    python bench/bench_pipeline.py [--repeat 1] [--param num_images=200 ...]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pipeline import offline, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs to time")
    parser.add_argument("--param", action="append", default=[], help="pipeline parameter key=value")
    args = parser.parse_args()
    settings = params.resolve({**offline.LOCAL_DEFAULTS, **params.parse_assignments(args.param)})

    totals, steps = [], {}
    for attempt in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as scratch:
            started = time.monotonic()
            result = offline.run_offline(settings, runs_dir=Path(scratch) / "runs", data_dir=Path(scratch) / "data")
            totals.append(time.monotonic() - started)
        if not result.ok:
            sys.exit(f"run {attempt} failed in {result.failed_task}: {result.error}")
        for task, seconds in result.task_seconds.items():
            steps.setdefault(task, []).append(seconds)
        print(
            f"run {attempt}: {totals[-1]:.1f} s end to end; status accuracy "
            f"{result.metrics['eval_status_accuracy']:.3f}, defect-type accuracy "
            f"{result.metrics['eval_defect_type_accuracy']:.3f} on {result.metrics['eval_examples']:.0f} test images"
        )

    print(
        f"\nparameters: num_images={settings['num_images']}, epoch_count={settings['epoch_count']}, "
        f"adapter_size={settings['adapter_size']}"
    )
    print(f"{'step':24} {'median s':>9}")
    order = [
        "synthesize-images",
        "import-dataset",
        "split-manifest",
        "build-tuning-jsonl",
        "launch-tuning",
        "wait-for-tuning",
        "evaluate-inspector",
        "summarize-run",
    ]
    for task in sorted(steps, key=lambda t: order.index(t) if t in order else len(order)):
        print(f"{task:24} {statistics.median(steps[task]):9.1f}")
    print(f"{'end to end':24} {statistics.median(totals):9.1f}")


if __name__ == "__main__":
    main()

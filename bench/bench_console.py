"""The console's pages with 1,000 runs in the twin (issue 32's target: each page in <= 300 ms
on the 2-core machine). The runs are written to the store as finished jobs before the server
starts (bench_twin_pipelines.write_finished_jobs), then each page is fetched through HTTP with
a logged-in session, as a browser would; the figure is the median of REPEAT fetches (the
first view, which also parses a run's task logs, is shown beside it). One run
(bench-0501) has task logs of LOG_LINES lines each, which its page reads through Cloud
Logging's entries:list, one call a task; its live.json with those tasks' logs too.

    .venv/bin/python -m bench.bench_console [--runs 1000]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_twin_pipelines import write_finished_jobs

TARGET_S = 0.300
REPEAT = 7
LOG_LINES = 5000  # a long task's log (a tuning wait polls for an hour: a line a poll)
PAGES = {
    "runs (25 a page)": "/console/runs",
    "runs (100 a page)": "/console/runs?page_size=100",
    "runs, label filter": "/console/runs?label=parity%3Deven",
    "runs, state filter": "/console/runs?state=SUCCEEDED",
    "run": "/console/runs/bench-0500",
    "run with task logs": "/console/runs/bench-0501",
    "its live.json, 2 logs": "/console/runs/bench-0501/live.json?logs=step,step-2",
    "experiments": "/console/experiments",
    "schedules": "/console/schedules",
    "templates": "/console/templates",
}


def add_task_logs(data_dir: Path, job_id: str, lines: int) -> None:
    """The job's tasks as a run leaves them, each with its CustomJob and a log of ``lines`` lines:
    the toy's two and eleven more, so the page reads 13 logs as for the real pipeline."""
    from localvertex import task_logs
    from localvertex.pipelines.resource import now_rfc3339, task_detail
    from localvertex.pipelines.runner import executor_detail
    from localvertex.pipelines.store import PipelineJobStore

    store = PipelineJobStore(data_dir)
    job = store.get(job_id)
    names = list(job["pipelineSpec"]["root"]["dag"]["tasks"]) + [f"extra-{i}" for i in range(11)]
    folder = task_logs.log_dir(data_dir, job["_local"]["project"])
    for name in names:
        log = task_logs.TaskLog(folder / f"{task_logs.custom_job_id(job_id, name)}.jsonl")
        for i in range(lines):
            log.write("INFO" if i % 10 else "ERROR", f"{name}: line {i} of {lines}, as long as a progress line")
        log.close()

    def finished(j):
        for name in names:
            task = task_detail(j, name)
            task.update(state="SUCCEEDED", startTime=now_rfc3339(), endTime=now_rfc3339())
            task["executorDetail"] = executor_detail(j, {"task": name})

    store.update(job_id, finished)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()

    from localvertex import LocalStack
    from localvertex.console.security import read_keys

    data_dir = Path(tempfile.mkdtemp(prefix="bench-console-"))
    write_finished_jobs(data_dir, args.runs)
    add_task_logs(data_dir, "bench-0501", LOG_LINES)
    with LocalStack(data_dir) as stack, httpx.Client(base_url=stack.vertex_url, timeout=60) as browser:
        browser.get(f"/console/login?token={read_keys(data_dir / 'auth').login_token}")
        print(f"console pages with {args.runs} runs in the twin (median of {REPEAT}; target {TARGET_S * 1000:.0f} ms)")
        worst = 0.0
        for name, path in PAGES.items():
            started = time.perf_counter()
            browser.get(path)  # warm: the first call imports, opens connections, parses task logs
            first = time.perf_counter() - started
            times = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                resp = browser.get(path)
                times.append(time.perf_counter() - started)
                assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
            median = statistics.median(times)
            worst = max(worst, median)
            verdict = "ok" if median <= TARGET_S else "OVER"
            print(f"  {name:<22} {median * 1000:7.1f} ms  {verdict:<4} (first view {first * 1000:.0f} ms)")
        print(f"slowest page: {worst * 1000:.1f} ms ({'within' if worst <= TARGET_S else 'over'} the target)")


if __name__ == "__main__":
    main()

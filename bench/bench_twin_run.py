"""A run through the twin's Pipelines against the same run through ``make run`` (issue 31's
target: the twin takes no more than 10 % longer), timed one after the other, never at once.

* ``make run``: ``pipeline.offline.run_offline`` with the default parameters, as
  bench/bench_pipeline.py times it (a fresh local stack, its start included);
* the twin: the checked-in compiled YAML submitted with the unchanged ``aiplatform.PipelineJob``
  to a running local Vertex AI (``make serve``; its start not included), same parameters,
  caching off as ``make run`` has it, polled every ``POLL_S`` seconds until it ends. Printed: the wall time
  from ``submit()`` to the end seen by the client, and the run's own createTime → endTime.

The SDK's ``submit()`` looks up the project number at Resource Manager before creating a run
whose pipeline root is in an existing bucket (a gRPC call that cannot reach Google offline and
is retried for 60 s). Like the tests, the bench gives each twin run a new pipeline-root bucket
and a service account, which skips that lookup; the figure is printed beside the others.

    .venv/bin/python bench/bench_twin_run.py [--repeat 2] [--param num_images=200 ...]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pipeline import offline, params

PROJECT, LOCATION = "local-project", "us-central1"
ENDED = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}
# How often the client looks at the run: every 0.5 s cost ~10 % of a core on the 2-core machine
# (the SDK parses the whole job each time); the SDK's own wait() starts at 5 s.
POLL_S = 2.0


def time_make_run(settings: dict) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        result = offline.run_offline(settings, runs_dir=Path(scratch) / "runs", data_dir=Path(scratch) / "data")
        seconds = time.monotonic() - started
    if not result.ok:
        sys.exit(f"make run failed in {result.failed_task}: {result.error}")
    return seconds


def time_twin_run(settings: dict) -> dict[str, float]:
    import google.auth
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    from localvertex import LocalStack
    from pipeline.pipeline import COMPILED_YAML

    with tempfile.TemporaryDirectory() as scratch, LocalStack(Path(scratch) / "data", project=PROJECT) as stack:
        stack.apply_env()
        credentials, _ = google.auth.default()
        aiplatform.init(
            project=PROJECT,
            location=LOCATION,
            credentials=credentials,
            api_endpoint=stack.vertex_url,
            api_transport="rest",
        )
        job = aiplatform.PipelineJob(
            display_name="bench-twin-run",
            template_path=str(COMPILED_YAML),
            pipeline_root=f"gs://bench-{uuid.uuid4().hex[:8]}/root",
            parameter_values=settings,
            enable_caching=False,
        )
        started = time.monotonic()
        job.submit(service_account=f"runner@{PROJECT}.iam.gserviceaccount.com")
        submitted = time.monotonic()
        while job.state.name not in ENDED:  # each look parses the whole job (~0.6 MB): ~50 ms of CPU
            time.sleep(POLL_S)
        wall = time.monotonic() - started
        resource = job.gca_resource
        if job.state.name != "PIPELINE_STATE_SUCCEEDED":
            sys.exit(f"twin run {job.state.name}: {resource.error.message}")
        own = (resource.end_time - resource.create_time).total_seconds()
        initializer.global_config.__init__()
    return {"wall": wall, "submit": submitted - started, "run": own}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="pairs of runs to time (alternating)")
    parser.add_argument("--param", action="append", default=[], help="pipeline parameter key=value")
    args = parser.parse_args()
    settings = params.resolve({**offline.LOCAL_DEFAULTS, **params.parse_assignments(args.param)})
    local, twin = [], []
    for attempt in range(1, args.repeat + 1):
        local.append(time_make_run(settings))
        print(f"pair {attempt}: make run {local[-1]:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        twin.append(time_twin_run(settings))
        t = twin[-1]
        print(
            f"pair {attempt}: twin {t['wall']:.1f} s from submit() to the end seen by the client "
            f"(submit() {t['submit']:.1f} s; the run's createTime -> endTime {t['run']:.1f} s; "
            f"load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    base, wall = statistics.median(local), statistics.median(t["wall"] for t in twin)
    print(
        f"\nparameters: num_images={settings['num_images']}, epoch_count={settings['epoch_count']}, "
        f"adapter_size={settings['adapter_size']}; {args.repeat} pair(s), medians"
    )
    print(f"make run (offline, stack start included)   {base:7.1f} s")
    print(f"twin Pipelines (submit() to end, client)    {wall:7.1f} s  ({100 * (wall / base - 1):+.0f} %)")
    print(f"twin Pipelines (createTime -> endTime)      {statistics.median(t['run'] for t in twin):7.1f} s")


if __name__ == "__main__":
    main()

"""The twin's Pipelines and Metadata at scale (issue 31's targets, on the 2-core machine):

* ``get_experiment_df`` over 100 runs (target <= 3 s): the runs' metadata is written through
  the REST API as Vertex AI Pipelines writes it (tests/test_twin_metadata.py);
* one page of ``pipelineJobs.list`` over 1,000 jobs (target <= 100 ms), default page and
  1,000 per page, whole jobs and with the SDK's simple-view ``readMask``: the jobs are written
  to the store as finished runs before the server starts.

    .venv/bin/python -m bench.bench_twin_pipelines
"""

import statistics
import tempfile
import time
from pathlib import Path

PROJECT, LOCATION = "local-project", "us-central1"
SIMPLE_VIEW = ",".join(
    [
        "name,state,displayName,pipelineSpec.pipelineInfo,createTime,startTime,endTime,updateTime,labels",
        "templateUri,templateMetadata.version,jobDetail.pipelineRunContext,jobDetail.pipelineContext",
    ]
)


def toy_spec() -> dict:
    import yaml
    from kfp import compiler, dsl

    @dsl.component(base_image="python:3.11")
    def step(a: int) -> int:
        return a

    @dsl.pipeline(name="bench")
    def bench(a: int = 1):
        step(a=step(a=a).output)

    path = Path(tempfile.mkdtemp()) / "bench.yaml"
    compiler.Compiler().compile(bench, str(path))
    return yaml.safe_load(path.read_text())


def write_finished_jobs(data_dir: Path, count: int) -> None:
    from localvertex.pipelines.resource import mark_succeeded
    from localvertex.pipelines.service import build_pipeline_job
    from localvertex.pipelines.store import PipelineJobStore

    store, spec = PipelineJobStore(data_dir), toy_spec()
    for i in range(count):
        body = {
            "pipelineSpec": spec,
            "runtimeConfig": {"gcsOutputDirectory": "gs://local-bucket/root", "parameterValues": {"a": i}},
            "labels": {"parity": "even" if i % 2 == 0 else "odd"},
        }
        job = build_pipeline_job(body, PROJECT, LOCATION, f"bench-{i:04d}", None)
        mark_succeeded(job)
        job["_local"]["runExecution"] = "none"  # no metadata for these: only the list is measured
        store.add(job)


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    import google.auth
    from google.cloud import aiplatform

    from localvertex import LocalStack
    from tests.test_twin_metadata import api_client, new_experiment, record_pipeline_run

    data_dir = Path(tempfile.mkdtemp())
    write_finished_jobs(data_dir, 1000)
    with LocalStack(data_dir, bucket="local-bucket", project=PROJECT) as stack:
        stack.apply_env()
        with api_client(stack) as api:
            exp, exp_ctx = new_experiment(api)
            t = time.perf_counter()
            for i in range(100):
                params = {"epochs": i % 5 + 1, "base_model": "gemini-3.5-flash", "lr": 0.1 * i}
                record_pipeline_run(api, exp_ctx, f"run-{i:03d}", params, {"eval_status_accuracy": i / 100, "f1": 0.5})
            print(f"wrote metadata of 100 runs through REST in {time.perf_counter() - t:.1f} s")
        credentials, _ = google.auth.default()
        aiplatform.init(
            project=PROJECT,
            location=LOCATION,
            credentials=credentials,
            api_endpoint=stack.vertex_url,
            api_transport="rest",
        )
        rows = []
        df_times = timed(lambda: rows.append(len(aiplatform.get_experiment_df(exp))), 3)
        assert rows[-1] == 100, rows
        print(
            f"get_experiment_df, 100 runs: median {statistics.median(df_times):.2f} s "
            f"(min {min(df_times):.2f}, target <= 3 s)"
        )
        with api_client(stack) as api:
            base = f"{stack.vertex_url}/v1/projects/{PROJECT}/locations/{LOCATION}/pipelineJobs"
            for label, params in [
                ("default page (20)", {}),
                ("page of 100, filter labels.parity=\"even\"", {"pageSize": 100, "filter": 'labels.parity="even"'}),
                ("page of 1000", {"pageSize": 1000}),
                # What PipelineJob.list(enable_simple_view=True) asks for: the SDK's own readMask.
                ("page of 1000, the SDK's simple-view readMask", {"pageSize": 1000, "readMask": SIMPLE_VIEW}),
            ]:
                page = api.get(base, params=params).json()
                assert page.get("pipelineJobs"), page
                times = timed(lambda p=params: api.get(base, params=p).raise_for_status(), 20)
                print(
                    f"pipelineJobs.list over 1,000 jobs, {label}: median {1000 * statistics.median(times):.0f} ms "
                    f"(p90 {1000 * sorted(times)[17]:.0f} ms, target <= 100 ms)"
                )


if __name__ == "__main__":
    main()

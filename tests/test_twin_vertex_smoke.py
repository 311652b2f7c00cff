"""``make vertex-smoke ARGS=--yes``, unchanged, against the twin: after
``. <(python -m localvertex env)`` (a running stack, as ``make serve`` leaves one), the whole
checklist passes: the smallest run succeeds, is in its experiment, names an existing tuning job
in ``gcp_resources``; a run cancelled while ``wait-for-tuning`` waits leaves its tuning job
JOB_STATE_CANCELLED; a schedule carries ``maxConcurrentActiveRunCount=1``, is paused and deleted.

Run in a subprocess from a clean environment: only the variables the env command prints reach
it. ``CI`` is not among them: vertex-smoke refuses ``CI=true`` because on Google it is billed;
against the twin nothing is. Slow: two pipeline runs of 40 images (about 7 minutes on the
shared 2-core machine, 2 of them the SDK's Resource Manager lookup; see localvertex/README.md).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_against_the_twin(stack, make_args: str, timeout: float) -> subprocess.CompletedProcess:
    """``make <make_args>`` in bash after ``. <(python -m localvertex env)``, from a clean
    environment; ``-o``: a test never reinstalls the virtual environment; ``PYTHON``: this one."""
    if (REPO_ROOT / "env.sh").exists():
        pytest.skip("env.sh exists: make would read its (real) project on top of the twin's settings")
    if not (REPO_ROOT / "compiled" / "visual_defect_sft.yaml").exists():
        pytest.skip("compiled/visual_defect_sft.yaml is missing (python -m pipeline compile)")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    # The twin trains 32 small images an epoch in seconds: the cancelled run plans enough epochs
    # to still be training when it is cancelled (20 finished first once on an idle machine).
    env["VERTEX_SMOKE_CANCEL_EPOCHS"] = "400"
    script = (
        f'set -e; . <("{sys.executable}" -m localvertex env --data-dir "{stack.data_dir}"); '
        f'make -o .venv/.installed {make_args} PYTHON="{sys.executable}"'
    )
    return subprocess.run(
        ["bash", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_make_submit_creates_the_run_linked_to_its_experiment(local_stack):
    """``make submit`` (what tests/test_vertex.py's recording fake checks request by request)
    against the twin: the run is recorded with its parameters, labels and caching off, and the
    SDK links it to EXPERIMENT. It is cancelled then: running it is the other tests' work."""
    import google.auth
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    result = make_against_the_twin(local_stack, 'submit NO_CACHE=1 PARAMS="num_images=40 epoch_count=1"', 600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_id = result.stdout.strip().splitlines()[-1].rsplit("/runs/", 1)[1].split("?")[0]
    credentials, _ = google.auth.default()
    aiplatform.init(
        project="local-project",
        location="us-central1",
        credentials=credentials,
        api_endpoint=local_stack.vertex_url,
        api_transport="rest",
    )
    job = None
    try:
        job = aiplatform.PipelineJob.get(run_id)
        resource = job.gca_resource
        assert dict(resource.labels) | {"vertex-ai-pipelines-run-billing-id": ""} == {
            "pipeline": "visual-defect-sft",
            "trigger": "submit",
            "experiment": "visual-defect-sft-runs",
            "vertex-ai-pipelines-run-billing-id": "",
        }
        values = dict(resource.runtime_config.parameter_values)
        assert (values["num_images"], values["epoch_count"], values["bucket"]) == (40, 1, "gs://local-bucket")
        assert resource.runtime_config.gcs_output_directory == "gs://local-bucket/pipeline_root"
        tasks = dict(resource.pipeline_spec)["root"]["dag"]["tasks"]
        assert all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())
        experiment = aiplatform.Experiment("visual-defect-sft-runs").resource_name
        children = aiplatform.Context.list(filter=f'parent_contexts:"{experiment}"')
        assert resource.job_detail.pipeline_run_context.name in [c.resource_name for c in children]
    finally:
        if job is not None and job.state.name not in (
            "PIPELINE_STATE_SUCCEEDED",
            "PIPELINE_STATE_FAILED",
            "PIPELINE_STATE_CANCELLED",
        ):
            job.cancel()
        initializer.global_config.__init__()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_make_vertex_smoke_passes_its_whole_checklist_against_the_twin(local_stack):
    result = make_against_the_twin(local_stack, "vertex-smoke ARGS=--yes", 1400)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    for number in range(1, 6):
        assert f"✓ {number}. " in out, out
    assert "5/5 checks passed" in out
    assert "JOB_STATE_CANCELLED" in out and "lists run visual-defect-sft-smoke-run-" in out
    print("\n".join(line for line in out.splitlines() if line.startswith(("✓", "✗", "    ", "5/5"))))

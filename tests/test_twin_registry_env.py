"""``python -m localvertex env`` gives the Vertex commands everything they need: after
sourcing it in a shell, ``python -m pipeline upload`` and ``schedule`` (what ``make upload``
and ``make schedule`` run, with env.sh's variables) reach the running local Vertex AI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from localvertex import LocalStack

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "compiled" / "visual_defect_sft.yaml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with LocalStack(tmp_path_factory.mktemp("envstack"), bucket="local-bucket", project="local-project") as running:
        yield running


def shell(script: str, data_dir: Path) -> subprocess.CompletedProcess:
    """``script`` in bash after ``. <(python -m localvertex env)``, from a clean environment
    (no variable of the test session leaks in)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    prelude = f'set -e; . <("{sys.executable}" -m localvertex env --data-dir "{data_dir}"); PY="{sys.executable}"\n'
    return subprocess.run(
        ["bash", "-c", prelude + script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_env_prints_every_setting(stack):
    result = shell("env | sort", stack.data_dir)
    assert result.returncode == 0, result.stderr
    got = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert got["PROJECT"] == "local-project" and got["LOCATION"] == "us-central1"
    assert got["BUCKET"] == "gs://local-bucket" and got["EXPERIMENT"]
    assert got["REPO"] == f"{stack.vertex_url}/kfp/us-central1/local-project/local-repo"
    assert got["GOOGLE_VERTEX_BASE_URL"] == stack.vertex_url
    assert got["GOOGLE_APPLICATION_CREDENTIALS"] == str(stack.credentials_path)
    assert got["STORAGE_EMULATOR_HOST"] == stack.storage_url and got["CRON"]


def test_upload_and_schedule_commands_reach_the_twin(stack):
    if not TEMPLATE.exists():
        pytest.skip("compiled/visual_defect_sft.yaml is missing (python -m pipeline compile)")
    script = f"""
"$PY" -m pipeline upload --repo "$REPO" --tag nightly --template "{TEMPLATE}"
"$PY" -m pipeline schedule --cron "CRON_TZ=Europe/Berlin 0 2 1 1 *" --name env-check --project "$PROJECT" \\
    --location "$LOCATION" --bucket "$BUCKET" --experiment "$EXPERIMENT" --template "{TEMPLATE}"
"$PY" -m pipeline schedule --list --project "$PROJECT" --location "$LOCATION"
"$PY" -m pipeline schedule --delete env-check --project "$PROJECT" --location "$LOCATION"
"""
    result = shell(script, stack.data_dir)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "uploaded template visual-defect-sft version sha256:" in " ".join(output.split())
    assert "created schedule projects/local-project/locations/us-central1/schedules/" in output
    assert "env-check" in result.stdout and "deleted" in output
    assert stack._lv.registry.resolve_template(
        f"{stack.vertex_url}/kfp/us-central1/local-project/local-repo/visual-defect-sft/nightly"
    )

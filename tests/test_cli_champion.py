"""Issue 35, "one champion, one truth": `inspect`, `champion` and `runs` share one data folder and
one inspector; `python -m localvertex env` prints the running stack's real addresses; a refused
connection is one line naming the address, at once."""

import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from components.champion_store import write_json_object
from localvertex import LocalStack
from pipeline import offline
from pipeline.champion import storage_bucket
from pipeline.commands import app

REPO = offline.REPO
SDK_VARIABLES = ("GOOGLE_VERTEX_BASE_URL", "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fake_run(runs_dir, run_id, data_dir, inspector, endpoint):
    """A finished, successful offline run folder on ``data_dir`` whose challenger was ``endpoint``."""
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    params = {"tuned_model_display_name": inspector, "bucket": "gs://local-bucket", "project": "local-project"}
    (run_dir / "params.json").write_text(json.dumps(params))
    (run_dir / "metrics.json").write_text(json.dumps({"ok": True, "run_id": run_id, "seconds": 3}))
    result = {"ok": True, "data_dir": str(data_dir), "tuned_endpoint": endpoint, "inspector": inspector}
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "data_dir": str(data_dir), "state": "succeeded"}))


def champion_record(inspector, endpoint):
    golden = {"examples": 20, "status_accuracy": 0.95, "miss_rate": 0.0}
    return {
        "schema": 1,
        "inspector": inspector,
        "run": "visual-defect-sft-20260101",
        "endpoint": endpoint,
        "model": "projects/local-project/locations/us-central1/models/1",
        "checkpoint_id": "2",
        "epoch": 2,
        "base_model": "gemini-3.5-flash",
        "prompt": "Inspect this part.",
        "system_instruction": "",
        "golden_id": "g1",
        "golden": golden,
        "test": golden,
        "decision_reason": "first champion",
        "promoted_at": "2026-01-01T00:00:00Z",
    }


@pytest.fixture
def two_folders(tmp_path, monkeypatch):
    """Runs on two data folders; the newest run is on the *other* folder. A stack runs on ``ours``
    with a champion for line-a."""
    ours, other = tmp_path / "ours", tmp_path / "other"
    monkeypatch.setattr(offline, "RUNS_DIR", tmp_path / "runs")
    for name in SDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCALVERTEX_DATA_DIR", str(ours))
    fake_run(tmp_path / "runs", "20260101-000000-aaaa", ours, "line-a", "projects/p/locations/l/endpoints/latest-a")
    fake_run(tmp_path / "runs", "20260102-000000-bbbb", other, "line-b", "projects/p/locations/l/endpoints/latest-b")
    champion_endpoint = "projects/local-project/locations/us-central1/endpoints/champion-of-line-a"
    with LocalStack(ours, bucket="local-bucket") as stack:
        home = storage_bucket(stack.env, "local-bucket", "local-project")
        write_json_object(home, "inspectors/line-a/champion.json", champion_record("line-a", champion_endpoint))
        yield ours, champion_endpoint


def test_inspect_asks_the_champion_that_champion_shows(two_folders, tmp_path):
    ours, champion_endpoint = two_folders
    image = tmp_path / "part.png"
    from components.drawing import draw_product_image

    draw_product_image(random.Random(1), "Crack").save(image)
    for folder_option in ([], ["--data-dir", str(ours)]):  # the default folder and the named one agree
        shown = CliRunner().invoke(app, ["champion", "--json", *folder_option])
        assert shown.exit_code == 0, shown.output
        assert f"data folder: {ours}" in shown.output and "inspector:   line-a" in shown.output
        champion = json.loads(shown.output.strip().splitlines()[-1])["champion"]
        assert champion["endpoint"] == champion_endpoint

        asked = CliRunner().invoke(app, ["inspect", str(image), "--json", *folder_option])
        assert f"data folder: {ours}" in asked.output
        assert "the champion of line-a" in asked.output and champion_endpoint in asked.output, asked.output
        assert "latest-b" not in asked.output, "inspect asked another folder's latest run"


def test_localvertex_env_prints_the_running_stacks_addresses(tmp_path):
    def env(data_dir):
        return subprocess.run(
            [sys.executable, "-m", "localvertex", "env", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )

    none = env(tmp_path / "idle")
    assert none.returncode == 1 and "no local Vertex AI is running on" in none.stderr
    assert "export" not in none.stdout, "default ports were printed for a stack that does not exist"
    with LocalStack(tmp_path / "busy") as stack:
        running = env(tmp_path / "busy")
        assert running.returncode == 0, running.stderr
        assert f"export GOOGLE_VERTEX_BASE_URL={stack.vertex_url}" in running.stdout
        assert f"export STORAGE_EMULATOR_HOST={stack.storage_url}" in running.stdout
    stopped = env(tmp_path / "busy")
    assert stopped.returncode == 1 and "no local Vertex AI is running" in stopped.stderr


def test_a_refused_connection_is_one_line_naming_the_address(tmp_path, monkeypatch):
    """A stack recorded on the folder whose port refuses (it is stopping): one line within seconds."""
    for name in SDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(offline, "RUNS_DIR", tmp_path / "runs")
    data_dir, port = tmp_path / "lv", closed_port()
    data_dir.mkdir()
    url = f"http://127.0.0.1:{port}"
    env = {"STORAGE_EMULATOR_HOST": url, "GOOGLE_VERTEX_BASE_URL": url}
    record = {"pid": os.getpid(), "vertex_url": url, "storage_url": url, "env": env}
    (data_dir / "stack.json").write_text(json.dumps(record))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["champion", "--data-dir", str(data_dir), "--name", "line-a"])
    assert time.monotonic() - started < 20
    assert result.exit_code == 1, result.output
    assert f"cannot reach the local Vertex AI running on {data_dir.resolve()}" in result.output
    assert url in result.output and "Traceback" not in result.output

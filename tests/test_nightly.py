"""The nightly loop, offline end to end: the checked-in compiled YAML under kfp.local against the
local Vertex AI, several runs sharing one data folder (as nightly runs share a bucket).

The first run is promoted, a weaker one is not and leaves the champion alone, a run with
``tune_from=champion`` tunes onward from the champion's weights (continuous tuning) and can only
replace it when better beyond noise, the golden set is created once and never trained on, the
cost guard stops a run before any tuning job exists, and every run posts one message to a real
local webhook receiver without its key reaching the log.
"""

import contextlib
import csv
import hashlib
import io
import json
import re

import pytest
from typer.testing import CliRunner

from components.clients import genai_client, parse_gcs_uri
from components.labels import PROMPT
from pipeline import champion as champion_cli
from pipeline import offline, params
from pipeline.commands import app
from tests.test_notify import CHAT_PATH, SECRET_KEY, SECRET_TOKEN, receiver

pytestmark = pytest.mark.slow

INSPECTOR = "nightly-inspector"
SMALL = {
    "num_images": 80,
    "min_test_per_class": 1,
    "min_golden_per_class": 1,
    "epoch_count": 4,
    "adapter_size": 4,
    "min_status_accuracy": 0.5,
    "max_miss_rate": 0.5,
    "promotion_margin": 0.0,
    "tuned_model_display_name": INSPECTOR,
    "eval_concurrency": 4,
}


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """Runs the offline pipeline on one data folder; a webhook receiver listens for the whole module."""
    data_dir, runs_dir = tmp_path_factory.mktemp("nightly-data"), tmp_path_factory.mktemp("nightly-runs")

    class Loop:
        def __init__(self, hook):
            self.hook, self.data_dir, self.runs_dir = hook, data_dir, runs_dir

        def run(self, **overrides):
            before = len(self.hook.messages())
            resolved = params.resolve(
                {**offline.LOCAL_DEFAULTS, **SMALL, "notify_webhook_url": self.hook.url + CHAT_PATH, **overrides}
            )
            result = offline.run_offline(resolved, runs_dir=self.runs_dir, data_dir=self.data_dir)
            outcome = json.loads((result.run_dir / "result.json").read_text())
            return result, outcome, self.hook.messages()[before:]

        def state(self, name=INSPECTOR):
            """(champion, generation, history, golden manifest text, hashes of named images) from the storage."""
            with champion_cli.inspector_bucket(data_dir=self.data_dir) as home:
                record, generation = champion_cli.load_champion(home, name)
                history = champion_cli.load_history(home, name)
                golden = home.blob(f"inspectors/{name}/golden/manifest.csv").download_as_text()
                hashes = {
                    uri: hashlib.sha256(home.blob(parse_gcs_uri(uri)[1]).download_as_bytes()).hexdigest()
                    for uri in self.wanted
                }
            return record, generation, history, golden, hashes

        wanted: list = []

        @contextlib.contextmanager
        def genai(self):
            """A google-genai client on the loop's data folder (its own local stack)."""
            from localvertex import LocalStack

            with (
                LocalStack(self.data_dir, bucket="local-bucket", project="local-project") as stack,
                pytest.MonkeyPatch.context() as patch,
            ):
                for key, value in stack.env.items():
                    patch.setenv(key, value)
                yield genai_client("local-project", "us-central1")  # kept: a dropped Client closes its connection

        def tuning_job(self, name):
            with self.genai() as client:
                return client.tunings.get(name=name)

        def tuning_jobs(self):
            with self.genai() as client:
                return sorted(job.name for job in client.tunings.list())

    with receiver() as hook, pytest.MonkeyPatch.context() as patch:
        patch.setattr(offline, "RUNS_DIR", runs_dir)
        yield Loop(hook)


def task_output(result, task, name):
    """A parameter output of one task of the run: a return value, or an OutputPath(str) file."""
    (run_root,) = (result.run_dir / "pipeline_root").iterdir()
    values = json.loads((run_root / task / "executor_output.json").read_text())["parameterValues"]
    return values[name] if name in values else (run_root / task / name).read_text()


def test_the_cost_guard_stops_a_run_before_any_tuning_job_exists(loop):
    jobs_before = loop.tuning_jobs()
    result, outcome, messages = loop.run(tuned_model_display_name="cost-guarded", max_training_tokens=1000)
    assert not result.ok and result.failed_task == "check-tuning-cost"
    assert re.search(r"refusing to start tuning: estimated [\d,]+ training tokens", result.error), result.error
    assert "exceed max_training_tokens=1,000; no tuning job was created" in result.error
    assert loop.tuning_jobs() == jobs_before
    assert "launch-tuning" not in result.task_seconds and "notify-run" in result.task_seconds
    (message,) = messages  # the exit task reports the failure too
    assert message["text"].startswith("❌ *cost-guarded*: run visual-defect-sft-") and "failed" in message["text"]
    assert "champion is unchanged" in message["text"]


def first_night(loop):
    """No champion yet: the first run is promoted and its test split becomes the golden set."""
    # Run 1: no champion yet; the first run's test split becomes the golden set.
    first, outcome, messages = loop.run()
    assert first.ok, first.error
    assert outcome["decision"] == "promote" and outcome["promotion"] == "promoted", outcome["decision_reason"]
    m1 = first.metrics
    assert m1["golden_set_created"] == 1 and m1["golden_set_examples"] >= 4 and m1["promote_decision"] == 1.0
    assert m1["ckpt_count"] >= 1 and m1["ckpt_selected_epoch"] in (1, 2, 3, 4)
    # The estimate before launch is what the twin bills: 1,120 tokens an image for Gemini 3.
    assert m1["train_estimated_tokens"] == m1["train_billable_token_count"] > 4 * 1120 * 60
    for name in ("golden_status_accuracy", "golden_miss_rate", "eval_status_accuracy", "ckpt_selected_status_accuracy"):
        assert 0.0 <= m1[name] <= 1.0, name
    run1 = task_output(first, "decide-promotion", "decision_record")
    golden_id = json.loads(run1)["candidate"]["golden_id"]
    record, generation, history, golden, _ = loop.state()
    assert (
        record["run"] == json.loads(run1)["run"] and record["golden"]["status_accuracy"] == m1["golden_status_accuracy"]
    )
    assert record["endpoint"] == first.tuned_endpoint and [h["run"] for h in history] == [record["run"]]
    (message,) = messages
    assert (
        message["text"].startswith(f"✅ *{INSPECTOR}*: run {record['run']} succeeded")
        and "*promoted*" in message["text"]
    )
    summary = (first.run_dir / "summary.md").read_text()
    assert "## Champion and challenger" in summary and "champion (none yet)" in summary
    assert "**Decision: promote.**" in summary and "## Checkpoints (validation set)" in summary
    log = (first.run_dir / "pipeline.log").read_text()
    assert SECRET_TOKEN not in log and SECRET_KEY not in log, "the webhook URL must not reach the log"
    assert "webhook notification delivered to 127.0.0.1" in log
    return record, generation, m1, golden_id


def weaker_night(loop, record, generation, m1):
    # Run 2: deliberately weaker (one epoch at a tiny learning rate): not promoted, champion unchanged.
    second, outcome, messages = loop.run(epoch_count=1, learning_rate_multiplier=0.01)
    assert second.ok, second.error
    assert outcome["decision"] == "keep" and outcome["promotion"] == "", outcome["decision_reason"]
    assert second.metrics["promote_decision"] == 0.0 and second.metrics["golden_set_created"] == 0
    assert "promote-champion" not in second.task_seconds  # the dsl.If branch did not run
    assert second.metrics["champion_golden_status_accuracy"] == m1["golden_status_accuracy"]
    unchanged, same_generation, history, _, _ = loop.state()
    assert (unchanged, same_generation, len(history)) == (record, generation, 1)
    (message,) = messages
    assert "*champion kept*" in message["text"] and f"champion (run {record['run']})" in message["text"]


def continued_night(loop, record, generation, m1, golden_id):
    # Run 3: onward from the champion (continuous tuning), and a split that would put golden
    # images into training. It replaces the champion only if better beyond noise.
    third, outcome, messages = loop.run(epoch_count=2, train_fraction=0.85, tune_from="champion")
    assert third.ok, third.error
    tuned_from = task_output(third, "launch-tuning", "tuned_from")
    assert tuned_from.startswith(f"tuning onward from the champion {record['model']}"), tuned_from
    job = loop.tuning_job(task_output(third, "launch-tuning", "job_name"))
    assert job.pre_tuned_model.tuned_model_name == record["model"]
    assert job.pre_tuned_model.base_model == "gemini-3.5-flash"
    assert "## Models" in (third.run_dir / "summary.md").read_text()
    m3 = third.metrics
    assert m3["golden_set_excluded_train"] + m3["golden_set_excluded_validation"] >= 1
    promoted = outcome["decision"] == "promote"
    if promoted:  # only when better beyond noise; an equal challenger keeps the champion
        assert outcome["promotion"] == "promoted" and "better beyond noise" in outcome["decision_reason"]
        assert m3["golden_status_accuracy"] > m1["golden_status_accuracy"]
    assert json.loads(task_output(third, "decide-promotion", "decision_record"))["candidate"]["golden_id"] == golden_id
    train_uri = task_output(third, "build-tuning-jsonl", "train_jsonl_uri")
    validation_uri = task_output(third, "build-tuning-jsonl", "validation_jsonl_uri")
    with champion_cli.inspector_bucket(data_dir=loop.data_dir) as home:
        lines = [
            json.loads(line)
            for uri in (train_uri, validation_uri)
            for line in home.blob(parse_gcs_uri(uri)[1]).download_as_text().splitlines()
        ]
    loop.wanted = sorted(
        {part["fileData"]["fileUri"] for line in lines for part in line["contents"][0]["parts"] if "fileData" in part}
    )
    newest, newer_generation, history, golden, hashes = loop.state()
    golden_hashes = {row["sha256"] for row in csv.DictReader(io.StringIO(golden))}
    assert golden_hashes and not golden_hashes & set(hashes.values()), "a golden image was trained on"
    expected_runs = [record["run"], newest["run"]] if promoted else [record["run"]]
    assert [h["run"] for h in history] == expected_runs
    assert (newest["run"] != record["run"]) == promoted and (newer_generation != generation) == promoted
    (message,) = messages
    assert ("*promoted*" if promoted else "*champion kept*") in message["text"]

    # `inspect` asks the champion the way it was tuned.
    target = champion_cli.champion_target(loop.data_dir, INSPECTOR)
    assert target == {
        "endpoint": newest["endpoint"],
        "prompt": PROMPT,
        "system_instruction": "",
        "run": newest["run"],
        "base_model": "gemini-3.5-flash",
    }
    return newest, history


def champion_command_shows(loop, newest, history):
    # `python -m pipeline champion` shows the champion and every promotion.
    shown = CliRunner().invoke(app, ["champion", "--name", INSPECTOR, "--data-dir", str(loop.data_dir), "--json"])
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.output.strip().splitlines()[-1])
    assert listed["champion"] == newest and [h["run"] for h in listed["history"]] == [h["run"] for h in history]
    table = CliRunner().invoke(app, ["champion", "--name", INSPECTOR, "--data-dir", str(loop.data_dir)])
    assert table.exit_code == 0 and "Champion of nightly-inspector" in table.output
    assert f"{len(history)} promotion(s), oldest first" in table.output
    missing = CliRunner().invoke(app, ["champion", "--name", "no-such-line", "--data-dir", str(loop.data_dir)])
    assert missing.exit_code == 1 and "no champion yet for no-such-line" in missing.output


@pytest.mark.timeout(1800)  # three runs; about 6 minutes on two idle cores
def test_the_nightly_loop_promotes_only_a_better_inspector(loop):
    record, generation, m1, golden_id = first_night(loop)
    weaker_night(loop, record, generation, m1)
    newest, history = continued_night(loop, record, generation, m1, golden_id)
    champion_command_shows(loop, newest, history)

"""The run's notification: Google Chat / Slack incoming webhooks on a real local HTTP receiver,
bounded retries, the message, Secret Manager, and no webhook URL in any log."""

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from google.cloud import storage
from kfp.dsl import PipelineTaskFinalStatus

from components.champion_store import write_json_object
from components.notify_run import (
    notification_text,
    notify_run,
    post_webhook,
    quiet_inputs,
    read_webhook_secret,
    webhook_host,
    webhook_kind,
)
from tests.conftest import BUCKET, PROJECT

SECRET_KEY = "AIzaSy-not-a-real-key"
SECRET_TOKEN = "tok3n-must-never-be-logged"


class Receiver:
    """A real http.server on 127.0.0.1 that records every POST and answers from a script."""

    def __init__(self, answers=()):
        self.requests, self.answers = [], list(answers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, headers = receiver.answers.pop(0) if receiver.answers else (200, {})
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                payload = b"{}" if status == 200 else b'{"error": "no"}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": b""})
                status, body = receiver.answers.pop(0) if receiver.answers else (200, b"{}")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def messages(self):
        return [json.loads(r["body"]) for r in self.requests if r["body"]]


@contextmanager
def receiver(answers=()):
    r = Receiver(answers)
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


CHAT_PATH = f"/v1/spaces/AAAA1234/messages?key={SECRET_KEY}&token={SECRET_TOKEN}"
SLACK_PATH = f"/services/T000/B000/{SECRET_TOKEN}"


@pytest.mark.parametrize("path", [CHAT_PATH, SLACK_PATH], ids=["google-chat", "slack"])
def test_the_message_is_posted_as_text_json(path):
    with receiver() as r:
        delivered, line = post_webhook(r.url + path, "✅ *inspector*: run r1 succeeded")
    assert delivered and line == "delivered to 127.0.0.1 (HTTP 200, attempt 1)"
    (request,) = r.requests
    assert request["path"] == path and request["headers"]["Content-Type"].startswith("application/json")
    assert json.loads(request["body"]) == {"text": "✅ *inspector*: run r1 succeeded"}  # both services' shape


def test_429_and_5xx_are_retried_with_backoff_then_delivered():
    delays = []
    with receiver([(503, {}), (429, {"Retry-After": "3"}), (500, {}), (200, {})]) as r:
        delivered, line = post_webhook(r.url + CHAT_PATH, "hello", attempts=4, base_delay=1.0, sleep=delays.append)
    assert delivered and "attempt 4" in line and len(r.requests) == 4
    assert delays == [1.0, 3.0, 4.0]  # exponential, but Retry-After honoured


def test_retries_are_bounded_and_never_name_the_url():
    delays = []
    with receiver([(500, {})] * 10) as r:
        delivered, line = post_webhook(r.url + SLACK_PATH, "hello", attempts=3, sleep=delays.append)
    assert not delivered and len(r.requests) == 3 and len(delays) == 2
    assert line == "not delivered to 127.0.0.1 after 3 attempts (last: HTTP 500)"
    with receiver([(404, {})]) as r:
        delivered, line = post_webhook(r.url + SLACK_PATH, "hello", sleep=delays.append)
    assert not delivered and len(r.requests) == 1 and "HTTP 404 (not retried)" in line
    with receiver() as r:
        closed = r.url
    delivered, line = post_webhook(closed + SLACK_PATH, "hello", attempts=2, sleep=lambda s: None)
    assert not delivered and line.startswith("not delivered to 127.0.0.1 after 2 attempts")
    assert SECRET_TOKEN not in line


def test_hosts_and_kinds():
    assert webhook_host("https://chat.googleapis.com/v1/spaces/X/messages?key=k&token=t") == "chat.googleapis.com"
    assert webhook_kind("https://chat.googleapis.com/v1/spaces/X/messages") == "Google Chat"
    assert webhook_kind("https://hooks.slack.com/services/T/B/X") == "Slack"
    assert webhook_kind("https://example.com/hook") == "webhook"


def decision(kind, champion=None, reason="no champion yet"):
    golden = {
        "status_accuracy": 1.0,
        "miss_rate": 0.0,
        "overkill_rate": 0.0,
        "defect_type_accuracy": 1.0,
        "examples": 4.0,
    }
    return {"decision": kind, "reason": reason, "candidate": {"golden": golden, "run": "r2"}, "champion": champion}


def test_the_message_says_outcome_decision_figures_and_summary():
    champion = {"run": "r1", "golden": {"status_accuracy": 0.75, "miss_rate": 0.5}}
    summary = "# Visual defect inspector: run summary\n\nThe inspector is ready.\n\n*Source: template.*\n\n| a | b |"
    promoted = notification_text(
        "insp",
        "r2",
        "SUCCEEDED",
        decision("promote", champion, "not worse"),
        {"promoted": True},
        summary,
        link="https://console.cloud.google.com/x",
    )
    assert promoted.startswith("✅ *insp*: run r2 succeeded")
    assert "Decision: *promoted* to champion. Why: not worse." in promoted
    assert "challenger 100.0% status accuracy, 0.0% miss rate; champion (run r1) 75.0%, 50.0%" in promoted
    assert "The inspector is ready." in promoted and "<https://console.cloud.google.com/x|Open the run>" in promoted
    kept = notification_text("insp", "r2", "SUCCEEDED", decision("keep", champion, "worse"), None, summary)
    assert "Decision: *champion kept*. Why: worse." in kept
    lost = notification_text(
        "insp", "r2", "SUCCEEDED", decision("promote"), {"promoted": False, "reason": "run r9 won"}
    )
    assert "*not promoted*: run r9 won" in lost
    failed = notification_text("insp", "r2", "FAILED", error="Task launch-tuning failed.")
    assert failed.startswith("❌ *insp*: run r2 failed") and "champion is unchanged" in failed
    assert "Error: Task launch-tuning failed." in failed


def test_the_url_can_come_from_secret_manager():
    secret = base64.b64encode(b"https://chat.googleapis.com/v1/spaces/X/messages?key=k\n").decode()
    with receiver([(200, json.dumps({"name": "n", "payload": {"data": secret}}).encode()), (403, b"{}")]) as r:
        url = read_webhook_secret("projects/p/secrets/chat-hook", session=requests.Session(), base_url=r.url)
        assert url == "https://chat.googleapis.com/v1/spaces/X/messages?key=k"
        assert r.requests[0]["path"] == "/v1/projects/p/secrets/chat-hook/versions/latest:access"
        with pytest.raises(RuntimeError, match=r"did not give projects/p/secrets/s/versions/3: HTTP 403"):
            read_webhook_secret("projects/p/secrets/s/versions/3", session=requests.Session(), base_url=r.url)
    with pytest.raises(ValueError, match="must look like projects/P/secrets/S/versions/V"):
        read_webhook_secret("https://hooks.slack.com/x")


def final_status(state, error=""):
    return PipelineTaskFinalStatus(
        state=state,
        pipeline_job_resource_name="projects/p1/locations/us-central1/pipelineJobs/job-7",
        pipeline_task_name="exit-handler-1",
        error_code=None,
        error_message=error,
    )


def test_notify_run_reads_the_runs_records_and_posts_once(local_stack, capsys):
    home = storage.Client(project=PROJECT).bucket("local-bucket")
    write_json_object(home, "inspectors/notify-unit/runs/run-5/decision.json", decision("promote"))
    write_json_object(home, "inspectors/notify-unit/runs/run-5/promotion.json", {"promoted": True})
    home.blob("inspectors/notify-unit/runs/run-5/summary.md").upload_from_string("# t\n\nAll good.\n")
    with receiver() as r:
        notify_run.python_func(
            project=PROJECT,
            bucket=BUCKET,
            status=final_status("SUCCEEDED"),
            tuned_model_display_name="notify-unit",
            run_name="run-5",
            notify_webhook_url=r.url + CHAT_PATH,
        )
    (message,) = r.messages()
    assert message["text"].startswith("✅ *notify-unit*: run run-5 succeeded") and "*promoted*" in message["text"]
    assert "All good." in message["text"]
    assert "pipelines/runs/job-7?project=p1" in message["text"]
    out = capsys.readouterr().out
    assert "webhook notification delivered to 127.0.0.1" in out and SECRET_TOKEN not in out and SECRET_KEY not in out


def test_notify_run_without_a_webhook_or_records_still_succeeds(local_stack, capsys):
    notify_run.python_func(
        project=PROJECT,
        bucket=BUCKET,
        status=final_status("FAILED", "Task x failed."),
        tuned_model_display_name="notify-unit",
        run_name="never-ran",
    )
    out = capsys.readouterr().out
    assert "stopped before the promotion decision" in out and "nothing sent" in out
    notify_run.python_func(
        project=PROJECT,
        bucket=BUCKET,
        status=final_status("FAILED"),
        tuned_model_display_name="notify-unit",
        run_name="never-ran",
        notify_webhook_secret="not-a-secret-name",
    )
    assert "no notification sent: ValueError" in capsys.readouterr().out


def test_quiet_inputs_keeps_kfps_executor_from_logging_the_inputs():
    command = " ".join(notify_run.component_spec.implementation.container.command)
    assert "python3 -m kfp.dsl.executor_main" not in command and "level=logging.WARNING" in command

    class Fake:
        name = "fake"

        class component_spec:
            class implementation:
                class container:
                    command = ["sh", "-c", "echo changed"]

    with pytest.raises(RuntimeError, match="KFP's component command changed"):
        quiet_inputs(Fake)

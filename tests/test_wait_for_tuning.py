"""wait_for_tuning's parts, alone: polling, backoff while the API is unreachable, the deadline
(with an injected clock and sleep, no server), the job's figures and checkpoints."""

import datetime

import httpx
import pytest
from google.genai import errors, types

from components.wait_for_tuning import (
    api_unreachable,
    billable_tokens_line,
    cancel_job_on_signal,
    cancel_timed_out_job,
    check_job_succeeded,
    checkpoint_records,
    checkpoints_text,
    epochs_done,
    outage_backoff,
    planned_epochs,
    running_for,
    tuning_figures,
    wait_until_job_ends,
)

JOB = "projects/p/locations/us-central1/tuningJobs/7"


class Clock:
    """Monotonic seconds that move only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Tunings:
    """client.tunings answering ``get`` from a script: a job, or an exception to raise."""

    def __init__(self, script, repeat_last=False):
        self.script, self.repeat_last = list(script), repeat_last
        self.gets, self.cancelled = 0, []

    def get(self, name):
        assert name == JOB
        self.gets += 1
        answer = self.script[0] if self.repeat_last and len(self.script) == 1 else self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def cancel(self, name):
        self.cancelled.append(name)


class Client:
    def __init__(self, tunings):
        self.tunings = tunings


def job(state, epochs=(), planned=None, billable=None, examples=None, started=None):
    checkpoints = [
        types.TunedModelCheckpoint(checkpoint_id=str(i + 1), epoch=e, step=10 * e, endpoint=f"projects/p/endpoints/{e}")
        for i, e in enumerate(epochs)
    ]
    return types.TuningJob(
        name=JOB,
        state=state,
        start_time=started,
        tuned_model=types.TunedModel(
            model="projects/p/models/1@1", endpoint="projects/p/endpoints/0", checkpoints=checkpoints
        )
        if state == "JOB_STATE_SUCCEEDED" or checkpoints
        else None,
        supervised_tuning_spec=types.SupervisedTuningSpec(
            hyper_parameters=types.SupervisedHyperParameters(epoch_count=planned)
        )
        if planned
        else None,
        tuning_data_stats=types.TuningDataStats(
            supervised_tuning_data_stats=types.SupervisedTuningDataStats(
                total_billable_token_count=billable, tuning_dataset_example_count=examples, tuning_step_count=8
            )
        )
        if billable or examples
        else None,
    )


def unavailable():
    return errors.ServerError(503, {"error": {"code": 503, "message": "backend down", "status": "UNAVAILABLE"}})


def wait(tunings, clock, poll=30, timeout=3600):
    return wait_until_job_ends(Client(tunings), JOB, poll, timeout, clock=clock, sleep=clock.sleep)


def test_polls_every_interval_until_the_job_ends_and_reports_each_change_once(capsys):
    clock = Clock()
    running = job("JOB_STATE_RUNNING")
    tunings = Tunings(
        [
            job("JOB_STATE_PENDING"),
            running,
            running,
            job("JOB_STATE_RUNNING", [1], planned=2),
            job("JOB_STATE_SUCCEEDED", [1, 2], planned=2),
        ]
    )
    done = wait(tunings, clock)
    assert done.state.name == "JOB_STATE_SUCCEEDED" and tunings.gets == 5
    assert clock.sleeps == [30, 30, 30, 30]
    out = capsys.readouterr().out
    assert out.count(f"{JOB}: JOB_STATE_RUNNING") == 2  # running, then running with an epoch done
    assert out.count(f"{JOB}: JOB_STATE_PENDING") == 1
    assert "tuned 1/2 epochs" in out and "tuned 2/2 epochs" in out


def test_a_job_still_running_at_the_deadline_is_cancelled_and_the_wait_fails():
    clock = Clock()
    tunings = Tunings([job("JOB_STATE_RUNNING")], repeat_last=True)
    with pytest.raises(TimeoutError, match=r"still JOB_STATE_RUNNING after 100 s; cancelled it"):
        wait(tunings, clock, poll=30, timeout=100)
    assert tunings.cancelled == [JOB]
    assert clock.sleeps == [30, 30, 30, 10]  # the last sleep ends at the deadline, not past it
    assert clock.now == 100


def test_a_timed_out_job_that_ended_meanwhile_still_fails_the_wait(capsys):
    class Ended(Tunings):
        def cancel(self, name):
            raise errors.ClientError(400, {"error": {"code": 400, "message": "job already ended"}})

    with pytest.raises(TimeoutError, match="cancelled it"):
        cancel_timed_out_job(Client(Ended([])), JOB, "JOB_STATE_RUNNING", 60)
    assert f"could not cancel {JOB}" in capsys.readouterr().out


def test_an_unreachable_api_backs_off_doubling_then_the_wait_goes_on(capsys):
    clock = Clock()
    outage = [httpx.ConnectError("no route"), unavailable(), unavailable(), unavailable()]
    tunings = Tunings([job("JOB_STATE_RUNNING"), *outage, job("JOB_STATE_SUCCEEDED")])
    assert wait(tunings, clock, poll=30).state.name == "JOB_STATE_SUCCEEDED"
    assert clock.sleeps == [30, 30, 60, 120, 240]
    out = capsys.readouterr().out
    assert "cannot reach Vertex AI for 0 s (ConnectError: no route); polling again in 30 s" in out
    assert "cannot reach Vertex AI for 210 s" in out  # 30 + 60 + 120 since the first failure
    assert "Vertex AI reachable again after 450 s" in out
    assert tunings.cancelled == []


def test_an_api_unreachable_until_the_deadline_fails_without_cancelling_the_job():
    clock = Clock()
    tunings = Tunings([job("JOB_STATE_RUNNING"), unavailable()], repeat_last=True)
    with pytest.raises(
        TimeoutError, match=r"could not reach Vertex AI for \d+ s, until this step's 500 s deadline"
    ) as info:
        wait(tunings, clock, poll=30, timeout=500)
    assert "the job was not cancelled" in str(info.value) and "ServerError" in str(info.value)
    assert tunings.cancelled == [] and clock.now == 500
    assert clock.sleeps[1:5] == [30, 60, 120, 240] and sum(clock.sleeps) == 500


def test_an_error_that_says_something_about_the_job_ends_the_wait_at_once():
    clock = Clock()
    missing = errors.ClientError(404, {"error": {"code": 404, "message": "no such job", "status": "NOT_FOUND"}})
    with pytest.raises(errors.ClientError):
        wait(Tunings([missing]), clock)
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (unavailable(), True),
        (errors.ClientError(429, {"error": {"code": 429}}), True),
        (errors.ClientError(403, {"error": {"code": 403}}), False),
        (httpx.ReadTimeout("slow"), True),
        (ConnectionResetError(), True),
        (ValueError("bad"), False),
    ],
)
def test_which_errors_mean_the_api_is_unreachable(error, expected):
    assert api_unreachable(error) is expected


def test_the_backoff_doubles_from_the_poll_interval_up_to_ten_minutes():
    waits, wait_s = [], None
    for _ in range(8):
        wait_s = outage_backoff(wait_s, 30)
        waits.append(wait_s)
    assert waits == [30, 60, 120, 240, 480, 600, 600, 600]
    assert outage_backoff(None, 900) == 900  # a poll interval over 10 minutes is the bound itself


def test_a_job_that_did_not_succeed_fails_with_its_own_message():
    failed = job("JOB_STATE_FAILED").model_copy(update={"error": types.GoogleRpcStatus(message="bad line 3")})
    with pytest.raises(RuntimeError, match=f"{JOB} ended JOB_STATE_FAILED: bad line 3"):
        check_job_succeeded(JOB, failed)
    with pytest.raises(RuntimeError, match="ended JOB_STATE_CANCELLED: no error message"):
        check_job_succeeded(JOB, job("JOB_STATE_CANCELLED"))
    check_job_succeeded(JOB, job("JOB_STATE_SUCCEEDED"))


def test_epochs_come_from_the_checkpoints_else_from_the_plan():
    assert epochs_done(job("JOB_STATE_RUNNING", [1, 3, 2])) == 3
    assert epochs_done(job("JOB_STATE_RUNNING")) == 0
    assert planned_epochs(job("JOB_STATE_RUNNING", planned=4)) == 4
    assert planned_epochs(job("JOB_STATE_RUNNING")) is None
    # Without checkpoints (export_last_checkpoint_only) a job that succeeded ran every planned epoch.
    assert tuning_figures(job("JOB_STATE_SUCCEEDED", planned=5), 0)["train_epochs_completed"] == 5


def test_running_for_counts_from_the_jobs_own_start():
    started = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC)
    now = started + datetime.timedelta(minutes=3)
    assert running_for(job("JOB_STATE_RUNNING", started=started), now) == 180
    assert running_for(job("JOB_STATE_RUNNING"), now) is None


def test_the_figures_compare_billed_tokens_with_the_estimate():
    done = job("JOB_STATE_SUCCEEDED", [1, 2], billable=1200, examples=32)
    figures = tuning_figures(done, 1000)
    assert figures == {
        "train_example_count": 32,
        "train_step_count": 8,
        "train_billable_token_count": 1200,
        "train_billable_to_estimate_ratio": 1.2,
        "train_epochs_completed": 2,
    }
    assert tuning_figures(done, 0)["train_billable_to_estimate_ratio"] is None
    assert tuning_figures(job("JOB_STATE_SUCCEEDED"), 0)["train_billable_token_count"] is None
    assert billable_tokens_line(1200, 1000).endswith("1000 estimated before launch (ratio 1.200)")
    assert billable_tokens_line(None, 1000).startswith("billable training tokens: not reported by Vertex AI")
    assert billable_tokens_line(1200, 0).endswith("no estimated before launch")
    assert billable_tokens_line(None, 0) == ""


def test_checkpoints_are_listed_with_their_endpoints():
    records = checkpoint_records(job("JOB_STATE_SUCCEEDED", [1, 2]))
    assert records == [
        {"checkpointId": "1", "epoch": 1, "step": 10, "endpoint": "projects/p/endpoints/1"},
        {"checkpointId": "2", "epoch": 2, "step": 20, "endpoint": "projects/p/endpoints/2"},
    ]
    assert checkpoints_text("projects/p/endpoints/0", records) == (
        "tuned endpoint: projects/p/endpoints/0; 2 checkpoint(s)\n"
        "  checkpoint 1: epoch 1, step 10, projects/p/endpoints/1\n"
        "  checkpoint 2: epoch 2, step 20, projects/p/endpoints/2"
    )
    assert checkpoint_records(job("JOB_STATE_RUNNING")) == []


def test_a_terminated_task_cancels_its_job():
    tunings = Tunings([])
    with pytest.raises(SystemExit) as info:
        cancel_job_on_signal(Client(tunings), JOB, 15, None)
    assert info.value.code == 143 and tunings.cancelled == [JOB]

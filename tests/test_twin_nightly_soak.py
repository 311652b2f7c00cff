"""Thirty nights, fast-forwarded: the nightly schedule of a toy promotion loop runs 30 times
through the twin, on an injected clock, with faults on some nights.

The toy pipeline mimics the nightly loop's promotion at the smallest size: ``challenger``
reads tonight's data (``soak/tonight.json`` in the bucket, written by the test, as new images
arrive each night), "evaluates" over HTTP through a seeded fault proxy (retrying 429/503 as the
real evaluation does) and scores the challenger on the golden set; ``decide_and_promote``
applies the real rule, ``components.decide_promotion.promotion_verdict``, against the champion
record in the bucket and replaces it (generation-matched) when the challenger wins.

The schedule is created with the real SDK as ``make schedule`` creates it (cron, one active
run at most, no queueing, runs labelled ``experiment=``); the twin's own scheduler thread fires
it, its clock replaced by the test's. Faults: 429/503 from evaluation (retried; once more than
the retries can take), the worker killed mid-step, the server restarted between nights, weaker
challengers, and one night whose run is still going at the next fire (that fire is skipped).

No ``from __future__ import annotations`` here: kfp reads the components' annotations."""

import dataclasses
import json
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.faults.proxy import FaultProxy
from tests.harness import wait_until

PROJECT, LOCATION, BUCKET = "local-project", "us-central1", "local-bucket"
EXPERIMENT = "nightly-soak-runs"  # not the pipeline name: that is its runs' system.Pipeline context
GOLDEN = {"id": "golden-v1", "examples": 200}
RULE = {"min_status_accuracy": 0.75, "max_miss_rate": 0.2, "margin": 0.02}
FIRST_NIGHT = datetime(2030, 1, 1, 2, 0, tzinfo=UTC)  # ahead of any real clock: a restart fires nothing
ENDED = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}


@dataclasses.dataclass
class Night:
    number: int
    strength: float  # the challenger's status accuracy on the golden set
    eval_fault_rate: float = 0.0  # 429/503 on the evaluation calls
    kill_worker: bool = False
    restart_before: bool = False
    still_running_at_next_fire: bool = False
    skipped: bool = False  # its fire came while the previous night's run was active
    weaker: bool = False


def plan() -> list[Night]:
    nights = [Night(n, round(min(0.97, 0.78 + 0.012 * (n - 1)), 3)) for n in range(1, 31)]
    for n, strength in {6: 0.70, 13: 0.81, 22: 0.74, 27: 0.85}.items():
        nights[n - 1].strength, nights[n - 1].weaker = strength, True
    for n in (4, 11, 19, 25):
        nights[n - 1].eval_fault_rate = 0.4  # the retries get through
    nights[15 - 1].eval_fault_rate = 1.0  # every attempt refused: the run fails saying so
    nights[9 - 1].kill_worker = True
    for n in (8, 17, 24):
        nights[n - 1].restart_before = True
    nights[20 - 1].still_running_at_next_fire = True
    nights[21 - 1].skipped = True
    return nights


def fire_time(night: int) -> datetime:
    return FIRST_NIGHT + timedelta(days=night - 1)


# --------------------------------------------------------------------------- the toy nightly loop


def challenger_component():
    """The night's training and evaluation: tonight's data, 429/503 retried, a golden-set score."""
    from kfp import dsl

    @dsl.component(base_image="python:3.11")
    def challenger(
        bucket: str, golden_examples: int, metrics: dsl.Output[dsl.Metrics], report: dsl.Output[dsl.Markdown]
    ) -> str:
        import json
        import time
        import urllib.error
        import urllib.request

        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        home = storage.Client(project="local-project", credentials=AnonymousCredentials()).bucket(bucket)
        tonight = json.loads(home.blob("soak/tonight.json").download_as_bytes())
        time.sleep(tonight["sleep_s"])  # training
        retries = 0
        for call in range(4):  # evaluation: calls that may get 429/503, retried with backoff
            for attempt in range(6):
                try:
                    urllib.request.urlopen(f"{tonight['eval_url']}/healthz", timeout=30).read()
                    break
                except urllib.error.HTTPError as error:
                    if error.code not in (429, 503) or attempt == 5:
                        raise RuntimeError(
                            f"evaluation call {call} failed after {attempt + 1} attempts: {error}"
                        ) from None
                    retries += 1
                    time.sleep(0.05 * 2**attempt)
        acc = tonight["strength"]
        score = {"status_accuracy": acc, "miss_rate": round((1 - acc) / 2, 4), "examples": golden_examples}
        score["night"] = tonight["night"]
        home.blob(f"soak/challengers/night-{tonight['night']:02d}.json").upload_from_string(json.dumps(score))
        with open(report.path, "w") as f:  # an artifact file: the twin copies it to the pipeline root
            f.write(f"# Night {tonight['night']}\n\nstatus accuracy {acc}, {retries} evaluation retries\n")
        metrics.log_metric("status_accuracy", acc)
        metrics.log_metric("eval_retries", retries)
        return json.dumps(score)

    return challenger


def decide_component():
    """decide + promote: the real rule against the champion record in the bucket."""
    from kfp import dsl

    from components.decide_promotion import accuracy_gain_lower_bound, promotion_verdict

    # The real rule, shipped in the component's source as the pipeline's own components ship it.
    @dsl.component(base_image="python:3.11", additional_funcs=[accuracy_gain_lower_bound, promotion_verdict])
    def decide_and_promote(
        bucket: str, score: str, golden_id: str, min_acc: float, max_miss: float, margin: float
    ) -> str:
        import json

        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        home = storage.Client(project="local-project", credentials=AnonymousCredentials()).bucket(bucket)
        blob = home.get_blob("soak/champion.json")
        champion = json.loads(blob.download_as_bytes()) if blob else None
        challenger = json.loads(score)
        promote, reason = promotion_verdict(challenger, champion, golden_id, min_acc, max_miss, margin)
        print(f"night {challenger['night']}: {'promote' if promote else 'keep'}: {reason}")
        if promote:
            record = {"run": f"night-{challenger['night']:02d}", "golden_id": golden_id, "golden": challenger}
            text = json.dumps(record)
            home.blob("soak/champion.json").upload_from_string(text, if_generation_match=blob.generation if blob else 0)
            home.blob(f"soak/champions/night-{challenger['night']:02d}.json").upload_from_string(text)
        return "promoted" if promote else "kept"

    return decide_and_promote


def compile_toy(tmp_path: Path) -> str:
    from kfp import compiler, dsl

    challenger, decide_and_promote = challenger_component(), decide_component()

    @dsl.pipeline(name="nightly-soak")
    def nightly(bucket: str = BUCKET):
        score = challenger(bucket=bucket, golden_examples=GOLDEN["examples"]).set_caching_options(False)
        decide_and_promote(
            bucket=bucket,
            score=score.outputs["Output"],
            golden_id=GOLDEN["id"],
            min_acc=RULE["min_status_accuracy"],
            max_miss=RULE["max_miss_rate"],
            margin=RULE["margin"],
        ).set_caching_options(False)

    path = tmp_path / "nightly-soak.yaml"
    compiler.Compiler().compile(nightly, str(path))
    return str(path)


# --------------------------------------------------------------------------- the harness


class Twin:
    """A LocalStack on one data directory that can be restarted, a fault proxy in front of its
    API for the evaluation calls, the scheduler's injected clock, and the SDK pointed at it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.now = data_dir, FIRST_NIGHT - timedelta(hours=2)
        self.stack = self.proxy = None
        self.faults, self.restarts = 0, 0

    def start(self) -> None:
        import google.auth
        from google.cloud import aiplatform

        from localvertex import LocalStack

        self.stack = LocalStack(self.data_dir, bucket=BUCKET, project=PROJECT).start()
        self.stack.apply_env()
        self.stack._lv.schedules.clock = lambda: self.now  # the injected clock of the twin's scheduler
        self.proxy = FaultProxy(
            self.stack.vertex_url, rate=0.0, faults=("429", "503"), seed=30, match=lambda m, p: p == "/healthz"
        ).start()
        credentials, _ = google.auth.default()  # the token URI in credentials.json follows the port
        aiplatform.init(
            project=PROJECT,
            location=LOCATION,
            credentials=credentials,
            api_endpoint=self.stack.vertex_url,
            api_transport="rest",
        )

    def stop(self) -> None:
        if self.proxy is not None:
            self.faults += self.proxy.total_injected
            self.proxy.stop()
        if self.stack is not None:
            self.stack.stop()
        self.stack = self.proxy = None

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def advance(self, moment: datetime) -> None:
        self.now = moment
        self.stack._lv.schedules.changed.set()  # wakes the scheduler thread now, not in a second

    def bucket(self):
        from google.cloud import storage

        return storage.Client(project=PROJECT).bucket(BUCKET)

    def objects(self) -> dict[str, str]:
        return {b.name: b.md5_hash for b in self.bucket().list_blobs()}

    def champion(self) -> dict | None:
        blob = self.bucket().get_blob("soak/champion.json")
        return json.loads(blob.download_as_bytes()) if blob else None


def create_schedule(template: str):
    """The nightly schedule as ``make schedule`` creates it (pipeline/commands/schedule.py, with pipeline/vertex.py's labels)."""
    from google.cloud import aiplatform

    from pipeline.vertex import run_labels

    job = aiplatform.PipelineJob(
        display_name="nightly-soak",
        template_path=template,
        pipeline_root=f"gs://{BUCKET}/soak-root",
        parameter_values={"bucket": BUCKET},
        labels=run_labels(EXPERIMENT, "schedule"),
    )
    return job.create_schedule(
        cron="0 2 * * *",
        display_name="nightly-soak",
        max_concurrent_run_count=1,
        max_concurrent_active_run_count=1,
        allow_queueing=False,
    )


def worker_pid(data_dir: Path, job_id: str) -> int:
    """The pid of the twin's worker process running ``job_id`` (its spec file names the job)."""
    spec = str(data_dir / "pipelines" / "runs" / job_id / "spec.json")
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"localvertex.pipelines.worker" in argv and spec.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no worker runs {job_id}")


def schedule_state(name: str):
    from google.cloud import aiplatform

    return aiplatform.PipelineJobSchedule.get(name).gca_resource


def fire_handled(name: str, night: int) -> bool:
    """The scheduler has dealt with the fire of ``night`` (started or skipped it)."""
    return schedule_state(name).next_run_time > fire_time(night)


def run_night(twin: Twin, schedule: str, night: Night) -> dict:
    """Fires the schedule for ``night`` on the injected clock, injects the night's faults, and
    returns what happened: {"night", "state", "run", "error", "decision"}."""
    from google.cloud import aiplatform

    if night.restart_before:
        twin.restart()
    sleep_s = 30 if night.kill_worker else 15 if night.still_running_at_next_fire else 0
    tonight = {"night": night.number, "strength": night.strength, "sleep_s": sleep_s, "eval_url": twin.proxy.url}
    twin.bucket().blob("soak/tonight.json").upload_from_string(json.dumps(tonight))
    twin.proxy.rate = night.eval_fault_rate
    started = int(schedule_state(schedule).started_run_count)
    twin.advance(fire_time(night.number) + timedelta(seconds=1))
    wait_until(lambda: fire_handled(schedule, night.number), 30, f"night {night.number}'s fire")
    if night.skipped:  # the previous night's run took the fire (checked there)
        return {"night": night.number, "state": "SKIPPED", "decision": None}
    state = schedule_state(schedule)
    assert int(state.started_run_count) == started + 1, f"night {night.number} started no run"
    job = aiplatform.PipelineJob.get(state.last_scheduled_run_response.run_response)

    def challenger_running():
        job._sync_gca_resource()
        return any(t.task_name == "challenger" and t.state.name == "RUNNING" for t in job.task_details)

    if night.kill_worker or night.still_running_at_next_fire:
        wait_until(challenger_running, 60, "the challenger step running")
    if night.kill_worker:
        os.kill(worker_pid(twin.stack.data_dir, job.name), signal.SIGKILL)
    if night.still_running_at_next_fire:  # the next fire finds this run active: skipped
        twin.advance(fire_time(night.number + 1) + timedelta(seconds=1))
        wait_until(lambda: fire_handled(schedule, night.number + 1), 30, "the next fire")
        assert job.state.name not in ENDED, "the run ended before the next fire: nothing was tested"
        assert int(schedule_state(schedule).started_run_count) == started + 1, "a second run started"
    wait_until(lambda: job.state.name in ENDED, 120, f"night {night.number}'s run ending", poll=0.5)
    tasks = {t.task_name: t for t in job.task_details}
    decide = tasks.get("decide-and-promote")
    decision = decide.execution.metadata.get("output:Output") if decide and decide.state.name == "SUCCEEDED" else None
    return {
        "night": night.number,
        "state": job.state.name.removeprefix("PIPELINE_STATE_"),
        "run": job.name,
        "error": job.gca_resource.error.message,
        "decision": decision,
        "interval": (job.gca_resource.start_time, job.gca_resource.end_time),
    }


def expected_outcome(night: Night) -> tuple[str, str]:
    """(state, words its error must contain) that the night must truthfully end in."""
    if night.skipped:
        return "SKIPPED", ""
    if night.kill_worker:
        return "FAILED", "worker exited unexpectedly"
    if night.eval_fault_rate >= 1.0:
        return "FAILED", "evaluation call 0 failed after 6 attempts"
    return "SUCCEEDED", ""


def referee(night: Night, outcome: dict, champion: dict | None) -> dict | None:
    """The champion the promotion rule says should hold after ``night`` (the runs' decision
    must be the same), given the one before it."""
    from components.decide_promotion import promotion_verdict

    if outcome["state"] != "SUCCEEDED":
        assert outcome["decision"] is None, outcome  # no decision was made: nothing promoted
        return champion
    acc = night.strength
    score = {"status_accuracy": acc, "miss_rate": round((1 - acc) / 2, 4), "examples": GOLDEN["examples"]}
    promote, reason = promotion_verdict(
        score, champion, GOLDEN["id"], RULE["min_status_accuracy"], RULE["max_miss_rate"], RULE["margin"]
    )
    assert outcome["decision"] == ("promoted" if promote else "kept"), (outcome, reason)
    if night.weaker:
        assert not promote, f"night {night.number}'s weaker challenger was promoted: {reason}"
    if not promote:
        return champion
    return {"run": f"night-{night.number:02d}", "golden_id": GOLDEN["id"], "golden": {**score, "night": night.number}}


def never_regressed(before: dict | None, after: dict | None) -> bool:
    if before is None:
        return True
    old, new = before["golden"], after["golden"]
    return new["status_accuracy"] >= old["status_accuracy"] and new["miss_rate"] <= old["miss_rate"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_thirty_nights_fast_forwarded(tmp_path):
    from google.cloud import aiplatform

    from pipeline.vertex import experiment_runs

    template, nights = compile_toy(tmp_path), plan()
    twin, outcomes, kept = Twin(tmp_path / "twin"), [], {}  # kept: every immutable object seen, with its md5
    twin.start()
    try:
        schedule = create_schedule(template).resource_name
        champion = None
        for night in nights:
            outcome = run_night(twin, schedule, night)
            state, words = expected_outcome(night)
            assert outcome["state"] == state and words in outcome.get("error", ""), outcome
            expected = referee(night, outcome, champion)
            assert twin.champion() == expected and never_regressed(champion, expected), night
            champion = expected
            kept.update(
                {k: v for k, v in twin.objects().items() if k not in ("soak/tonight.json", "soak/champion.json")}
            )
            outcomes.append(outcome)
        runs = [o for o in outcomes if o["state"] != "SKIPPED"]
        intervals = sorted(o["interval"] for o in runs)
        assert all(a[1] <= b[0] for a, b in zip(intervals, intervals[1:], strict=False)), "two runs overlapped"
        listed = aiplatform.PipelineJob.list(filter=f'schedule_name="{schedule}"')
        assert sorted(j.name for j in listed) == sorted(o["run"] for o in runs)
        df = experiment_runs(aiplatform, EXPERIMENT)  # get_experiment_df, plus the labelled scheduled runs
        rows = {r["run_name"]: r for r in df.to_dict("records")}
        lost = [o["run"] for o in runs if rows.get(o["run"], {}).get("state") != o["state"]]
        assert not lost, f"runs missing from the experiment or with another state: {lost}"
        assert all(
            rows[o["run"]]["metric.status_accuracy"] == nights[o["night"] - 1].strength for o in runs if o["decision"]
        )
        now = twin.objects()
        missing = sorted(name for name, md5 in kept.items() if now.get(name) != md5)
        assert not missing, f"objects lost or changed in the bucket: {missing[:5]}"
    finally:
        twin.stop()
    faults = twin.faults + sum(n.kill_worker for n in nights) + twin.restarts + sum(n.weaker for n in nights)
    promotions = sum(o.get("decision") == "promoted" for o in outcomes)
    print(
        f"\nthirty nights: {len(nights)} nights, {len(runs)} runs ({len(nights) - len(runs)} fire skipped while a run "
        f"was active), {faults} faults ({twin.faults} evaluation 429/503, {sum(n.kill_worker for n in nights)} "
        f"worker killed, {twin.restarts} server restarts, {sum(n.weaker for n in nights)} weaker challengers), "
        f"{promotions} promotions, {len(kept)} objects kept, runs lost: {len(lost)}"
    )

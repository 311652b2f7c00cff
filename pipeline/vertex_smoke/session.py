"""The sending and observing side of vertex-smoke: the ``Smoke`` session holds the clients and
the settings, submits runs, waits on them (every wait bounded) and cancels whatever it started
when it is interrupted. The checks themselves are the modules beside this one.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pipeline.vertex import build_job, console, console_url
from pipeline.vertex_smoke.observe import TaskView, error_line, progress_key, progress_line, task_view
from pipeline.vertex_smoke.plan import (
    CANCEL_END_MIN,
    CANCEL_REACH_MIN,
    HEARTBEAT_S,
    PIPELINE_ENDED,
    POLL_S,
    RUN_TIMEOUT_MIN,
    SETTLE_S,
    TRIGGER,
    TUNING_ENDED,
    display_names,
)

# Monotonic clock and sleep, replaced by the tests.
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep


def tuning_client(project: str, location: str, credentials):
    """google-genai client for tuning jobs (GOOGLE_VERTEX_BASE_URL, if set, points it elsewhere)."""
    from google import genai
    from google.genai import types

    retry = types.HttpRetryOptions(
        attempts=5, initial_delay=1.0, max_delay=30.0, http_status_codes=[408, 429, 500, 502, 503, 504]
    )
    return genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=credentials,
        http_options=types.HttpOptions(retry_options=retry, timeout=60_000),
    )


class Smoke:
    """One smoke test against a real project: its clients, settings and what it started."""

    def __init__(
        self,
        aiplatform,
        tuning,
        *,
        project: str,
        location: str,
        bucket: str,
        experiment: str,
        service_account: str | None,
        assignments: list[str],
        template: Path,
        credentials=None,
        run_timeout_s: float = RUN_TIMEOUT_MIN * 60,
        cancel_reach_s: float = CANCEL_REACH_MIN * 60,
        cancel_end_s: float = CANCEL_END_MIN * 60,
        settle_s: float = SETTLE_S,
        poll_s: float = POLL_S,
        now: datetime | None = None,
    ):
        self.aiplatform, self.tuning = aiplatform, tuning
        self.project, self.location, self.bucket = project, location, bucket
        self.experiment, self.service_account = experiment, service_account
        self.assignments, self.template, self.credentials = assignments, template, credentials
        self.run_timeout_s, self.cancel_reach_s, self.cancel_end_s = run_timeout_s, cancel_reach_s, cancel_end_s
        self.settle_s, self.poll_s = settle_s, poll_s
        self.now = now or datetime.now(UTC)
        self.names = display_names(self.now.strftime("%Y%m%d-%H%M%S"))
        self.submitted = []  # PipelineJobs to cancel if the smoke test is interrupted
        self.tuning_jobs = []  # tuning jobs seen, likewise

    def job(self, display_name: str, experiment: str | None, assignments: list[str] | None = None):
        """The PipelineJob of a smoke run (nothing sent): the smoke parameters, or ``assignments``."""
        job = build_job(
            project=self.project,
            location=self.location,
            bucket=self.bucket,
            assignments=self.assignments if assignments is None else assignments,
            experiment=experiment,
            display_name=display_name,
            trigger=TRIGGER,
            template=self.template,
            credentials=self.credentials,
        )
        # The run ID is its display name: recognizable, and the two runs of one smoke test never
        # share the SDK's default ID (pipeline name + time to the second).
        job.job_id = display_name
        return job

    def submit(self, display_name: str, experiment: str | None, assignments: list[str] | None = None):
        """Submits a smoke run (remembered, to be cancelled if the smoke test is interrupted)."""
        job = self.job(display_name, experiment, assignments)
        job.submit(service_account=self.service_account, experiment=experiment)
        self.submitted.append(job)
        console.print(
            f"submitted {job.resource_name}\n  {console_url(job.resource_name)}", highlight=False, markup=False
        )
        return job

    def observe(self, job) -> tuple[str, list[TaskView], str]:
        """(run state, its tasks, its error or "") as Vertex AI reports them now."""
        details = job.task_details  # one GET of the run
        resource = job.gca_resource
        error = resource.error.message if resource.error and resource.error.message else ""
        return resource.state.name, [task_view(d) for d in details], error

    def wait(self, job, label: str, done: Callable[[str, list[TaskView]], bool], timeout_s: float):
        """Polls the run until ``done(state, tasks)`` or ``timeout_s``, printing progress."""
        start = last_print = clock()
        last_key = None
        while True:
            state, tasks, error = self.observe(job)
            elapsed = clock() - start
            key = progress_key(state, tasks)
            if key != last_key or clock() - last_print >= HEARTBEAT_S:
                console.print(progress_line(label, elapsed, state, tasks), highlight=False, markup=False)
                last_key, last_print = key, clock()
            if done(state, tasks):
                return state, tasks, error, elapsed, False
            if elapsed >= timeout_s:
                return state, tasks, error, elapsed, True
            sleep(max(0.0, min(self.poll_s, timeout_s - elapsed)))

    def stop(self, job) -> None:
        """Cancels the run ``job`` (best effort: a failure is printed)."""
        try:
            job.cancel()
        except Exception as error:  # reported; never hides the checklist
            console.print(f"could not cancel {job.resource_name}: {error_line(error)}", highlight=False, markup=False)

    def tuning_state(self, name: str) -> str:
        """The state of tuning job ``name``."""
        job = self.tuning.tunings.get(name=name)
        return job.state.name if job.state else "JOB_STATE_UNSPECIFIED"

    def cancel_tuning_jobs(self) -> None:
        """Cancels the tuning jobs seen so far that have not ended (best effort)."""
        for name in self.tuning_jobs:
            try:
                if self.tuning_state(name) not in TUNING_ENDED:
                    console.print(f"cancelling tuning job {name}", highlight=False, markup=False)
                    self.tuning.tunings.cancel(name=name)
            except Exception as error:  # reported; the caller goes on
                console.print(f"could not cancel {name}: {error_line(error)}", highlight=False, markup=False)

    def clean_up(self, why: str) -> None:
        """Cancels the runs this smoke test started that are still going, and their tuning jobs."""
        for job in self.submitted:
            try:
                if job.state.name not in PIPELINE_ENDED:
                    console.print(f"{why}: cancelling {job.resource_name}", highlight=False, markup=False)
                    job.cancel()
            except Exception as error:  # best effort on the way out
                console.print(
                    f"could not cancel {job.resource_name}: {error_line(error)}", highlight=False, markup=False
                )
        self.cancel_tuning_jobs()

"""Component 5: wait for the tuning job, with a bound on the wait."""

from typing import NamedTuple

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp.dsl import Metrics, Output, OutputPath

from components.clients import genai_client
from components.entrypoint import exec_python
from components.evaluation import scrub_error
from components.gcp_resources import vertex_resource_uri, write_gcp_resources
from components.packages import BASE_IMAGE, TUNING_PACKAGES
from components.progress import report_progress
from components.shipping import lightweight_component


def tuning_job_state(job):
    """The job's state name ("JOB_STATE_UNSPECIFIED" while it has none)."""
    return job.state.name if job.state else "JOB_STATE_UNSPECIFIED"


def planned_epochs(job):
    """The epoch count the job was launched with, or None."""
    spec = job.supervised_tuning_spec
    return spec.hyper_parameters.epoch_count if spec and spec.hyper_parameters else None


def listed_checkpoints(job):
    """The checkpoints the job's tuned model lists (none before it has one)."""
    return list(job.tuned_model.checkpoints or []) if job.tuned_model else []


def epochs_done(job):
    """The highest epoch a checkpoint reports (checkpoints say their own epoch: with 10 or
    more epochs Vertex AI saves about 10 spread over the run, not one per epoch)."""
    return max((int(c.epoch or 0) for c in listed_checkpoints(job)), default=0)


def running_for(job, now=None):
    """Seconds since the job started (its own clock: right after a retried wait step too);
    ``now`` is an aware datetime, the current time by default."""
    import datetime

    if not job.start_time:
        return None
    return ((now or datetime.datetime.now(datetime.UTC)) - job.start_time).total_seconds()


def api_unreachable(error):
    """Whether a poll that failed after the client's retries says nothing about the job: the
    API unreachable or overloaded (the job may well be training on)."""
    import httpx
    from google.auth import exceptions as auth_errors
    from google.genai import errors

    if isinstance(error, errors.APIError):
        return error.code in (408, 429, 500, 502, 503, 504)
    return isinstance(error, (httpx.TransportError, auth_errors.TransportError, ConnectionError))


def error_line(error):
    """An error as one scrubbed line for the log."""
    return scrub_error(f"{type(error).__name__}: {error}", 300)


def outage_backoff(previous_wait, poll_interval_seconds):
    """The wait before the next poll while the API cannot be reached: doubling from
    ``poll_interval_seconds`` (the first wait is ``poll_interval_seconds``) up to 10 minutes,
    or up to ``poll_interval_seconds`` when that is longer. ``previous_wait`` None: the first."""
    start = poll_interval_seconds / 2 if previous_wait is None else previous_wait
    return min(2 * start, max(poll_interval_seconds, 600))


def outage_timeout(job_name, error, outage_seconds, timeout_seconds):
    """The error that ends the wait: the API stayed unreachable until the deadline."""
    return TimeoutError(
        f"{job_name}: could not reach Vertex AI for {outage_seconds:.0f} s, until this step's "
        f"{timeout_seconds} s deadline ({error_line(error)}); the job was not cancelled and may still be "
        "training: check that the API can be reached from here and the job's state, then rerun"
    )


def poll_tuning_job(client, job_name, outage, deadline, timeout_seconds, poll_interval_seconds, clock):
    """The job, or None while the API cannot be reached. ``outage`` (a dict, updated) holds
    when the outage began (``since``) and the next wait (``wait``, outage_backoff); it is
    emptied once the API answers again. An unreachable API past ``deadline`` (a ``clock()``
    value) raises outage_timeout; any other error is raised as it is."""
    asked = clock()
    try:
        job = client.tunings.get(name=job_name)
    except Exception as error:
        if not api_unreachable(error):
            raise
        since = outage.setdefault("since", asked)
        if clock() >= deadline:
            raise outage_timeout(job_name, error, clock() - since, timeout_seconds) from error
        outage["wait"] = outage_backoff(outage.get("wait"), poll_interval_seconds)
        print(
            f"{job_name}: cannot reach Vertex AI for {clock() - since:.0f} s ({error_line(error)}); "
            f"polling again in {outage['wait']:.0f} s",
            flush=True,
        )
        return None
    if outage:
        print(f"{job_name}: Vertex AI reachable again after {clock() - outage['since']:.0f} s", flush=True)
        outage.clear()
    return job


def report_tuning_job(job_name, job, last_report):
    """Prints the job's state (and epochs as progress) when they differ from ``last_report``;
    returns the new (state, epochs)."""
    state, epochs = tuning_job_state(job), epochs_done(job)
    if (state, epochs) != last_report:
        print(f"{job_name}: {state}", flush=True)
        if epochs:
            report_progress(epochs, planned_epochs(job) or epochs, "epochs", "tuned", running_for(job))
    return state, epochs


def cancel_timed_out_job(client, job_name, state, timeout_seconds):
    """Cancels a job still running at the deadline and raises the TimeoutError that says so."""
    from google.genai import errors

    try:
        client.tunings.cancel(name=job_name)
    except errors.ClientError as error:  # it ended meanwhile: the timeout still stands
        print(f"could not cancel {job_name}: {error}", flush=True)
    raise TimeoutError(f"{job_name} still {state} after {timeout_seconds} s; cancelled it")


def wait_until_job_ends(client, job_name, poll_interval_seconds, timeout_seconds, clock=None, sleep=None):
    """Polls the tuning job every ``poll_interval_seconds`` until it has ended and returns it.

    Past ``timeout_seconds`` the job is cancelled (cancel_timed_out_job); while the API cannot
    be reached, polls back off (poll_tuning_job) until the same deadline. ``clock`` (monotonic
    seconds) and ``sleep`` default to the time module's."""
    import time

    clock, sleep = clock or time.monotonic, sleep or time.sleep
    deadline = clock() + timeout_seconds
    last_report, outage = None, {}
    while True:
        job = poll_tuning_job(client, job_name, outage, deadline, timeout_seconds, poll_interval_seconds, clock)
        if job is None:
            sleep(max(0.0, min(outage["wait"], deadline - clock())))
            continue
        last_report = report_tuning_job(job_name, job, last_report)
        if job.has_ended:
            return job
        if clock() >= deadline:
            cancel_timed_out_job(client, job_name, last_report[0], timeout_seconds)
        sleep(max(0.0, min(poll_interval_seconds, deadline - clock())))


def cancel_job_on_signal(client, job_name, signum, frame):
    """SIGTERM handler (bound to a client and job with functools.partial): a cancelled
    pipeline run cancels the job, so nothing goes on training (and billing) unseen."""
    print(f"task terminated: cancelling {job_name}", flush=True)
    client.tunings.cancel(name=job_name)
    raise SystemExit(128 + signum)


def check_job_succeeded(job_name, job):
    """Raises RuntimeError with the job's own error message unless it succeeded."""
    state = tuning_job_state(job)
    if state != "JOB_STATE_SUCCEEDED":
        message = job.error.message if job.error and job.error.message else "no error message"
        raise RuntimeError(f"{job_name} ended {state}: {message}")


def tuning_figures(job, estimated_tokens):
    """The ``train_*`` metrics of a finished job ({name: value or None})."""
    stats = job.tuning_data_stats.supervised_tuning_data_stats if job.tuning_data_stats else None
    billable = stats and stats.total_billable_token_count
    # Without checkpoints (export_last_checkpoint_only) a job that succeeded ran every planned epoch.
    epochs = epochs_done(job) or planned_epochs(job) or 0
    return {
        "train_example_count": stats and stats.tuning_dataset_example_count,
        "train_step_count": stats and stats.tuning_step_count,
        "train_billable_token_count": billable,
        "train_billable_to_estimate_ratio": round(billable / estimated_tokens, 4)
        if billable and estimated_tokens
        else None,
        "train_epochs_completed": epochs,
    }


def billable_tokens_line(billable, estimated_tokens):
    """The log line comparing Vertex AI's billable token count with the estimate, or "" when
    there is neither."""
    if not (billable or estimated_tokens):
        return ""
    return (
        f"billable training tokens: {billable if billable is not None else 'not reported'} by Vertex AI "
        f"(totalBillableTokenCount), {estimated_tokens or 'no'} estimated before launch"
        + (f" (ratio {billable / estimated_tokens:.3f})" if billable and estimated_tokens else "")
    )


def checkpoint_records(job):
    """The job's checkpoints that have an endpoint, as [{checkpointId, epoch, step, endpoint}]."""
    return [
        {
            "checkpointId": str(c.checkpoint_id),
            "epoch": int(c.epoch or 0),
            "step": int(c.step or 0),
            "endpoint": c.endpoint,
        }
        for c in listed_checkpoints(job)
        if c.endpoint
    ]


def checkpoints_text(endpoint, checkpoints):
    """The log lines naming the tuned endpoint and every checkpoint."""
    return f"tuned endpoint: {endpoint}; {len(checkpoints)} checkpoint(s)" + "".join(
        f"\n  checkpoint {c['checkpointId']}: epoch {c['epoch']}, step {c['step']}, {c['endpoint']}"
        for c in checkpoints
    )


@exec_python  # Python is PID 1 on Vertex AI, so cancelling the run reaches the SIGTERM handler
@lightweight_component(base_image=BASE_IMAGE, packages_to_install=TUNING_PACKAGES, install_kfp_package=False)
def wait_for_tuning(
    project: str,
    location: str,
    job_name: str,
    tuning_metrics: Output[Metrics],
    gcp_resources: OutputPath(str),
    model: Output[VertexModel],
    endpoint: Output[VertexEndpoint],
    poll_interval_seconds: int = 30,
    timeout_seconds: int = 6 * 3600,
    estimated_tokens: int = 0,
) -> NamedTuple("Outputs", [("tuned_endpoint", str), ("tuned_model", str), ("checkpoints", str)]):
    """Polls the job until it ends; on timeout cancels it and fails.

    While the API cannot be reached (beyond the client's own retries) it keeps polling with
    backoff until its deadline, saying so; then it fails naming the job and the outage.

    A job that ends FAILED, CANCELLED or EXPIRED fails this task with the job's own
    error message. PAUSED never ends by itself, which is why the wait is bounded. When the
    pipeline run is cancelled, the task is sent SIGTERM and cancels the job, so nothing
    goes on training (and billing) unseen.

    Args:
        project: Google Cloud project of the job.
        location: Vertex AI region of the job.
        job_name: resource name from launch_tuning.
        tuning_metrics: the job's data statistics (``train_*`` names): example and step
            counts, ``train_billable_token_count`` (Vertex AI's ``totalBillableTokenCount``),
            ``train_billable_to_estimate_ratio`` (that over check_tuning_cost's estimate) and
            ``train_epochs_completed`` (the highest ``epoch`` among the job's checkpoints).
        gcp_resources: output JSON naming the job while it is waited for, in the format
            Google Cloud Pipeline Components use for the jobs they run.
        model: the tuned model as a ``google.VertexModel`` artifact (``resourceName`` and
            its API URI), so the Vertex console shows it in the run's lineage and links it.
        endpoint: the endpoint serving it, as a ``google.VertexEndpoint`` artifact.
        poll_interval_seconds: seconds between polls.
        timeout_seconds: overall bound on the wait.
        estimated_tokens: check_tuning_cost's estimate of the billable training tokens,
            logged next to Vertex AI's own count; 0 for none.

    Returns:
        tuned_endpoint: ``projects/.../endpoints/ID`` serving the tuned model.
        tuned_model: ``projects/.../models/ID@1``.
        checkpoints: JSON list of the job's checkpoints, ``[{checkpointId, epoch, step,
            endpoint}]`` (empty when the job exported none), for select_checkpoint.
    """
    import functools
    import json
    import signal
    from collections import namedtuple

    client = genai_client(project, location)
    write_gcp_resources(gcp_resources, location, job_name)
    previous_handler = signal.signal(signal.SIGTERM, functools.partial(cancel_job_on_signal, client, job_name))
    try:
        job = wait_until_job_ends(client, job_name, poll_interval_seconds, timeout_seconds)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    check_job_succeeded(job_name, job)

    figures = tuning_figures(job, estimated_tokens)
    line = billable_tokens_line(figures["train_billable_token_count"], estimated_tokens)
    if line:
        print(line, flush=True)
    for name, value in figures.items():
        if value is not None:
            tuning_metrics.log_metric(name, float(value))
    with open(tuning_metrics.path, "w") as f:  # a file at .path lets KFP cache this task
        json.dump(tuning_metrics.metadata, f)
    # GCPC's artifact convention: the resource name in metadata, its API URI as the uri.
    for artifact, resource in ((model, job.tuned_model.model), (endpoint, job.tuned_model.endpoint)):
        artifact.uri = vertex_resource_uri(location, resource)
        artifact.metadata["resourceName"] = resource
    checkpoints = checkpoint_records(job)
    print(checkpoints_text(job.tuned_model.endpoint, checkpoints), flush=True)
    outputs = namedtuple("Outputs", ["tuned_endpoint", "tuned_model", "checkpoints"])
    return outputs(job.tuned_model.endpoint, job.tuned_model.model, json.dumps(checkpoints))

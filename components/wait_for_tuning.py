"""Component 5: wait for the tuning job, with a bound on the wait."""

from typing import NamedTuple

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp.dsl import Metrics, Output, OutputPath

from components.entrypoint import exec_python
from components.evaluation import scrub_error
from components.helpers import genai_client, report_progress, vertex_resource_uri, write_gcp_resources
from components.packages import BASE_IMAGE, TUNING_PACKAGES
from components.shipping import lightweight_component


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
    import json
    import signal
    import time
    from collections import namedtuple

    import httpx
    from google.auth import exceptions as auth_errors
    from google.genai import errors

    client = genai_client(project, location)
    write_gcp_resources(gcp_resources, location, job_name)

    def cancel_job(signum, frame):
        print(f"task terminated: cancelling {job_name}", flush=True)
        client.tunings.cancel(name=job_name)
        raise SystemExit(128 + signum)

    def planned_epochs(job):
        spec = job.supervised_tuning_spec
        return spec.hyper_parameters.epoch_count if spec and spec.hyper_parameters else None

    def listed_checkpoints(job):
        return list(job.tuned_model.checkpoints or []) if job.tuned_model else []

    def epochs_done(job):
        """The highest epoch a checkpoint reports (checkpoints say their own epoch: with 10 or
        more epochs Vertex AI saves about 10 spread over the run, not one per epoch)."""
        return max((int(c.epoch or 0) for c in listed_checkpoints(job)), default=0)

    def running_for(job):
        """Seconds since the job started (its own clock: right after a retried wait step too)."""
        import datetime

        if not job.start_time:
            return None
        return (datetime.datetime.now(datetime.UTC) - job.start_time).total_seconds()

    def unreachable(error):
        """Whether a poll that failed after the client's retries says nothing about the job: the
        API unreachable or overloaded (the job may well be training on)."""
        if isinstance(error, errors.APIError):
            return error.code in (408, 429, 500, 502, 503, 504)
        return isinstance(error, (httpx.TransportError, auth_errors.TransportError, ConnectionError))

    def one_line(error):
        return scrub_error(f"{type(error).__name__}: {error}", 300)

    def gave_up(error, since):
        """The error that ends the wait: the API stayed unreachable until the deadline."""
        return TimeoutError(
            f"{job_name}: could not reach Vertex AI for {time.monotonic() - since:.0f} s, until this step's "
            f"{timeout_seconds} s deadline ({one_line(error)}); the job was not cancelled and may still be "
            "training: check that the API can be reached from here and the job's state, then rerun"
        )

    def poll(outage):
        """The job, or None while the API cannot be reached; ``outage`` holds when that began
        and the next wait (doubling from poll_interval_seconds up to 10 minutes)."""
        asked = time.monotonic()
        try:
            job = client.tunings.get(name=job_name)
        except Exception as error:
            if not unreachable(error):
                raise
            since = outage.setdefault("since", asked)
            if time.monotonic() >= deadline:
                raise gave_up(error, since) from error
            outage["wait"] = min(2 * outage.get("wait", poll_interval_seconds / 2), max(poll_interval_seconds, 600))
            print(
                f"{job_name}: cannot reach Vertex AI for {time.monotonic() - since:.0f} s ({one_line(error)}); "
                f"polling again in {outage['wait']:.0f} s",
                flush=True,
            )
            return None
        if outage:
            print(f"{job_name}: Vertex AI reachable again after {time.monotonic() - outage['since']:.0f} s", flush=True)
            outage.clear()
        return job

    deadline = time.monotonic() + timeout_seconds
    previous_handler = signal.signal(signal.SIGTERM, cancel_job)
    try:
        last_report, outage = None, {}
        while True:
            job = poll(outage)
            if job is None:
                time.sleep(max(0.0, min(outage["wait"], deadline - time.monotonic())))
                continue
            state = job.state.name if job.state else "JOB_STATE_UNSPECIFIED"
            epochs = epochs_done(job)
            if (state, epochs) != last_report:
                print(f"{job_name}: {state}", flush=True)
                if epochs:
                    report_progress(epochs, planned_epochs(job) or epochs, "epochs", "tuned", running_for(job))
                last_report = (state, epochs)
            if job.has_ended:
                break
            if time.monotonic() >= deadline:
                try:
                    client.tunings.cancel(name=job_name)
                except errors.ClientError as error:  # it ended meanwhile: the timeout still stands
                    print(f"could not cancel {job_name}: {error}", flush=True)
                raise TimeoutError(f"{job_name} still {state} after {timeout_seconds} s; cancelled it")
            time.sleep(max(0.0, min(poll_interval_seconds, deadline - time.monotonic())))
    finally:
        signal.signal(signal.SIGTERM, previous_handler)

    if state != "JOB_STATE_SUCCEEDED":
        message = job.error.message if job.error and job.error.message else "no error message"
        raise RuntimeError(f"{job_name} ended {state}: {message}")

    stats = job.tuning_data_stats.supervised_tuning_data_stats if job.tuning_data_stats else None
    billable = stats and stats.total_billable_token_count
    # Without checkpoints (export_last_checkpoint_only) a job that succeeded ran every planned epoch.
    epochs = epochs_done(job) or planned_epochs(job) or 0
    figures = {
        "train_example_count": stats and stats.tuning_dataset_example_count,
        "train_step_count": stats and stats.tuning_step_count,
        "train_billable_token_count": billable,
        "train_billable_to_estimate_ratio": round(billable / estimated_tokens, 4)
        if billable and estimated_tokens
        else None,
        "train_epochs_completed": epochs,
    }
    if billable or estimated_tokens:
        print(
            f"billable training tokens: {billable if billable is not None else 'not reported'} by Vertex AI "
            f"(totalBillableTokenCount), {estimated_tokens or 'no'} estimated before launch"
            + (f" (ratio {billable / estimated_tokens:.3f})" if billable and estimated_tokens else ""),
            flush=True,
        )
    for name, value in figures.items():
        if value is not None:
            tuning_metrics.log_metric(name, float(value))
    with open(tuning_metrics.path, "w") as f:  # a file at .path lets KFP cache this task
        json.dump(tuning_metrics.metadata, f)
    # GCPC's artifact convention: the resource name in metadata, its API URI as the uri.
    for artifact, resource in ((model, job.tuned_model.model), (endpoint, job.tuned_model.endpoint)):
        artifact.uri = vertex_resource_uri(location, resource)
        artifact.metadata["resourceName"] = resource
    checkpoints = [
        {
            "checkpointId": str(c.checkpoint_id),
            "epoch": int(c.epoch or 0),
            "step": int(c.step or 0),
            "endpoint": c.endpoint,
        }
        for c in listed_checkpoints(job)
        if c.endpoint
    ]
    print(
        f"tuned endpoint: {job.tuned_model.endpoint}; {len(checkpoints)} checkpoint(s)"
        + "".join(
            f"\n  checkpoint {c['checkpointId']}: epoch {c['epoch']}, step {c['step']}, {c['endpoint']}"
            for c in checkpoints
        ),
        flush=True,
    )
    outputs = namedtuple("Outputs", ["tuned_endpoint", "tuned_model", "checkpoints"])
    return outputs(job.tuned_model.endpoint, job.tuned_model.model, json.dumps(checkpoints))

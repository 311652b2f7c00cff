"""Component 4: start a Gemini supervised tuning job on Vertex AI."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import OutputPath

from components.capabilities import base_model_id, tuning_capabilities, tuning_problems, tuning_regions
from components.entrypoint import exec_python
from components.helpers import (
    earlier_attempts_job,
    genai_client,
    read_gcp_resources,
    vertex_resource_uri,
    write_gcp_resources,
)
from components.packages import BASE_IMAGE, TUNING_PACKAGES


@exec_python  # Python is PID 1 on Vertex AI, so cancelling the run reaches the SIGTERM handler
@dsl.component(
    base_image=BASE_IMAGE,
    packages_to_install=TUNING_PACKAGES,
    install_kfp_package=False,
    additional_funcs=[
        tuning_capabilities,
        tuning_regions,
        base_model_id,
        tuning_problems,
        genai_client,
        read_gcp_resources,
        earlier_attempts_job,
        vertex_resource_uri,
        write_gcp_resources,
    ],
)
def launch_tuning(
    project: str,
    location: str,
    train_jsonl_uri: str,
    gcp_resources: OutputPath(str),
    validation_jsonl_uri: str = "",
    base_model: str = "gemini-2.5-flash",
    epoch_count: int = 5,
    adapter_size: int = 4,
    learning_rate_multiplier: float = 1.0,
    tuned_model_display_name: str = "visual-defect-inspector",
    pipeline_run_id: str = "",
) -> NamedTuple("Outputs", [("job_name", str)]):
    """Creates the tuning job with google-genai and returns at once (the job runs on).

    Retry-safe as Google's own launchers are: a retried task never starts a second billed
    job. It first resumes the job named in its own ``gcp_resources`` output if an earlier
    attempt wrote one, then looks for a job labelled with this run's launch key (a hash of
    ``pipeline_run_id``), and only creates a job when neither exists. A job that ended
    FAILED, CANCELLED or EXPIRED is not resumed.

    The job exports intermediate checkpoints (``export_last_checkpoint_only=False``), each
    served by an endpoint of its own, so select_checkpoint can choose the best epoch.

    Args:
        project: Google Cloud project of the job.
        location: Vertex AI region that offers Gemini tuning, e.g. us-central1.
        train_jsonl_uri: ``gs://`` URI of the training JSONL.
        gcp_resources: output JSON naming the job, in the format Google Cloud Pipeline
            Components use for the jobs they start.
        validation_jsonl_uri: ``gs://`` URI of the validation JSONL; "" for none.
        base_model: Gemini model to tune.
        epoch_count: passes over the training data.
        adapter_size: LoRA adapter rank: 1, 2, 4, 8 or 16.
        learning_rate_multiplier: scales the service's default learning rate.
        tuned_model_display_name: name of the tuned model in the console.
        pipeline_run_id: the pipeline run's id (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``); it
            names the job through the ``kfp_launch`` label so a retry finds it. "" turns
            the lookup by label off.

    Returns:
        job_name: the resource name ``projects/.../tuningJobs/ID``.
    """
    import hashlib
    from collections import namedtuple

    from google.genai import types

    sizes = {1: "ONE", 2: "TWO", 4: "FOUR", 8: "EIGHT", 16: "SIXTEEN"}  # what Gemini 2.5 tuning accepts
    if adapter_size not in sizes:
        raise ValueError(f"adapter_size must be one of {sorted(sizes)}, got {adapter_size}")
    if epoch_count < 1:
        raise ValueError(f"epoch_count must be at least 1, got {epoch_count}")
    problems = tuning_problems(base_model, adapter_size, location)  # what Vertex AI would refuse
    if problems:
        raise ValueError("; ".join(problems))

    client = genai_client(project, location)
    launch_key = hashlib.sha256(f"{pipeline_run_id}/launch-tuning".encode()).hexdigest()[:32] if pipeline_run_id else ""
    job = earlier_attempts_job(client, gcp_resources, launch_key)
    if job is not None:
        print(f"resuming tuning job {job.name} ({job.state.name}) started by an earlier attempt", flush=True)
    else:
        config = types.CreateTuningJobConfig(
            epoch_count=epoch_count,
            adapter_size=f"ADAPTER_SIZE_{sizes[adapter_size]}",
            learning_rate_multiplier=learning_rate_multiplier,
            tuned_model_display_name=tuned_model_display_name,
            export_last_checkpoint_only=False,  # a checkpoint per epoch, for select_checkpoint
            validation_dataset=types.TuningValidationDataset(gcs_uri=validation_jsonl_uri)
            if validation_jsonl_uri
            else None,
            labels={"app": "visual-defect-inspector", **({"kfp_launch": launch_key} if launch_key else {})},
        )
        # One attempt: a retried create could start a second (billed) job. The client is kept
        # in a variable because a dropped Client closes its connection.
        creator = genai_client(project, location, attempts=1)
        job = creator.tunings.tune(
            base_model=base_model, training_dataset=types.TuningDataset(gcs_uri=train_jsonl_uri), config=config
        )
        print(f"tuning job {job.name} created ({job.state.name if job.state else 'state unknown'})", flush=True)

    write_gcp_resources(gcp_resources, location, job.name)
    return namedtuple("Outputs", ["job_name"])(job.name)

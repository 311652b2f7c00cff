"""Component 4: start a Gemini supervised tuning job on Vertex AI."""

from typing import NamedTuple

from kfp.dsl import OutputPath

from components.champion import inspector_paths
from components.champion_store import inspector_name, read_json_object
from components.clients import genai_client
from components.entrypoint import exec_python
from components.gcp_resources import earlier_attempts_job, write_gcp_resources
from components.packages import BASE_IMAGE, TUNING_PACKAGES
from components.shipping import lightweight_component
from platform_facts.gemini import continuous_tuning_problem, lifecycle_warning, tuning_problems


def tuning_source(client, bucket, inspector, base_model, tune_from):
    """(pre-tuned model, its checkpoint id, why) for ``tune_from`` ("base" or "champion"):
    the inspector's champion where Google allows tuning onward from it (continuous tuning:
    the same base model, not retired, tuned on or after the documented day), else ("", "",
    why the base model is tuned). Reads the champion record from ``bucket`` (a
    google.cloud.storage bucket) and its tuning job from Vertex AI (for the day it was tuned).
    """
    if tune_from == "base":
        return "", "", f"tuning {base_model} from the base model (tune_from=base)"
    if tune_from != "champion":
        raise ValueError(f"tune_from must be 'base' or 'champion', got {tune_from!r}")
    champion, _ = read_json_object(bucket, inspector_paths(inspector)["champion"])
    if not champion or not champion.get("model"):
        return "", "", f"tuning {base_model} from the base model: inspector {inspector!r} has no champion yet"
    tuned_on = ""
    # The champion's job says when it was tuned; the newest 1,000 jobs are searched (a bounded wait).
    for seen, job in enumerate(client.tunings.list(config={"page_size": 100})):
        if seen >= 1000:
            break
        if job.tuned_model and job.tuned_model.model == champion["model"]:
            tuned_on = job.create_time.date().isoformat() if job.create_time else ""
            break
    problem = continuous_tuning_problem(base_model, champion.get("base_model", ""), tuned_on)
    if problem:
        return "", "", f"tuning {base_model} from the base model, not onward from the champion: {problem}"
    checkpoint = str(champion.get("checkpoint_id") or "")
    return (
        champion["model"],
        checkpoint,
        f"tuning onward from the champion {champion['model']} (checkpoint {checkpoint or 'default'}, "
        f"run {champion.get('run', '?')}, base model {champion.get('base_model')}, tuned on {tuned_on})",
    )


@exec_python  # Python is PID 1 on Vertex AI, so cancelling the run reaches the SIGTERM handler
@lightweight_component(base_image=BASE_IMAGE, packages_to_install=TUNING_PACKAGES, install_kfp_package=False)
def launch_tuning(
    project: str,
    location: str,
    train_jsonl_uri: str,
    gcp_resources: OutputPath(str),
    validation_jsonl_uri: str = "",
    base_model: str = "gemini-3.5-flash",
    epoch_count: int = 5,
    adapter_size: int = 4,
    learning_rate_multiplier: float = 1.0,
    tuned_model_display_name: str = "visual-defect-inspector",
    pipeline_run_id: str = "",
    tune_from: str = "base",
    bucket: str = "",
    dataset_uri: str = "",
) -> NamedTuple("Outputs", [("job_name", str), ("tuned_from", str)]):
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
        tune_from: "base" tunes ``base_model``; "champion" tunes onward from the inspector's
            champion (continuous tuning) where Google allows it, else from ``base_model``,
            saying which and why.
        bucket: ``gs://`` bucket holding the inspectors' champions (for tune_from=champion).
        dataset_uri: the run's imported dataset, which names the inspector as
            champion_store.inspector_name does.

    Returns:
        job_name: the resource name ``projects/.../tuningJobs/ID``.
        tuned_from: what the job starts from and why (for the summary).
    """
    import hashlib
    from collections import namedtuple

    from google.cloud import storage
    from google.genai import types

    sizes = {1: "ONE", 2: "TWO", 4: "FOUR", 8: "EIGHT", 16: "SIXTEEN"}
    if epoch_count < 1:
        raise ValueError(f"epoch_count must be at least 1, got {epoch_count}")
    # What Vertex AI would refuse, checked on the day the task runs: a model retired since
    # the run was submitted is refused here, before a job exists.
    problems = tuning_problems(base_model, adapter_size, location)
    if problems:
        raise ValueError("; ".join(problems))
    warning = lifecycle_warning(base_model)
    if warning:
        print(f"warning: {warning}", flush=True)

    client = genai_client(project, location)
    launch_key = hashlib.sha256(f"{pipeline_run_id}/launch-tuning".encode()).hexdigest()[:32] if pipeline_run_id else ""
    job = earlier_attempts_job(client, gcp_resources, launch_key)
    tuned_from = ""
    if job is not None:
        print(f"resuming tuning job {job.name} ({job.state.name}) started by an earlier attempt", flush=True)
    else:
        gcs_bucket = storage.Client(project=project).bucket(bucket.removeprefix("gs://").strip("/")) if bucket else None
        if tune_from == "champion" and gcs_bucket is None:
            raise ValueError("tune_from='champion' needs the bucket that holds the champion")
        inspector = inspector_name(tuned_model_display_name, dataset_uri)
        source, checkpoint, tuned_from = tuning_source(client, gcs_bucket, inspector, base_model, tune_from)
        print(tuned_from, flush=True)
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
            pre_tuned_model_checkpoint_id=checkpoint or None,
        )
        # One attempt: a retried create could start a second (billed) job. The client is kept
        # in a variable because a dropped Client closes its connection.
        creator = genai_client(project, location, attempts=1)
        # A tuned model's resource name makes google-genai send preTunedModel (continuous tuning).
        job = creator.tunings.tune(
            base_model=source or base_model,
            training_dataset=types.TuningDataset(gcs_uri=train_jsonl_uri),
            config=config,
        )
        print(f"tuning job {job.name} created ({job.state.name if job.state else 'state unknown'})", flush=True)

    write_gcp_resources(gcp_resources, location, job.name)
    return namedtuple("Outputs", ["job_name", "tuned_from"])(job.name, tuned_from or "resumed an earlier attempt's job")

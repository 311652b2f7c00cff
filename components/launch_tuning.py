"""Component 4: start a Gemini supervised tuning job on Vertex AI."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import OutputPath

from components.helpers import genai_client, write_gcp_resources
from components.packages import BASE_IMAGE, GENAI_PACKAGES


@dsl.component(base_image=BASE_IMAGE, packages_to_install=GENAI_PACKAGES, install_kfp_package=False,
               additional_funcs=[genai_client, write_gcp_resources])
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
) -> NamedTuple("Outputs", [("job_name", str)]):
    """Creates the tuning job with google-genai and returns at once (the job runs on).

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

    Returns:
        job_name: the resource name ``projects/.../tuningJobs/ID``.
    """
    from collections import namedtuple

    from google.genai import types

    sizes = {1: "ONE", 2: "TWO", 4: "FOUR", 8: "EIGHT", 16: "SIXTEEN"}  # what Gemini 2.5 tuning accepts
    if adapter_size not in sizes:
        raise ValueError(f"adapter_size must be one of {sorted(sizes)}, got {adapter_size}")
    if epoch_count < 1:
        raise ValueError(f"epoch_count must be at least 1, got {epoch_count}")

    config = types.CreateTuningJobConfig(
        epoch_count=epoch_count,
        adapter_size=f"ADAPTER_SIZE_{sizes[adapter_size]}",
        learning_rate_multiplier=learning_rate_multiplier,
        tuned_model_display_name=tuned_model_display_name,
        validation_dataset=types.TuningValidationDataset(gcs_uri=validation_jsonl_uri) if validation_jsonl_uri else None,
        labels={"app": "visual-defect-inspector"},
    )
    # One attempt: a retried create could start a second (billed) job. The client is kept
    # in a variable because a dropped Client closes its connection.
    client = genai_client(project, location, attempts=1)
    job = client.tunings.tune(
        base_model=base_model, training_dataset=types.TuningDataset(gcs_uri=train_jsonl_uri), config=config)
    print(f"tuning job {job.name} created ({job.state.name if job.state else 'state unknown'})", flush=True)

    write_gcp_resources(gcp_resources, location, job.name)
    return namedtuple("Outputs", ["job_name"])(job.name)

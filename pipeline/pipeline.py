"""The Kubeflow pipeline: seven components in one DAG, compiled to compiled/*.yaml."""

from pathlib import Path
from typing import NamedTuple

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import compiler, dsl
from kfp.dsl import HTML, Dataset, Markdown, Metrics

from components.build_tuning_jsonl import build_tuning_jsonl
from components.evaluate_inspector import evaluate_inspector
from components.helpers import PROMPT
from components.import_dataset import import_dataset
from components.launch_tuning import launch_tuning
from components.split_manifest import split_manifest
from components.summarize_run import summarize_run
from components.synthesize_images import synthesize_images
from components.wait_for_tuning import wait_for_tuning

PIPELINE_NAME = "visual-defect-sft"
COMPILED_YAML = Path(__file__).resolve().parent.parent / "compiled" / "visual_defect_sft.yaml"

# Task display names, shown in the Vertex AI console and by the offline CLI's progress view.
TASK_TITLES = {
    "synthesize-images": "1a. Synthesize product images",
    "import-dataset": "1b. Import your images",
    "split-manifest": "2. Stratified split",
    "build-tuning-jsonl": "3. Build tuning JSONL",
    "launch-tuning": "4. Launch Gemini tuning",
    "wait-for-tuning": "5. Wait for tuning",
    "evaluate-inspector": "6. Evaluate the inspector",
    "summarize-run": "7. Summarize the run",
}

PipelineOutputs = NamedTuple(
    "Outputs",
    [
        ("tuned_endpoint", str),
        ("tuned_model", VertexModel),
        ("tuned_model_endpoint", VertexEndpoint),
        ("eval_metrics", Metrics),
        ("eval_report", HTML),
        ("predictions", Dataset),
        ("summary", Markdown),
    ],
)


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Tunes Gemini into an explainable visual quality-control inspector and evaluates it.",
)
def visual_defect_sft(
    project: str,
    bucket: str,
    location: str = "us-central1",
    dataset_uri: str = "",
    label_template: str = "",
    num_images: int = 200,
    defect_ratio: float = 0.5,
    seed: int = 42,
    train_fraction: float = 0.8,
    validation_fraction: float = 0.1,
    prompt: str = PROMPT,
    system_instruction: str = "",
    oversample_rare_classes: bool = False,
    base_model: str = "gemini-2.5-flash",
    epoch_count: int = 5,
    adapter_size: int = 4,
    learning_rate_multiplier: float = 1.0,
    tuned_model_display_name: str = "visual-defect-inspector",
    poll_interval_seconds: int = 30,
    tuning_timeout_seconds: int = 6 * 3600,
    eval_concurrency: int = 4,
    eval_thinking_budget: int = 0,
    evaluate_base_model: bool = False,
) -> PipelineOutputs:
    """Synthesize (or import) -> split -> JSONL -> tune -> wait -> evaluate -> summarize.

    With ``dataset_uri`` empty, product images are synthesized; set, a labelled image set is
    imported from it instead (a folder tree, a CSV/JSONL manifest or a tuning JSONL), and
    ``label_template`` (e.g. "Status: Defect - {defect_type} found.") shapes defect labels.

    Data steps are cached (same parameters, same data). Steps that talk to live services
    are not: a cached tuning step would hand back an old job instead of tuning anew.
    """
    # Both image steps run, side by side; the one that does not apply writes an empty
    # manifest and the split takes the other. A static DAG, no dsl.If/Else branch merge:
    # Kubeflow's docs say dsl.OneOf "is not yet supported by the KFP orchestration backend,
    # but may be supported by other orchestration backends" (kubeflow/website, user-guides/
    # core-functions/control-flow.md), artifact OneOf failed at runtime in KFP's own backend
    # until kubeflow/pipelines#13436 (2026-05), Google documents no support on Vertex AI,
    # and kfp.local 2.17 cannot resolve it over artifacts.
    images = synthesize_images(
        project=project,
        bucket=bucket,
        num_images=num_images,
        defect_ratio=defect_ratio,
        seed=seed,
        dataset_uri=dataset_uri,
    )
    images.set_display_name(TASK_TITLES["synthesize-images"])
    imported = import_dataset(project=project, dataset_uri=dataset_uri, label_template=label_template)
    # The data under a URI can change between runs: never a cache hit.
    imported.set_display_name(TASK_TITLES["import-dataset"]).set_caching_options(False)

    split = split_manifest(
        manifest=images.outputs["manifest"],
        imported_manifest=imported.outputs["manifest"],
        train_fraction=train_fraction,
        validation_fraction=validation_fraction,
        seed=seed,
    )
    split.set_display_name(TASK_TITLES["split-manifest"])

    jsonl = build_tuning_jsonl(
        project=project,
        bucket=bucket,
        prompt=prompt,
        train_manifest=split.outputs["train_manifest"],
        validation_manifest=split.outputs["validation_manifest"],
        test_manifest=split.outputs["test_manifest"],
        system_instruction=system_instruction,
        oversample_rare_classes=oversample_rare_classes,
    )
    jsonl.set_display_name(TASK_TITLES["build-tuning-jsonl"])

    launch = launch_tuning(
        project=project,
        location=location,
        train_jsonl_uri=jsonl.outputs["train_jsonl_uri"],
        validation_jsonl_uri=jsonl.outputs["validation_jsonl_uri"],
        base_model=base_model,
        epoch_count=epoch_count,
        adapter_size=adapter_size,
        learning_rate_multiplier=learning_rate_multiplier,
        tuned_model_display_name=tuned_model_display_name,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    # Retries resume the job an earlier attempt started (gcp_resources or its kfp_launch label).
    launch.set_retry(num_retries=2, backoff_duration="30s")
    launch.set_display_name(TASK_TITLES["launch-tuning"]).set_caching_options(False)

    wait = wait_for_tuning(
        project=project,
        location=location,
        job_name=launch.outputs["job_name"],
        poll_interval_seconds=poll_interval_seconds,
        timeout_seconds=tuning_timeout_seconds,
    )
    wait.set_display_name(TASK_TITLES["wait-for-tuning"]).set_caching_options(False)

    evaluation = evaluate_inspector(
        project=project,
        location=location,
        tuned_endpoint=wait.outputs["tuned_endpoint"],
        test_jsonl_uri=jsonl.outputs["test_jsonl_uri"],
        base_model=base_model,
        evaluate_base_model=evaluate_base_model,
        concurrency=eval_concurrency,
        thinking_budget=eval_thinking_budget,
    )
    evaluation.set_display_name(TASK_TITLES["evaluate-inspector"]).set_caching_options(False)
    evaluation.set_retry(num_retries=2, backoff_duration="30s")

    report = summarize_run(
        project=project,
        location=location,
        job_name=launch.outputs["job_name"],
        base_model=base_model,
        tuned_model_display_name=tuned_model_display_name,
        tuned_endpoint=wait.outputs["tuned_endpoint"],
        eval_metrics=evaluation.outputs["metrics"],
    )
    report.set_display_name(TASK_TITLES["summarize-run"]).set_caching_options(False)

    return PipelineOutputs(
        tuned_endpoint=wait.outputs["tuned_endpoint"],
        tuned_model=wait.outputs["model"],
        tuned_model_endpoint=wait.outputs["endpoint"],
        eval_metrics=evaluation.outputs["metrics"],
        eval_report=evaluation.outputs["report"],
        predictions=evaluation.outputs["predictions"],
        summary=report.outputs["summary"],
    )


def compile_pipeline(path: Path = COMPILED_YAML) -> Path:
    """Compiles the pipeline to ``path`` and returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(visual_defect_sft, package_path=str(path))
    return path

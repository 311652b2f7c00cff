"""The Kubeflow pipeline: the nightly loop in one DAG, compiled to compiled/*.yaml."""

from pathlib import Path

from kfp import compiler, dsl

from components.build_tuning_jsonl import build_tuning_jsonl
from components.check_tuning_cost import check_tuning_cost
from components.decide_promotion import decide_promotion
from components.evaluate_inspector import evaluate_inspector
from components.helpers import PROMPT
from components.import_dataset import import_dataset
from components.launch_tuning import launch_tuning
from components.notify_run import notify_run
from components.prepare_golden_set import prepare_golden_set
from components.promote_champion import promote_champion
from components.select_checkpoint import select_checkpoint
from components.split_manifest import split_manifest
from components.summarize_run import summarize_run
from components.synthesize_images import synthesize_images
from components.wait_for_tuning import wait_for_tuning
from platform_facts.gemini import recommended_models

PIPELINE_NAME = "visual-defect-sft"
COMPILED_YAML = Path(__file__).resolve().parent.parent / "compiled" / "visual_defect_sft.yaml"
# The GA model Google tunes for images today (platform_facts.gemini, with its sources and dates).
DEFAULT_BASE_MODEL = recommended_models()["base_model"]

# Task display names, shown in the Vertex AI console and by the offline CLI's progress view.
# Keys are the compiled task names (a component used twice gets "-2").
TASK_TITLES = {
    "synthesize-images": "1a. Synthesize product images",
    "import-dataset": "1b. Import your images",
    "split-manifest": "2. Stratified split",
    "prepare-golden-set": "3. Golden set (kept out of training)",
    "build-tuning-jsonl": "4. Build tuning JSONL",
    "check-tuning-cost": "5. Cost guard",
    "launch-tuning": "6. Launch Gemini tuning",
    "wait-for-tuning": "7. Wait for tuning",
    "select-checkpoint": "8. Choose the best checkpoint",
    "evaluate-inspector": "9a. Evaluate on the test split",
    "evaluate-inspector-2": "9b. Evaluate on the golden set",
    "decide-promotion": "10. Champion or challenger?",
    "promote-champion": "11. Promote the challenger",
    "summarize-run": "12. Summarize the run",
    "notify-run": "13. Notify",
}


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Tunes Gemini into an explainable visual quality-control inspector, chooses the best "
    "checkpoint and promotes it only if it beats the champion on a fixed golden set.",
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
    variation: str = "standard",
    train_fraction: float = 0.8,
    validation_fraction: float = 0.1,
    prompt: str = PROMPT,
    system_instruction: str = "",
    oversample_rare_classes: bool = False,
    base_model: str = DEFAULT_BASE_MODEL,
    epoch_count: int = 5,
    adapter_size: int = 4,
    learning_rate_multiplier: float = 1.0,
    tuned_model_display_name: str = "visual-defect-inspector",
    poll_interval_seconds: int = 30,
    tuning_timeout_seconds: int = 6 * 3600,
    eval_concurrency: int = 16,
    thinking: str = "least",
    media_resolution: str = "",
    tune_from: str = "base",
    evaluate_base_model: bool = False,
    golden_test_uri: str = "",
    min_status_accuracy: float = 0.9,
    max_miss_rate: float = 0.1,
    promotion_margin: float = 0.02,
    min_test_per_class: int = 3,
    min_golden_per_class: int = 3,
    max_training_tokens: int = 0,
    max_tuning_cost_usd: float = 0.0,
    training_price_per_million_tokens_usd: float = 0.0,
    notify_webhook_url: str = "",
    notify_webhook_secret: str = "",
):
    """Synthesize (or import) -> split -> golden set -> JSONL -> cost guard -> tune -> wait ->
    choose checkpoint -> evaluate (test split, golden set) -> decide -> promote? -> summarize,
    and a notification when the run ends, succeeded or failed.

    With ``dataset_uri`` empty, product images are synthesized; set, a labelled image set is
    imported from it instead (a folder tree, a CSV/JSONL manifest or a tuning JSONL), and
    ``label_template`` (e.g. "Status: Defect - {defect_type} found.") shapes defect labels.

    The champion, golden set and history of an inspector live under
    ``{bucket}/inspectors/<inspector>/`` (``tuned_model_display_name``, with the dataset's name
    added when the default name imports a dataset). The challenger (the best checkpoint on
    the validation set) replaces the champion only if it meets ``min_status_accuracy`` and
    ``max_miss_rate`` on the golden set, the sample-size minimums hold, and it is better than
    the champion by at least ``promotion_margin`` and beyond noise (or the champion is absent
    or retired). ``thinking`` is one setting for every model: "least" (a budget of 0
    for 2.5 Flash, the lowest thinking level for Gemini 3), "dynamic", "none", a level or a
    budget. ``media_resolution`` ("", "low", "medium", "high") is written per image in the
    tuning data (Gemini 3). ``tune_from="champion"`` tunes onward from the champion where
    Google allows continuous tuning, else from ``base_model``; the summary says which.
    ``max_training_tokens`` and ``max_tuning_cost_usd`` (0: no limit)
    stop a run before any tuning job exists. ``notify_webhook_url`` (or the Secret Manager
    version ``notify_webhook_secret``) receives the outcome.

    Data steps are cached (same parameters, same data). Steps that talk to live services or
    read the inspector's state are not: a cached tuning step would hand back an old job.
    """
    run_name = dsl.PIPELINE_JOB_NAME_PLACEHOLDER
    # The exit task runs when the DAG ends, however it ends. It learns what happened from the
    # run's records in the bucket (an exit task cannot take other tasks' outputs).
    notify = notify_run(
        project=project,
        bucket=bucket,
        tuned_model_display_name=tuned_model_display_name,
        run_name=run_name,
        location=location,
        notify_webhook_url=notify_webhook_url,
        notify_webhook_secret=notify_webhook_secret,
        dataset_uri=dataset_uri,
    )
    notify.set_display_name(TASK_TITLES["notify-run"]).set_caching_options(False)

    with dsl.ExitHandler(notify, name="nightly-run"):
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
            variation=variation,
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

        # The golden set outlives runs: found (or created once) in the bucket, never cached.
        golden = prepare_golden_set(
            project=project,
            bucket=bucket,
            prompt=prompt,
            train_manifest=split.outputs["train_manifest"],
            validation_manifest=split.outputs["validation_manifest"],
            test_manifest=split.outputs["test_manifest"],
            tuned_model_display_name=tuned_model_display_name,
            run_name=run_name,
            system_instruction=system_instruction,
            golden_test_uri=golden_test_uri,
            dataset_uri=dataset_uri,
            min_golden_per_class=min_golden_per_class,
        )
        golden.set_display_name(TASK_TITLES["prepare-golden-set"]).set_caching_options(False)

        jsonl = build_tuning_jsonl(
            project=project,
            bucket=bucket,
            prompt=prompt,
            train_manifest=golden.outputs["train_without_golden"],
            validation_manifest=golden.outputs["validation_without_golden"],
            test_manifest=split.outputs["test_manifest"],
            system_instruction=system_instruction,
            oversample_rare_classes=oversample_rare_classes,
            media_resolution=media_resolution,
        )
        jsonl.set_display_name(TASK_TITLES["build-tuning-jsonl"])

        # Not retried: a refusal is final (launch_tuning is retried, so the guard is its own step).
        cost = check_tuning_cost(
            project=project,
            train_jsonl_uri=jsonl.outputs["train_jsonl_uri"],
            base_model=base_model,
            epoch_count=epoch_count,
            max_training_tokens=max_training_tokens,
            max_tuning_cost_usd=max_tuning_cost_usd,
            training_price_per_million_tokens_usd=training_price_per_million_tokens_usd,
            media_resolution=media_resolution,
        )
        cost.set_display_name(TASK_TITLES["check-tuning-cost"]).set_caching_options(False)

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
            tune_from=tune_from,
            bucket=bucket,
            dataset_uri=dataset_uri,
        )
        launch.after(cost)
        # Retries resume the job an earlier attempt started (gcp_resources or its kfp_launch label).
        launch.set_retry(num_retries=2, backoff_duration="30s")
        launch.set_display_name(TASK_TITLES["launch-tuning"]).set_caching_options(False)

        wait = wait_for_tuning(
            project=project,
            location=location,
            job_name=launch.outputs["job_name"],
            poll_interval_seconds=poll_interval_seconds,
            timeout_seconds=tuning_timeout_seconds,
            estimated_tokens=cost.outputs["estimated_tokens"],
        )
        wait.set_display_name(TASK_TITLES["wait-for-tuning"]).set_caching_options(False)

        select = select_checkpoint(
            project=project,
            location=location,
            checkpoints=wait.outputs["checkpoints"],
            tuned_endpoint=wait.outputs["tuned_endpoint"],
            validation_jsonl_uri=jsonl.outputs["validation_jsonl_uri"],
            base_model=base_model,
            planned_epochs=epoch_count,
            thinking=thinking,
            media_resolution=media_resolution,
            concurrency=eval_concurrency,
        )
        select.set_display_name(TASK_TITLES["select-checkpoint"]).set_caching_options(False)
        select.set_retry(num_retries=2, backoff_duration="30s")

        challenger = select.outputs["challenger_endpoint"]
        evaluation = evaluate_inspector(
            project=project,
            location=location,
            tuned_endpoint=challenger,
            test_jsonl_uri=jsonl.outputs["test_jsonl_uri"],
            base_model=base_model,
            evaluate_base_model=evaluate_base_model,
            concurrency=eval_concurrency,
            thinking=thinking,
            run_name=run_name,
            dataset_uri=dataset_uri,
            media_resolution=media_resolution,
        )
        evaluation.set_display_name(TASK_TITLES["evaluate-inspector"]).set_caching_options(False)
        evaluation.set_retry(num_retries=2, backoff_duration="30s")

        golden_eval = evaluate_inspector(
            project=project,
            location=location,
            tuned_endpoint=challenger,
            test_jsonl_uri=golden.outputs["golden_jsonl_uri"],
            base_model=base_model,
            concurrency=eval_concurrency,
            thinking=thinking,
            metric_prefix="golden_",
            run_name=run_name,
            dataset_uri=dataset_uri,
            media_resolution=media_resolution,
        )
        golden_eval.set_display_name(TASK_TITLES["evaluate-inspector-2"]).set_caching_options(False)
        golden_eval.set_retry(num_retries=2, backoff_duration="30s")

        decide = decide_promotion(
            project=project,
            bucket=bucket,
            golden_metrics=golden_eval.outputs["metrics"],
            golden_id=golden.outputs["golden_id"],
            challenger_endpoint=challenger,
            tuned_model_display_name=tuned_model_display_name,
            run_name=run_name,
            challenger_model=wait.outputs["tuned_model"],
            checkpoint_id=select.outputs["checkpoint_id"],
            checkpoint_epoch=select.outputs["epoch"],
            base_model=base_model,
            prompt=prompt,
            system_instruction=system_instruction,
            test_metrics=evaluation.outputs["metrics"],
            min_status_accuracy=min_status_accuracy,
            max_miss_rate=max_miss_rate,
            promotion_margin=promotion_margin,
            dataset_uri=dataset_uri,
            golden_check=golden.outputs["golden_check"],
            min_test_per_class=min_test_per_class,
            min_golden_per_class=min_golden_per_class,
        )
        decide.set_display_name(TASK_TITLES["decide-promotion"]).set_caching_options(False)

        # The decision is the component's return value ("Output"): kfp.local 2.17 resolves a
        # dsl.If on that, but silently skips the branch for a NamedTuple field.
        with dsl.If(decide.outputs["Output"] == "promote", name="promote-if-better"):
            promote = promote_champion(
                project=project,
                location=location,
                bucket=bucket,
                decision_record=decide.outputs["decision_record"],
                tuned_model_display_name=tuned_model_display_name,
                run_name=run_name,
            )
            promote.set_display_name(TASK_TITLES["promote-champion"]).set_caching_options(False)

        report = summarize_run(
            project=project,
            location=location,
            job_name=launch.outputs["job_name"],
            base_model=base_model,
            tuned_model_display_name=tuned_model_display_name,
            tuned_endpoint=challenger,
            eval_metrics=evaluation.outputs["metrics"],
            golden_metrics=golden_eval.outputs["metrics"],
            tuning_metrics=wait.outputs["tuning_metrics"],
            cost_metrics=cost.outputs["cost_metrics"],
            decision_record=decide.outputs["decision_record"],
            checkpoint_selection=select.outputs["selection"],
            bucket=bucket,
            run_name=run_name,
            tuned_from=launch.outputs["tuned_from"],
            dataset_uri=dataset_uri,
        )
        report.set_display_name(TASK_TITLES["summarize-run"]).set_caching_options(False)


def compile_pipeline(path: Path = COMPILED_YAML) -> Path:
    """Compiles the pipeline to ``path`` and returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(visual_defect_sft, package_path=str(path))
    return path

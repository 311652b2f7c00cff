"""The Kubeflow pipeline: the nightly loop in one DAG, compiled to compiled/*.yaml.

``visual_defect_sft`` is composed of named parts, in DAG order: ``data_steps`` (images, split,
golden set, JSONL), ``tuning_steps`` (cost guard, launch, wait, checkpoint choice),
``evaluation_steps`` (test split and golden set), ``promotion_steps`` (decide, promote?) and
``summary_step``, inside the exit handler whose task is ``notify_step``. They are plain
functions that add their tasks to the pipeline being defined, not nested ``@dsl.pipeline``
sub-graphs: the compiled YAML is the same as one flat function's, and the task names that
TASK_TITLES, the CLI and kfp.local key on stay flat (a sub-graph puts its tasks in a DAG of
their own, e.g. ``data`` in place of ``split-manifest``).
"""

from pathlib import Path
from types import SimpleNamespace

from kfp import compiler, dsl

from components.build_tuning_jsonl import build_tuning_jsonl
from components.check_tuning_cost import check_tuning_cost
from components.decide_promotion import decide_promotion
from components.evaluate_inspector import evaluate_inspector
from components.import_dataset import import_dataset
from components.labels import PROMPT
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


def titled(task, name, cached=True):
    """``task`` with its TASK_TITLES display name; ``cached=False`` for steps that talk to live
    services or read the inspector's state (a cached one would hand back an old job)."""
    task.set_display_name(TASK_TITLES[name])
    if not cached:
        task.set_caching_options(False)
    return task


def notify_step(params):
    """The exit task: it runs when the DAG ends, however it ends, and learns what happened from
    the run's records in the bucket (an exit task cannot take other tasks' outputs)."""
    notify = notify_run(
        project=params.project,
        bucket=params.bucket,
        tuned_model_display_name=params.tuned_model_display_name,
        run_name=params.run_name,
        location=params.location,
        notify_webhook_url=params.notify_webhook_url,
        notify_webhook_secret=params.notify_webhook_secret,
        dataset_uri=params.dataset_uri,
    )
    return titled(notify, "notify-run", cached=False)


def data_steps(params):
    """Images (synthesized or imported) -> stratified split -> golden set -> tuning JSONL.

    Both image steps run, side by side; the one that does not apply writes an empty manifest
    and the split takes the other. A static DAG, no dsl.If/Else branch merge: Kubeflow's docs
    say dsl.OneOf "is not yet supported by the KFP orchestration backend, but may be supported
    by other orchestration backends" (kubeflow/website, user-guides/core-functions/
    control-flow.md), artifact OneOf failed at runtime in KFP's own backend until
    kubeflow/pipelines#13436 (2026-05), Google documents no support on Vertex AI, and
    kfp.local 2.17 cannot resolve it over artifacts."""
    images = synthesize_images(
        project=params.project,
        bucket=params.bucket,
        num_images=params.num_images,
        defect_ratio=params.defect_ratio,
        seed=params.seed,
        variation=params.variation,
        dataset_uri=params.dataset_uri,
    )
    titled(images, "synthesize-images")
    imported = import_dataset(
        project=params.project, dataset_uri=params.dataset_uri, label_template=params.label_template
    )
    titled(imported, "import-dataset", cached=False)  # the data under a URI can change between runs
    split = split_manifest(
        manifest=images.outputs["manifest"],
        imported_manifest=imported.outputs["manifest"],
        train_fraction=params.train_fraction,
        validation_fraction=params.validation_fraction,
        seed=params.seed,
    )
    titled(split, "split-manifest")
    # The golden set outlives runs: found (or created once) in the bucket, never cached.
    golden = prepare_golden_set(
        project=params.project,
        bucket=params.bucket,
        prompt=params.prompt,
        train_manifest=split.outputs["train_manifest"],
        validation_manifest=split.outputs["validation_manifest"],
        test_manifest=split.outputs["test_manifest"],
        tuned_model_display_name=params.tuned_model_display_name,
        run_name=params.run_name,
        system_instruction=params.system_instruction,
        golden_test_uri=params.golden_test_uri,
        dataset_uri=params.dataset_uri,
        min_golden_per_class=params.min_golden_per_class,
    )
    titled(golden, "prepare-golden-set", cached=False)
    jsonl = build_tuning_jsonl(
        project=params.project,
        bucket=params.bucket,
        prompt=params.prompt,
        train_manifest=golden.outputs["train_without_golden"],
        validation_manifest=golden.outputs["validation_without_golden"],
        test_manifest=split.outputs["test_manifest"],
        system_instruction=params.system_instruction,
        oversample_rare_classes=params.oversample_rare_classes,
        media_resolution=params.media_resolution,
    )
    titled(jsonl, "build-tuning-jsonl")
    return SimpleNamespace(golden=golden, jsonl=jsonl)


def tuning_steps(params, data):
    """Cost guard -> launch the tuning job -> wait for it -> choose the best checkpoint."""
    # Not retried: a refusal is final (launch_tuning is retried, so the guard is its own step).
    cost = check_tuning_cost(
        project=params.project,
        train_jsonl_uri=data.jsonl.outputs["train_jsonl_uri"],
        base_model=params.base_model,
        epoch_count=params.epoch_count,
        max_training_tokens=params.max_training_tokens,
        max_tuning_cost_usd=params.max_tuning_cost_usd,
        training_price_per_million_tokens_usd=params.training_price_per_million_tokens_usd,
        media_resolution=params.media_resolution,
    )
    titled(cost, "check-tuning-cost", cached=False)
    launch = launch_tuning(
        project=params.project,
        location=params.location,
        train_jsonl_uri=data.jsonl.outputs["train_jsonl_uri"],
        validation_jsonl_uri=data.jsonl.outputs["validation_jsonl_uri"],
        base_model=params.base_model,
        epoch_count=params.epoch_count,
        adapter_size=params.adapter_size,
        learning_rate_multiplier=params.learning_rate_multiplier,
        tuned_model_display_name=params.tuned_model_display_name,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        tune_from=params.tune_from,
        bucket=params.bucket,
        dataset_uri=params.dataset_uri,
    )
    launch.after(cost)
    # Retries resume the job an earlier attempt started (gcp_resources or its kfp_launch label).
    launch.set_retry(num_retries=2, backoff_duration="30s")
    titled(launch, "launch-tuning", cached=False)
    wait = wait_for_tuning(
        project=params.project,
        location=params.location,
        job_name=launch.outputs["job_name"],
        poll_interval_seconds=params.poll_interval_seconds,
        timeout_seconds=params.tuning_timeout_seconds,
        estimated_tokens=cost.outputs["estimated_tokens"],
    )
    titled(wait, "wait-for-tuning", cached=False)
    select = select_checkpoint(
        project=params.project,
        location=params.location,
        checkpoints=wait.outputs["checkpoints"],
        tuned_endpoint=wait.outputs["tuned_endpoint"],
        validation_jsonl_uri=data.jsonl.outputs["validation_jsonl_uri"],
        base_model=params.base_model,
        planned_epochs=params.epoch_count,
        thinking=params.thinking,
        media_resolution=params.media_resolution,
        concurrency=params.eval_concurrency,
    )
    titled(select, "select-checkpoint", cached=False).set_retry(num_retries=2, backoff_duration="30s")
    challenger = select.outputs["challenger_endpoint"]
    return SimpleNamespace(cost=cost, launch=launch, wait=wait, select=select, challenger=challenger)


def evaluation_step(params, tuning, test_jsonl_uri, title, **options):
    """The challenger (the chosen checkpoint) evaluated on ``test_jsonl_uri``."""
    evaluation = evaluate_inspector(
        project=params.project,
        location=params.location,
        tuned_endpoint=tuning.challenger,
        test_jsonl_uri=test_jsonl_uri,
        base_model=params.base_model,
        concurrency=params.eval_concurrency,
        thinking=params.thinking,
        run_name=params.run_name,
        dataset_uri=params.dataset_uri,
        media_resolution=params.media_resolution,
        **options,
    )
    return titled(evaluation, title, cached=False).set_retry(num_retries=2, backoff_duration="30s")


def evaluation_steps(params, data, tuning):
    """The challenger evaluated on this run's test split and on the inspector's golden set."""
    test_jsonl_uri = data.jsonl.outputs["test_jsonl_uri"]
    test_eval = evaluation_step(
        params, tuning, test_jsonl_uri, "evaluate-inspector", evaluate_base_model=params.evaluate_base_model
    )
    golden_jsonl_uri = data.golden.outputs["golden_jsonl_uri"]
    golden_eval = evaluation_step(params, tuning, golden_jsonl_uri, "evaluate-inspector-2", metric_prefix="golden_")
    return SimpleNamespace(test=test_eval, golden=golden_eval)


def promotion_steps(params, data, tuning, evaluation):
    """Champion or challenger? The decision, then promote_champion only when it says "promote"."""
    decide = decide_promotion(
        project=params.project,
        bucket=params.bucket,
        golden_metrics=evaluation.golden.outputs["metrics"],
        golden_id=data.golden.outputs["golden_id"],
        challenger_endpoint=tuning.challenger,
        tuned_model_display_name=params.tuned_model_display_name,
        run_name=params.run_name,
        challenger_model=tuning.wait.outputs["tuned_model"],
        checkpoint_id=tuning.select.outputs["checkpoint_id"],
        checkpoint_epoch=tuning.select.outputs["epoch"],
        base_model=params.base_model,
        prompt=params.prompt,
        system_instruction=params.system_instruction,
        test_metrics=evaluation.test.outputs["metrics"],
        min_status_accuracy=params.min_status_accuracy,
        max_miss_rate=params.max_miss_rate,
        promotion_margin=params.promotion_margin,
        dataset_uri=params.dataset_uri,
        golden_check=data.golden.outputs["golden_check"],
        min_test_per_class=params.min_test_per_class,
        min_golden_per_class=params.min_golden_per_class,
    )
    titled(decide, "decide-promotion", cached=False)
    # The decision is the component's return value ("Output"): kfp.local 2.17 resolves a
    # dsl.If on that, but silently skips the branch for a NamedTuple field.
    with dsl.If(decide.outputs["Output"] == "promote", name="promote-if-better"):
        promote = promote_champion(
            project=params.project,
            location=params.location,
            bucket=params.bucket,
            decision_record=decide.outputs["decision_record"],
            tuned_model_display_name=params.tuned_model_display_name,
            run_name=params.run_name,
        )
        titled(promote, "promote-champion", cached=False)
    return decide


def summary_step(params, tuning, evaluation, decide):
    """The run's summary, written by Gemini (or a template), with every figure below it."""
    report = summarize_run(
        project=params.project,
        location=params.location,
        job_name=tuning.launch.outputs["job_name"],
        base_model=params.base_model,
        tuned_model_display_name=params.tuned_model_display_name,
        tuned_endpoint=tuning.challenger,
        eval_metrics=evaluation.test.outputs["metrics"],
        golden_metrics=evaluation.golden.outputs["metrics"],
        tuning_metrics=tuning.wait.outputs["tuning_metrics"],
        cost_metrics=tuning.cost.outputs["cost_metrics"],
        decision_record=decide.outputs["decision_record"],
        checkpoint_selection=tuning.select.outputs["selection"],
        bucket=params.bucket,
        run_name=params.run_name,
        tuned_from=tuning.launch.outputs["tuned_from"],
        dataset_uri=params.dataset_uri,
    )
    return titled(report, "summarize-run", cached=False)


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

    Args:
        project: Google Cloud project of the run, its bucket and the tuning job.
        bucket: gs:// bucket for images, tuning data, champions and golden sets.
        location: Vertex AI region of the run and the tuning job (us-central1 or europe-west4 for Gemini 3).
        dataset_uri: your labelled images (folder, CSV/JSONL manifest or tuning JSONL); empty synthesizes images.
        label_template: defect label of imported images, e.g. "Status: Defect - {defect_type} found.".
        num_images: synthetic images to draw (with no dataset_uri).
        defect_ratio: share of defective synthetic images, 0 to 1.
        seed: seed of the synthetic images and of the split.
        variation: synthetic look: standard, strong (shifted) or photo (photo-like parts).
        train_fraction: share of images for training (stratified by class).
        validation_fraction: share of images for validation (checkpoint choice); the rest is test.
        prompt: the instruction of every example.
        system_instruction: optional system instruction of every example.
        oversample_rare_classes: repeat rarer classes in the training file until balanced.
        base_model: Gemini model to tune (python -m pipeline models lists those tunable today).
        epoch_count: passes over the training data.
        adapter_size: LoRA adapter size: 1, 2, 4, 8 or 16 (per model).
        learning_rate_multiplier: scales the service's default learning rate.
        tuned_model_display_name: the inspector's name (its champion and golden set).
        poll_interval_seconds: how often the tuning job is polled.
        tuning_timeout_seconds: bound of the wait for tuning; the job is cancelled after it.
        eval_concurrency: evaluation requests in flight at once.
        thinking: least, dynamic, none, a level (Gemini 3) or a budget (2.5), sent as each model takes it.
        media_resolution: images' part-level media resolution: empty, low, medium or high (Gemini 3).
        tune_from: base, or champion (continuous tuning where Google allows it).
        evaluate_base_model: also ask the untuned base model, for comparison.
        golden_test_uri: a fixed golden set of your own (tuning JSONL); empty creates one once.
        min_status_accuracy: promotion threshold on the golden set.
        max_miss_rate: promotion threshold: defects called Pass on the golden set.
        promotion_margin: status-accuracy gain over the champion needed to promote.
        min_test_per_class: test images per class needed to promote.
        min_golden_per_class: golden images per class needed to create the golden set and promote.
        max_training_tokens: refuse to tune above this many estimated training tokens; 0 no limit.
        max_tuning_cost_usd: refuse to tune above this estimated cost; 0 no limit.
        training_price_per_million_tokens_usd: the base model's tuning price, for the cost limit.
        notify_webhook_url: Google Chat or Slack incoming webhook for the outcome (a credential).
        notify_webhook_secret: Secret Manager version holding the webhook URL instead.
    """
    # The run's parameters (pipeline channels) for the parts below, which add their tasks to
    # this pipeline: plain functions, so the compiled task names stay those of TASK_TITLES.
    params = SimpleNamespace(**locals(), run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
    with dsl.ExitHandler(notify_step(params), name="nightly-run"):
        data = data_steps(params)
        tuning = tuning_steps(params, data)
        evaluation = evaluation_steps(params, data, tuning)
        decide = promotion_steps(params, data, tuning, evaluation)
        summary_step(params, tuning, evaluation, decide)


def compile_pipeline(path: Path = COMPILED_YAML) -> Path:
    """Compiles the pipeline to ``path`` and returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(visual_defect_sft, package_path=str(path))
    return path

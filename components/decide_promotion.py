"""Component: champion or challenger? The decision, with its reason, before anything changes."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Metrics, Output, OutputPath

from components.champion import (
    CHAMPION_FUNCS,
    champion_record,
    check_champion_record,
    comparison_table,
    golden_figures,
    inspector_paths,
    promotion_decision,
    run_object,
)
from components.champion_store import STORE_FUNCS, read_json_object, write_json_object
from components.helpers import parse_gcs_uri
from components.packages import BASE_IMAGE, STORAGE_PACKAGES


@dsl.component(
    base_image=BASE_IMAGE,
    packages_to_install=STORAGE_PACKAGES,
    install_kfp_package=False,
    additional_funcs=[parse_gcs_uri, *CHAMPION_FUNCS, *STORE_FUNCS],
)
def decide_promotion(
    project: str,
    bucket: str,
    golden_metrics: Input[Metrics],
    golden_id: str,
    challenger_endpoint: str,
    decision_metrics: Output[Metrics],
    decision_report: Output[Markdown],
    decision_record: OutputPath(str),
    tuned_model_display_name: str = "visual-defect-inspector",
    run_name: str = "",
    challenger_model: str = "",
    checkpoint_id: str = "",
    checkpoint_epoch: int = 0,
    base_model: str = "gemini-2.5-flash",
    prompt: str = "",
    system_instruction: str = "",
    test_metrics: Input[Metrics] = None,
    min_status_accuracy: float = 0.9,
    max_miss_rate: float = 0.1,
    promotion_margin: float = 0.02,
) -> str:
    """Compares the challenger with the champion on the golden set and decides.

    The challenger is promoted only if it meets the absolute thresholds on the golden set
    (``min_status_accuracy``, ``max_miss_rate``) and is not worse than the champion there by
    more than ``promotion_margin`` (status accuracy and miss rate); with no champion yet, the
    thresholds decide (components/champion.py ``promotion_decision``). Nothing changes here:
    the pipeline runs promote_champion only when this returns "promote", and that step
    replaces the champion only if it is still the one read here (its generation).

    The decision and its reason go to ``inspectors/<inspector>/runs/<run>/decision.json`` for
    the run's notification.

    Args:
        project: Google Cloud project of the bucket.
        bucket: ``gs://`` URI holding ``inspectors/<inspector>/champion.json``.
        golden_metrics: the challenger's evaluation on the golden set (``golden_*`` metrics).
        golden_id: the golden set's identity (prepare_golden_set).
        challenger_endpoint: the chosen checkpoint's endpoint.
        decision_metrics: ``promote_decision`` (1 promote, 0 keep), and when there is a
            champion ``champion_golden_status_accuracy``, ``champion_golden_miss_rate`` and
            ``promote_status_accuracy_delta`` (challenger minus champion).
        decision_report: champion and challenger side by side, the decision and its reason.
        decision_record: JSON {"decision", "reason", "candidate" (the champion record this
            challenger would become), "champion" (the current one or null),
            "champion_generation" (0: none), "thresholds"}.
        tuned_model_display_name: the inspector; champions are kept per inspector.
        run_name: the pipeline run's name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).
        challenger_model: the tuned model's resource name (``.../models/ID@1``).
        checkpoint_id, checkpoint_epoch: the chosen checkpoint.
        base_model, prompt, system_instruction: how the challenger was tuned and is asked.
        test_metrics: the challenger's figures on this run's test split, kept in the record.
        min_status_accuracy: the least golden-set status accuracy a champion may have.
        max_miss_rate: the highest golden-set miss rate (defects passed as good) allowed.
        promotion_margin: how much worse than the champion the challenger may be.

    Returns:
        "promote" or "keep".
    """
    import json

    from google.cloud import storage

    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    home = storage.Client(project=project).bucket(bucket_name)
    paths = inspector_paths(tuned_model_display_name)
    champion, generation = read_json_object(home, paths["champion"])
    if champion is not None:
        try:
            check_champion_record(champion)
        except ValueError as error:
            raise ValueError(
                f"gs://{bucket_name}/{paths['champion']} is not a champion record ({error}); repair or remove it"
            ) from None

    challenger = golden_figures(golden_metrics.metadata, "golden_")
    test = {}
    if test_metrics is not None:
        test = {
            k[len("eval_") :]: float(v)
            for k, v in test_metrics.metadata.items()
            if k.startswith("eval_") and isinstance(v, (int, float))
        }
    promote, reason = promotion_decision(
        challenger, champion, golden_id, min_status_accuracy, max_miss_rate, promotion_margin
    )
    decision = "promote" if promote else "keep"
    candidate = champion_record(
        inspector=tuned_model_display_name,
        run=run_name,
        endpoint=challenger_endpoint,
        model=challenger_model,
        checkpoint_id=checkpoint_id,
        epoch=checkpoint_epoch,
        base_model=base_model,
        prompt=prompt,
        system_instruction=system_instruction,
        golden_id=golden_id,
        golden=challenger,
        test=test,
        decision_reason=reason,
    )
    record = {
        "decision": decision,
        "reason": reason,
        "candidate": candidate,
        "champion": champion,
        "champion_generation": generation,
        "run": run_name,
        "thresholds": {
            "min_status_accuracy": min_status_accuracy,
            "max_miss_rate": max_miss_rate,
            "promotion_margin": promotion_margin,
        },
    }
    write_json_object(home, run_object(tuned_model_display_name, run_name, "decision.json"), record)
    with open(decision_record, "w") as f:
        json.dump(record, f)

    decision_metrics.log_metric("promote_decision", 1.0 if promote else 0.0)
    if champion is not None:
        decision_metrics.log_metric("champion_golden_status_accuracy", float(champion["golden"]["status_accuracy"]))
        decision_metrics.log_metric("champion_golden_miss_rate", float(champion["golden"]["miss_rate"]))
        decision_metrics.log_metric(
            "promote_status_accuracy_delta",
            round(challenger["status_accuracy"] - float(champion["golden"]["status_accuracy"]), 6),
        )
    with open(decision_metrics.path, "w") as f:
        json.dump({"decision": decision, "reason": reason}, f)
    with open(decision_report.path, "w") as f:
        f.write(
            f"# Champion or challenger?\n\n{comparison_table(challenger, champion)}\n\n"
            f"**Decision: {decision}.** {reason[0].upper() + reason[1:]}.\n\n"
            f"Golden set `{golden_id}`; thresholds: status accuracy at least {100 * min_status_accuracy:.1f}%, "
            f"miss rate at most {100 * max_miss_rate:.1f}%, margin {100 * promotion_margin:.1f}%.\n"
        )
    print(f"decision: {decision}: {reason}", flush=True)
    return decision

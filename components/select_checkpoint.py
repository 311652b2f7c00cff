"""Component: score every checkpoint of the tuning job on the validation set; the best is the challenger."""

from typing import NamedTuple

from kfp.dsl import Markdown, Metrics, Output

from components.checkpoints import checkpoint_metric_names, checkpoint_table, choose_checkpoint
from components.clients import endpoint_location, genai_client
from components.evaluate_inspector import ask_all, read_test_examples
from components.evaluation import (
    merge_defect_classes,
    score_answers,
    summarize_results,
)
from components.packages import BASE_IMAGE, EVAL_PACKAGES
from components.progress import report_progress
from components.shipping import lightweight_component
from platform_facts.gemini import thinking_config_for


def selection_without_scoring(listed, tuned_endpoint, planned_epochs, validation_jsonl_uri):
    """(endpoint, checkpoint_id, epoch, reason) when there is nothing to score: no checkpoints
    (the tuned model's endpoint) or no validation set (the last checkpoint); else None."""
    if not listed:
        reason = "The job exported no intermediate checkpoints: the tuned model's own endpoint is the challenger."
        return tuned_endpoint, "", int(planned_epochs), reason
    if not validation_jsonl_uri:
        final = max(listed, key=lambda c: (int(c.get("epoch") or 0), int(c.get("step") or 0)))
        reason = "There is no validation set to choose with: the last checkpoint is the challenger."
        return final["endpoint"], str(final["checkpointId"]), int(final["epoch"]), reason
    return None


def checkpoint_row(checkpoint, figures, examples):
    """A checkpoint's validation figures (summarize_results) as a row of the selection."""
    return {
        "checkpoint_id": str(checkpoint["checkpointId"]),
        "epoch": int(checkpoint["epoch"]),
        "step": int(checkpoint.get("step") or 0),
        "endpoint": checkpoint["endpoint"],
        "status_accuracy": round(figures.status_accuracy, 6),
        "miss_rate": round(figures.miss_rate, 6),
        "overkill_rate": round(figures.overkill_rate, 6),
        "defect_type_accuracy": round(figures.defect_type_accuracy, 6),
        "error_rate": round(figures.error_rate, 6),
        "examples": examples,
    }


def score_checkpoints(client, listed, examples, classes, thinking_sent, max_output_tokens, concurrency):
    """(rows, correct): every checkpoint's row (checkpoint_row), in epoch order, and per
    checkpoint id whether each example's status was right. A failed request counts against
    its checkpoint (ask_model records it); it does not stop the run."""
    rows, correct = [], {}
    print(f"scoring {len(listed)} checkpoint(s) on {len(examples)} validation examples", flush=True)
    for done, checkpoint in enumerate(sorted(listed, key=lambda c: (int(c["epoch"]), int(c.get("step") or 0))), 1):
        label = f"checkpoint {checkpoint['checkpointId']}"
        answers = ask_all(
            client, checkpoint["endpoint"], examples, thinking_sent, max_output_tokens, concurrency, label
        )
        results, classes = score_answers(examples, answers, classes)
        figures = summarize_results(results)
        correct[str(checkpoint["checkpointId"])] = [bool(r.status_correct) for r in results]
        rows.append(checkpoint_row(checkpoint, figures, len(examples)))
        report_progress(done, len(listed), "checkpoints", "scored")
        print(
            f"checkpoint {checkpoint['checkpointId']} (epoch {checkpoint['epoch']}): status accuracy "
            f"{figures.status_accuracy:.3f}, miss rate {figures.miss_rate:.3f}, failed requests "
            f"{sum(a.failed for a in answers)}",
            flush=True,
        )
    return rows, correct


def selection_reason(best, why, scored, examples):
    """Why ``best`` (one of ``scored`` checkpoints, on ``examples`` images) is the challenger."""
    return (
        f"Checkpoint {best['checkpoint_id']} (epoch {best['epoch']} of {scored} scored) is the challenger: {why}. "
        f"On the {examples} validation images it has status accuracy {100 * best['status_accuracy']:.1f}%, "
        f"miss rate {100 * best['miss_rate']:.1f}%."
    )


def log_checkpoint_figures(checkpoint_metrics, rows, best):
    """Logs every scored checkpoint's status accuracy and miss rate, and the chosen one's accuracy."""
    stems = checkpoint_metric_names(rows)
    for row in rows:
        checkpoint_metrics.log_metric(f"{stems[row['checkpoint_id']]}_status_accuracy", row["status_accuracy"])
        checkpoint_metrics.log_metric(f"{stems[row['checkpoint_id']]}_miss_rate", row["miss_rate"])
    checkpoint_metrics.log_metric("ckpt_selected_status_accuracy", best["status_accuracy"])


def write_selection(checkpoint_metrics, checkpoint_report, endpoint, checkpoint_id, epoch, reason, rows):
    """Logs the selection's metrics, writes its JSON and Markdown report; returns
    (endpoint, checkpoint_id, epoch, selection JSON), the component's outputs."""
    import json

    checkpoint_metrics.log_metric("ckpt_count", len(rows))
    checkpoint_metrics.log_metric("ckpt_selected_epoch", int(epoch))
    selection = {
        "selected": checkpoint_id,
        "endpoint": endpoint,
        "epoch": int(epoch),
        "reason": reason,
        "checkpoints": rows,
    }
    with open(checkpoint_metrics.path, "w") as f:
        json.dump(selection, f, indent=2)
    table = checkpoint_table(rows, checkpoint_id) if rows else "_No checkpoints were scored._"
    with open(checkpoint_report.path, "w") as f:
        f.write(f"# Checkpoint selection\n\n{reason}\n\n{table}\n")
    print(f"challenger: {endpoint} (checkpoint {checkpoint_id or '-'}, epoch {epoch}): {reason}", flush=True)
    return endpoint, checkpoint_id, int(epoch), json.dumps(selection)


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=EVAL_PACKAGES, install_kfp_package=False)
def select_checkpoint(
    project: str,
    location: str,
    checkpoints: str,
    tuned_endpoint: str,
    validation_jsonl_uri: str,
    checkpoint_metrics: Output[Metrics],
    checkpoint_report: Output[Markdown],
    base_model: str = "gemini-3.5-flash",
    planned_epochs: int = 0,
    thinking: str = "least",
    media_resolution: str = "",
    concurrency: int = 4,
    max_output_tokens: int = 256,
) -> NamedTuple("Outputs", [("challenger_endpoint", str), ("checkpoint_id", str), ("epoch", int), ("selection", str)]):
    """Chooses the epoch to ship: the checkpoint that does best on the validation set.

    Overfitting is the main risk of tuning on few images, and the validation split is the
    guardrail: each checkpoint's own endpoint answers every validation example (temperature
    0, the thinking control as for evaluation), answers are scored with the notebook's rule
    (``judge_answer``), and the last checkpoint becomes the challenger unless an earlier one is
    better beyond noise on the same examples (champion.choose_checkpoint: a one-sided exact
    sign test on the examples where the two disagree). A tie on a small validation set keeps
    the last, most-trained checkpoint. Validation images are never in the golden set, so the
    golden-set figures of the choice stay unbiased.

    Without checkpoints (a job with ``export_last_checkpoint_only``) or without a validation
    set, the tuned model's own endpoint is the challenger.

    Metrics: ``ckpt_count``, ``ckpt_selected_epoch``, ``ckpt_selected_status_accuracy`` and per
    checkpoint ``ckpt_e{epoch}_status_accuracy`` and ``ckpt_e{epoch}_miss_rate``.

    Args:
        project: Google Cloud project of the endpoints and the bucket.
        location: Vertex AI region.
        checkpoints: JSON list of the job's checkpoints, ``[{checkpointId, epoch, step,
            endpoint}]`` (wait_for_tuning's ``checkpoints`` output).
        tuned_endpoint: the tuned model's own endpoint (its default checkpoint).
        validation_jsonl_uri: ``gs://`` URI of the validation JSONL; "" for none.
        checkpoint_metrics: the figures above.
        checkpoint_report: a Markdown table of every checkpoint, the chosen one marked.
        base_model: the tuned base model (decides the thinking settings).
        planned_epochs: the job's epoch count: the epoch of the tuned endpoint when there are
            no checkpoints.
        thinking: as for evaluate_inspector ("least": as little thinking as the model allows).
        media_resolution: as for evaluate_inspector (the images' level as tuned).
        concurrency: requests in flight at once.
        max_output_tokens: answer length limit per request.

    Returns:
        challenger_endpoint: the chosen checkpoint's endpoint.
        checkpoint_id: its checkpoint id ("" when there were no checkpoints).
        epoch: its epoch.
        selection: JSON {"selected": id, "reason", "checkpoints": [figures per checkpoint]}.
    """
    import json
    import logging
    from collections import namedtuple

    from google.cloud import storage

    outputs = namedtuple("Outputs", ["challenger_endpoint", "checkpoint_id", "epoch", "selection"])
    listed = json.loads(checkpoints or "[]")
    unscored = selection_without_scoring(listed, tuned_endpoint, planned_epochs, validation_jsonl_uri)
    if unscored:
        return outputs(*write_selection(checkpoint_metrics, checkpoint_report, *unscored, []))

    examples = read_test_examples(storage.Client(project=project), validation_jsonl_uri, media_resolution)
    classes = merge_defect_classes([], (example.expected for example in examples))
    client = genai_client(project, endpoint_location(tuned_endpoint, location))  # multi-region for Gemini 3
    logging.getLogger("httpx").setLevel(logging.WARNING)
    thinking_sent = thinking_config_for(base_model, thinking)
    print(f"thinking {thinking!r} for {base_model}: sending {thinking_sent or 'no thinking config'}", flush=True)
    concurrency = max(1, int(concurrency))
    rows, correct = score_checkpoints(client, listed, examples, classes, thinking_sent, max_output_tokens, concurrency)
    best, why = choose_checkpoint(rows, correct)
    log_checkpoint_figures(checkpoint_metrics, rows, best)
    reason = selection_reason(best, why, len(rows), len(examples))
    selected = (best["endpoint"], best["checkpoint_id"], best["epoch"], reason, rows)
    return outputs(*write_selection(checkpoint_metrics, checkpoint_report, *selected))

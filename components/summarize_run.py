"""Component: a short, human-readable report of the run, written by Gemini."""

from kfp.dsl import Input, Markdown, Metrics, Output

from components.champion import comparison_table, run_object
from components.champion_store import inspector_name
from components.checkpoints import checkpoint_table
from components.clients import genai_client, parse_gcs_uri
from components.packages import BASE_IMAGE, GENAI, KFP, STORAGE
from components.shipping import lightweight_component
from platform_facts.gemini import lifecycle_warning, model_lifecycle


def readiness(figures, decision, min_examples=20):
    """How the summary may describe readiness: "ready", "not ready", or "unjudged" with why.

    A claim of readiness needs evidence: test accuracies of at least 95 %, on at least
    ``min_examples`` test images, and a decision not held back for too few examples per class
    (one test image scoring 100 % is no evidence; a first night once called it ready).
    """
    examples = int(figures.get("eval_examples", 0))
    reason = (decision or {}).get("reason", "")
    if reason.startswith("too few") or examples < min_examples:
        return "unjudged", (
            f"readiness cannot be judged on {examples} test image(s)"
            + (f" ({reason})" if reason.startswith("too few") else f"; at least {min_examples} are needed")
        )
    if figures.get("eval_status_accuracy", 0) >= 0.95 and figures.get("eval_defect_type_accuracy", 0) >= 0.95:
        return "ready", "so it is ready for the manufacturing defect analysis task"
    return "not ready", "so it needs more data or tuning before it inspects production parts"


def lifecycle_section(base_model, decision, tuned_from="", within_days=30):
    """The summary's "Models" section: what the job tuned from, the base model's lifecycle,
    and a warning when the champion's base model retires within ``within_days`` (a tuned
    model stops answering with its base model)."""
    champion = (decision or {}).get("champion") or {}
    promoted = (decision or {}).get("decision") == "promote"
    champion_base = base_model if promoted or not champion else champion.get("base_model", "")
    lines = [f"Tuned from: {tuned_from}."] if tuned_from else []
    for role, model in (("Base model", base_model), ("Champion's base model", champion_base)):
        if not model or (role != "Base model" and model == base_model):
            continue
        life = model_lifecycle(model)
        retires = f", retires {life['retires']}" if life["retires"] and not life["retired"] else ""
        lines.append(f"{role}: {life['model']} ({life['label']}{retires}; {life['source']}).")
    warning = lifecycle_warning(champion_base, within_days=within_days) if champion_base else None
    retired = model_lifecycle(champion_base)["retired"] if champion_base else False
    if retired:
        warning = f"the champion's base model {champion_base} is retired: the champion no longer answers"
    if warning:
        lines.append(f"**Warning: {warning}.**")
    return "## Models\n\n" + "\n".join(f"- {line}" for line in lines) if lines else ""


def numeric_metrics(artifact):
    """{name: value} of a Metrics artifact's numeric metadata ({} for no artifact)."""
    return {k: v for k, v in (artifact.metadata.items() if artifact is not None else []) if isinstance(v, (int, float))}


def percent_text(figures, name):
    """``figures[name]`` as a percentage with one decimal, "n/a" when absent."""
    return f"{100 * figures[name]:.1f}%" if name in figures else "n/a"


def decision_sentence(decision):
    """The promotion decision and its reason as one sentence ("" without a decision)."""
    if not decision:
        return ""
    champion = decision.get("champion")
    verdict = (
        "promote the challenger to champion"
        if decision["decision"] == "promote"
        else f"keep the champion from run {champion['run']}"
        if champion
        else "do not promote (there is no champion yet)"
    )
    return f"Promotion decision: {verdict}, because {decision['reason']}."


def summary_prompt(
    job_name, base_model, tuned_model_display_name, tuned_endpoint, figures, golden, selection, decision
):
    """The source notebook's reporting prompt, with the evaluation figures and the decision."""
    decision_line = decision_sentence(decision)
    epoch_line = f"Chosen checkpoint: epoch {selection['epoch']}." if selection else ""
    ready, why = readiness(figures, decision)
    return (
        f"""Generate a brief status report for a Gemini model fine-tuning job for a 'Visual Defect Detection' use case.
Job Name: {job_name}
Base Model: {base_model}
Tuned Model Display Name: {tuned_model_display_name}
Final Status: JOB_STATE_SUCCEEDED
Tuned Model Endpoint: {tuned_endpoint}
Error (if any): None
Evaluation on {int(figures.get('eval_examples', 0))} held-out test images: status accuracy {percent_text(figures, 'eval_status_accuracy')}, defect-type accuracy {percent_text(figures, 'eval_defect_type_accuracy')}, missed defects {percent_text(figures, 'eval_miss_rate')}, good parts rejected {percent_text(figures, 'eval_overkill_rate')}.
"""
        + (
            f"Evaluation on the fixed golden set of {int(golden.get('golden_examples', 0))} images: status accuracy {percent_text(golden, 'golden_status_accuracy')}, missed defects {percent_text(golden, 'golden_miss_rate')}.\n"
            if golden
            else ""
        )
        + (f"{epoch_line}\n" if epoch_line else "")
        + (f"{decision_line}\n" if decision_line else "")
        + (f"Do not call it ready: {why}.\n" if ready == "unjudged" else "")
        + "Summarize the outcome of this tuning job in 1-2 sentences, specifically mentioning its readiness for the manufacturing defect analysis task"
        + (" and whether it now serves the factory as the champion." if decision else ".")
    )


def template_summary(job_name, base_model, tuned_model_display_name, figures, decision, error):
    """(text, source) of the deterministic summary written when Gemini could not (``error``)."""
    text = (
        f"Tuning job {job_name.rsplit('/', 1)[-1]} of {base_model} succeeded; the tuned inspector "
        f"'{tuned_model_display_name}' scored {percent_text(figures, 'eval_status_accuracy')} status accuracy and "
        f"{percent_text(figures, 'eval_defect_type_accuracy')} defect-type accuracy on "
        f"{int(figures.get('eval_examples', 0))} test images, {readiness(figures, decision)[1]}."
    )
    if decision:
        text += " " + decision_sentence(decision)
    reason = " ".join(str(getattr(error, "message", None) or error).split())
    reason = reason if len(reason) <= 200 else reason[:199].rsplit(" ", 1)[0] + "…"
    return text, f"template (Gemini unavailable: {type(error).__name__}: {reason})"


def tokens_line(cost, tuning):
    """Training tokens estimated and billed (and the estimated cost), "" with neither figure set."""
    if not (cost or tuning):
        return ""
    estimated, billed = cost.get("train_estimated_tokens"), tuning.get("train_billable_token_count")
    line = (
        f"Training tokens: {int(estimated):,} estimated before launch"
        if estimated is not None
        else "Training tokens: not estimated"
    )
    line += f", {int(billed):,} billed by Vertex AI (totalBillableTokenCount)" if billed is not None else ""
    if "train_estimated_cost_usd" in cost:
        line += f"; estimated cost ${cost['train_estimated_cost_usd']:,.2f}"
    return line + "."


def summary_markdown(text, source, decision, selection, figures, cost, tuning, base_model, tuned_from, tuned_endpoint):
    """The summary's Markdown: the text and its source, champion and challenger, models,
    checkpoints, the test split's figures, training tokens and the endpoint."""
    sections = [f"# Visual defect inspector: run summary\n\n{text}\n\n*Source: {source}.*"]
    if decision:
        challenger = decision["candidate"]["golden"]
        sections.append(
            f"## Champion and challenger\n\n{comparison_table(challenger, decision.get('champion'))}\n\n"
            f"**Decision: {decision['decision']}.** {decision['reason'][0].upper() + decision['reason'][1:]}."
        )
    models = lifecycle_section(base_model, decision, tuned_from)
    if models:
        sections.append(models)
    if selection:
        table = checkpoint_table(selection["checkpoints"], selection["selected"]) if selection["checkpoints"] else ""
        sections.append(f"## Checkpoints (validation set)\n\n{selection['reason']}" + (f"\n\n{table}" if table else ""))
    table = "\n".join(f"| {name} | {value:.4g} |" for name, value in figures.items())
    sections.append(f"## Test split\n\n| metric | value |\n|---|---|\n{table}")
    line = tokens_line(cost, tuning)
    if line:
        sections.append(line)
    sections.append(f"Endpoint: `{tuned_endpoint}`")
    return "\n\n".join(sections) + "\n"


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=[KFP, STORAGE, GENAI], install_kfp_package=False)
def summarize_run(
    project: str,
    location: str,
    job_name: str,
    base_model: str,
    tuned_model_display_name: str,
    tuned_endpoint: str,
    eval_metrics: Input[Metrics],
    summary: Output[Markdown],
    summary_model: str = "gemini-3.5-flash",
    golden_metrics: Input[Metrics] = None,
    tuning_metrics: Input[Metrics] = None,
    cost_metrics: Input[Metrics] = None,
    decision_record: str = "",
    checkpoint_selection: str = "",
    bucket: str = "",
    run_name: str = "",
    tuned_from: str = "",
    dataset_uri: str = "",
) -> str:
    """Asks the base Gemini model for a 1-2 sentence report; falls back to a template.

    The source notebook's reporting prompt, extended with the evaluation figures and the
    promotion decision. When Gemini cannot be reached (offline there is no local Gemini), a
    deterministic template is written instead; the Markdown always says which source wrote
    it. Below the text: champion and challenger side by side on the golden set with the
    decision and its reason, every checkpoint's validation figures, the test-split metrics
    and the training tokens (estimated and billed). With ``bucket`` the Markdown is also
    stored as ``inspectors/<inspector>/runs/<run>/summary.md`` for the run's notification.

    Args:
        project: Google Cloud project.
        location: Vertex AI region.
        job_name: the tuning job's resource name.
        base_model: the tuned base model.
        tuned_model_display_name: display name of the tuned model (the inspector).
        tuned_endpoint: endpoint of the challenger (the chosen checkpoint).
        eval_metrics: evaluate_inspector's metrics on this run's test split.
        summary: output Markdown report.
        summary_model: Gemini model that writes the report.
        golden_metrics: the challenger's evaluation on the golden set (``golden_*``).
        tuning_metrics: wait_for_tuning's metrics (billable tokens).
        cost_metrics: check_tuning_cost's metrics (estimated tokens and cost).
        decision_record: decide_promotion's record (JSON); "" when there is none.
        checkpoint_selection: select_checkpoint's selection (JSON); "" when there is none.
        bucket: ``gs://`` URI to store the summary in for the notification; "" not to.
        run_name: the pipeline run's name.
        tuned_from: launch_tuning's note on what the job started from (base model or champion).
        dataset_uri: the run's imported dataset; with the default display name it names the
            inspector whose records the summary joins (champion_store.inspector_name).

    Returns:
        The summary text.
    """
    import json

    figures = {k: v for k, v in sorted(eval_metrics.metadata.items()) if isinstance(v, (int, float))}
    decision = json.loads(decision_record) if decision_record else None
    selection = json.loads(checkpoint_selection) if checkpoint_selection else None
    golden, tuning, cost = (
        numeric_metrics(golden_metrics),
        numeric_metrics(tuning_metrics),
        numeric_metrics(cost_metrics),
    )
    prompt = summary_prompt(
        job_name, base_model, tuned_model_display_name, tuned_endpoint, figures, golden, selection, decision
    )
    try:
        from google.genai import types

        client = genai_client(project, location)  # kept: a dropped Client closes its connection
        response = client.models.generate_content(
            model=summary_model, contents=prompt, config=types.GenerateContentConfig(temperature=0.2)
        )
        text, source = (response.text or "").strip(), f"written by {summary_model}"
        if not text:
            raise ValueError("empty answer")
    except Exception as error:  # any failure: the report must still be written
        text, source = template_summary(job_name, base_model, tuned_model_display_name, figures, decision, error)

    markdown = summary_markdown(
        text, source, decision, selection, figures, cost, tuning, base_model, tuned_from, tuned_endpoint
    )
    with open(summary.path, "w") as f:
        f.write(markdown)
    if bucket:
        from google.cloud import storage

        bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
        storage.Client(project=project).bucket(bucket_name).blob(
            run_object(inspector_name(tuned_model_display_name, dataset_uri), run_name, "summary.md")
        ).upload_from_string(markdown, content_type="text/markdown")
    print(f"summary ({source}): {text}", flush=True)
    return text

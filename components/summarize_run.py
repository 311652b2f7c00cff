"""Component 7: a short, human-readable report of the run, written by Gemini."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Metrics, Output

from components.helpers import genai_client
from components.packages import BASE_IMAGE, GENAI_PACKAGES


@dsl.component(
    base_image=BASE_IMAGE,
    packages_to_install=GENAI_PACKAGES,
    install_kfp_package=False,
    additional_funcs=[genai_client],
)
def summarize_run(
    project: str,
    location: str,
    job_name: str,
    base_model: str,
    tuned_model_display_name: str,
    tuned_endpoint: str,
    eval_metrics: Input[Metrics],
    summary: Output[Markdown],
    summary_model: str = "gemini-2.5-flash",
) -> str:
    """Asks the base Gemini model for a 1-2 sentence report; falls back to a template.

    The source notebook's reporting prompt, extended with the evaluation figures. When
    Gemini cannot be reached (offline there is no local Gemini), a deterministic template
    is written instead; the Markdown always says which source wrote it.

    Args:
        project: Google Cloud project.
        location: Vertex AI region.
        job_name: the tuning job's resource name.
        base_model: the tuned base model.
        tuned_model_display_name: display name of the tuned model.
        tuned_endpoint: endpoint serving the tuned model.
        eval_metrics: evaluate_inspector's metrics.
        summary: output Markdown report.
        summary_model: Gemini model that writes the report.

    Returns:
        The summary text.
    """
    figures = {k: v for k, v in sorted(eval_metrics.metadata.items()) if isinstance(v, (int, float))}

    def percent(name):
        return f"{100 * figures[name]:.1f}%" if name in figures else "n/a"

    prompt = f"""Generate a brief status report for a Gemini model fine-tuning job for a 'Visual Defect Detection' use case.
Job Name: {job_name}
Base Model: {base_model}
Tuned Model Display Name: {tuned_model_display_name}
Final Status: JOB_STATE_SUCCEEDED
Tuned Model Endpoint: {tuned_endpoint}
Error (if any): None
Evaluation on {int(figures.get('eval_examples', 0))} held-out test images: status accuracy {percent('eval_status_accuracy')}, defect-type accuracy {percent('eval_defect_type_accuracy')}, missed defects {percent('eval_miss_rate')}, good parts rejected {percent('eval_overkill_rate')}.
Summarize the outcome of this tuning job in 1-2 sentences, specifically mentioning its readiness for the manufacturing defect analysis task."""

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
        ready = figures.get("eval_status_accuracy", 0) >= 0.95 and figures.get("eval_defect_type_accuracy", 0) >= 0.95
        text = (
            f"Tuning job {job_name.rsplit('/', 1)[-1]} of {base_model} succeeded; the tuned inspector "
            f"'{tuned_model_display_name}' scored {percent('eval_status_accuracy')} status accuracy and "
            f"{percent('eval_defect_type_accuracy')} defect-type accuracy on "
            f"{int(figures.get('eval_examples', 0))} test images, "
            + (
                "so it is ready for the manufacturing defect analysis task."
                if ready
                else "so it needs more data or tuning before it inspects production parts."
            )
        )
        reason = " ".join(str(getattr(error, "message", None) or error).split())
        reason = reason if len(reason) <= 200 else reason[:199].rsplit(" ", 1)[0] + "…"
        source = f"template (Gemini unavailable: {type(error).__name__}: {reason})"

    table = "\n".join(f"| {name} | {value:.4g} |" for name, value in figures.items())
    with open(summary.path, "w") as f:
        f.write(
            f"# Visual defect inspector: run summary\n\n{text}\n\n*Source: {source}.*\n\n"
            f"| metric | value |\n|---|---|\n{table}\n\nEndpoint: `{tuned_endpoint}`\n"
        )
    print(f"summary ({source}): {text}", flush=True)
    return text

"""KFP component: evaluate the tuned inspector on the held-out test JSONL.

Asks the tuned endpoint (and, optionally, the base Gemini model) about every test image,
scores each answer with ``judge_answer``, and writes scalar metrics, a confusion matrix, a
self-contained HTML report and a predictions CSV.

This file holds the I/O (reading the test set, asking the models, fetching thumbnails,
writing artifacts); parsing, scoring and the report are pure functions in
``components/evaluation.py``. Both reach the component through ``additional_funcs``.
"""

from typing import NamedTuple

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics, Output

from components.clients import endpoint_location, genai_client, parse_gcs_uri
from components.evaluation import (
    confusion_matrix,
    evaluation_records,
    merge_defect_classes,
    metric_values,
    parse_test_jsonl,
    prediction_columns,
    render_report,
    score_answers,
    scrub_error,
    shown_examples,
    summarize_results,
    summary_line,
    thumbnail_uris,
)
from components.packages import BASE_IMAGE, EVAL_PACKAGES
from components.progress import report_progress
from components.shipping import lightweight_component
from platform_facts.gemini import media_resolution_level, thinking_config_for
from platform_facts.images import eight_bit


def generation_config(system, thinking, max_output_tokens):
    """The request settings: temperature 0, ``max_output_tokens``, ``system`` (a Content or
    None), ``thinking`` (thinking_config_for's dict; {}: no thinking config), no automatic
    function calling."""
    from google.genai import types

    return types.GenerateContentConfig(
        temperature=0.0,
        max_output_tokens=max_output_tokens,
        system_instruction=system,
        thinking_config=types.ThinkingConfig(**thinking) if thinking else None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )


def generate_retrying_cut_answers(client, model, contents, config, attempts=5):
    """``client.models.generate_content``, asked again when the answer is cut off on its way back.

    google-genai retries 408/429/5xx, timeouts and refused connections, not a response cut off
    mid-body (httpx.RemoteProtocolError, httpx.ReadError); at temperature 0 the question is
    safe to repeat. ``attempts`` in all, backoff from 0.5 s doubling, with jitter so that the
    requests of a burst cut off together do not come back together.
    """
    import random
    import time

    import httpx

    for attempt in range(attempts):
        try:
            return client.models.generate_content(model=model, contents=contents, config=config)
        except (httpx.RemoteProtocolError, httpx.ReadError) as error:
            if attempt == attempts - 1:
                raise
            delay = 0.5 * 2**attempt * random.uniform(1.0, 1.5)
            print(f"{model}: answer cut off ({type(error).__name__}); asking again in {delay:.1f} s", flush=True)
            time.sleep(delay)


def ask_model(client, model, example, thinking, max_output_tokens, config=None):
    """Asks ``model`` one example's question at temperature 0 and returns an ``Answer``.

    ``thinking`` is the thinking config to send (platform_facts thinking_config_for; {}
    sends none). ``config``: the ``generation_config`` for this
    example, when the caller has built it already (ask_all shares one per system
    instruction). A request that
    still fails after the client's retries (and generate_retrying_cut_answers' for answers
    cut off mid-body) becomes an empty, failed Answer carrying its scrubbed error: one bad
    request must not sink the run. An empty answer is not a
    failure; its error names the finish reason.
    """
    import time

    t0 = time.monotonic()
    try:
        config = config or generation_config(example.system, thinking, max_output_tokens)
        response = generate_retrying_cut_answers(client, model, example.prompt, config)
        text, error, failed = (response.text or "").strip(), "", False
        if not text:
            reason = ""
            if response.candidates and response.candidates[0].finish_reason:
                reason = f" (finish reason {response.candidates[0].finish_reason})"
            error = "empty answer" + reason
    except Exception as exc:  # recorded per example
        text, error, failed = "", scrub_error(f"{type(exc).__name__}: {exc}"), True
    latency_ms = round((time.monotonic() - t0) * 1000.0, 1)
    return evaluation_records().Answer(text=text, error=error, latency_ms=latency_ms, failed=failed)


def ask_all(client, model, examples, thinking, max_output_tokens, concurrency, label):
    """Every example's ``Answer``, in order, ``concurrency`` requests at a time.

    Progress goes out as report_progress lines (unit "images", note ``label``) about every
    tenth of the way and at the end.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor, as_completed

    started = time.monotonic()
    answers = [None] * len(examples)
    step = max(1, len(examples) // 10)

    def system_key(example):
        return example.system.model_dump_json() if example.system is not None else ""

    configs = {}  # one request config per distinct system instruction, not one per request
    for example in examples:
        configs.setdefault(system_key(example), generation_config(example.system, thinking, max_output_tokens))
    with ThreadPoolExecutor(concurrency) as pool:
        futures = {
            pool.submit(
                ask_model,
                client,
                model,
                example,
                thinking,
                max_output_tokens,
                configs[system_key(example)],
            ): i
            for i, example in enumerate(examples)
        }
        for done, future in enumerate(as_completed(futures), start=1):
            answers[futures[future]] = future.result()
            if done % step == 0 or done == len(examples):
                report_progress(done, len(examples), "images", label, time.monotonic() - started)
    return answers


def ask_base_model(client, base_model, examples, max_output_tokens, concurrency):
    """(answers, note) from the untuned base model for every example.

    The first question decides whether the model can be reached at all (locally there is
    no Gemini): if it fails, answers is None and the note says why.
    """
    thinking = thinking_config_for(base_model, "least")  # as little thinking as the base model allows
    first = ask_model(client, base_model, examples[0], thinking, max_output_tokens)
    if first.failed:
        return None, (
            f"Base model {base_model} was unavailable, so no base-vs-tuned comparison was made: {first.error}"
        )
    rest = (
        ask_all(client, base_model, examples[1:], thinking, max_output_tokens, concurrency, "base")
        if len(examples) > 1
        else []
    )
    return [first] + rest, f"Base model {base_model} answered the same {len(examples)} questions."


def set_media_resolution(examples, media_resolution):
    """Sets each image part's ``media_resolution`` to ``media_resolution`` ("" leaves them)
    where the test line did not set one, so the endpoint sees images as they were tuned."""
    if not media_resolution:
        return
    from google.genai import types

    level = media_resolution_level(media_resolution)
    for example in examples:
        for content in example.prompt:
            for part in content.parts or []:
                if (part.file_data or part.inline_data) and part.media_resolution is None:
                    part.media_resolution = types.PartMediaResolution(level=level)


def ensure_parent_dir(path):
    """Creates the folder that will hold ``path``."""
    import os

    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)


def write_json(path, data, indent=None):
    """Writes ``data`` as JSON at ``path``."""
    import json

    ensure_parent_dir(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)


def write_text(path, text):
    """Writes ``text`` (UTF-8) at ``path``."""
    ensure_parent_dir(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_predictions_csv(path, results):
    """Writes the predictions CSV: a header of ``prediction_columns()``, then a row per result."""
    import csv

    columns = prediction_columns()
    ensure_parent_dir(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for result in results:
            writer.writerow({column: getattr(result, column) for column in columns})


def make_thumbnail(gcs, uri, inline_b64):
    """(160 px thumbnail, full image) as PNG data URIs (evaluation.thumbnail_uris), or "" when
    the image cannot be had.

    Inline images are decoded, gs:// images downloaded; public HTTPS images are not
    fetched, so the report stays self-contained.
    """
    import base64
    import io

    from PIL import Image

    try:
        if inline_b64 is not None:
            data = base64.b64decode(inline_b64)
        elif uri.startswith("gs://"):
            bucket_name, blob_name = parse_gcs_uri(uri)
            data = gcs.bucket(bucket_name).blob(blob_name).download_as_bytes()
        else:
            return ""
        return thumbnail_uris(eight_bit(Image.open(io.BytesIO(data))).convert("RGB"))
    except Exception as exc:  # a missing image costs its thumbnail, not the report
        print(f"no thumbnail for {uri}: {scrub_error(exc, 200)}", flush=True)
        return ""


def fetch_thumbnails(gcs, examples, concurrency):
    """image URI -> thumbnail data URI ("" when there is none), one per distinct image."""
    from concurrent.futures import ThreadPoolExecutor

    sources = {}
    for example in examples:
        sources.setdefault(example.image_uri, example.inline)
    with ThreadPoolExecutor(concurrency) as pool:
        return dict(zip(sources, pool.map(lambda item: make_thumbnail(gcs, *item), sources.items()), strict=True))


def read_test_examples(gcs, jsonl_uri, media_resolution, max_examples=0):
    """The examples of a Gemini SFT JSONL in Cloud Storage (the first ``max_examples``; 0: all),
    their images set to ``media_resolution`` (set_media_resolution)."""
    bucket_name, blob_name = parse_gcs_uri(jsonl_uri)
    examples = parse_test_jsonl(gcs.bucket(bucket_name).blob(blob_name).download_as_text(), jsonl_uri, max_examples)
    set_media_resolution(examples, media_resolution)
    return examples


def evaluate_tuned(client, tuned_endpoint, examples, classes, thinking_sent, max_output_tokens, concurrency):
    """(results, classes, figures, errors) of the tuned endpoint asked every example; fails
    only when every request failed. Answers may name defect types the labels lack:
    score_answers adds them to ``classes``."""
    answers = ask_all(client, tuned_endpoint, examples, thinking_sent, max_output_tokens, concurrency, "tuned")
    errors = [answer.error for answer in answers if answer.failed]
    if len(errors) == len(examples):
        raise RuntimeError(f"All {len(examples)} requests to {tuned_endpoint} failed; first error: {errors[0]}")
    results, classes = score_answers(examples, answers, classes)
    return results, classes, summarize_results(results), errors


def evaluate_base(project, location, base_model, examples, classes, max_output_tokens, concurrency):
    """(figures or None, classes, note) of the base model asked the same questions; None
    when it cannot be reached (the note says why)."""
    base_client = genai_client(project, location)  # base models answer in the run's region
    base_answers, base_note = ask_base_model(base_client, base_model, examples, max_output_tokens, concurrency)
    base = None
    if base_answers is not None:
        base_results, classes = score_answers(examples, base_answers, classes)
        base = summarize_results(base_results)
    print(base_note, flush=True)
    return base, classes, base_note


def write_metric_artifacts(metrics, classification_metrics, figures, results, classes, details):
    """Logs the scalar metrics and the confusion matrix, each also as JSON at its artifact's
    path (``details`` added to the metrics'); returns (categories, matrix)."""
    for name, value in figures.items():
        metrics.log_metric(name, value)
    write_json(metrics.path, {"metrics": figures, **details}, indent=2)
    categories, matrix = confusion_matrix(results, classes)
    classification_metrics.log_confusion_matrix(categories, matrix)
    write_json(classification_metrics.path, {"categories": categories, "matrix": matrix})
    return categories, matrix


def report_run_info(
    run_name, dataset_uri, base_model, thinking, thinking_sent, media_resolution, test_jsonl_uri, predictions_uri
):
    """The run's details at the top of the report."""
    import time

    return {
        "run_id": run_name,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "data_source": dataset_uri or "synthesized images",
        "parameters": {
            "base_model": base_model,
            "thinking": f"{thinking} ({thinking_sent or 'none sent'})",
            "media_resolution": media_resolution or "default",
            "test set": test_jsonl_uri,
        },
        "predictions_uri": predictions_uri,
    }


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=EVAL_PACKAGES, install_kfp_package=False)
def evaluate_inspector(
    project: str,
    location: str,
    tuned_endpoint: str,
    test_jsonl_uri: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    predictions: Output[Dataset],
    base_model: str = "gemini-3.5-flash",
    evaluate_base_model: bool = False,
    concurrency: int = 16,
    max_examples: int = 0,
    max_output_tokens: int = 256,
    thinking: str = "least",
    metric_prefix: str = "eval_",
    run_name: str = "",
    dataset_uri: str = "",
    media_resolution: str = "",
) -> NamedTuple("Outputs", [("status_accuracy", float), ("defect_type_accuracy", float)]):
    """Evaluates the tuned inspector on every test example and reports the results.

    Each test line is a Gemini SFT example (``contents`` ending in the model turn that holds
    the expected label, optional ``systemInstruction``). Every turn before the final model
    turn (with its images' ``mediaResolution``, as tuned) is sent to ``tuned_endpoint``, at
    the location its name gives (a multi-region endpoint for Gemini 3 models), with
    temperature 0 and the least thinking the model allows by default (as Google advises for
    tuned models), ``concurrency`` requests at a time. A request that still fails
    after the client's retries is recorded as an empty (Unparseable) answer with its error;
    the component fails only when every request fails. Answers are scored with
    ``judge_answer`` against the defect types found in the test labels, so custom classes
    ("Dent", "Burr") work.

    Scalar metrics (distinct names, so Vertex AI Experiments can compare runs):
    ``eval_status_accuracy``, ``eval_defect_type_accuracy`` (the whole class, Pass or the
    defect type, is right), ``eval_exact_match``, ``eval_miss_rate`` (defect images
    answered "Status: Pass" / defect images), ``eval_overkill_rate`` (good images answered
    Defect / good images), ``eval_unparseable_rate``, ``eval_error_rate`` (requests that
    failed), ``eval_examples``; with ``evaluate_base_model`` and a reachable base model also
    ``base_eval_status_accuracy``, ``base_eval_defect_type_accuracy`` and
    ``eval_status_accuracy_gain`` (tuned minus base). A rate whose denominator is zero is
    not logged (Vertex AI's JSON has no NaN) and is shown as "n/a" in the report.

    Args:
        project: Google Cloud project of the Vertex AI endpoint and the bucket.
        location: Vertex AI region, e.g. "us-central1".
        tuned_endpoint: the tuned model's endpoint,
            "projects/P/locations/L/endpoints/ID".
        test_jsonl_uri: "gs://bucket/path/test.jsonl" in Gemini SFT format.
        metrics: output scalar metrics (also written as JSON at ``metrics.path`` so that
            KFP caching finds a file).
        classification_metrics: output confusion matrix over
            ["Pass", <defect types sorted>, "Unparseable"] (rows expected, columns
            predicted).
        report: output self-contained HTML report for a QC lead: headline figures,
            per-class precision/recall, confusion matrix and every example with a
            thumbnail.
        predictions: output CSV, one row per example: image_uri, expected, predicted,
            expected_class, predicted_class, status_correct, type_correct, exact_match,
            latency_ms, error, predicted_status.
        base_model: the base model the endpoint was tuned from, e.g. "gemini-3.5-flash"; it
            decides the thinking control, and ``evaluate_base_model`` asks it too.
        evaluate_base_model: also ask ``base_model`` the same questions. If it cannot be
            reached (locally there is no Gemini: 404), the report says so, the base
            metrics are skipped and the component still succeeds.
        concurrency: how many requests are in flight at once (at least 1). One shared
            client serves every thread over kept-alive connections (httpx keeps 20); the
            local server answers requests that arrive together in one batch.
        max_examples: evaluate only the first N test lines; 0 evaluates all of them.
        max_output_tokens: the answer length limit per request.
        thinking: what to send as thinking for ``base_model``, one parameter for every
            model (platform_facts.gemini.thinking_choices): "least" (the default: a
            budget of 0 for 2.5 Flash, 128 for 2.5 Pro, the lowest thinking level for
            Gemini 3), "dynamic", "none", a level (Gemini 3) or a budget (2.5). What is
            sent is printed; a control the model does not take fails before any request.
        metric_prefix: the scalar metrics' prefix instead of "eval_" (e.g. "golden_" for
            the golden-set evaluation), so two evaluations in one run log distinct names.
        run_name, dataset_uri: the run and its data source, named at the top of the report.
        media_resolution: the images' ``mediaResolution`` level as tuned ("", "low",
            "medium", "high"), set on every image part that has none.

    Returns:
        status_accuracy: share of examples whose Pass/Defect status is right.
        defect_type_accuracy: share of examples whose class (Pass or defect type) is right.
    """
    import logging
    import time
    from collections import namedtuple

    from google.cloud import storage

    started = time.monotonic()
    concurrency = max(1, int(concurrency))
    evaluation_records()  # makes the record types once, before worker threads use them

    gcs = storage.Client(project=project)
    examples = read_test_examples(gcs, test_jsonl_uri, media_resolution, max_examples)
    total = len(examples)
    classes = merge_defect_classes([], (example.expected for example in examples))
    thinking_sent = thinking_config_for(base_model, thinking)
    client = genai_client(project, endpoint_location(tuned_endpoint, location))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    print(
        f"Evaluating {tuned_endpoint} on {total} examples from {test_jsonl_uri} "
        f"(classes: {', '.join(classes) or 'none'}; concurrency {concurrency})",
        flush=True,
    )
    print(f"thinking {thinking!r} for {base_model}: sending {thinking_sent or 'no thinking config'}", flush=True)
    results, classes, tuned, errors = evaluate_tuned(
        client, tuned_endpoint, examples, classes, thinking_sent, max_output_tokens, concurrency
    )
    base, base_note = None, ""
    if evaluate_base_model:
        base, classes, base_note = evaluate_base(
            project, location, base_model, examples, classes, max_output_tokens, concurrency
        )

    figures = metric_values(tuned, base, total, metric_prefix)
    details = {"tuned_endpoint": tuned_endpoint, "test_jsonl_uri": test_jsonl_uri, "base_model_note": base_note}
    categories, matrix = write_metric_artifacts(metrics, classification_metrics, figures, results, classes, details)
    write_predictions_csv(predictions.path, results)
    predictions.metadata.update({"format": "csv", "rows": total})

    # Thumbnails only of the examples the report shows (mistakes first), fetched once the
    # answers are in: fetching all of them competed with the questions for the CPU.
    thumbs = fetch_thumbnails(gcs, [examples[i] for i in shown_examples(results)], concurrency)
    run_info = report_run_info(
        run_name, dataset_uri, base_model, thinking, thinking_sent, media_resolution, test_jsonl_uri, predictions.uri
    )
    write_text(
        report.path,
        render_report(
            tuned_endpoint=tuned_endpoint,
            test_jsonl_uri=test_jsonl_uri,
            classes=classes,
            results=results,
            tuned=tuned,
            failed=len(errors),
            base=base,
            base_model=base_model,
            base_note=base_note,
            base_requested=evaluate_base_model,
            categories=categories,
            matrix=matrix,
            thumbs=thumbs,
            run_info=run_info,
        ),
    )
    print(
        f"{summary_line(tuned, base, total, len(errors), evaluate_base_model)} ({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    outputs = namedtuple("Outputs", ["status_accuracy", "defect_type_accuracy"])
    return outputs(float(tuned.status_accuracy), float(tuned.defect_type_accuracy))

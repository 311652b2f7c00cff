"""Promotion gates (issue 35): a set without Pass and a defect class is refused at import; too
few test or golden images per class promote nothing and say why; a golden set too small is
never created; a run whose classes differ from its inspector's golden set never competes
against it; each imported data set has an inspector of its own; an equal challenger keeps the
champion (better beyond noise); rates without a denominator are "n/a"; the report names its run."""

import csv
import hashlib
import io
import json
import random

import pytest
from google.cloud import storage
from kfp import dsl

from components import champion as rules
from components.champion_store import inspector_name, list_champions, read_json_object, write_json_object
from components.decide_promotion import (
    accuracy_gain_lower_bound,
    decide_promotion,
    golden_rates,
    promotion_verdict,
    sample_size_problem,
)
from components.drawing import draw_product_image
from components.evaluation import (
    evaluation_records,
    metric_values,
    predictions_href,
    render_example_row,
    render_run_section,
    summary_line,
    thumbnail_uris,
)
from components.import_dataset import class_set_problem, import_dataset
from components.labels import LABELS, PROMPT
from components.prepare_golden_set import class_mismatch_problem, golden_shortfall, prepare_golden_set, row_class
from components.promote_champion import promote_champion
from tests.conftest import BUCKET, PROJECT

GOOD = {"status_accuracy": 1.0, "miss_rate": 0.0, "overkill_rate": 0.0, "defect_type_accuracy": 1.0, "examples": 20.0}


def champion(acc, miss=0.0, golden_id="g1", examples=20.0):
    return rules.champion_record(
        inspector="insp",
        run="r0",
        endpoint="projects/p/locations/l/endpoints/r0",
        model="projects/p/locations/l/models/r0@1",
        checkpoint_id="1",
        epoch=1,
        base_model="gemini-2.5-flash",
        prompt=PROMPT,
        system_instruction="",
        golden_id=golden_id,
        golden={**GOOD, "status_accuracy": acc, "miss_rate": miss, "examples": examples},
    )


def challenger(acc, miss=0.0, examples=20.0):
    return {**GOOD, "status_accuracy": acc, "miss_rate": miss, "examples": examples}


def bucket():
    return storage.Client(project=PROJECT).bucket("local-bucket")


# ---------------------------------------------------------------------------- 1. import: Pass and a defect class
def records(**counts):
    return [
        {"status": "Pass" if name == "Pass" else "Defect", "defect_type": "None" if name == "Pass" else name}
        for name, n in counts.items()
        for _ in range(n)
    ]


def test_a_set_needs_pass_and_a_defect_class():
    assert class_set_problem(records(Pass=3, Scratch=2)) is None
    only_pass = class_set_problem(records(Pass=10))
    assert only_pass.startswith("found only class Pass (10 images); an inspector needs Pass and at least one defect")
    assert "anomaly detection" in only_pass
    no_pass = class_set_problem(records(Scratch=4, Crack=2))
    assert "found only the classes Crack (2 images), Scratch (4 images)" in no_pass and "no Pass" in no_pass


def test_import_refuses_a_folder_of_good_parts_only_naming_what_it_found(local_stack, tmp_path):
    for i in range(4):
        data = io.BytesIO()
        draw_product_image(random.Random(700 + i), None).save(data, format="PNG")
        bucket().blob(f"gates/good-only/good/img{i}.png").upload_from_string(data.getvalue())
    manifest = dsl.Dataset(name="m", uri=str(tmp_path / "manifest.csv"), metadata={})
    with pytest.raises(ValueError) as caught:
        import_dataset.python_func(project=PROJECT, dataset_uri=f"{BUCKET}/gates/good-only/", manifest=manifest)
    message = str(caught.value)
    assert f"in {BUCKET}/gates/good-only/" in message and "found only class Pass (4 images)" in message
    assert not (tmp_path / "manifest.csv").exists()


# ---------------------------------------------------------------------------- 2. sample sizes
def check(test, golden, stored=True):
    return {
        "classes": sorted(set(test) | set(golden)),
        "test_counts": test,
        "golden_counts": golden,
        "golden_stored": stored,
    }


def test_the_default_run_meets_the_minimums_a_tiny_one_does_not():
    # make run: 200 images, 100 good, 3 defect types; the 80/10/10 split gives 10/4/3/3 test images.
    default = {"Pass": 10, "Scratch": 4, "Crack": 3, "Discoloration": 3}
    assert sample_size_problem(check(default, default), 3, 3) is None
    thin = sample_size_problem(check({"Pass": 10, "Crack": 1}, default), 3, 3)
    assert thin.startswith("too few test images to judge: Crack 1, Discoloration 0, Scratch 0 (min_test_per_class=3")
    few_golden = sample_size_problem(check(default, {**default, "Crack": 2}), 3, 3)
    assert "too few golden-set images to judge: Crack 2" in few_golden
    none_yet = sample_size_problem(check({"Pass": 1}, {}, stored=False), 3, 3)
    assert none_yet.startswith("there is no golden set yet") and "a run with more images creates it" in none_yet


# ---------------------------------------------------------------------------- 6. better beyond noise
def test_an_equal_challenger_keeps_the_champion():
    promote, reason = promotion_verdict(challenger(0.95), champion(0.95), "g1", 0.9, 0.1, 0.02)
    assert promote is False and "not better than the champion by the margin 2.0%" in reason
    promote, reason = promotion_verdict(challenger(0.95), champion(0.95), "g1", 0.9, 0.1, 0.0)
    assert promote is False and "not better beyond noise" in reason


def test_a_gain_must_be_beyond_noise_for_the_golden_set_size():
    # One more right answer out of 20 is noise; out of 2,000 (0.95 -> 1.0) it is not.
    assert promotion_verdict(challenger(1.0), champion(0.95), "g1", 0.9, 0.1, 0.02)[0] is False
    promote, reason = promotion_verdict(challenger(1.0, examples=2000), champion(0.95), "g1", 0.9, 0.1, 0.02)
    assert promote is True and reason.startswith("better beyond noise")
    assert accuracy_gain_lower_bound(0.9, 0.9, 1000) < 0 < accuracy_gain_lower_bound(0.99, 0.9, 1000)
    assert accuracy_gain_lower_bound(1.0, 0.5, 20) > 0 > accuracy_gain_lower_bound(1.0, 0.9, 20)


def test_more_misses_keep_the_champion_and_thresholds_still_apply():
    promote, reason = promotion_verdict(challenger(1.0, miss=0.05, examples=2000), champion(0.9), "g1", 0.9, 0.1, 0.0)
    assert promote is False and "miss rate 5.0% is higher than the champion's 0.0%" in reason
    assert "below the minimum" in promotion_verdict(challenger(0.8), None, "g1", 0.9, 0.1, 0.02)[1]
    assert "cannot be measured" in promotion_verdict({**challenger(1.0), "miss_rate": None}, None, "g1", 0.9, 0.1, 0)[1]


def test_no_champion_a_retired_one_or_another_golden_set_leaves_the_thresholds():
    assert promotion_verdict(challenger(0.95), None, "g1", 0.9, 0.1, 0.02) == (
        True,
        "no champion yet; the challenger meets the thresholds (status accuracy 95.0%, miss rate 0.0%)",
    )
    promote, reason = promotion_verdict(challenger(0.95), champion(1.0), "g1", 0.9, 0.1, 0.02, champion_valid=False)
    assert promote is True and "is retired and counts as absent" in reason
    assert (
        "another golden set" in promotion_verdict(challenger(0.95), champion(1.0, golden_id="g0"), "g1", 0.9, 0.1, 0)[1]
    )


# ---------------------------------------------------------------------------- 5. n/a, not 0 %
def test_rates_without_a_denominator_are_not_logged_and_read_as_na():
    R = evaluation_records()
    only_good = R.Summary(1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, defects=0, passes=3)
    figures = metric_values(only_good, None, 3, "golden_")
    assert "golden_miss_rate" not in figures and figures["golden_overkill_rate"] == 0.0
    assert "miss rate n/a (no defect images)" in summary_line(only_good, None, 3, 0, False)
    rates = golden_rates(figures)
    assert "miss_rate" not in rates and "| miss rate (defects passed) | n/a | n/a |" in rules.comparison_table(
        rates, None
    )
    assert "miss_rate" not in golden_rates({**figures, "golden_miss_rate": float("nan")})


# ---------------------------------------------------------------------------- 4. one inspector per data source
def test_an_imported_data_set_has_an_inspector_of_its_own():
    assert inspector_name("visual-defect-inspector", "") == "visual-defect-inspector"
    assert inspector_name("visual-defect-inspector", "gs://local-bucket/datasets/photos/") == (
        "visual-defect-inspector-photos"
    )
    assert inspector_name("visual-defect-inspector", "gs://b/sets/Line 2.csv") == "visual-defect-inspector-line-2"
    assert inspector_name("gearbox", "gs://b/datasets/photos/") == "gearbox"  # a name you set is kept
    assert inspector_name("", "") == "visual-defect-inspector"


def test_class_sets_that_differ_are_named_with_the_fix():
    assert class_mismatch_problem(["Pass", "Crack"], {"Crack": 3, "Pass": 9}, "i", "src") is None
    problem = class_mismatch_problem(["Pass", "Scratch", "Stain"], ["Pass", "Discoloration"], "insp", "gs://x")
    assert "this run's classes (Pass, Scratch, Stain) differ from those of inspector insp's golden set" in problem
    assert "(Discoloration, Pass, gs://x)" in problem and "tuned_model_display_name" in problem
    assert row_class({"label": LABELS["Crack"]}) == "Crack" and row_class({"status": "Pass"}) == "Pass"
    assert golden_shortfall({"Pass": 5, "Crack": 2}, ["Pass", "Crack", "Scratch"], 3) == {"Crack": 2, "Scratch": 0}


# ---------------------------------------------------------------------------- storage steps: golden set and decision
@pytest.fixture(scope="module")
def rows(local_stack):
    """30 distinct images (Pass, Scratch, Crack in turn) in the storage, as manifest rows."""
    out = []
    for i in range(30):
        kind = [None, "Scratch", "Crack"][i % 3]
        data = io.BytesIO()
        draw_product_image(random.Random(900 + i), kind).save(data, format="PNG")
        bucket().blob(f"gates/img{i}.png").upload_from_string(data.getvalue(), content_type="image/png")
        out.append(
            {
                "image_name": f"img{i}.png",
                "gcs_uri": f"gs://local-bucket/gates/img{i}.png",
                "status": "Defect" if kind else "Pass",
                "defect_type": kind or "None",
                "label": LABELS[kind],
                "sha256": hashlib.sha256(data.getvalue()).hexdigest(),
            }
        )
    return out


def dataset(path, items):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(items[0]) if items else ["gcs_uri", "label", "sha256"])
        writer.writeheader()
        writer.writerows(items)
    return dsl.Dataset(name=path.stem, uri=str(path), metadata={})


def golden_step(tmp_path, name, train, validation, test, **kwargs):
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = {
        key: dsl.Dataset(name=key, uri=str(tmp_path / f"{key}.csv"), metadata={})
        for key in ("train_without_golden", "validation_without_golden", "golden_manifest")
    }
    metrics = dsl.Metrics(name="g", uri=str(tmp_path / "g"), metadata={})
    result = prepare_golden_set.python_func(
        project=PROJECT,
        bucket=BUCKET,
        prompt=PROMPT,
        train_manifest=dataset(tmp_path / "train.csv", train),
        validation_manifest=dataset(tmp_path / "validation.csv", validation),
        test_manifest=dataset(tmp_path / "test.csv", test),
        golden_metrics=metrics,
        tuned_model_display_name=name,
        run_name="run-g",
        **out,
        **kwargs,
    )
    return result, metrics.metadata


def test_a_golden_set_too_small_is_never_created_the_next_run_with_enough_creates_it(rows, tmp_path, capsys):
    name = "gates-small"
    first, m1 = golden_step(tmp_path / "1", name, rows[:20], rows[20:23], rows[23:26])  # 1 image a class
    assert first.golden_id == "" and m1["golden_set_created"] == 0 and m1["golden_set_examples"] == 0
    assert bucket().get_blob(f"inspectors/{name}/golden/manifest.csv") is None
    check1 = json.loads(first.golden_check)
    assert check1["golden_stored"] is False and check1["test_counts"] == {"Pass": 1, "Scratch": 1, "Crack": 1}
    assert "no golden set created" in capsys.readouterr().out
    second, m2 = golden_step(tmp_path / "2", name, rows[:18], rows[18:21], rows[21:30])  # 3 a class
    assert second.golden_id and m2["golden_set_created"] == 1 and m2["golden_set_examples"] == 9
    assert json.loads(second.golden_check)["golden_counts"] == {"Pass": 3, "Scratch": 3, "Crack": 3}


def test_a_run_with_other_classes_never_competes_against_the_golden_set(rows, tmp_path):
    name = "gates-classes"
    golden_step(tmp_path / "1", name, rows[:18], rows[18:21], rows[21:30], min_golden_per_class=1)
    no_crack = [r for r in rows if r["defect_type"] != "Crack"]
    with pytest.raises(ValueError, match=r"this run's classes \(Pass, Scratch\) differ from those of inspector"):
        golden_step(tmp_path / "2", name, no_crack[:14], no_crack[14:16], no_crack[16:20], min_golden_per_class=1)
    # The same classes from an imported data set with the default name: an inspector of its own.
    result, m = golden_step(
        tmp_path / "3",
        "visual-defect-inspector",
        no_crack[:14],
        no_crack[14:16],
        no_crack[16:20],
        dataset_uri="gs://local-bucket/datasets/gates-photos/",
        min_golden_per_class=1,
    )
    assert m["golden_set_created"] == 1 and json.loads(result.golden_check)["inspector"] == (
        "visual-defect-inspector-gates-photos"
    )
    assert bucket().get_blob("inspectors/visual-defect-inspector-gates-photos/golden/manifest.csv") is not None


def decide(tmp_path, run, acc, golden_check="", **kwargs):
    golden = dsl.Metrics(
        name="golden",
        uri=str(tmp_path / f"golden-{run}"),
        metadata={f"golden_{k}": v for k, v in challenger(acc).items()},
    )
    record_file = tmp_path / f"decision-{run}.json"
    report = dsl.Markdown(name="r", uri=str(tmp_path / f"report-{run}.md"), metadata={})
    decision = decide_promotion.python_func(
        project=PROJECT,
        bucket=BUCKET,
        golden_metrics=golden,
        golden_id=kwargs.pop("golden_id", "g1"),
        challenger_endpoint=f"projects/p/locations/l/endpoints/{run}",
        decision_metrics=dsl.Metrics(name="d", uri=str(tmp_path / f"d-{run}"), metadata={}),
        decision_report=report,
        decision_record=str(record_file),
        run_name=run,
        challenger_model=f"projects/p/locations/l/models/{run}@1",
        golden_check=golden_check,
        **kwargs,
    )
    return decision, json.loads(record_file.read_text()), (tmp_path / f"report-{run}.md").read_text()


def test_too_few_examples_promote_nothing_and_say_why(local_stack, tmp_path):
    thin = json.dumps(check({"Pass": 10, "Crack": 1}, {"Pass": 10, "Crack": 3}))
    decision, record, report = decide(tmp_path, "thin", 1.0, thin, tuned_model_display_name="gates-thin")
    assert decision == "keep" and record["reason"].startswith("too few test images to judge: Crack 1")
    assert record["thresholds"]["min_test_per_class"] == 3 and "**Decision: keep.** Too few test images" in report
    stored, _ = read_json_object(bucket(), "inspectors/gates-thin/runs/thin/decision.json")
    assert stored["reason"] == record["reason"]


def test_a_data_set_run_is_decided_and_promoted_in_its_own_inspector(local_stack, tmp_path):
    enough = json.dumps(check({"Pass": 10, "Crack": 3}, {"Pass": 10, "Crack": 3}))
    uri = "gs://local-bucket/datasets/gates-parts/"
    decision, record, _ = decide(tmp_path, "own", 0.95, enough, dataset_uri=uri)
    assert decision == "promote" and record["inspector"] == "visual-defect-inspector-gates-parts"
    outcome = promote_champion.python_func(
        project=PROJECT, location="us-central1", bucket=BUCKET, decision_record=json.dumps(record), run_name="own"
    )
    assert outcome == "promoted"
    stored, _ = read_json_object(bucket(), "inspectors/visual-defect-inspector-gates-parts/champion.json")
    assert stored["run"] == "own" and list_champions(bucket())[-1]["run"] == "own"
    # The same figures the next night: an equal challenger keeps the champion.
    decision, record, _ = decide(tmp_path, "again", 0.95, enough, dataset_uri=uri, golden_id=stored["golden_id"])
    assert decision == "keep" and "not better than the champion" in record["reason"]


def test_a_champion_on_a_retired_base_model_counts_as_absent(local_stack, tmp_path):
    """Issue 30: a tuned model stops answering with its base model, so a challenger that
    meets the thresholds takes over from a better champion tuned on gemini-2.5-flash."""
    enough = json.dumps(check({"Pass": 10, "Crack": 3}, {"Pass": 10, "Crack": 3}))
    uri = "gs://local-bucket/datasets/gates-retired/"
    decide(tmp_path, "old", 1.0, enough, dataset_uri=uri, base_model="gemini-3.5-flash")
    inspector = "visual-defect-inspector-gates-retired"
    record, _ = read_json_object(bucket(), f"inspectors/{inspector}/runs/old/decision.json")
    promote_champion.python_func(
        project=PROJECT, location="us-central1", bucket=BUCKET, decision_record=json.dumps(record), run_name="old"
    )
    stored, generation = read_json_object(bucket(), f"inspectors/{inspector}/champion.json")
    write_json_object(bucket(), f"inspectors/{inspector}/champion.json", {**stored, "base_model": "gemini-2.5-flash"})
    decision, record, _ = decide(tmp_path, "new", 0.95, enough, dataset_uri=uri, golden_id=stored["golden_id"])
    assert decision == "promote" and "is retired and counts as absent" in record["reason"]
    assert "gemini-2.5-flash was retired on 2026-06-17" in record["reason"]


# ---------------------------------------------------------------------------- 8. the report
def test_the_report_names_its_run_links_the_predictions_and_shows_large_thumbnails():
    from PIL import Image

    head = render_run_section(
        {
            "run_id": "run-<1>",
            "date": "2026-11-30 02:00 UTC",
            "data_source": "gs://b/datasets/<photos>/",
            "parameters": {"epoch_count": 5, "label_template": "<b>{defect_type}</b>"},
            "predictions_uri": "gs://b/runs/1/predictions",
        }
    )
    assert "run-&lt;1&gt;" in head and "2026-11-30 02:00 UTC" in head and "gs://b/datasets/&lt;photos&gt;/" in head
    assert "&lt;b&gt;{defect_type}&lt;/b&gt;" in head and "<b>" not in head
    assert 'href="https://storage.cloud.google.com/b/runs/1/predictions"' in head
    assert predictions_href("/tmp/x/predictions") == "predictions.csv"
    assert "synthesized images" in render_run_section(None)
    small, full = thumbnail_uris(Image.new("RGB", (400, 300)))
    decoded = Image.open(io.BytesIO(__import__("base64").b64decode(small.split(",", 1)[1])))
    assert decoded.size == (160, 120) and full != small
    R = evaluation_records()
    result = R.Result(
        image_uri="gs://b/1.png",
        expected="Status: Pass",
        predicted="Status: Pass",
        expected_class="Pass",
        predicted_class="Pass",
        status_correct=True,
        type_correct=True,
        exact_match=True,
        latency_ms=1.0,
        error="",
        predicted_status="Pass",
        failed=False,
    )
    row = render_example_row(1, result, (small, full))
    assert f'<a href="{full}" target="_blank"' in row and f'src="{small}"' in row


@pytest.mark.parametrize(
    "figures, decision, verdict",
    [
        ({"eval_examples": 1, "eval_status_accuracy": 1.0, "eval_defect_type_accuracy": 1.0}, None, "unjudged"),
        (
            {"eval_examples": 40, "eval_status_accuracy": 1.0, "eval_defect_type_accuracy": 1.0},
            {"reason": "too few test images to judge: Crack 1"},
            "unjudged",
        ),
        ({"eval_examples": 40, "eval_status_accuracy": 1.0, "eval_defect_type_accuracy": 0.97}, None, "ready"),
        ({"eval_examples": 40, "eval_status_accuracy": 0.9, "eval_defect_type_accuracy": 0.97}, None, "not ready"),
    ],
)
def test_the_summary_never_calls_one_image_ready(figures, decision, verdict):
    """Issue 35: a one-class set scored 100 % on one test image and was called ready."""
    from components.summarize_run import readiness

    found, sentence = readiness(figures, decision)
    assert found == verdict, sentence
    assert ("ready for" in sentence) == (verdict == "ready")

"""The pure parts of the components, alone: no bucket, no model, no KFP artifact I/O."""

import csv
import io
from types import SimpleNamespace

import pytest

from components.decide_promotion import decision_report_text, figures_on_test_split, promotion_outcome
from components.evaluate_inspector import report_run_info
from components.prepare_golden_set import find_golden_set, golden_manifest_text
from components.select_checkpoint import checkpoint_row, selection_reason, selection_without_scoring
from components.split_manifest import (
    apportion,
    check_split_fractions,
    manifest_to_split,
    split_class,
    split_metric_slug,
    stratified_split,
)
from components.summarize_run import decision_sentence, summary_prompt, template_summary, tokens_line
from components.synthesize_images import balanced_classes, synthesis_plan, synthesized_row, unique_digest

THRESHOLDS = {
    "min_status_accuracy": 0.9,
    "max_miss_rate": 0.1,
    "promotion_margin": 0.02,
    "min_test_per_class": 3,
    "min_golden_per_class": 3,
}


def rows_of(classes):
    """Manifest rows: one image per entry of ``{class: count}`` ("Pass" or a defect type)."""
    rows = []
    for name, count in classes.items():
        for i in range(count):
            status, kind = ("Pass", "None") if name == "Pass" else ("Defect", name)
            rows.append({"gcs_uri": f"gs://b/{name}-{i}.png", "label": name, "status": status, "defect_type": kind})
    return rows


# split_manifest


def test_apportion_shares_by_largest_remainder():
    assert apportion(4, {"Pass": 20, "Crack": 10, "Dent": 10}) == {"Pass": 2, "Crack": 1, "Dent": 1}
    assert apportion(1, {"a": 1, "b": 1}) == {"a": 1, "b": 0}  # ties: by name
    assert sum(apportion(7, {"a": 3, "b": 5, "c": 9}).values()) == 7


def test_the_split_hits_its_targets_and_every_class_keeps_a_training_image():
    rows = rows_of({"Pass": 20, "Crack": 10, "Dent": 10})
    splits, counts = stratified_split(rows, 0.8, 0.1, seed=42)
    assert {k: len(v) for k, v in splits.items()} == {"train": 32, "validation": 4, "test": 4}
    assert counts[("validation", "Pass")] == 2 and counts[("test", "Crack")] == 1
    assert stratified_split(rows, 0.8, 0.1, seed=42) == (splits, counts)  # a pure function of the seed
    tiny, _ = stratified_split(rows_of({"Pass": 1, "Crack": 1}), 0.5, 0.25, seed=1)
    assert len(tiny["train"]) == 2


def test_identical_images_land_in_one_split():
    rows = [dict(row, sha256=f"h{i // 2}") for i, row in enumerate(rows_of({"Pass": 20}))]
    splits, _ = stratified_split(rows, 0.6, 0.2, seed=3)
    where = {row["sha256"]: name for name, part in splits.items() for row in part}
    assert all(where[row["sha256"]] == name for name, part in splits.items() for row in part)


def test_the_split_class_and_metric_names():
    assert split_class({"status": "Defect", "defect_type": "Crack", "label": "x"}) == "Crack"
    assert split_class({"status": "Pass", "label": "x"}) == "Pass"
    assert split_class({"label": "Status: Pass"}) == "Status: Pass"
    assert split_metric_slug("Hair line / crack") == "hair_line_crack"


def write_csv(path, fields, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_the_manifest_with_rows_is_split(tmp_path):
    empty = write_csv(tmp_path / "empty.csv", ["gcs_uri", "label"], [])
    rows = [{"extra": "1", "label": "Pass", "gcs_uri": "gs://b/1.png"}]
    imported = write_csv(tmp_path / "imported.csv", ["extra", "label", "gcs_uri"], rows)
    fields, found = manifest_to_split(empty, imported)
    assert fields == ["gcs_uri", "label", "extra"] and found == rows
    with pytest.raises(ValueError, match="not both"):
        manifest_to_split(imported, imported)
    with pytest.raises(ValueError, match="no rows"):
        manifest_to_split(empty, empty)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['label'\]"):
        manifest_to_split(write_csv(tmp_path / "bad.csv", ["gcs_uri"], [{"gcs_uri": "gs://b/1.png"}]))


@pytest.mark.parametrize(("train", "validation"), [(0, 0.1), (1.1, 0), (0.8, 0.3), (0.8, -0.1)])
def test_fractions_out_of_range_are_refused(train, validation):
    with pytest.raises(ValueError, match="need 0 < train_fraction <= 1"):
        check_split_fractions(train, validation)


# synthesize_images


def test_classes_are_exactly_balanced_in_a_seeded_order():
    classes = balanced_classes(10, 0.6, 7, ["Scratch", "Crack", "Discoloration"])
    assert sorted(map(str, classes)) == sorted(["Scratch"] * 2 + ["Crack"] * 2 + ["Discoloration"] * 2 + ["None"] * 4)
    assert balanced_classes(10, 0.6, 7, ["Scratch", "Crack", "Discoloration"]) == classes
    assert balanced_classes(10, 0.6, 8, ["Scratch", "Crack", "Discoloration"]) != classes


def test_the_plan_names_the_folder_by_what_decides_its_content():
    plan = synthesis_plan("p", "gs://bkt/", 20, 0.5, 3, "photo", "/images/", 8, cores=16)
    assert plan["bucket_name"] == "bkt" and plan["folder"] == "images/photo-seed3-n20-defects0.5"
    assert (plan["processes"], plan["lanes"], plan["threads"]) == (1, 2, 4)  # under 1,000 images: threads
    big = synthesis_plan("p", "gs://bkt", 5000, 0.5, 3, "standard", "images", 8, cores=2)
    assert (big["processes"], big["lanes"], big["threads"]) == (2, 2, 4)
    assert synthesis_plan("p", "gs://bkt", 20, 0.5, 3, "photo", "images", 500, cores=1)["workers"] == 64


def test_a_manifest_row_says_the_class_and_label():
    plan = synthesis_plan("p", "gs://bkt", 2, 1.0, 3, "standard", "images", 8, cores=1)
    row = synthesized_row(plan, 1, "ab")
    assert row["gcs_uri"] == "gs://bkt/images/standard-seed3-n2-defects1/product_image_1.png"
    assert row["status"] == "Defect" and row["defect_type"] == plan["classes"][1]
    assert row["label"] == plan["labels"][plan["classes"][1]] and row["sha256"] == "ab"


def test_a_duplicate_image_is_redrawn_and_uploaded_again(monkeypatch):
    import components.synthesize_images as module

    uploads = []

    class Bucket:
        def blob(self, name):
            return SimpleNamespace(upload_from_string=lambda data, content_type: uploads.append((name, data)))

    monkeypatch.setattr(module, "render_png", lambda seed, index, attempt, *_: (b"png", bytes([attempt])))
    monkeypatch.setattr(module, "storage_client", lambda project: SimpleNamespace(bucket=lambda name: Bucket()))
    plan = synthesis_plan("p", "gs://bkt", 2, 0.0, 3, "standard", "images", 8, cores=1)
    seen, own_client = {b"\x00"}, []
    assert unique_digest(plan, seen, own_client, 1, b"\x09") == "09"  # new: kept as it is
    assert unique_digest(plan, seen, own_client, 1, b"\x00") == "01"  # a duplicate: the first redraw
    assert uploads == [(f"{plan['folder']}/product_image_1.png", b"png")] and len(own_client) == 1


# select_checkpoint


def test_without_checkpoints_or_validation_nothing_is_scored():
    listed = [
        {"checkpointId": "1", "epoch": 1, "step": 5, "endpoint": "e1"},
        {"checkpointId": "2", "epoch": 2, "step": 10, "endpoint": "e2"},
    ]
    assert selection_without_scoring([], "tuned", 3, "gs://b/v.jsonl")[:3] == ("tuned", "", 3)
    assert selection_without_scoring(listed, "tuned", 3, "")[:3] == ("e2", "2", 2)
    assert selection_without_scoring(listed, "tuned", 3, "gs://b/v.jsonl") is None


def test_a_checkpoints_row_and_the_reason_for_the_choice():
    figures = SimpleNamespace(
        status_accuracy=0.91234567, miss_rate=0.05, overkill_rate=0.1, defect_type_accuracy=0.8, error_rate=0.0
    )
    row = checkpoint_row({"checkpointId": 7, "epoch": "2", "endpoint": "e"}, figures, 40)
    assert row["checkpoint_id"] == "7" and row["epoch"] == 2 and row["step"] == 0
    assert row["status_accuracy"] == 0.912346 and row["examples"] == 40
    reason = selection_reason(row, "it is the last", 3, 40)
    assert reason.startswith("Checkpoint 7 (epoch 2 of 3 scored) is the challenger: it is the last.")
    assert "status accuracy 91.2%, miss rate 5.0%" in reason


# decide_promotion


def test_nothing_is_promoted_without_a_golden_set_or_on_too_few_images():
    challenger = {"status_accuracy": 1.0, "miss_rate": 0.0, "examples": 30}
    assert promotion_outcome(challenger, None, "", None, THRESHOLDS) == (False, "there is no golden set to judge on")
    check = {"classes": ["Pass"], "test_counts": {"Pass": 1}, "golden_counts": {"Pass": 5}, "golden_stored": True}
    promote, reason = promotion_outcome(challenger, None, "g1", check, THRESHOLDS)
    assert not promote and reason.startswith("too few test images to judge")


def test_the_decision_figures_and_report():
    metrics = SimpleNamespace(metadata={"eval_status_accuracy": 0.9, "eval_examples": 10, "golden_x": 1, "eval_n": "x"})
    assert figures_on_test_split(metrics) == {"status_accuracy": 0.9, "examples": 10.0}
    assert figures_on_test_split(None) == {}
    text = decision_report_text({"status_accuracy": 0.95}, None, "keep", "below the bar", "g1", THRESHOLDS, "insp")
    assert "**Decision: keep.** Below the bar." in text
    assert "status accuracy at least 90.0%" in text and "Inspector `insp`" in text


# summarize_run


def test_the_decision_in_one_sentence():
    assert decision_sentence(None) == ""
    assert decision_sentence({"decision": "promote", "reason": "it is better"}) == (
        "Promotion decision: promote the challenger to champion, because it is better."
    )
    keep = {"decision": "keep", "reason": "r", "champion": {"run": "run-1"}}
    assert "keep the champion from run run-1" in decision_sentence(keep)
    assert "there is no champion yet" in decision_sentence({"decision": "keep", "reason": "r", "champion": None})


def test_the_template_summary_names_the_figures_and_why_gemini_did_not_write_it():
    figures = {"eval_status_accuracy": 0.5, "eval_examples": 4}
    text, source = template_summary(
        "projects/p/tuningJobs/9", "gemini-x", "insp", figures, None, ValueError("x " * 200)
    )
    assert text.startswith("Tuning job 9 of gemini-x succeeded; the tuned inspector 'insp' scored 50.0% status")
    assert "n/a defect-type accuracy on 4 test images" in text
    assert source.startswith("template (Gemini unavailable: ValueError: x x") and source.endswith("…)")


def test_the_prompt_refuses_a_readiness_claim_on_few_images():
    prompt = summary_prompt("job", "base", "insp", "ep", {"eval_examples": 2}, {}, None, None)
    assert "Do not call it ready: readiness cannot be judged on 2 test image(s)" in prompt
    assert prompt.endswith("manufacturing defect analysis task.")


def test_the_tokens_line():
    assert tokens_line({}, {}) == ""
    assert tokens_line({"train_estimated_tokens": 1000, "train_estimated_cost_usd": 2.5}, {}) == (
        "Training tokens: 1,000 estimated before launch; estimated cost $2.50."
    )
    assert tokens_line({}, {"train_billable_token_count": 12}) == (
        "Training tokens: not estimated, 12 billed by Vertex AI (totalBillableTokenCount)."
    )


# prepare_golden_set and evaluate_inspector


def test_the_golden_manifest_puts_its_key_columns_first():
    text = golden_manifest_text([{"z": "1", "label": "Pass", "sha256": "h", "gcs_uri": "gs://b/1.png", "a": "2"}])
    assert next(csv.reader(io.StringIO(text))) == ["gcs_uri", "label", "sha256", "a", "z"]


def test_a_test_split_too_small_stands_in_unstored(capsys):
    home = SimpleNamespace(name="bkt", get_blob=lambda path: None)  # no golden set stored yet
    paths = {"golden_manifest": "inspectors/i/golden/manifest.csv"}
    test_rows = rows_of({"Pass": 3, "Crack": 1})
    golden, created, stored, source = find_golden_set(None, home, paths, "", test_rows, ["Crack", "Pass"], 3, "run")
    assert (golden, created, stored) == (test_rows, 0, False)
    assert source.endswith("min_golden_per_class=3 images of Crack (1)")
    assert "nothing will be promoted" in capsys.readouterr().out
    with pytest.raises(ValueError, match="test split is empty"):
        find_golden_set(None, home, paths, " ", [], ["Pass"], 3, "run")


def test_the_reports_run_details():
    info = report_run_info("run-1", "", "base", "least", {}, "", "gs://b/t.jsonl", "gs://b/p.csv")
    assert info["data_source"] == "synthesized images" and info["predictions_uri"] == "gs://b/p.csv"
    assert info["parameters"] == {
        "base_model": "base",
        "thinking": "least (none sent)",
        "media_resolution": "default",
        "test set": "gs://b/t.jsonl",
    }

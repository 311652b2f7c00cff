"""The nightly loop's rules (components/champion.py) and its storage steps, against the local storage:
golden set, cost guard, decision, atomic promotion (two racing runs), checkpoint choice, summary."""

import csv
import json
import threading

import pytest
import yaml
from google.cloud import storage
from kfp import dsl

from components import champion as rules
from components import checkpoints, cost
from components.champion_store import list_json_objects, read_json_object, replace_champion, write_json_object
from components.check_tuning_cost import check_tuning_cost
from components.decide_promotion import decide_promotion
from components.drawing import draw_product_image
from components.labels import PROMPT
from components.prepare_golden_set import prepare_golden_set
from components.promote_champion import promote_champion, set_champion_alias
from components.select_checkpoint import select_checkpoint
from components.summarize_run import summarize_run
from pipeline.pipeline import COMPILED_YAML
from platform_facts import gemini
from tests.conftest import BUCKET, PROJECT

GOOD = {"status_accuracy": 1.0, "miss_rate": 0.0, "overkill_rate": 0.0, "defect_type_accuracy": 1.0, "examples": 4.0}


def figures(acc, miss=0.0, **rest):
    return {**GOOD, "status_accuracy": acc, "miss_rate": miss, **rest}


def record(run, acc=1.0, miss=0.0, golden_id="g1", **rest):
    return rules.champion_record(
        inspector="insp",
        run=run,
        endpoint=f"projects/p/locations/l/endpoints/{run}",
        model=f"projects/p/locations/l/models/{run}@1",
        checkpoint_id="2",
        epoch=2,
        base_model="gemini-3.5-flash",
        prompt=PROMPT,
        system_instruction="",
        golden_id=golden_id,
        golden=figures(acc, miss),
        **rest,
    )


def metrics(tmp_path, name, values=None):
    return dsl.Metrics(name=name, uri=str(tmp_path / name), metadata=dict(values or {}))


def bucket():
    return storage.Client(project=PROJECT).bucket("local-bucket")


def test_champion_record_round_trip_and_checks():
    entry = record("r1", test={"status_accuracy": 1.0})
    assert rules.check_champion_record(json.loads(json.dumps(entry))) == entry
    assert set(rules.champion_fields()) == set(entry)
    with pytest.raises(ValueError, match="lacks golden_id"):
        rules.check_champion_record({k: v for k, v in entry.items() if k != "golden_id"})
    with pytest.raises(ValueError, match="names no endpoint"):
        rules.check_champion_record({**entry, "endpoint": " "})
    table = rules.comparison_table(figures(0.75, miss=0.5), entry)
    assert "| status accuracy | 100.0% | 75.0% |" in table and "champion (run r1, epoch 2)" in table
    assert "champion (none yet)" in rules.comparison_table(figures(0.75), None)


def test_state_is_kept_per_inspector():
    a, b = rules.inspector_paths("Visual Defect Inspector"), rules.inspector_paths("gearbox-line-2")
    assert a["champion"] == "inspectors/visual-defect-inspector/champion.json"
    assert b["golden_manifest"] == "inspectors/gearbox-line-2/golden/manifest.csv"
    assert rules.run_object("x", "run/1", "decision.json") == "inspectors/x/runs/run-1/decision.json"
    assert (
        rules.history_object("x", "2026-11-22T03:04:05.000006Z", "r1")
        == "inspectors/x/history/20261122T030405000006Z-r1.json"
    )
    with pytest.raises(ValueError):
        rules.inspector_slug("///")


# ---------------------------------------------------------------------------- checkpoints
def scored(checkpoint_id, epoch, acc, miss=0.0, error=0.0, step=None):
    return {
        "checkpoint_id": checkpoint_id,
        "epoch": epoch,
        "step": step or epoch * 10,
        "status_accuracy": acc,
        "miss_rate": miss,
        "overkill_rate": 0.0,
        "defect_type_accuracy": acc,
        "error_rate": error,
        "endpoint": f"e{checkpoint_id}",
    }


def test_a_tie_on_a_small_validation_set_keeps_the_last_checkpoint():
    """Issue 33: epochs 2 and 4 tied at 87.5 % on 24 images and the earlier, worse one shipped."""
    rows = [scored("2", 2, 0.875), scored("4", 4, 0.875)]
    # The same score from different mistakes: 3 wins each way is noise.
    correct = {"2": [True] * 18 + [True] * 3 + [False] * 3, "4": [True] * 18 + [False] * 3 + [True] * 3}
    best, why = checkpoints.choose_checkpoint(rows, correct)
    assert best["checkpoint_id"] == "4" and "no earlier checkpoint was better beyond noise" in why
    # The old rule (best accuracy, ties to the earlier epoch) picked 2; a 1-image lead is noise too.
    rows = [scored("2", 2, 0.917), scored("4", 4, 0.875)]
    correct["2"] = [True] * 18 + [True] * 3 + [False] * 2 + [True]
    assert checkpoints.choose_checkpoint(rows, correct)[0]["checkpoint_id"] == "4"


def test_an_earlier_checkpoint_better_beyond_noise_is_chosen():
    rows = [scored("1", 1, 0.5), scored("2", 2, 0.95), scored("3", 3, 0.6)]
    correct = {"1": [True] * 50 + [False] * 50, "2": [True] * 95 + [False] * 5, "3": [True] * 60 + [False] * 40}
    best, why = checkpoints.choose_checkpoint(rows, correct)
    assert best["checkpoint_id"] == "2" and "beat the last checkpoint (epoch 3) beyond noise" in why
    assert checkpoints.sign_test_p(35, 0) < 1e-9 and checkpoints.sign_test_p(3, 3) == pytest.approx(0.65625)


def test_checkpoint_choice_skips_checkpoints_that_never_answered():
    rows = [scored("1", 1, 0.5), scored("2", 2, 0.75), scored("3", 3, 1.0, error=1.0)]
    best, why = checkpoints.choose_checkpoint(rows, {"1": [True, False], "2": [True, True]})
    assert best["checkpoint_id"] == "2" and why.startswith("the latest checkpoint that answered")
    with pytest.raises(ValueError, match="no checkpoint answered"):
        checkpoints.choose_checkpoint([scored("1", 1, 0.0, error=1.0)])
    names = checkpoints.checkpoint_metric_names(
        [scored("1", 1, 0.5), scored("2", 2, 0.5, step=15), scored("3", 2, 0.5, step=20)]
    )
    assert names == {"1": "ckpt_e1", "2": "ckpt_e2_s15", "3": "ckpt_e2_s20"}
    table = checkpoints.checkpoint_table(rows[:3], "3")
    assert table.splitlines()[-1].endswith("| **yes** |") and table.count("**yes**") == 1


def test_select_checkpoint_without_checkpoints_or_validation_set(tmp_path):
    def run(**kwargs):
        return select_checkpoint.python_func(
            project=PROJECT,
            location="us-central1",
            tuned_endpoint="projects/p/locations/l/endpoints/final",
            checkpoint_metrics=metrics(tmp_path, "m"),
            checkpoint_report=dsl.Markdown(name="r", uri=str(tmp_path / "r.md"), metadata={}),
            planned_epochs=3,
            **kwargs,
        )

    none = run(checkpoints="[]", validation_jsonl_uri="gs://b/v.jsonl")
    assert none.challenger_endpoint.endswith("/final") and none.epoch == 3 and none.checkpoint_id == ""
    listed = json.dumps(
        [
            {"checkpointId": "1", "epoch": 1, "step": 8, "endpoint": "e1"},
            {"checkpointId": "2", "epoch": 2, "step": 16, "endpoint": "e2"},
        ]
    )
    last = run(checkpoints=listed, validation_jsonl_uri="")
    assert (last.challenger_endpoint, last.checkpoint_id, last.epoch) == ("e2", "2", 2)
    assert "no validation set" in json.loads(last.selection)["reason"]


# ---------------------------------------------------------------------------- tokens and cost
def test_image_tokens_follow_the_gemini_documentation():
    assert gemini.image_token_count(100, 100) == 258
    assert gemini.image_token_count(384, 384) == 258
    assert gemini.image_token_count(385, 200) == 258  # one 768x768 tile
    assert gemini.image_token_count(1000, 1000) == 258 * 4
    assert gemini.image_token_count(None, None) == 258


def test_training_tokens_are_the_training_file_times_epochs():
    from components.dataset_rules import tuning_example

    line = json.dumps(tuning_example({"gcs_uri": "gs://b/a.png", "label": "Status: Pass"}, PROMPT, "Be brief."))
    characters, images = cost.sft_line_parts(line)
    assert characters == len(PROMPT) + len("Status: Pass") + len("Be brief.") and images == [("uri", "gs://b/a.png")]
    estimate = cost.estimate_training_tokens([(characters, [(100, 100)]), (characters, [None])], epochs=3)
    per_example = gemini.text_token_count(characters) + 258
    assert estimate == {
        "tokens": 3 * 2 * per_example,
        "tokens_per_epoch": 2 * per_example,
        "examples": 2,
        "images": 2,
        "unknown_images": 1,
    }


def test_the_price_table_records_its_source_and_invents_no_price():
    table = gemini.tuning_prices()
    from platform_facts.gemini import gemini_facts_read

    assert table["source"].startswith("https://cloud.google.com/") and table["checked"] == gemini_facts_read()
    assert table["usd_per_million_training_tokens"] == {}
    assert cost.training_price("gemini-3.5-flash")[0] is None
    assert cost.training_price("gemini-3.5-flash", 3.0) == (3.0, "training_price_per_million_tokens_usd parameter")


def test_cost_guard_problems():
    estimate = {"tokens": 20_000, "tokens_per_epoch": 10_000, "examples": 32, "images": 32, "unknown_images": 0}
    assert cost.cost_guard_problem(estimate, 2, "gemini-3.5-flash", None, 0, 0.0) is None
    assert "exceed max_training_tokens=19,999" in cost.cost_guard_problem(estimate, 2, "m", None, 19_999, 0.0)
    no_price = cost.cost_guard_problem(estimate, 2, "gemini-3.5-flash", None, 0, 5.0)
    assert "no verified price for gemini-3.5-flash" in no_price and "training_price_per_million_tokens_usd" in no_price
    assert cost.cost_guard_problem(estimate, 2, "m", 100.0, 0, 2.0) is None  # $2.00 is not above $2
    assert "cost about $2.00, above max_tuning_cost_usd=1.5" in cost.cost_guard_problem(estimate, 2, "m", 100.0, 0, 1.5)


@pytest.fixture(scope="module")
def train_jsonl(local_stack):
    """A 3-line training JSONL: two 100x100 PNGs and one 800x400 PNG (two tiles for Gemini 2.5;
    Gemini 3 counts every image at its media resolution, 1,120 tokens by default)."""
    import io
    import random

    from components.dataset_rules import tuning_example

    lines = []
    for i, size in enumerate([(100, 100), (100, 100), (800, 400)]):
        image = draw_product_image(random.Random(i), None).resize(size)
        data = io.BytesIO()
        image.save(data, format="PNG")
        bucket().blob(f"cost/{i}.png").upload_from_string(data.getvalue(), content_type="image/png")
        lines.append(
            json.dumps(tuning_example({"gcs_uri": f"gs://local-bucket/cost/{i}.png", "label": "Status: Pass"}, PROMPT))
        )
    bucket().blob("cost/train.jsonl").upload_from_string("\n".join(lines) + "\n")
    characters = len(PROMPT) + len("Status: Pass")
    return "gs://local-bucket/cost/train.jsonl", 3 * gemini.text_token_count(characters) + 3 * 1120


def test_cost_guard_component_logs_the_estimate_and_refuses_above_a_limit(train_jsonl, tmp_path):
    uri, per_epoch = train_jsonl
    cost = metrics(tmp_path, "c")
    passed = check_tuning_cost.python_func(
        project=PROJECT, train_jsonl_uri=uri, cost_metrics=cost, epoch_count=2, max_training_tokens=2 * per_epoch
    )
    assert passed.estimated_tokens == 2 * per_epoch and passed.estimated_cost_usd == -1.0
    assert cost.metadata == {"train_estimated_tokens": 2 * per_epoch}  # no price: no cost metric
    priced = metrics(tmp_path, "p")
    check_tuning_cost.python_func(
        project=PROJECT,
        train_jsonl_uri=uri,
        cost_metrics=priced,
        epoch_count=2,
        training_price_per_million_tokens_usd=1_000_000.0,
        max_tuning_cost_usd=1e9,
    )
    assert priced.metadata["train_estimated_cost_usd"] == pytest.approx(2 * per_epoch)
    with pytest.raises(ValueError, match=r"exceed max_training_tokens=.*no tuning job was created"):
        check_tuning_cost.python_func(
            project=PROJECT,
            train_jsonl_uri=uri,
            cost_metrics=metrics(tmp_path, "x"),
            epoch_count=2,
            max_training_tokens=2 * per_epoch - 1,
        )
    with pytest.raises(ValueError, match="no verified price for gemini-3.5-flash"):
        check_tuning_cost.python_func(
            project=PROJECT,
            train_jsonl_uri=uri,
            cost_metrics=metrics(tmp_path, "y"),
            epoch_count=2,
            max_tuning_cost_usd=10.0,
        )
    # At media resolution "low" a Gemini 3 image counts 280 tokens, not 1,120.
    low = check_tuning_cost.python_func(
        project=PROJECT, train_jsonl_uri=uri, cost_metrics=metrics(tmp_path, "l"), epoch_count=2, media_resolution="low"
    )
    assert low.estimated_tokens == 2 * (per_epoch - 3 * (1120 - 280))


# ---------------------------------------------------------------------------- golden set
def manifest(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image_name", "gcs_uri", "status", "defect_type", "label", "sha256"])
        writer.writeheader()
        writer.writerows(rows)
    return dsl.Dataset(name=path.stem, uri=str(path), metadata={})


@pytest.fixture(scope="module")
def images(local_stack):
    """12 distinct images in the storage, as manifest rows (name i -> row)."""
    import hashlib
    import io
    import random

    from components.labels import LABELS

    rows = []
    for i in range(12):
        kind = [None, "Scratch", "Crack"][i % 3]
        data = io.BytesIO()
        draw_product_image(random.Random(100 + i), kind).save(data, format="PNG")
        bucket().blob(f"golden-unit/img{i}.png").upload_from_string(data.getvalue(), content_type="image/png")
        rows.append(
            {
                "image_name": f"img{i}.png",
                "gcs_uri": f"gs://local-bucket/golden-unit/img{i}.png",
                "status": "Defect" if kind else "Pass",
                "defect_type": kind or "None",
                "label": LABELS[kind],
                "sha256": hashlib.sha256(data.getvalue()).hexdigest(),
            }
        )
    return rows


def golden_step(tmp_path, name, train, validation, test, **kwargs):
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = {
        key: dsl.Dataset(name=key, uri=str(tmp_path / f"{key}.csv"), metadata={})
        for key in ("train_without_golden", "validation_without_golden", "golden_manifest")
    }
    result = prepare_golden_set.python_func(
        project=PROJECT,
        bucket=BUCKET,
        prompt=PROMPT,
        train_manifest=manifest(tmp_path / "train.csv", train),
        validation_manifest=manifest(tmp_path / "validation.csv", validation),
        test_manifest=manifest(tmp_path / "test.csv", test),
        golden_metrics=(m := metrics(tmp_path, "g")),
        tuned_model_display_name=name,
        run_name="run-x",
        **out,
        **kwargs,
    )

    def rows(key):
        with open(out[key].path, newline="") as f:
            return list(csv.DictReader(f))

    return result, m.metadata, {key: rows(key) for key in out}


def test_the_golden_set_is_created_once_and_its_images_never_train_again(images, tmp_path):
    # One image of each class (Pass, Scratch, Crack) in the test split: enough with a minimum of 1.
    few = {"min_golden_per_class": 1}
    first, m1, out1 = golden_step(tmp_path / "1", "golden-unit", images[:7], images[7:9], images[9:12], **few)
    assert m1 == {
        "golden_set_examples": 3,
        "golden_set_created": 1,
        "golden_set_excluded_train": 0,
        "golden_set_excluded_validation": 0,
    }
    stored = [row["gcs_uri"] for row in out1["golden_manifest"]]
    assert all(u.startswith("gs://local-bucket/inspectors/golden-unit/golden/images/") for u in stored)
    assert {row["sha256"] for row in out1["golden_manifest"]} == {images[i]["sha256"] for i in (9, 10, 11)}
    # A later run whose split put both golden images in training and validation (same content,
    # another URI for one of them): they are left out, the rest is kept.
    moved = {**images[10], "gcs_uri": "gs://local-bucket/golden-unit/img10.png", "image_name": "copy"}
    second, m2, out2 = golden_step(
        tmp_path / "2", "golden-unit", images[:6] + [moved], images[6:8] + [images[11]], images[8:10], **few
    )
    assert m2["golden_set_created"] == 0 and m2["golden_set_excluded_train"] == 1
    assert m2["golden_set_excluded_validation"] == 1 and second.golden_id == first.golden_id
    golden_hashes = {images[i]["sha256"] for i in (9, 10, 11)}
    assert not golden_hashes & {
        row["sha256"] for row in out2["train_without_golden"] + out2["validation_without_golden"]
    }
    assert len(out2["train_without_golden"]) == 6 and len(out2["validation_without_golden"]) == 2
    # This run's golden JSONL asks with this run's prompt.
    lines = bucket().blob("inspectors/golden-unit/runs/run-x/golden.jsonl").download_as_text().splitlines()
    assert second.golden_jsonl_uri == "gs://local-bucket/inspectors/golden-unit/runs/run-x/golden.jsonl"
    assert len(lines) == 3 and json.loads(lines[0])["contents"][0]["parts"][0]["text"] == PROMPT
    # Another inspector has a golden set of its own.
    _, m3, _ = golden_step(tmp_path / "3", "other-line", images[:7], images[7:9], images[9:12], **few)
    assert m3["golden_set_created"] == 1


def test_a_golden_set_given_as_a_jsonl_parameter(images, tmp_path):
    from components.dataset_rules import tuning_example

    text = "".join(json.dumps(tuning_example(row, "old prompt")) + "\n" for row in images[:3])
    bucket().blob("golden-unit/given.jsonl").upload_from_string(text)
    result, m, out = golden_step(
        tmp_path,
        "given-golden",
        images[:8],
        images[8:10],
        images[10:12],
        golden_test_uri="gs://local-bucket/golden-unit/given.jsonl",
    )
    assert m["golden_set_created"] == 0 and m["golden_set_examples"] == 3 and m["golden_set_excluded_train"] == 3
    assert result.golden_id == rules.golden_id_of(images[:3])
    assert bucket().get_blob("inspectors/given-golden/golden/manifest.csv") is None  # nothing stored
    with pytest.raises(ValueError, match="line 1: not a Gemini SFT line"):
        rules.golden_rows_from_jsonl('{"x": 1}\n', "given.jsonl")


# ---------------------------------------------------------------------------- decide and promote
def decide(tmp_path, name, run, acc, miss=0.0, golden_id="g1", examples=4.0, **kwargs):
    golden_figures = figures(acc, miss, examples=examples)
    golden = metrics(tmp_path, f"golden-{run}", {f"golden_{k}": v for k, v in golden_figures.items()})
    decision_file = tmp_path / f"decision-{run}.json"
    decision = decide_promotion.python_func(
        project=PROJECT,
        bucket=BUCKET,
        golden_metrics=golden,
        golden_id=golden_id,
        challenger_endpoint=f"projects/p/locations/l/endpoints/{run}",
        decision_metrics=(m := metrics(tmp_path, f"d-{run}")),
        decision_report=dsl.Markdown(name="r", uri=str(tmp_path / f"report-{run}.md"), metadata={}),
        decision_record=str(decision_file),
        tuned_model_display_name=name,
        run_name=run,
        challenger_model=f"projects/p/locations/l/models/{run}@1",
        checkpoint_id="2",
        checkpoint_epoch=2,
        prompt=PROMPT,
        test_metrics=metrics(tmp_path, f"t-{run}", {"eval_status_accuracy": 1.0}),
        **kwargs,
    )
    return decision, decision_file.read_text(), m.metadata, (tmp_path / f"report-{run}.md").read_text()


def promote(name, run, record_text):
    return promote_champion.python_func(
        project=PROJECT,
        location="us-central1",
        bucket=BUCKET,
        decision_record=record_text,
        tuned_model_display_name=name,
        run_name=run,
    )


def test_decide_and_promote_keep_the_best_champion_with_its_history(local_stack, tmp_path, capsys):
    name = "decide-unit"
    decision, text, m, report = decide(tmp_path, name, "r1", 0.95, examples=400.0)
    assert decision == "promote" and m == {"promote_decision": 1.0} and "champion (none yet)" in report
    assert promote(name, "r1", text) == "promoted"
    assert "has no Model Registry" in capsys.readouterr().out  # the local Vertex AI: alias skipped, logged
    champion, generation = read_json_object(bucket(), f"inspectors/{name}/champion.json")
    assert champion["run"] == "r1" and champion["golden"]["status_accuracy"] == 0.95 and champion["prompt"] == PROMPT
    assert champion["test"] == {"status_accuracy": 1.0} and champion["promoted_at"].endswith("Z")

    decision, text, m, report = decide(
        tmp_path, name, "r2", 0.5, miss=0.5, examples=400.0, min_status_accuracy=0.0, max_miss_rate=1.0
    )
    assert decision == "keep" and m["promote_decision"] == 0.0 and m["champion_golden_status_accuracy"] == 0.95
    assert m["promote_status_accuracy_delta"] == pytest.approx(-0.45)
    assert "**Decision: keep.** Miss rate 50.0% is higher than the champion's 0.0%" in report
    stored = json.loads(bucket().blob(f"inspectors/{name}/runs/r2/decision.json").download_as_text())
    assert stored["decision"] == "keep" and stored["champion"]["run"] == "r1"
    assert read_json_object(bucket(), f"inspectors/{name}/champion.json") == (champion, generation)

    # Equal, and better by noise only (one more right answer of 4): the champion stays.
    assert decide(tmp_path, name, "r2b", 0.95, examples=400.0)[0] == "keep"
    decision, text, _, _ = decide(tmp_path, name, "r2c", 1.0, examples=4.0)
    assert decision == "keep" and "not better beyond noise" in json.loads(text)["reason"]
    decision, text, _, _ = decide(tmp_path, name, "r3", 1.0, examples=400.0)
    assert decision == "promote" and promote(name, "r3", text) == "promoted"
    history = list_json_objects(bucket(), f"inspectors/{name}/history")
    assert [h["run"] for h in history] == ["r1", "r3"] and history[1]["previous_run"] == "r1"
    outcome = json.loads(bucket().blob(f"inspectors/{name}/runs/r3/promotion.json").download_as_text())
    assert outcome["promoted"] is True and outcome["previous_run"] == "r1"


def test_two_runs_racing_to_promote_cannot_both_win(local_stack, tmp_path):
    """Both decided against the same (absent) champion; real generation preconditions let one win."""
    name = "race-unit"
    texts = {run: decide(tmp_path, name, run, acc)[1] for run, acc in (("fast", 0.95), ("slow", 1.0))}
    results, barrier = {}, threading.Barrier(2)

    def race(run):
        barrier.wait()
        results[run] = promote(name, run, texts[run])

    threads = [threading.Thread(target=race, args=(run,)) for run in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == ["not promoted", "promoted"], results
    winner = next(run for run, result in results.items() if result == "promoted")
    loser = next(run for run in results if run != winner)
    champion, _ = read_json_object(bucket(), f"inspectors/{name}/champion.json")
    assert champion["run"] == winner
    outcome = json.loads(bucket().blob(f"inspectors/{name}/runs/{loser}/promotion.json").download_as_text())
    assert outcome["promoted"] is False and f"another run ({winner})" in outcome["reason"]
    assert [h["run"] for h in list_json_objects(bucket(), f"inspectors/{name}/history")] == [winner]


def test_replace_champion_is_a_compare_and_swap(local_stack):
    name = "inspectors/cas-unit/champion.json"
    ok, generation, _ = replace_champion(bucket(), name, record("a"), 0)
    assert ok and generation > 0
    lost, current_generation, current = replace_champion(bucket(), name, record("b"), 0)
    assert not lost and current_generation == generation and current["run"] == "a"
    ok, newer, _ = replace_champion(bucket(), name, record("c"), generation)
    assert ok and newer != generation
    stale, _, current = replace_champion(bucket(), name, record("d"), generation)
    assert not stale and current["run"] == "c"
    write_json_object(bucket(), "inspectors/cas-unit/free.json", {"x": 1})  # no precondition: plain write
    assert read_json_object(bucket(), "inspectors/cas-unit/free.json")[0] == {"x": 1}


def test_the_registry_alias_is_best_effort(monkeypatch):
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "http://127.0.0.1:9")
    assert "has no Model Registry" in set_champion_alias("us-central1", "projects/p/locations/l/models/m@1")
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL", "http://vertex.invalid")
    assert "names no version" in set_champion_alias("us-central1", "projects/p/locations/l/models/m")
    line = set_champion_alias("us-central1", "projects/p/locations/l/models/m@1")  # unreachable: logged, not raised
    assert line.startswith("version alias 'champion' not set") or "not set on" in line


# ---------------------------------------------------------------------------- summary and the DAG
def test_summary_shows_champion_and_challenger_the_decision_and_checkpoints(local_stack, tmp_path):
    champion = record("r1", acc=1.0)
    decision = {
        "decision": "keep",
        "reason": "status accuracy 50.0% is worse than the champion's 100.0%",
        "candidate": record("r2", acc=0.5, miss=0.5),
        "champion": champion,
    }
    selection = {
        "selected": "1",
        "epoch": 1,
        "reason": "Checkpoint 1 did best.",
        "checkpoints": [scored("1", 1, 0.5), scored("2", 2, 0.25)],
    }
    summary = dsl.Markdown(name="s", uri=str(tmp_path / "summary.md"), metadata={})
    text = summarize_run.python_func(
        project=PROJECT,
        location="us-central1",
        job_name="projects/p/locations/l/tuningJobs/7",
        base_model="gemini-3.5-flash",
        tuned_model_display_name="summary-unit",
        tuned_endpoint="e1",
        eval_metrics=metrics(tmp_path, "e", {"eval_status_accuracy": 0.5, "eval_examples": 4}),
        summary=summary,
        cost_metrics=metrics(tmp_path, "c", {"train_estimated_tokens": 19560}),
        tuning_metrics=metrics(tmp_path, "t", {"train_billable_token_count": 19560.0}),
        decision_record=json.dumps(decision),
        checkpoint_selection=json.dumps(selection),
        bucket=BUCKET,
        run_name="r2",
    )
    written = (tmp_path / "summary.md").read_text()
    assert "keep the champion from run r1, because status accuracy 50.0%" in text
    assert "| status accuracy | 100.0% | 50.0% |" in written and "**Decision: keep.**" in written
    assert "## Checkpoints (validation set)" in written and "| 1 | 1 | 10 | 50.0% |" in written
    assert "Training tokens: 19,560 estimated before launch, 19,560 billed by Vertex AI" in written
    assert bucket().blob("inspectors/summary-unit/runs/r2/summary.md").download_as_text() == written


def test_the_compiled_pipeline_selects_evaluates_decides_and_notifies():
    spec = yaml.safe_load(COMPILED_YAML.read_text())
    assert set(spec["root"]["dag"]["tasks"]) == {"exit-handler-1", "notify-run"}
    handler = spec["root"]["dag"]["tasks"]["exit-handler-1"]
    assert spec["root"]["dag"]["tasks"]["notify-run"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    inner = spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]
    for task in (
        "select-checkpoint",
        "evaluate-inspector",
        "evaluate-inspector-2",
        "decide-promotion",
        "check-tuning-cost",
        "prepare-golden-set",
    ):
        assert task in inner, task
    golden_eval = inner["evaluate-inspector-2"]["inputs"]["parameters"]
    assert golden_eval["metric_prefix"]["runtimeValue"]["constant"] == "golden_"
    assert "prepare-golden-set" in str(golden_eval["test_jsonl_uri"])
    assert "select-checkpoint" in inner["evaluate-inspector"]["dependentTasks"]
    assert "check-tuning-cost" in inner["launch-tuning"]["dependentTasks"]
    condition = next(t for t in inner.values() if "triggerPolicy" in t)
    assert (
        condition["triggerPolicy"]["condition"]
        == "inputs.parameter_values['pipelinechannel--decide-promotion-Output'] == 'promote'"
    )
    branch = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert list(branch) == ["promote-champion"]
    executors = spec["deploymentSpec"]["executors"]
    notify_command = " ".join(executors["exec-notify-run"]["container"]["command"])
    assert "logging.basicConfig(level=logging.WARNING)" in notify_command
    assert "export_last_checkpoint_only=False" in " ".join(executors["exec-launch-tuning"]["container"]["command"])
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    for name, default in (
        ("golden_test_uri", ""),
        ("min_status_accuracy", 0.9),
        ("max_miss_rate", 0.1),
        ("promotion_margin", 0.02),
        ("min_test_per_class", 3),
        ("min_golden_per_class", 3),
        ("max_tuning_cost_usd", 0.0),
        ("max_training_tokens", 0),
        ("notify_webhook_url", ""),
        ("notify_webhook_secret", ""),
    ):
        assert inputs[name]["defaultValue"] == default, name


@pytest.mark.slow
def test_select_checkpoint_scores_every_checkpoints_endpoint(images, tmp_path):
    """Each listed checkpoint's endpoint answers the validation set; one that never answers is
    not chosen, and of two that answer alike the last (most trained) one ships."""
    import time

    from google.genai import types

    from components.clients import genai_client
    from components.dataset_rules import tuning_example

    def upload(name, rows):
        bucket().blob(f"select-unit/{name}.jsonl").upload_from_string(
            "".join(json.dumps(tuning_example(row, PROMPT)) + "\n" for row in rows)
        )
        return f"gs://local-bucket/select-unit/{name}.jsonl"

    train, validation = upload("train", images[:9]), upload("validation", images[9:])
    client = genai_client(PROJECT, "us-central1")
    job = client.tunings.tune(
        base_model="gemini-3.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=train),
        config=types.CreateTuningJobConfig(epoch_count=2, export_last_checkpoint_only=False),
    )
    deadline = time.monotonic() + 600
    while not job.has_ended:
        assert time.monotonic() < deadline, f"tuning still {job.state} after 600 s"
        time.sleep(1)
        job = client.tunings.get(name=job.name)
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    endpoint = job.tuned_model.endpoint
    listed = [
        {"checkpointId": "3", "epoch": 3, "step": 30, "endpoint": endpoint},
        {"checkpointId": "1", "epoch": 1, "step": 10, "endpoint": endpoint},
        {
            "checkpointId": "9",
            "epoch": 2,
            "step": 20,
            "endpoint": "projects/local-project/locations/us-central1/endpoints/404",
        },
    ]
    report = dsl.Markdown(name="r", uri=str(tmp_path / "r.md"), metadata={})
    chosen = select_checkpoint.python_func(
        project=PROJECT,
        location="us-central1",
        checkpoints=json.dumps(listed),
        tuned_endpoint=endpoint,
        validation_jsonl_uri=validation,
        checkpoint_metrics=(m := metrics(tmp_path, "m")),
        checkpoint_report=report,
    )
    # Epochs 1 and 3 answer alike (one endpoint): a tie keeps the last checkpoint.
    assert (chosen.checkpoint_id, chosen.epoch, chosen.challenger_endpoint) == ("3", 3, endpoint)
    selection = json.loads(chosen.selection)
    assert "no earlier checkpoint was better beyond noise" in selection["reason"]
    assert [row["checkpoint_id"] for row in selection["checkpoints"]] == ["1", "9", "3"]  # in epoch order
    assert selection["checkpoints"][1]["error_rate"] == 1.0 and selection["checkpoints"][1]["status_accuracy"] == 0.0
    assert m.metadata["ckpt_count"] == 3 and m.metadata["ckpt_selected_epoch"] == 3
    assert m.metadata["ckpt_e1_status_accuracy"] == m.metadata["ckpt_e3_status_accuracy"]
    assert m.metadata["ckpt_e2_status_accuracy"] == 0.0 and "ckpt_e2_miss_rate" in m.metadata
    table = (tmp_path / "r.md").read_text()
    assert "# Checkpoint selection" in table and table.count("**yes**") == 1

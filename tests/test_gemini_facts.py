"""Google's published Gemini facts (platform_facts/gemini.py): lifecycle checked on the day the
code runs, tuning rules per model, thinking controls, media resolutions and token arithmetic."""

import datetime
import re

import pytest

from pipeline import params
from pipeline.pipeline import DEFAULT_BASE_MODEL
from platform_facts import gemini
from tests.conftest import BUCKET, PROJECT

TODAY = datetime.date.today().isoformat()


def test_the_default_base_model_is_not_retired_today():
    """CI turns red on the day the default base model retires: the default must move first."""
    life = gemini.model_lifecycle(DEFAULT_BASE_MODEL)
    assert life["known"] and life["tuning"] == "GA", life
    assert not life["retired"], f"the default base model {DEFAULT_BASE_MODEL} is {life['label']}"
    assert gemini.lifecycle_problem(DEFAULT_BASE_MODEL) is None


def test_the_summary_model_is_not_retired_today():
    assert not gemini.model_lifecycle(gemini.recommended_models()["summary_model"])["retired"]


def test_every_model_cites_its_sources_and_dates():
    sources = gemini.gemini_sources()
    assert all(url.startswith("https://") for url in sources.values())
    datetime.date.fromisoformat(gemini.gemini_facts_read())
    for model, facts in gemini.gemini_models().items():
        assert set(facts["sources"].values()) <= set(sources), model
        for key in ("released", "retires"):
            if facts.get(key):
                datetime.date.fromisoformat(facts[key])
        if facts.get("replacement"):
            assert facts["replacement"] in gemini.gemini_models(), model


@pytest.mark.parametrize(
    "model, today, retired, days_left",
    [
        ("gemini-2.5-flash", "2026-06-16", False, 1),
        ("gemini-2.5-flash", "2026-06-17", True, 0),
        ("gemini-3.5-flash", "2026-12-07", False, 163),
        ("publishers/google/models/gemini-3.5-flash", "2027-05-19", True, 0),
    ],
)
def test_lifecycle_is_read_on_the_day_given(model, today, retired, days_left):
    life = gemini.model_lifecycle(model, today)
    assert (life["retired"], life["days_left"]) == (retired, days_left)


def test_a_retired_model_is_refused_naming_its_replacement_and_source():
    problem = gemini.lifecycle_problem("gemini-2.5-flash", "2026-12-07")
    assert "retired on 2026-06-17" in problem and "use gemini-3.5-flash" in problem
    assert "model-versions" in problem
    assert gemini.tuning_problems("gemini-2.5-flash", 4, "us-central1", "2026-12-07") == [f"base_model {problem}"]


def test_a_model_retiring_within_sixty_days_is_a_warning():
    assert "in 30 days" in gemini.lifecycle_warning("gemini-3.5-flash", "2027-04-19")
    assert gemini.lifecycle_warning("gemini-3.5-flash", "2027-01-01") is None
    assert gemini.lifecycle_warning("gemini-3.5-flash", "2027-04-19", within_days=10) is None


@pytest.mark.parametrize(
    "model, adapter, location, problem",
    [
        ("gemini-3.5-flash", 16, "us-central1", None),
        ("gemini-3.1-flash-lite", 8, "europe-west4", None),
        ("gemini-3.5-flash", 4, "us-east1", "does not run gemini-3.5-flash tuning jobs; use us-central1, europe-west4"),
        ("gemini-3.5-flash", 32, "us-central1", "adapter_size 32 is not supported for gemini-3.5-flash"),
        ("gemini-3.5-flash-lite", 4, "us-central1", "is not a Gemini model that supervised tuning supports"),
        ("gemini-2.0-flash-bogus", 4, None, "is not a Gemini model that supervised tuning supports"),
    ],
)
def test_tuning_problems_per_model(model, adapter, location, problem):
    found = gemini.tuning_problems(model, adapter, location, "2026-12-07")
    assert found == [] if problem is None else (len(found) == 1 and problem in found[0])


def test_gemini_3_is_served_on_a_multi_region_endpoint():
    assert gemini.serving_location("gemini-3.5-flash", "us-central1") == "us"
    assert gemini.serving_location("gemini-3.1-flash-lite", "europe-west4") == "eu"
    assert gemini.serving_location("gemini-2.5-pro", "europe-west1") == "europe-west1"


@pytest.mark.parametrize(
    "model, thinking, sent",
    [
        ("gemini-3.5-flash", "least", {"thinking_level": "LOW"}),
        ("gemini-3.5-flash", "dynamic", {"thinking_level": "HIGH"}),
        ("gemini-3.5-flash", "medium", {"thinking_level": "MEDIUM"}),
        ("gemini-3.5-flash-lite", "least", {"thinking_level": "MINIMAL"}),
        ("gemini-2.5-flash", "least", {"thinking_budget": 0}),
        ("gemini-2.5-pro", "least", {"thinking_budget": 128}),
        ("gemini-2.5-flash-lite", "0", {"thinking_budget": 0}),
        ("gemini-2.5-pro", "2048", {"thinking_budget": 2048}),
        ("gemini-2.5-pro", "dynamic", {"thinking_budget": -1}),
        ("gemini-3.5-flash", "none", {}),
    ],
)
def test_one_thinking_parameter_means_the_control_each_model_takes(model, thinking, sent):
    assert gemini.thinking_config_for(model, thinking) == sent


@pytest.mark.parametrize(
    "model, thinking, message",
    [
        ("gemini-3.5-flash", "1024", "takes a thinking level, one of low, medium, high"),
        ("gemini-3.5-flash", "minimal", "takes a thinking level"),  # not listed for 3.5 Flash by Google's pages read
        ("gemini-2.5-flash", "low", re.escape("takes a thinking budget, 0 (off), -1 (dynamic) or 0..24576")),
        ("gemini-2.5-pro", "64", re.escape("-1 (dynamic) or 128..32768")),
        ("gemini-2.5-flash-lite", "100", re.escape("0 (off), -1 (dynamic) or 512..24576")),
        ("some-other-model", "least", "not in the model table"),
    ],
)
def test_a_thinking_control_the_model_lacks_is_refused(model, thinking, message):
    with pytest.raises(ValueError, match=message):
        gemini.thinking_config_for(model, thinking)


def test_media_resolution_per_model_and_its_image_tokens():
    assert gemini.media_resolution_problem("gemini-3.5-flash", "low") is None
    assert gemini.media_resolution_problem("gemini-3.5-flash", "MEDIA_RESOLUTION_HIGH") is None
    assert "is not offered" in gemini.media_resolution_problem("gemini-3.5-flash", "ultra_high")
    assert "takes no per-image media resolution" in gemini.media_resolution_problem("gemini-2.5-flash", "low")
    assert gemini.media_resolution_level("low") == "MEDIA_RESOLUTION_LOW"
    assert [gemini.image_token_count(100, 100, "gemini-3.5-flash", r) for r in ("low", "medium", "high", "")] == [
        280,
        560,
        1120,
        1120,
    ]
    # Gemini 2.5 counts by size: 258 up to 384 px, 258 per 768 px tile above that.
    assert gemini.image_token_count(384, 384, "gemini-2.5-flash") == 258
    assert gemini.image_token_count(1000, 1000, "gemini-2.5-flash") == 258 * 4
    assert gemini.image_token_count(None, None) == 258
    assert gemini.example_token_count(40, [(100, 100), None], "gemini-3.5-flash", "low") == 10 + 2 * 280


def test_continuous_tuning_rules():
    assert gemini.continuous_tuning_problem("gemini-3.5-flash", "gemini-3.5-flash", "2026-11-30", "2026-12-07") is None
    assert "keeps the base model" in gemini.continuous_tuning_problem(
        "gemini-3.5-flash", "gemini-3.1-flash-lite", "2026-11-30", "2026-12-07"
    )
    assert "retired on 2026-06-17" in gemini.continuous_tuning_problem(
        "gemini-2.5-flash", "gemini-2.5-flash", "2026-01-30", "2026-12-07"
    )
    assert "on or after 2025-07-11" in gemini.continuous_tuning_problem(
        "gemini-3.5-flash", "gemini-3.5-flash", "2025-07-10", "2026-12-07"
    )


def test_the_facts_run_from_their_source_alone_as_kfp_ships_them():
    """Components get these functions' source only (additional_funcs): no module globals."""
    import inspect

    functions = [v for v in vars(gemini).values() if inspect.isfunction(v) and v.__module__ == gemini.__name__]
    namespace: dict = {}
    for func in functions:
        exec(inspect.getsource(func), namespace)
    assert namespace["tuning_problems"]("gemini-3.5-flash", 4, "us-central1", "2026-12-07") == []
    assert namespace["image_token_count"](100, 100, "gemini-3.5-flash", "low") == 280


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"base_model": "gemini-2.5-flash"}, "retired on 2026-06-17.*use gemini-3.5-flash"),
        ({"base_model": "gemini-3.5-flash", "adapter_size": "32"}, "adapter_size=32 must be one of 1, 2, 4, 8, 16"),
        ({"location": "us-east1"}, "does not run gemini-3.5-flash tuning jobs"),
        ({"thinking": "2048"}, "takes a thinking level"),
        ({"media_resolution": "ultra_high"}, "is not offered for gemini-3.5-flash"),
        ({"tune_from": "yesterday"}, "must be 'base' or 'champion'"),
    ],
)
def test_parameters_are_checked_against_the_facts_before_any_work(overrides, message):
    with pytest.raises(params.ParameterError, match=message):
        params.resolve({"project": PROJECT, "bucket": BUCKET, **overrides})


def test_the_defaults_resolve_and_today_is_today():
    resolved = params.resolve({"project": PROJECT, "bucket": BUCKET})
    assert resolved["base_model"] == DEFAULT_BASE_MODEL
    assert (
        gemini.model_lifecycle(DEFAULT_BASE_MODEL)["days_left"]
        == gemini.model_lifecycle(DEFAULT_BASE_MODEL, TODAY)["days_left"]
    )


def test_models_command_lists_gemini_3_with_sources(tmp_path):
    """``python -m pipeline models --json`` as a user runs it: the default is tunable today."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "models", "--json"], capture_output=True, text=True, check=True
    ).stdout
    document = json.loads(out)
    rows = {row["model"]: row for row in document["models"]}
    assert document["defaults"]["base_model"] == DEFAULT_BASE_MODEL
    assert rows[DEFAULT_BASE_MODEL]["tunable_today"] and rows[DEFAULT_BASE_MODEL]["served_at"] == ["eu", "us"]
    assert rows["gemini-2.5-flash"]["stage"] == "retired since 2026-06-17"
    assert rows["gemini-3.5-flash"]["thinking"] == {"levels": ["LOW", "MEDIUM", "HIGH"]}
    assert all(url.startswith("https://") for row in rows.values() for url in row["sources"].values())


def test_champion_shows_its_retirement_date():
    from pipeline.champion import retirement

    assert retirement("gemini-2.5-flash").startswith("RETIRED since 2026-06-17")
    assert retirement("gemini-3.5-flash").startswith("2027-05-19 (https://")
    assert retirement("gemini-9").startswith("unknown")

"""One table of base-model capabilities: adapter sizes, thinking budgets, regions."""

import pytest

from components.capabilities import base_model_id, thinking_budget_for, tuning_problems
from pipeline import params
from tests.conftest import BUCKET, PROJECT


@pytest.mark.parametrize(
    "base_model, adapter_size, location, problem",
    [
        ("gemini-2.5-flash", 16, "us-central1", None),
        ("gemini-2.5-flash-lite", 16, "europe-west4", None),
        ("publishers/google/models/gemini-2.5-pro", 8, "us-central1", None),
        (
            "gemini-2.5-pro",
            16,
            "us-central1",
            "adapter_size 16 is not supported for gemini-2.5-pro; use one of 1, 2, 4, 8",
        ),
        ("gemini-2.5-flash", 32, None, "adapter_size 32 is not supported for gemini-2.5-flash"),
        ("gemini-2.0-flash-bogus-suffix", 4, None, "is not a Gemini model that supervised tuning supports"),
        ("gemini-2.5-flash", 4, "mars-north1", "location 'mars-north1' does not run Gemini tuning jobs"),
    ],
)
def test_tuning_problems(base_model, adapter_size, location, problem):
    found = tuning_problems(base_model, adapter_size, location)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0]


@pytest.mark.parametrize(
    "base_model, requested, sent",
    [
        ("gemini-2.5-flash", 0, 0),  # off
        ("gemini-2.5-flash-lite", 0, 0),  # off
        ("gemini-2.5-pro", 0, 128),  # Pro cannot turn thinking off: its minimum
        ("gemini-2.5-pro", -1, -1),  # dynamic
        ("gemini-2.5-pro", 2048, 2048),
        ("gemini-2.5-flash", -5, None),  # below -1: no thinking config at all
        ("some-other-model", 7, 7),  # not in the table: sent as asked
    ],
)
def test_thinking_budget_for(base_model, requested, sent):
    assert thinking_budget_for(base_model, requested) == sent


@pytest.mark.parametrize(
    "base_model, requested, message",
    [
        ("gemini-2.5-pro", 64, r"use -1 \(dynamic\) or 128\.\.32768"),
        ("gemini-2.5-flash-lite", 100, r"use 0 \(off\), -1 \(dynamic\) or 512\.\.24576"),
        ("gemini-2.5-flash", 30000, r"0\.\.24576"),
    ],
)
def test_thinking_budget_refused(base_model, requested, message):
    with pytest.raises(ValueError, match=message):
        thinking_budget_for(base_model, requested)


def test_base_model_id():
    assert base_model_id("projects/p/locations/l/publishers/google/models/gemini-2.5-pro") == "gemini-2.5-pro"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"base_model": "gemini-2.5-pro", "adapter_size": "16"}, "adapter_size 16 is not supported for gemini-2.5-pro"),
        ({"base_model": "gemini-2.0-flash-bogus-suffix"}, "is not a Gemini model that supervised tuning supports"),
        ({"location": "mars-north1"}, "does not run Gemini tuning jobs"),
        ({"eval_thinking_budget": "64", "base_model": "gemini-2.5-pro"}, "eval_thinking_budget: thinking budget 64"),
    ],
)
def test_parameters_are_checked_against_the_table_before_submit(overrides, message):
    with pytest.raises(params.ParameterError, match=message):
        params.resolve({"project": PROJECT, "bucket": BUCKET, **overrides})


def test_pro_with_its_defaults_resolves():
    resolved = params.resolve({"project": PROJECT, "bucket": BUCKET, "base_model": "gemini-2.5-pro"})
    assert thinking_budget_for(resolved["base_model"], resolved["eval_thinking_budget"]) == 128

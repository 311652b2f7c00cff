"""Table-driven tests of the answer scoring in components/labels.py.

Decisions recorded here (and in ``judge_answer``'s docstring):
- A Pass must be exactly "Status: Pass" (case, spacing, one final "." or "!" aside), as in
  the source notebook. "Status: Passed" and "Status: Pass - no Defect" are not a Pass.
- "Status: Pass - no Defect" states Pass, so it is not a Defect call either: for a defect
  image it is a status error (the notebook's "contains Defect" rule would have credited it),
  and its class is Unparseable.
- The defect type counts only if the expected type is named and no other known type is:
  an answer naming every type gets no type credit, and its class is Unparseable.
"""

import pytest

from components.labels import DEFECT_TYPES, LABELS, defect_type_of, is_pass_answer, judge_answer

PASS = LABELS[None]
SCRATCH = LABELS["Scratch"]
CRACK = LABELS["Crack"]
DISCO = LABELS["Discoloration"]
BURR = "Status: Defect - Burr (edge) at 3 o'clock; RE-GRIND now!"
WITH_BURR = (*DEFECT_TYPES, "Burr")

# id, expected label, predicted answer, classes,
#   (expected_class, predicted_class, predicted_status, status_ok, type_ok, exact)
CASES = [
    ("pass-exact", PASS, "Status: Pass", DEFECT_TYPES, ("Pass", "Pass", "Pass", True, True, True)),
    ("pass-trailing-period", PASS, "Status: Pass.", DEFECT_TYPES, ("Pass", "Pass", "Pass", True, True, False)),
    ("pass-lowercase-spacing", PASS, "  status :pass \n", DEFECT_TYPES, ("Pass", "Pass", "Pass", True, True, False)),
    (
        "passed-is-not-pass",
        PASS,
        "Status: Passed",
        DEFECT_TYPES,
        ("Pass", "Unparseable", "Unparseable", False, False, False),
    ),
    (
        "pass-with-no-defect-text-on-pass",
        PASS,
        "Status: Pass - no Defect",
        DEFECT_TYPES,
        ("Pass", "Unparseable", "Unparseable", False, False, False),
    ),
    (
        "pass-with-no-defect-text-on-defect",
        SCRATCH,
        "Status: Pass - no Defect",
        DEFECT_TYPES,
        ("Scratch", "Unparseable", "Unparseable", False, False, False),
    ),
    (
        "negated-defect-without-status",
        CRACK,
        "No defect found on this part.",
        DEFECT_TYPES,
        ("Crack", "Unparseable", "Unparseable", False, False, False),
    ),
    ("defect-exact", SCRATCH, SCRATCH, DEFECT_TYPES, ("Scratch", "Scratch", "Defect", True, True, True)),
    (
        "defect-right-type-other-words",
        DISCO,
        "Status: Defect - Discoloration detected on product surface.",
        DEFECT_TYPES,
        ("Discoloration", "Discoloration", "Defect", True, True, False),
    ),
    (
        "defect-type-case-insensitive",
        CRACK,
        "status: defect - CRACK in body",
        DEFECT_TYPES,
        ("Crack", "Crack", "Defect", True, True, False),
    ),
    ("defect-wrong-type", SCRATCH, CRACK, DEFECT_TYPES, ("Scratch", "Crack", "Defect", True, False, False)),
    ("miss-defect-called-pass", CRACK, "Status: Pass", DEFECT_TYPES, ("Crack", "Pass", "Pass", False, False, False)),
    ("overkill-pass-called-defect", PASS, SCRATCH, DEFECT_TYPES, ("Pass", "Scratch", "Defect", False, False, False)),
    ("empty-answer", SCRATCH, "", DEFECT_TYPES, ("Scratch", "Unparseable", "Unparseable", False, False, False)),
    ("none-answer-on-pass", PASS, None, DEFECT_TYPES, ("Pass", "Unparseable", "Unparseable", False, False, False)),
    (
        "defect-without-type",
        DISCO,
        "Status: Defect",
        DEFECT_TYPES,
        ("Discoloration", "Unparseable", "Defect", True, False, False),
    ),
    (
        "several-types-named",
        SCRATCH,
        "Status: Defect - Scratch and Crack and Discoloration",
        DEFECT_TYPES,
        ("Scratch", "Unparseable", "Defect", True, False, False),
    ),
    (
        "type-as-part-of-word-does-not-count",
        SCRATCH,
        "Status: Defect - Scratches everywhere",
        DEFECT_TYPES,
        ("Scratch", "Unparseable", "Defect", True, False, False),
    ),
    (
        "defective-is-not-defect",
        SCRATCH,
        "Defective: Scratch",
        DEFECT_TYPES,
        ("Scratch", "Unparseable", "Unparseable", False, False, False),
    ),
    ("custom-class-burr-exact", BURR, BURR, WITH_BURR, ("Burr", "Burr", "Defect", True, True, True)),
    (
        "custom-class-burr-reworded",
        BURR,
        "Status: Defect - burr on the right edge.",
        WITH_BURR,
        ("Burr", "Burr", "Defect", True, True, False),
    ),
    (
        "custom-class-called-known-type",
        BURR,
        "Status: Defect - Scratch detected.",
        WITH_BURR,
        ("Burr", "Scratch", "Defect", True, False, False),
    ),
    (
        "custom-class-unknown-to-classes",
        BURR,
        "Status: Defect - Burr",
        DEFECT_TYPES,
        ("Burr", "Unparseable", "Defect", True, True, False),
    ),
    (
        "untyped-defect-label",
        "Status: Defect",
        "Status: Defect",
        DEFECT_TYPES,
        ("Defect", "Unparseable", "Defect", True, True, True),
    ),
]


@pytest.mark.parametrize("expected,predicted,classes,want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_judge_answer(expected, predicted, classes, want):
    got = judge_answer(expected, predicted, classes)
    keys = ("expected_class", "predicted_class", "predicted_status", "status_correct", "type_correct", "exact_match")
    assert tuple(got[k] for k in keys) == want
    assert all(type(got[k]) is bool for k in keys[3:])


def test_classes_default_to_the_notebook_types():
    assert judge_answer(CRACK, CRACK) == judge_answer(CRACK, CRACK, DEFECT_TYPES)


def test_class_spelling_follows_classes():
    verdict = judge_answer("Status: Defect - scratch found", "Status: Defect - SCRATCH", DEFECT_TYPES)
    assert verdict["expected_class"] == verdict["predicted_class"] == "Scratch"


@pytest.mark.parametrize(
    "text,want",
    [
        ("Status: Pass", True),
        ("status: pass.", True),
        ("Status : PASS!", True),
        ("Status: Pass..", False),
        ("Status: Passed", False),
        ("Pass", False),
        ("", False),
        (None, False),
    ],
)
def test_is_pass_answer(text, want):
    assert is_pass_answer(text) is want


@pytest.mark.parametrize(
    "label,want",
    [
        (SCRATCH, "Scratch"),
        (CRACK, "Crack"),
        (DISCO, "Discoloration"),
        (BURR, "Burr"),
        ("Status: Defect \u2013 Dent on lid", "Dent"),
        ("Status: Defect: Over-mold", "Over-mold"),
        (PASS, None),
        ("Status: Defect", None),
        ("", None),
        (None, None),
    ],
)
def test_defect_type_of(label, want):
    assert defect_type_of(label) == want

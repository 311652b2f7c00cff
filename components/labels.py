"""The labels the inspector learns and the rule that scores an answer against them: the
notebook's prompt and answers, Pass or Defect, and the defect type an answer names.

Every function is self-contained (imports inside): components ship the ones they reach
(components/shipping.py).
"""

PROMPT = (
    "Analyze the following product image for manufacturing defects. Classify its status as "
    "'Pass' or 'Defect' and provide a brief description if a defect is present."
)


def notebook_labels():
    """The source notebook's ground-truth answers by defect type; None is a good product."""
    return {
        None: "Status: Pass",
        "Scratch": "Status: Defect - Scratch detected on product surface.",
        "Crack": "Status: Defect - Crack identified in main body.",
        "Discoloration": "Status: Defect - Discoloration spot found.",
    }


LABELS = notebook_labels()
DEFECT_TYPES = tuple(t for t in LABELS if t)


def is_pass_answer(text):
    """True when an answer says exactly "Status: Pass" (case, spacing, a final period aside)."""
    import re

    return re.fullmatch(r"\s*status\s*:\s*pass\s*[.!]?\s*", text or "", re.IGNORECASE) is not None


def defect_type_of(label):
    """The defect type named by a label such as "Status: Defect - Crack identified ...".

    Returns None for a Pass label or a label that names no type.
    """
    import re

    match = re.search(r"\bdefect\b\s*[-:\u2013\u2014]\s*([A-Za-z][\w-]*)", label or "", re.IGNORECASE)
    return match.group(1) if match else None


def answer_status(text):
    """What an answer says of the product: "Pass", "Defect" or "Unparseable".

    "Pass" only for exactly "Status: Pass" (see is_pass_answer). "Defect" when the
    answer's "Status:" says Defect or, stating no status, it contains the word "Defect"
    not negated ("no defect"). "Status: Pass - no Defect" is therefore Unparseable.
    """
    import re

    text = text or ""
    if is_pass_answer(text):
        return "Pass"
    declared = re.search(r"\bstatus\s*:\s*(pass|defect)\b", text, re.IGNORECASE)
    if declared:
        said_defect = declared.group(1).lower() == "defect"
    else:
        said_defect = (
            re.search(r"\bdefect\b", text, re.IGNORECASE) is not None
            and re.search(r"\b(?:no|not|without|zero)\s+(?:a\s+|any\s+)?defects?\b", text, re.IGNORECASE) is None
        )
    return "Defect" if said_defect else "Unparseable"


def judge_answer(expected_label, predicted, classes=None):
    """Scores one answer with the source notebook's rule, tolerant of harmless variants.

    Expected Pass: the answer must be "Status: Pass" (case, spacing and a final period
    aside; "Status: Passed" or "Status: Pass - no defect" are not a clean Pass).
    Expected Defect: the answer must call the product defective and, for the type to
    count, name the expected defect type as a whole word, case-insensitive, and no other
    known type (naming every type does not earn type credit).

    Whether the answer calls the product defective is answer_status's verdict, so
    "Status: Pass - no Defect" is neither a defect call nor a clean Pass.

    Args:
        expected_label: the ground-truth answer text.
        predicted: the model's answer text (None counts as empty).
        classes: the defect types in play (e.g. the types found in the test labels);
            None means the notebook's three (Scratch, Crack, Discoloration).

    Returns:
        A dict with expected_class ("Pass", the expected defect type, or "Defect" for a
        defect label naming no type), predicted_class ("Pass", exactly one named defect
        type, or "Unparseable"), predicted_status ("Pass", "Defect" or "Unparseable"),
        status_correct, type_correct and exact_match.
    """
    import re

    if classes is None:
        classes = ("Scratch", "Crack", "Discoloration")
    text = predicted or ""

    def names(word):
        return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None

    predicted_status = answer_status(text)
    said_pass, said_defect = predicted_status == "Pass", predicted_status == "Defect"

    named = []
    for c in classes:
        if c and names(c) and c.lower() not in [n.lower() for n in named]:
            named.append(c)
    if said_pass:
        predicted_class = "Pass"
    elif said_defect and len(named) == 1:
        predicted_class = named[0]
    else:
        predicted_class = "Unparseable"

    if is_pass_answer(expected_label):
        expected_class = "Pass"
        status_correct = type_correct = said_pass
    else:
        expected_type = defect_type_of(expected_label)
        status_correct = said_defect
        if expected_type is None:  # a defect label that names no type: status is all there is
            expected_class = "Defect"
            type_correct = said_defect and not named
        else:
            expected_class = next((c for c in classes if c and c.lower() == expected_type.lower()), expected_type)
            type_correct = (
                said_defect and names(expected_type) and all(n.lower() == expected_type.lower() for n in named)
            )
    return {
        "expected_class": expected_class,
        "predicted_class": predicted_class,
        "predicted_status": predicted_status,
        "status_correct": bool(status_correct),
        "type_correct": bool(type_correct),
        "exact_match": text.strip() == (expected_label or "").strip(),
    }

"""The nightly loop's records: where an inspector's state lives in the bucket, the golden set's
identity, the champion record and the champion/challenger table. (Checkpoint choice is in
checkpoints.py, the cost estimate in cost.py, the promotion rule in decide_promotion.py.)

Pure functions only (no I/O): components ship them with ``additional_funcs`` (so every
function is self-contained, imports inside, and a table is a function, not a constant), and
the CLI and the tests import them directly. Storage access lives in champion_store.py.
"""


# ---------------------------------------------------------------------------- where things live
def inspector_slug(name):
    """A Cloud Storage-safe folder name for an inspector (``tuned_model_display_name``).

    Lower case; anything but letters, digits, ``-``, ``_`` and ``.`` becomes ``-``.
    "Visual Defect Inspector" -> "visual-defect-inspector".
    """
    import re

    slug = re.sub(r"[^a-z0-9._-]+", "-", (name or "").strip().lower()).strip("-.")
    if not slug:
        raise ValueError(f"tuned_model_display_name {name!r} gives no usable folder name")
    return slug[:100]


def inspector_paths(name):
    """Object names (inside the bucket) of one inspector's persistent state.

    Champions, golden sets and histories are kept per inspector, so a run on another product
    line (another ``tuned_model_display_name``) never competes with this one:
    ``inspectors/<slug>/champion.json``, ``golden/manifest.csv``, ``golden/images/``,
    ``history/`` and ``runs/<run>/`` (what each run decided, for the notification).
    """
    root = f"inspectors/{inspector_slug(name)}"
    return {
        "root": root,
        "champion": f"{root}/champion.json",
        "golden_manifest": f"{root}/golden/manifest.csv",
        "golden_images": f"{root}/golden/images",
        "history": f"{root}/history",
        "runs": f"{root}/runs",
    }


def run_object(name, run_name, leaf):
    """Object name of one run's record file, e.g. ``inspectors/<slug>/runs/<run>/decision.json``."""
    import re

    run = re.sub(r"[^A-Za-z0-9._-]+", "-", run_name or "").strip("-") or "unnamed-run"
    return f"{inspector_paths(name)['runs']}/{run}/{leaf}"


def history_object(name, promoted_at, run_name):
    """Object name of one history entry: sortable by time, unique per run."""
    import re

    stamp = re.sub(r"[^0-9TZ]", "", promoted_at or "")
    run = re.sub(r"[^A-Za-z0-9._-]+", "-", run_name or "").strip("-") or "unnamed-run"
    return f"{inspector_paths(name)['history']}/{stamp}-{run}.json"


# ---------------------------------------------------------------------------- golden set
def golden_id_of(rows):
    """The identity of a golden set: a hash of its images' content hashes and labels, so the
    same images with the same answers give the same id whatever their URIs."""
    import hashlib

    lines = sorted(f"{row.get('sha256') or row['gcs_uri']}\t{(row.get('label') or '').strip()}" for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def golden_rows_from_jsonl(text, source):
    """Golden-set rows (gcs_uri, label) from a Gemini SFT JSONL: the last image of the user turn
    and the final model answer of each line. Only images and labels are taken: every run asks
    with its own prompt."""
    import json

    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            contents = json.loads(line)["contents"]
            label = "".join(p.get("text") or "" for p in contents[-1]["parts"]).strip()
            uris = [
                (p.get("fileData") or p.get("file_data") or {}).get("fileUri")
                or (p.get("fileData") or p.get("file_data") or {}).get("file_uri")
                for turn in contents[:-1]
                for p in turn.get("parts", [])
            ]
            uris = [u for u in uris if u]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ValueError(
                f"{source} line {number}: not a Gemini SFT line (contents ending in a model answer)"
            ) from None
        if not uris or not label or contents[-1].get("role") != "model":
            raise ValueError(f"{source} line {number}: needs a fileData image and a final model answer")
        rows.append({"gcs_uri": uris[-1], "label": label})
    if not rows:
        raise ValueError(f"{source} holds no examples")
    return rows


# ---------------------------------------------------------------------------- champion record
def golden_figures(metadata, prefix="golden_"):
    """The headline figures of an evaluation's metrics (``golden_status_accuracy`` ...) as
    {status_accuracy, miss_rate, overkill_rate, defect_type_accuracy, examples}."""
    names = ("status_accuracy", "miss_rate", "overkill_rate", "defect_type_accuracy", "examples")
    missing = [n for n in names if f"{prefix}{n}" not in metadata]
    if missing:
        raise ValueError(f"the evaluation logged no {', '.join(prefix + n for n in missing)}")
    return {name: float(metadata[f"{prefix}{name}"]) for name in names}


def champion_fields():
    """The keys every champion record carries (``champion_record`` writes them)."""
    return [
        "schema",
        "inspector",
        "run",
        "endpoint",
        "model",
        "checkpoint_id",
        "epoch",
        "base_model",
        "prompt",
        "system_instruction",
        "golden_id",
        "golden",
        "test",
        "decision_reason",
        "promoted_at",
    ]


def champion_record(
    *,
    inspector,
    run,
    endpoint,
    model,
    checkpoint_id,
    epoch,
    base_model,
    prompt,
    system_instruction,
    golden_id,
    golden,
    test=None,
    decision_reason="",
    promoted_at="",
):
    """The champion record, as stored in ``inspectors/<slug>/champion.json`` and its history.

    ``endpoint`` is what clients call (a checkpoint's own endpoint when an intermediate
    checkpoint won); ``prompt`` and ``system_instruction`` are what it was tuned with, so a
    client asks it the same way; ``golden`` holds its figures on the golden set ``golden_id``.
    """
    return {
        "schema": 1,
        "inspector": inspector,
        "run": run,
        "endpoint": endpoint,
        "model": model,
        "checkpoint_id": str(checkpoint_id),
        "epoch": int(epoch),
        "base_model": base_model,
        "prompt": prompt,
        "system_instruction": system_instruction,
        "golden_id": golden_id,
        "golden": dict(golden),
        "test": dict(test or {}),
        "decision_reason": decision_reason,
        "promoted_at": promoted_at,
    }


def check_champion_record(record):
    """``record`` if it is a champion record; ValueError naming what is missing otherwise."""
    if not isinstance(record, dict):
        raise ValueError("a champion record must be a JSON object")
    missing = [key for key in champion_fields() if key not in record]
    if missing:
        raise ValueError(f"the champion record lacks {', '.join(missing)}")
    if not str(record["endpoint"]).strip():
        raise ValueError("the champion record names no endpoint")
    golden_figures(record["golden"], prefix="")
    return record


def comparison_table(challenger, champion):
    """Champion and challenger side by side on the golden set, as a Markdown table."""

    def pct(figures, key):
        return f"{100 * float(figures[key]):.1f}%" if figures and key in figures else "n/a"

    best = (champion or {}).get("golden")
    head_champion = (
        f"champion (run {champion['run']}, epoch {champion['epoch']})" if champion else "champion (none yet)"
    )
    lines = [f"| golden set | {head_champion} | challenger (this run) |", "|---|---|---|"]
    for key, title in (
        ("status_accuracy", "status accuracy"),
        ("miss_rate", "miss rate (defects passed)"),
        ("overkill_rate", "overkill rate (good parts rejected)"),
        ("defect_type_accuracy", "defect-type accuracy"),
    ):
        lines.append(f"| {title} | {pct(best, key)} | {pct(challenger, key)} |")
    examples = int(float(challenger.get("examples", 0)))
    lines.append(f"| images | {int(float(best['examples'])) if best and 'examples' in best else 'n/a'} | {examples} |")
    return "\n".join(lines)

"""The nightly loop's rules: checkpoint choice, champion/challenger decision, champion record,
golden-set identity, training-token and cost estimate (the token arithmetic and the price
table are Google's facts, in platform_facts/gemini.py).

Pure functions only (no I/O): components ship them with ``additional_funcs`` (so every
function is self-contained, imports inside, and a table is a function, not a constant), and
the CLI and the tests import them directly. Storage access lives in champion_store.py.
"""

from platform_facts.gemini import image_token_count, text_token_count, tuning_prices


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


# ---------------------------------------------------------------------------- checkpoints
def sign_test_p(wins, losses):
    """One-sided exact sign test (McNemar's exact test on paired answers): the chance of at
    least ``wins`` wins out of ``wins + losses`` discordant examples if both were equally good."""
    import math

    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def checkpoint_order(row):
    """Sort key among checkpoints that are all better beyond noise than the last: higher
    status accuracy, then lower miss rate, then the later epoch (more training)."""
    return (-float(row["status_accuracy"]), float(row["miss_rate"]), -int(row["epoch"]), -int(row.get("step") or 0))


def choose_checkpoint(rows, correct=None, alpha=0.05):
    """(the checkpoint to ship, why): the last checkpoint, unless an earlier one is better
    beyond noise on the same validation examples.

    ``correct`` maps checkpoint_id -> per-example status correctness (the same examples in the
    same order for every checkpoint). An earlier checkpoint beats the last when it is right on
    more of the examples where the two disagree, and the one-sided exact sign test puts the
    chance of that under equal quality below ``alpha``. A tie, or a win a small validation set
    can produce by chance, keeps the last checkpoint: on 24 images two epochs tied and the
    earlier, worse one used to ship. The same rule holds on Vertex AI's larger validation sets,
    where real differences pass the test. Checkpoints whose every request failed are never
    chosen; ValueError when no checkpoint answered.
    """
    usable = [row for row in rows if float(row.get("error_rate", 0.0)) < 1.0]
    if not usable:
        raise ValueError("no checkpoint answered a single validation request")
    ordered = sorted(usable, key=lambda r: (int(r["epoch"]), int(r.get("step") or 0)))
    last, correct = ordered[-1], correct or {}
    base = (
        "the last checkpoint" if len(usable) == len(rows) or last is rows[-1] else "the latest checkpoint that answered"
    )
    better = []
    for row in ordered[:-1]:
        pairs = list(zip(correct.get(row["checkpoint_id"], []), correct.get(last["checkpoint_id"], []), strict=False))
        wins, losses = sum(a and not b for a, b in pairs), sum(b and not a for a, b in pairs)
        p = sign_test_p(wins, losses)
        if wins > losses and p < alpha:
            better.append((row, wins, losses, p))
    if not better:
        return last, (
            f"{base} (epoch {last['epoch']}): no earlier checkpoint was better beyond noise on the "
            f"{len(correct.get(last['checkpoint_id'], []))} validation images (one-sided sign test, p < {alpha})"
        )
    row, wins, losses, p = sorted(better, key=lambda b: checkpoint_order(b[0]))[0]
    return row, (
        f"epoch {row['epoch']} beat {base} (epoch {last['epoch']}) beyond noise: right on {wins} of the "
        f"{wins + losses} validation images where they disagree (one-sided sign test p = {p:.3f} < {alpha})"
    )


def checkpoint_metric_names(rows):
    """{checkpoint_id: metric-name stem} such as ``ckpt_e3``; ``ckpt_e3_s120`` when two
    checkpoints share an epoch."""
    from collections import Counter

    epochs = Counter(int(row["epoch"]) for row in rows)
    return {
        row["checkpoint_id"]: f"ckpt_e{int(row['epoch'])}"
        + (f"_s{int(row['step'])}" if epochs[int(row['epoch'])] > 1 else "")
        for row in rows
    }


def checkpoint_table(rows, selected_id):
    """A Markdown table of every checkpoint's validation figures, the chosen one marked."""

    def pct(value):
        return f"{100 * float(value):.1f}%"

    lines = [
        "| checkpoint | epoch | step | status accuracy | miss rate | overkill rate | defect-type accuracy | chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (int(r["epoch"]), int(r.get("step") or 0))):
        lines.append(
            f"| {row['checkpoint_id']} | {int(row['epoch'])} | {int(row.get('step') or 0)} | "
            f"{pct(row['status_accuracy'])} | {pct(row['miss_rate'])} | {pct(row['overkill_rate'])} | "
            f"{pct(row['defect_type_accuracy'])} | {'**yes**' if row['checkpoint_id'] == selected_id else ''} |"
        )
    return "\n".join(lines)


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


# ---------------------------------------------------------------------------- the decision
def promotion_decision(challenger, champion, golden_id, min_status_accuracy, max_miss_rate, margin):
    """Whether the challenger replaces the champion, and why.

    Args:
        challenger: the challenger's golden-set figures (``golden_figures``).
        champion: the current champion record, or None when there is none.
        golden_id: the id of the golden set the challenger was scored on.
        min_status_accuracy, max_miss_rate: absolute thresholds the challenger must meet.
        margin: how much worse than the champion (status accuracy lower, miss rate higher)
            the challenger may be and still be promoted; 0 means "at least as good".

    Returns:
        (promote, reason): the challenger must meet both thresholds, then it is promoted when
        there is no champion, when the champion was scored on another golden set (the
        figures are not comparable: thresholds only, said in the reason), or when it is not
        worse than the champion by more than ``margin`` on status accuracy and miss rate.
    """
    acc, miss = float(challenger["status_accuracy"]), float(challenger["miss_rate"])

    def pct(value):
        return f"{100 * float(value):.1f}%"

    if acc < min_status_accuracy:
        return False, f"status accuracy {pct(acc)} on the golden set is below the minimum {pct(min_status_accuracy)}"
    if miss > max_miss_rate:
        return False, f"miss rate {pct(miss)} on the golden set is above the maximum {pct(max_miss_rate)}"
    if champion is None:
        return (
            True,
            f"no champion yet; the challenger meets the thresholds (status accuracy {pct(acc)}, miss rate {pct(miss)})",
        )
    if champion.get("golden_id") != golden_id:
        return True, (
            f"the champion was scored on another golden set ({champion.get('golden_id')}, this run "
            f"{golden_id}), so only the thresholds were compared (status accuracy {pct(acc)}, miss rate {pct(miss)})"
        )
    best = champion["golden"]
    champion_acc, champion_miss = float(best["status_accuracy"]), float(best["miss_rate"])
    if acc < champion_acc - margin - 1e-9:
        return False, (
            f"status accuracy {pct(acc)} is worse than the champion's {pct(champion_acc)} "
            f"by more than the margin {pct(margin)}"
        )
    if miss > champion_miss + margin + 1e-9:
        return False, (
            f"miss rate {pct(miss)} is worse than the champion's {pct(champion_miss)} "
            f"by more than the margin {pct(margin)}"
        )
    return True, (
        f"not worse than the champion (run {champion.get('run')}) by more than {pct(margin)}: "
        f"status accuracy {pct(acc)} vs {pct(champion_acc)}, miss rate {pct(miss)} vs {pct(champion_miss)}"
    )


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


# ---------------------------------------------------------------------------- tokens and cost
def sft_line_parts(line):
    """(text characters, image references) of one Gemini SFT JSONL line: every text part,
    the system instruction included; each image as ("uri", fileUri) or ("inline", base64)."""
    import json

    record = json.loads(line)
    characters, images = 0, []
    system = record.get("systemInstruction") or record.get("system_instruction") or {}
    turns = list(record.get("contents") or []) + ([system] if isinstance(system, dict) else [])
    if isinstance(system, str):
        characters += len(system)
    for turn in turns:
        for part in turn.get("parts") or []:
            if isinstance(part.get("text"), str):
                characters += len(part["text"])
            file_data = part.get("fileData") or part.get("file_data")
            inline = part.get("inlineData") or part.get("inline_data")
            if isinstance(file_data, dict):
                images.append(("uri", file_data.get("fileUri") or file_data.get("file_uri") or ""))
            elif isinstance(inline, dict):
                images.append(("inline", inline.get("data") or ""))
    return characters, images


def estimate_training_tokens(examples, epochs, base_model="", media_resolution=""):
    """Billable training tokens: tokens in the training file times epochs.

    Args:
        examples: one (text characters, [(width, height) or None per image]) per line.
        epochs: the job's epoch count.
        base_model, media_resolution: how an image counts (platform_facts.gemini.image_token_count:
            a fixed count per resolution for Gemini 3, by size for 2.5).

    Returns:
        {"tokens": per epoch x epochs, "tokens_per_epoch", "examples", "images",
        "unknown_images" (counted as 258 each)}.
    """
    per_epoch, images, unknown = 0, 0, 0
    for characters, sizes in examples:
        per_epoch += text_token_count(characters)
        for size in sizes:
            images += 1
            unknown += size is None
            per_epoch += image_token_count(*(size or (0, 0)), base_model, media_resolution)
    return {
        "tokens": per_epoch * int(epochs),
        "tokens_per_epoch": per_epoch,
        "examples": len(examples),
        "images": images,
        "unknown_images": unknown,
    }


def training_price(base_model, override_usd_per_million=0.0):
    """(USD per 1M training tokens or None, where the figure comes from) for ``base_model``."""
    if override_usd_per_million and override_usd_per_million > 0:
        return float(override_usd_per_million), "training_price_per_million_tokens_usd parameter"
    table = tuning_prices()
    model = (base_model or "").rsplit("/", 1)[-1]
    price = table["usd_per_million_training_tokens"].get(model)
    if price is None:
        return None, f"no verified price for {model} ({table['source']}, checked {table['checked']})"
    return float(price), f"{table['source']} (checked {table['checked']})"


def cost_guard_problem(estimate, epochs, base_model, price, max_training_tokens, max_tuning_cost_usd):
    """Why a run must not start a tuning job, or None.

    ``estimate`` is ``estimate_training_tokens``'s result; ``price`` USD per 1M tokens or None.
    ``max_training_tokens`` and ``max_tuning_cost_usd`` of 0 mean no limit. A cost limit for a
    model without a verified price is refused rather than guessed.
    """
    tokens = int(estimate["tokens"])
    what = (
        f"estimated {tokens:,} training tokens ({estimate['examples']} examples, "
        f"{estimate['tokens_per_epoch']:,} tokens per epoch x {epochs} epochs)"
    )
    if max_training_tokens and tokens > max_training_tokens:
        return f"refusing to start tuning: {what} exceed max_training_tokens={max_training_tokens:,}"
    if max_tuning_cost_usd and max_tuning_cost_usd > 0:
        if price is None:
            source = tuning_prices()["source"]
            return (
                f"refusing to start tuning: max_tuning_cost_usd={max_tuning_cost_usd:g} is set, but there is no "
                f"verified price for {base_model} in platform_facts/gemini.py; set "
                f"training_price_per_million_tokens_usd from {source}, or limit tokens with max_training_tokens"
            )
        cost = tokens / 1e6 * price
        if cost > max_tuning_cost_usd:
            return (
                f"refusing to start tuning: {what} at ${price:g} per 1M tokens cost about ${cost:,.2f}, "
                f"above max_tuning_cost_usd={max_tuning_cost_usd:g}"
            )
    return None

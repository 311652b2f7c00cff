"""Checkpoint choice: which epoch of a tuning job ships, on evidence that can tell checkpoints
apart (pure functions, shipped with the components that reach them)."""


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

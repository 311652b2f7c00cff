"""Component: champion or challenger? The decision, with its reason, before anything changes.

The rules are pure functions here (shipped with ``additional_funcs``, tested directly): the
sample-size gate (``sample_size_problem``), the comparison (``promotion_verdict``, better
beyond noise by ``accuracy_gain_lower_bound``), and the figures (``golden_rates``).
"""

from kfp.dsl import Input, Markdown, Metrics, Output, OutputPath

from components.champion import champion_record, check_champion_record, comparison_table, inspector_paths, run_object
from components.champion_store import inspector_name, read_json_object, write_json_object
from components.clients import parse_gcs_uri
from components.packages import BASE_IMAGE, STORAGE_PACKAGES
from components.shipping import lightweight_component
from platform_facts.gemini import lifecycle_problem


def golden_rates(metadata, prefix="golden_"):
    """An evaluation's headline figures (``golden_status_accuracy`` ...) as {status_accuracy,
    miss_rate, overkill_rate, defect_type_accuracy, examples}. A rate the evaluation did not log
    (its denominator was zero: no defect images for the miss rate, no good ones for the
    overkill rate) is left out, so tables show it as "n/a". ValueError without the accuracy."""
    names = ("status_accuracy", "miss_rate", "overkill_rate", "defect_type_accuracy", "examples")
    found = {n: float(metadata[prefix + n]) for n in names if isinstance(metadata.get(prefix + n), (int, float))}
    found = {n: v for n, v in found.items() if v == v}  # NaN: not measured
    if "status_accuracy" not in found or "examples" not in found:
        raise ValueError(f"the evaluation logged no {prefix}status_accuracy / {prefix}examples")
    return found


def class_count_text(counts):
    """ "Pass 10, Crack 3": classes with their images, in name order."""
    return ", ".join(f"{name} {counts[name]}" for name in sorted(counts, key=str.lower)) or "no images"


def sample_size_problem(check, min_test_per_class, min_golden_per_class):
    """Why this run's figures are too thin to promote on, or None.

    ``check`` is prepare_golden_set's ``golden_check``: {"classes" (this run's classes),
    "test_counts", "golden_counts" (images per class), "golden_stored" (False: no golden set
    exists yet, this run's test split stood in for it)}. Every class of the run needs at least
    ``min_test_per_class`` test images and ``min_golden_per_class`` golden images.
    """
    classes = sorted(check.get("classes") or [], key=str.lower)
    test, golden = check.get("test_counts") or {}, check.get("golden_counts") or {}
    short_test = {c: int(test.get(c, 0)) for c in classes if int(test.get(c, 0)) < min_test_per_class}
    short_golden = {c: int(golden.get(c, 0)) for c in classes if int(golden.get(c, 0)) < min_golden_per_class}
    if not check.get("golden_stored", True):
        return (
            f"there is no golden set yet: this run's test split ({class_count_text(test)}) has fewer than "
            f"min_golden_per_class={min_golden_per_class} images of "
            f"{', '.join(short_golden) or 'some class'} to create one; a run with more images creates it"
        )
    if short_test:
        return (
            f"too few test images to judge: {class_count_text(short_test)} "
            f"(min_test_per_class={min_test_per_class} per class; test split: {class_count_text(test)})"
        )
    if short_golden:
        return (
            f"too few golden-set images to judge: {class_count_text(short_golden)} "
            f"(min_golden_per_class={min_golden_per_class} per class; golden set: {class_count_text(golden)})"
        )
    return None


def accuracy_gain_lower_bound(challenger_accuracy, champion_accuracy, examples, confidence=0.95):
    """One-sided lower confidence bound of (challenger - champion) accuracy on ``examples`` images.

    Agresti-Caffo: one success and one failure added to each side, then the normal bound
    (z = 1.645 for 95 %). It treats the two scores as independent samples; they are paired
    (the same images), which makes it conservative: a champion is not replaced on noise.
    """
    from statistics import NormalDist

    n = max(0, int(examples))
    z = NormalDist().inv_cdf(confidence)
    a = (challenger_accuracy * n + 1) / (n + 2)
    b = (champion_accuracy * n + 1) / (n + 2)
    return (a - b) - z * ((a * (1 - a) + b * (1 - b)) / (n + 2)) ** 0.5


def promotion_verdict(challenger, champion, golden_id, min_status_accuracy, max_miss_rate, margin, champion_valid=True):
    """(promote, reason): whether the challenger replaces the champion, on the golden set.

    The challenger must meet ``min_status_accuracy`` and ``max_miss_rate``. With no champion,
    a retired one (``champion_valid=False``: its base model is retired, so it no longer
    answers, and it counts as absent) or a champion scored on another golden set, that is enough. Otherwise it must
    be better beyond noise: status accuracy higher by at least ``margin`` and the one-sided
    95 % lower bound of the gain (``accuracy_gain_lower_bound``) above 0, and a miss rate no
    higher than the champion's. An equal challenger keeps the champion.
    """

    def pct(value):
        return f"{100 * float(value):.1f}%"

    acc, miss, n = challenger["status_accuracy"], challenger.get("miss_rate"), challenger["examples"]
    if miss is None:
        return False, "the golden set has no defect images, so its miss rate cannot be measured"
    if acc < min_status_accuracy:
        return False, f"status accuracy {pct(acc)} on the golden set is below the minimum {pct(min_status_accuracy)}"
    if miss > max_miss_rate:
        return False, f"miss rate {pct(miss)} on the golden set is above the maximum {pct(max_miss_rate)}"
    meets = f"the challenger meets the thresholds (status accuracy {pct(acc)}, miss rate {pct(miss)})"
    if champion is None:
        return True, f"no champion yet; {meets}"
    if not champion_valid:
        return True, f"the champion (run {champion.get('run')}) is retired and counts as absent; {meets}"
    if champion.get("golden_id") != golden_id:
        return True, (
            f"the champion was scored on another golden set ({champion.get('golden_id')}, this run "
            f"{golden_id}), so only the thresholds were compared: {meets}"
        )
    best = champion["golden"]
    old_acc, old_miss = float(best["status_accuracy"]), float(best.get("miss_rate", 0.0))
    versus = f"status accuracy {pct(acc)} vs the champion's {pct(old_acc)} (run {champion.get('run')})"
    if miss > old_miss + 1e-9:
        return False, f"miss rate {pct(miss)} is higher than the champion's {pct(old_miss)}; {versus}"
    if acc < old_acc + margin - 1e-9:
        return False, f"not better than the champion by the margin {pct(margin)}: {versus}"
    bound = accuracy_gain_lower_bound(acc, old_acc, n)
    if bound <= 0:
        return False, (
            f"not better beyond noise: {versus} on {int(n)} images; the 95% lower bound of the gain is "
            f"{pct(bound)}, not above 0"
        )
    return True, f"better beyond noise: {versus} on {int(n)} images (95% lower bound of the gain {pct(bound)})"


def read_champion(home, champion_path):
    """(champion record or None, its generation) from bucket ``home``; ValueError naming the
    object when it is not a champion record."""
    champion, generation = read_json_object(home, champion_path)
    if champion is not None:
        try:
            check_champion_record(champion)
        except ValueError as error:
            raise ValueError(
                f"gs://{home.name}/{champion_path} is not a champion record ({error}); repair or remove it"
            ) from None
    return champion, generation


def figures_on_test_split(test_metrics):
    """The ``eval_*`` figures of the test-split evaluation without the prefix ({} for none)."""
    if test_metrics is None:
        return {}
    return {
        k[len("eval_") :]: float(v)
        for k, v in test_metrics.metadata.items()
        if k.startswith("eval_") and isinstance(v, (int, float))
    }


def promotion_outcome(challenger, champion, golden_id, check, thresholds):
    """(promote, reason): nothing is promoted on too few images (sample_size_problem) or
    without a golden set; else promotion_verdict, a champion whose base model is retired
    counting as absent (it no longer answers)."""
    t = thresholds
    problem = sample_size_problem(check, t["min_test_per_class"], t["min_golden_per_class"]) if check else None
    if problem or not golden_id:
        return False, problem or "there is no golden set to judge on"
    retired = lifecycle_problem(champion["base_model"]) if champion else None
    promote, reason = promotion_verdict(
        challenger,
        champion,
        golden_id,
        t["min_status_accuracy"],
        t["max_miss_rate"],
        t["promotion_margin"],
        retired is None,
    )
    return promote, f"{reason} ({retired})" if retired else reason


def log_decision_metrics(decision_metrics, promote, challenger, champion, decision, reason):
    """``promote_decision`` and, against a champion, its golden figures and the accuracy delta;
    also as JSON at the artifact's path."""
    import json

    decision_metrics.log_metric("promote_decision", 1.0 if promote else 0.0)
    if champion is not None:
        decision_metrics.log_metric("champion_golden_status_accuracy", float(champion["golden"]["status_accuracy"]))
        if "miss_rate" in champion["golden"]:
            decision_metrics.log_metric("champion_golden_miss_rate", float(champion["golden"]["miss_rate"]))
        decision_metrics.log_metric(
            "promote_status_accuracy_delta",
            round(challenger["status_accuracy"] - float(champion["golden"]["status_accuracy"]), 6),
        )
    with open(decision_metrics.path, "w") as f:
        json.dump({"decision": decision, "reason": reason}, f)


def decision_report_text(challenger, champion, decision, reason, golden_id, thresholds, inspector):
    """The decision report's Markdown: both side by side, the decision, its reason and the rules."""
    t = thresholds
    return (
        f"# Champion or challenger?\n\n{comparison_table(challenger, champion)}\n\n"
        f"**Decision: {decision}.** {reason[0].upper() + reason[1:]}.\n\n"
        f"Golden set `{golden_id}`; thresholds: status accuracy at least {100 * t['min_status_accuracy']:.1f}%, "
        f"miss rate at most {100 * t['max_miss_rate']:.1f}%, better than the champion by at least "
        f"{100 * t['promotion_margin']:.1f}% and beyond noise (95% one-sided); at least {t['min_test_per_class']} "
        f"test and {t['min_golden_per_class']} golden images per class. Inspector `{inspector}`.\n"
    )


@lightweight_component(base_image=BASE_IMAGE, packages_to_install=STORAGE_PACKAGES, install_kfp_package=False)
def decide_promotion(
    project: str,
    bucket: str,
    golden_metrics: Input[Metrics],
    golden_id: str,
    challenger_endpoint: str,
    decision_metrics: Output[Metrics],
    decision_report: Output[Markdown],
    decision_record: OutputPath(str),
    tuned_model_display_name: str = "visual-defect-inspector",
    run_name: str = "",
    challenger_model: str = "",
    checkpoint_id: str = "",
    checkpoint_epoch: int = 0,
    base_model: str = "gemini-3.5-flash",
    prompt: str = "",
    system_instruction: str = "",
    test_metrics: Input[Metrics] = None,
    min_status_accuracy: float = 0.9,
    max_miss_rate: float = 0.1,
    promotion_margin: float = 0.02,
    dataset_uri: str = "",
    golden_check: str = "",
    min_test_per_class: int = 3,
    min_golden_per_class: int = 3,
) -> str:
    """Compares the challenger with the champion on the golden set and decides.

    Nothing is promoted when the test split or the golden set has fewer than
    ``min_test_per_class`` / ``min_golden_per_class`` images of a class, or when there is no
    golden set yet (``sample_size_problem``): the run succeeds and the reason says why.
    Otherwise the challenger must meet the absolute thresholds on the golden set
    (``min_status_accuracy``, ``max_miss_rate``) and, against a champion, be better beyond
    noise (``promotion_verdict``): an equal challenger keeps the champion. Nothing changes here:
    the pipeline runs promote_champion only when this returns "promote", and that step
    replaces the champion only if it is still the one read here (its generation).

    The decision and its reason go to ``inspectors/<inspector>/runs/<run>/decision.json`` for
    the run's notification.

    Args:
        project: Google Cloud project of the bucket.
        bucket: ``gs://`` URI holding ``inspectors/<inspector>/champion.json``.
        golden_metrics: the challenger's evaluation on the golden set (``golden_*`` metrics).
        golden_id: the golden set's identity (prepare_golden_set).
        challenger_endpoint: the chosen checkpoint's endpoint.
        decision_metrics: ``promote_decision`` (1 promote, 0 keep), and when there is a
            champion ``champion_golden_status_accuracy``, ``champion_golden_miss_rate`` and
            ``promote_status_accuracy_delta`` (challenger minus champion).
        decision_report: champion and challenger side by side, the decision and its reason.
        decision_record: JSON {"decision", "reason", "candidate" (the champion record this
            challenger would become), "champion" (the current one or null),
            "champion_generation" (0: none), "thresholds"}.
        tuned_model_display_name: the inspector; champions are kept per inspector.
        run_name: the pipeline run's name (``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``).
        challenger_model: the tuned model's resource name (``.../models/ID@1``).
        checkpoint_id, checkpoint_epoch: the chosen checkpoint.
        base_model, prompt, system_instruction: how the challenger was tuned and is asked.
        test_metrics: the challenger's figures on this run's test split, kept in the record.
        min_status_accuracy: the least golden-set status accuracy a champion may have.
        max_miss_rate: the highest golden-set miss rate (defects passed as good) allowed.
        promotion_margin: how much higher the challenger's golden status accuracy must be
            than the champion's (on top of the gain being beyond noise).
        dataset_uri: the run's imported dataset ("" synthesized); with the default
            inspector name it names the inspector (champion_store ``inspector_name``).
        golden_check: prepare_golden_set's JSON with this run's classes and images per class
            in the test split and golden set; "" skips the sample-size gate.
        min_test_per_class, min_golden_per_class: the fewest test / golden images of each
            class a decision to promote needs.

    Returns:
        "promote" or "keep".
    """
    import json

    from google.cloud import storage

    bucket_name, _ = parse_gcs_uri(bucket.rstrip("/") + "/x")
    home = storage.Client(project=project).bucket(bucket_name)
    inspector = inspector_name(tuned_model_display_name, dataset_uri)
    champion, generation = read_champion(home, inspector_paths(inspector)["champion"])
    challenger = golden_rates(golden_metrics.metadata, "golden_")
    check = json.loads(golden_check) if golden_check else None
    thresholds = {
        "min_status_accuracy": min_status_accuracy,
        "max_miss_rate": max_miss_rate,
        "promotion_margin": promotion_margin,
        "min_test_per_class": min_test_per_class,
        "min_golden_per_class": min_golden_per_class,
    }
    promote, reason = promotion_outcome(challenger, champion, golden_id, check, thresholds)
    decision = "promote" if promote else "keep"
    candidate = champion_record(
        inspector=inspector,
        run=run_name,
        endpoint=challenger_endpoint,
        model=challenger_model,
        checkpoint_id=checkpoint_id,
        epoch=checkpoint_epoch,
        base_model=base_model,
        prompt=prompt,
        system_instruction=system_instruction,
        golden_id=golden_id,
        golden=challenger,
        test=figures_on_test_split(test_metrics),
        decision_reason=reason,
    )
    record = {
        "decision": decision,
        "reason": reason,
        "candidate": candidate,
        "champion": champion,
        "champion_generation": generation,
        "run": run_name,
        "inspector": inspector,
        "sample_sizes": check,
        "thresholds": thresholds,
    }
    write_json_object(home, run_object(inspector, run_name, "decision.json"), record)
    with open(decision_record, "w") as f:
        json.dump(record, f)
    log_decision_metrics(decision_metrics, promote, challenger, champion, decision, reason)
    with open(decision_report.path, "w") as f:
        f.write(decision_report_text(challenger, champion, decision, reason, golden_id, thresholds, inspector))
    print(f"decision: {decision}: {reason} (inspector {inspector})", flush=True)
    return decision

"""Robustness benchmark of the local tuned model: tune on one data set, score on sets drawn differently.

Prints figures (it asserts nothing). Three scenarios, each a fresh tuning job's worth of training
(the job's own 80/10/10 split; validation used only for best-epoch selection):

  standard: tune on the default synthetic set (200 "standard" images, seed 42), score on its
            test split, on standard images of other seeds, on a shifted-geometry set ("strong":
            other sizes, widths, lengths, kinks, shades, noise, blur, JPEG), and on the photo-like
            set (a domain it never saw; expected to fail, printed for honesty).
  photo:    tune on 60 photo-like images per class (seed 1; --per-class sets another count, for
            photo and texture alike), score on its test split and on
            photo-like images of other seeds at their full size (about 320 px; the model resizes).
  texture:  tune on 60 photographic-texture images per class (bench/textures.py: crops of real
            photographs from scikit-image's wheel with scratches, cracks and stains drawn by our
            code; seed 1, from the left 60 % of each photograph), score on crops from the right
            40 % (seeds 2 + 3, and 8101 + 8102 held out), and on fresh crops of the left 60 %
            (seeds 5 + 6: surfaces whose every part was seen in tuning, in other crops, turns and
            noise; it tells what the unseen content costs from what the marks themselves do).
            Then each photograph's overkill and miss over the scored parts' sets.
Each row also gives every class's recall (the share of its images whose type is right; for
Pass, the share called Pass).

No scored image is one the model was tuned or validated on (checked by content hash).
The sets of seeds 2 + 3, 2024 + 7 and 99 + 100 also served to choose the model's design
(README lists what was measured on them), so their figures are those of a development set;
the "held out" sets (seeds 8101 + 8102 and 8301 + 8302) were drawn only to score the result.
Seeds 8201 + 8202 were held out too until the good products a model called defective there
were looked at (they showed the sensor-noise weakness the training noise now removes), so
they are scored but no longer held out.
Scoring is the notebook's regex rule (components.labels.judge_answer): "defect type" is its
accuracy over all images (a good part's type is right when it is called Pass); a miss is a
defective part not judged Defect, an overkill a good part not judged Pass (an unreadable
answer counts as wrong either way). "status AUC" does not depend on where the decision's
threshold lies: the share of (good, defective) pairs in which the good part gets the higher
logit of " Pass" against " Defect" after "Status:" (0.5 is chance, 1 a perfect separation;
a few seeds or variants are compared by it, since 50 good parts move overkill in 0.02 steps).

Run from the repository root:
    python bench/bench_robustness.py                 # all three scenarios, full sets
    python bench/bench_robustness.py --scenario photo --quick   # or texture; both: standard + photo
    python bench/bench_robustness.py --scenario texture --quick --per-class 120   # the data lever
"""

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # run as a script from anywhere

import torch  # noqa: E402
from datasets import CLASSES, Sample, make_balanced, make_samples, stratified_split, train_on  # noqa: E402
from textures import make_textures  # noqa: E402

from components.labels import DEFECT_TYPES, LABELS, judge_answer  # noqa: E402
from localvertex.model import InspectorModel, TrainConfig  # noqa: E402
from localvertex.model.tokenizer import BOS  # noqa: E402
from localvertex.model.training import BATCH_SIZE  # noqa: E402


def score(model: InspectorModel, samples: list[Sample]) -> tuple[dict[str, float], list[dict]]:
    """Status and defect-type accuracy (the notebook's rule), miss and overkill rates, images/s,
    and each class's recall (the share of its images whose type is right: Pass for a good part);
    and each image's verdict (judge_answer's), for figures by other groupings."""
    started = time.perf_counter()
    answers = model.generate([s.image for s in samples])
    speed = len(samples) / (time.perf_counter() - started)
    verdicts = [judge_answer(s.label, a, DEFECT_TYPES) for s, a in zip(samples, answers, strict=True)]
    passes = [v for s, v in zip(samples, verdicts, strict=True) if s.defect_type is None]
    defects = [v for s, v in zip(samples, verdicts, strict=True) if s.defect_type is not None]
    figures = {
        "status": statistics.mean(v["status_correct"] for v in verdicts),
        "type": statistics.mean(v["type_correct"] for v in verdicts),
        "miss": statistics.mean(not v["status_correct"] for v in defects) if defects else float("nan"),
        "overkill": statistics.mean(not v["status_correct"] for v in passes) if passes else float("nan"),
        "status AUC": status_auc(model, samples),
        "images/s": speed,
        **{
            f"recall {t or 'Pass'}": statistics.mean(v["type_correct"] for v in of_class) if of_class else float("nan")
            for t in CLASSES
            for of_class in [[v for s, v in zip(samples, verdicts, strict=True) if s.defect_type == t]]
        },
    }
    return figures, verdicts


@torch.inference_mode()
def status_auc(model: InspectorModel, samples: list[Sample]) -> float:
    """How well the " Pass" - " Defect" logit after "Status:" separates good from defective parts."""
    pass_row, defect_row = (model.tokenizer.encode(LABELS[t]) for t in (None, DEFECT_TYPES[0]))
    branch = next(k for k, (a, b) in enumerate(zip(pass_row, defect_row, strict=False)) if a != b)
    prefix = torch.tensor([[BOS, *pass_row[:branch]]])
    margins = []
    for pixels in model.pixel_batches([s.image for s in samples]):
        logits = model.network(pixels, prefix.expand(len(pixels), -1))[:, -1]
        margins += (logits[:, pass_row[branch]] - logits[:, defect_row[branch]]).tolist()
    good = [m for m, s in zip(margins, samples, strict=True) if s.defect_type is None]
    bad = [m for m, s in zip(margins, samples, strict=True) if s.defect_type is not None]
    if not good or not bad:
        return float("nan")
    return sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))


def by_source(samples: list[Sample], verdicts: list[dict]) -> None:
    """Prints each source's overkill and miss (the verdicts `score` gave the samples)."""
    print("  by photograph (overkill: good crops not called Pass; miss: defective crops not called Defect)")
    for source in sorted({s.source for s in samples}):
        good = [v for s, v in zip(samples, verdicts, strict=True) if s.source == source and s.defect_type is None]
        bad = [v for s, v in zip(samples, verdicts, strict=True) if s.source == source and s.defect_type is not None]
        overkill = sum(not v["status_correct"] for v in good)
        miss = sum(not v["status_correct"] for v in bad)
        print(
            f"    {source:<22} overkill {overkill:>2} of {len(good):>3}   miss {miss:>2} of {len(bad):>3}", flush=True
        )


def digest(sample: Sample) -> str:
    return hashlib.sha256(sample.image.tobytes()).hexdigest()


def tune(name: str, samples: list[Sample], config: TrainConfig) -> tuple[InspectorModel, set[str], list[Sample], str]:
    """Trains on the 80/10/10 split's train part (validation for best-epoch selection).

    Returns the model, the hashes of every image it was tuned or validated on, the test
    split, and a line of tuning figures.
    """
    train_set, validation_set, test_set = stratified_split(samples)
    result, seconds = train_on(train_set, validation_set, config, indent="    ")
    shown = result.step_count * BATCH_SIZE  # augmented images the network was trained on
    line = (
        f"tuned on {len(train_set)} images ({len(validation_set)} validation) at "
        f"{result.model.network.config.input_size} px, {config.epochs} epochs, adapter {config.adapter_size}: "
        f"{seconds:.1f} s, {result.step_count} steps, {shown / seconds:.0f} training images/s, "
        f"best epoch {result.best_epoch}"
    )
    print(f"  [{name}] {line}", flush=True)
    return result.model, {digest(s) for s in train_set + validation_set}, test_set, line


def report(
    scenario: str, model: InspectorModel, seen: set[str], sets: dict[str, list[Sample]]
) -> tuple[list[tuple], dict[str, list[dict]]]:
    """Scores the model on each set (none may share an image with its tuning data); returns the
    table rows and each set's verdicts."""
    rows, verdicts = [], {}
    for name, samples in sets.items():
        overlap = sum(digest(s) in seen for s in samples)
        if overlap:
            raise RuntimeError(f"{name}: {overlap} scored images were in the tuning data")
        figures, verdicts[name] = score(model, samples)
        rows.append((scenario, name, len(samples), figures))
        print(
            f"  {name:<46} {len(samples):>5}  "
            + "  ".join(f"{k} {v:.3f}" if k != "images/s" else f"{v:.0f} images/s" for k, v in figures.items()),
            flush=True,
        )
    return rows, verdicts


def print_table(rows: list[tuple], tuning: dict[str, str]) -> None:
    """The figures once more, as the Markdown table README.md quotes."""
    recalls = [f"recall {t or 'Pass'}" for t in CLASSES]
    print(
        "\n| tuned on | scored on | images | status | defect type | miss | overkill | status AUC | "
        + " | ".join(r.replace("recall ", "") + " recall" for r in recalls)
        + " | scoring images/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(recalls) + "---:|")
    for scenario, name, count, f in rows:
        print(
            f"| {scenario} | {name} | {count} | {f['status']:.3f} | {f['type']:.3f} | {f['miss']:.3f} "
            f"| {f['overkill']:.3f} | {f['status AUC']:.3f} | "
            + " | ".join(f"{f[r]:.3f}" for r in recalls)
            + f" | {f['images/s']:.0f} |"
        )
    for scenario, line in tuning.items():
        print(f"\n{scenario}: {line}")


def standard_sets(size: int) -> dict[str, list[Sample]]:
    """Sets drawn differently from the standard tuning set (seed 42)."""
    return {
        "standard, seeds 99 + 100": make_samples(400 // size, seed=99) + make_samples(400 // size, seed=100),
        "shifted geometry (strong), seeds 2024 + 7": make_samples(400 // size, seed=2024, variation="strong")
        + make_samples(400 // size, seed=7, variation="strong"),
        "photo-like, full size, seed 2 (unseen domain)": make_balanced(100 // size, seed=2, variation="photo"),
        "shifted geometry, seeds 8201 + 8202 (looked at)": make_samples(400 // size, seed=8201, variation="strong")
        + make_samples(400 // size, seed=8202, variation="strong"),
        "shifted geometry, seeds 8301 + 8302, held out": make_samples(400 // size, seed=8301, variation="strong")
        + make_samples(400 // size, seed=8302, variation="strong"),
    }


def photo_sets(size: int) -> dict[str, list[Sample]]:
    """Photo-like sets of other seeds than the tuning set (seed 1), at their full size."""
    return {
        "photo-like, full size, seeds 2 + 3": make_balanced(100 // size, seed=2, variation="photo")
        + make_balanced(100 // size, seed=3, variation="photo"),
        "photo-like, full size, seeds 8101 + 8102, held out": make_balanced(100 // size, seed=8101, variation="photo")
        + make_balanced(100 // size, seed=8102, variation="photo"),
    }


def texture_tuning_set(per_class: int = 60) -> list[Sample]:
    """Photographic-texture images per class from the photographs' tuning parts (seed 1)."""
    return make_textures(per_class, seed=1, held_out=False)


SCORED_PARTS = "textures, scored part"


def texture_sets(size: int) -> dict[str, list[Sample]]:
    """Photographic-texture sets from the photographs' scored parts (bench/textures.py), and
    fresh crops of their tuning parts."""
    return {
        f"{SCORED_PARTS}, seeds 2 + 3": make_textures(100 // size, seed=2, held_out=True)
        + make_textures(100 // size, seed=3, held_out=True),
        f"{SCORED_PARTS}, seeds 8101 + 8102, held out": make_textures(100 // size, seed=8101, held_out=True)
        + make_textures(100 // size, seed=8102, held_out=True),
        "textures, tuning part, fresh crops, seeds 5 + 6": make_textures(100 // size, seed=5, held_out=False)
        + make_textures(100 // size, seed=6, held_out=False),
    }


def _per_class(text: str) -> int:
    """--per-class's value: at least 10, so that each class has a validation and a test share."""
    value = int(text)
    if value < 10:
        raise argparse.ArgumentTypeError("must be at least 10 (each class needs a test and validation share)")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("standard", "photo", "texture", "both", "all"), default="all")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--adapter-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--quick", action="store_true", help="smaller scoring sets (a quarter)")
    parser.add_argument(
        "--per-class",
        type=_per_class,
        default=60,
        help="photo and texture tuning images per class (60: the issue's terms; more measures the data lever)",
    )
    args = parser.parse_args()
    size = 4 if args.quick else 1
    config = TrainConfig(epochs=args.epochs, adapter_size=args.adapter_size, seed=args.seed)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}; {config}", flush=True)

    rows, tuning = [], {}
    scenarios = {
        "standard": ("200 standard images (seed 42)", lambda: make_samples(200, seed=42), standard_sets),
        "photo": (
            f"{args.per_class} photo-like images per class (seed 1)",
            lambda: make_balanced(args.per_class, seed=1, variation="photo"),
            photo_sets,
        ),
        "texture": (
            f"{args.per_class} photographic-texture images per class (seed 1)",
            lambda: texture_tuning_set(args.per_class),
            texture_sets,
        ),
    }
    chosen = {"both": ("standard", "photo"), "all": tuple(scenarios)}.get(args.scenario, (args.scenario,))
    for scenario, (description, tuning_set, scored_sets) in scenarios.items():
        if scenario not in chosen:
            continue
        print(f"{scenario}: tune on {description}", flush=True)
        model, seen, test, tuning[scenario] = tune(scenario, tuning_set(), config)
        sets = scored_sets(size)
        new_rows, verdicts = report(scenario, model, seen, {"test split": test, **sets})
        rows += new_rows
        if scenario == "texture":
            scored = [name for name in sets if name.startswith(SCORED_PARTS)]
            by_source([s for name in scored for s in sets[name]], [v for name in scored for v in verdicts[name]])
    print_table(rows, tuning)


if __name__ == "__main__":
    main()

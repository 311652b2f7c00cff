"""Benchmark of the local tuned model: accuracy, robustness, training time, inference speed.

Prints figures (it asserts nothing). Run from the repository root:
    python bench/bench_model.py [--epochs 5] [--adapter-size 4]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # run as a script from anywhere

import torch  # noqa: E402
from datasets import Sample, make_samples, stratified_split, train_on  # noqa: E402

from components.labels import DEFECT_TYPES, judge_answer  # noqa: E402
from localvertex.model import InspectorModel, TrainConfig  # noqa: E402


def score(model: InspectorModel, samples: list[Sample]) -> dict[str, float]:
    """Status/type accuracy (the notebook's rule) and overkill (Pass called Defect) rate."""
    answers = model.generate([s.image for s in samples])
    verdicts = [judge_answer(s.label, a, DEFECT_TYPES) for s, a in zip(samples, answers, strict=False)]
    passes = [v for s, v in zip(samples, verdicts, strict=False) if s.defect_type is None]
    return {
        "status_accuracy": statistics.mean(v["status_correct"] for v in verdicts),
        "type_accuracy": statistics.mean(v["type_correct"] for v in verdicts),
        "exact_match": statistics.mean(v["exact_match"] for v in verdicts),
        "overkill": statistics.mean(not v["status_correct"] for v in passes),
    }


def report(title: str, figures: dict[str, float], count: int) -> None:
    print(f"{title} ({count} images): " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--adapter-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    train_set, validation_set, test_set = stratified_split(make_samples(200, seed=42))
    config = TrainConfig(epochs=args.epochs, adapter_size=args.adapter_size, seed=args.seed)
    result, seconds = train_on(train_set, validation_set, config)
    print(
        f"1. default job {config}: {len(train_set)}/{len(validation_set)}/{len(test_set)} split, "
        f"{result.step_count} steps, {result.token_count} tokens, training {seconds:.1f} s"
    )
    report("   test", score(result.model, test_set), len(test_set))

    strong = make_samples(400, seed=2024, variation="strong") + make_samples(400, seed=7, variation="strong")
    report("2. robustness, strong variation, seeds 2024 + 7", score(result.model, strong), len(strong))
    fresh = make_samples(400, seed=99)
    report("   fresh standard images, seed 99", score(result.model, fresh), len(fresh))

    with tempfile.TemporaryDirectory() as directory:
        result.model.save(Path(directory))
        model = InspectorModel.load(Path(directory))
    images = [s.image for s in strong]
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        batched, median, p95 = inference_speed(model, images)
        print(
            f"3. inference, {threads} thread(s) (saved + loaded model, greedy, PIL images in): "
            f"batched {batched:.0f} images/s; one image median {median:.2f} ms, p95 {p95:.2f} ms"
        )
    torch.set_num_threads(default_threads)


def inference_speed(model: InspectorModel, images: list) -> tuple[float, float, float]:
    """Returns batched images/s, and median and p95 milliseconds for one-image calls."""
    model.generate(images[:64])  # warm-up
    started = time.perf_counter()
    model.generate(images)
    batched = len(images) / (time.perf_counter() - started)
    latencies = []
    for image in images[:100]:
        started = time.perf_counter()
        model.generate([image])
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return batched, statistics.median(latencies), latencies[94]


if __name__ == "__main__":
    main()

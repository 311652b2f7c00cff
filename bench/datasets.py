"""Labelled image sets drawn with the pipeline's synthesizer (components.drawing)."""

import random
import time
from dataclasses import dataclass

from PIL import Image

from components.drawing import draw_product_image
from components.labels import DEFECT_TYPES, LABELS

CLASSES = (None, *DEFECT_TYPES)


@dataclass
class Sample:
    """One drawn image with its ground truth."""

    image: Image.Image
    defect_type: str | None
    label: str
    source: str = ""  # what it was drawn from, where that says something (a texture's photograph)


def draw(rng: random.Random, defect_type: str | None, variation: str) -> Sample:
    return Sample(draw_product_image(rng, defect_type, variation), defect_type, LABELS[defect_type])


def make_samples(count: int, seed: int, defect_ratio: float = 0.5, variation: str = "standard") -> list[Sample]:
    """Draws `count` images: round(count * defect_ratio) defects of uniformly drawn types, shuffled."""
    rng = random.Random(seed)
    defects = round(count * defect_ratio)
    types = [None] * (count - defects) + [rng.choice(DEFECT_TYPES) for _ in range(defects)]
    rng.shuffle(types)
    return [draw(rng, t, variation) for t in types]


def make_balanced(per_class: int, seed: int, variation: str = "photo") -> list[Sample]:
    """Draws `per_class` images of each of the four classes (Pass and the three defects), shuffled."""
    rng = random.Random(seed)
    types = [t for t in CLASSES for _ in range(per_class)]
    rng.shuffle(types)
    return [draw(rng, t, variation) for t in types]


def stratified_split(samples: list[Sample]) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Splits 80/10/10 (exactly, for 200 samples), each class spread evenly over the three parts.

    Samples are ordered by class and dealt out by position modulo 10, so every part gets
    its share of each class to within one sample.
    """
    order = {t: i for i, t in enumerate(CLASSES)}
    ranked = sorted(samples, key=lambda s: order.get(s.defect_type, len(order)))
    parts: tuple[list[Sample], list[Sample], list[Sample]] = ([], [], [])
    for i, sample in enumerate(ranked):
        parts[0 if i % 10 < 8 else 1 if i % 10 == 8 else 2].append(sample)
    return parts


def train_on(train_set: list[Sample], validation_set: list[Sample], config, indent: str = "  "):
    """(TrainResult, seconds) of the local model tuned on `train_set` (`validation_set` picks
    the best epoch; `config` a localvertex.model.TrainConfig), each epoch's figures printed."""
    from localvertex.model import Example, train

    started = time.perf_counter()
    result = train(
        [Example(s.image, s.label) for s in train_set],
        [Example(s.image, s.label) for s in validation_set],
        config,
        on_epoch=lambda e: print(
            f"{indent}epoch {e.epoch}: step {e.step}, train loss {e.train_loss:.4f}, "
            f"validation loss {e.validation_loss:.4f}, {e.seconds:.1f} s",
            flush=True,
        ),
    )
    return result, time.perf_counter() - started

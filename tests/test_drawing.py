"""Tests of the synthetic image presets (components/drawing.py) and the bench data sets built on them."""

import inspect
import random

import pytest
from PIL import Image, ImageChops

from bench.datasets import CLASSES, make_balanced, make_samples, stratified_split
from components import drawing
from components.drawing import draw_product_image, drawing_variations
from components.helpers import LABELS

DEFECTS = ("Scratch", "Crack", "Discoloration")


def changed(a: Image.Image, b: Image.Image, threshold: int = 20) -> list[tuple[int, int]]:
    """Pixels where two images differ by more than `threshold` on some channel."""
    difference = ImageChops.difference(a, b)
    width, _ = a.size
    return [
        (i % width, i // width)
        for i, rgb in enumerate(zip(*(band.tobytes() for band in difference.split()), strict=True))
        if max(rgb) > threshold
    ]


def colour_at(image: Image.Image, pixels: list[tuple[int, int]]) -> tuple[float, float, float]:
    values = [image.getpixel(p) for p in pixels]
    return tuple(sum(v[c] for v in values) / len(values) for c in range(3))


@pytest.mark.parametrize("variation", drawing_variations())
@pytest.mark.parametrize("defect_type", (None, *DEFECTS))
def test_each_image_is_a_pure_function_of_the_rng_state(variation, defect_type):
    first = draw_product_image(random.Random(11), defect_type, variation)
    assert first.tobytes() == draw_product_image(random.Random(11), defect_type, variation).tobytes()
    assert first.tobytes() != draw_product_image(random.Random(12), defect_type, variation).tobytes()
    assert first.mode == "RGB"


def test_sizes():
    for seed in range(6):
        assert draw_product_image(random.Random(seed), "Crack", "standard").size == (100, 100)
        assert draw_product_image(random.Random(seed), "Crack", "strong").size == (100, 100)
        width, height = draw_product_image(random.Random(seed), "Crack", "photo").size
        assert 300 <= width <= 340 and 300 <= height <= 340


@pytest.mark.parametrize("seed", range(4))
def test_standard_keeps_the_notebook_look(seed):
    """Background near #DDDDDD, a blue product near #5555AA; defects in the notebook's colours."""
    image = draw_product_image(random.Random(seed), None, "standard")
    corner = colour_at(image, [(x, y) for x in range(3) for y in range(3)])
    centre = colour_at(image, [(x, y) for x in range(45, 55) for y in range(45, 55)])
    assert all(abs(c - 0xDD) < 16 for c in corner)
    assert all(abs(c - e) < 20 for c, e in zip(centre, (0x55, 0x55, 0xAA), strict=True))
    expected = {
        "Scratch": lambda r, g, b: r > 200 and g < 110 and b < 110,  # red
        "Crack": lambda r, g, b: min(r, g, b) > 215,  # white
        "Discoloration": lambda r, g, b: g > 140 and r < 110 and b < 110,
    }  # green
    for defect_type, is_defect_colour in expected.items():
        defective = draw_product_image(random.Random(seed), defect_type, "standard")
        pixels = changed(image, defective)
        # The same rng state draws the same product: only the defect differs, in its colour.
        assert len(pixels) >= 15, defect_type
        assert sum(is_defect_colour(*defective.getpixel(p)) for p in pixels) >= 0.6 * len(pixels), defect_type
        assert not any(is_defect_colour(*image.getpixel(p)) for p in pixels)


def test_standard_defects_come_at_any_angle_and_width():
    """Widened geometry: scratches and cracks at many angles, more than one width."""
    import math

    angles, counts = {"Scratch": set(), "Crack": set()}, {"Scratch": set(), "Crack": set()}
    for seed in range(40):
        good = draw_product_image(random.Random(seed), None, "standard")
        for defect_type in angles:
            pixels = changed(good, draw_product_image(random.Random(seed), defect_type, "standard"))
            xs, ys = [p[0] for p in pixels], [p[1] for p in pixels]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            sxx = sum((x - mx) ** 2 for x in xs)
            syy = sum((y - my) ** 2 for y in ys)
            sxy = sum((x - mx) * (y - my) for x, y in pixels)
            angles[defect_type].add(int(math.degrees(0.5 * math.atan2(2 * sxy, sxx - syy)) % 180 // 30))
            counts[defect_type].add(len(pixels) // 40)
    assert angles["Scratch"] == angles["Crack"] == set(range(6))  # every 30-degree sector
    assert len(counts["Scratch"]) >= 3 and len(counts["Crack"]) >= 3


@pytest.mark.parametrize("seed", range(5))
def test_photo_defects_are_small_and_of_their_kind(seed):
    """Same rng state with and without a defect: only the defect differs, small but present."""
    good = draw_product_image(random.Random(seed), None, "photo")
    area = good.size[0] * good.size[1]
    scratch = draw_product_image(random.Random(seed), "Scratch", "photo")
    pixels = changed(good, scratch)
    assert 15 <= len(pixels) <= 0.01 * area  # a thin line: a few hundred pixels at most
    assert sum(colour_at(scratch, pixels)) > sum(colour_at(good, pixels)) + 60  # bright
    crack = draw_product_image(random.Random(seed), "Crack", "photo")
    pixels = changed(good, crack)
    assert 15 <= len(pixels) <= 0.01 * area
    assert sum(colour_at(crack, pixels)) < sum(colour_at(good, pixels)) - 60  # dark
    stain = draw_product_image(random.Random(seed), "Discoloration", "photo")
    pixels = changed(good, stain)
    assert 100 <= len(pixels) <= 0.06 * area


def test_photo_sets_vary_shape_background_and_light():
    images = [draw_product_image(random.Random(seed), None, "photo") for seed in range(12)]
    corners = {tuple(c // 40 for c in image.getpixel((2, 2))) for image in images}
    assert len(corners) >= 4
    assert len({image.size for image in images}) >= 6


def test_unknown_variation_or_defect_type_is_an_error():
    with pytest.raises(ValueError, match="variation must be one of standard, strong, photo, not 'extreme'"):
        draw_product_image(random.Random(0), None, "extreme")
    with pytest.raises(ValueError, match="unknown defect type"):
        draw_product_image(random.Random(0), "Dent", "standard")


def test_functions_are_self_contained_for_kfp():
    """KFP copies each function's source alone: imports inside, no module-level names used."""
    module_names = {name for name in vars(drawing) if not name.startswith("__")}
    functions = [f for f in vars(drawing).values() if inspect.isfunction(f)]
    allowed = {f.__name__ for f in functions}  # passed together through additional_funcs
    for function in functions:
        code = function.__code__
        used = set(code.co_names)
        for const in code.co_consts:
            if inspect.iscode(const):
                used |= set(const.co_names)
        assert not (used & module_names) - allowed, function.__name__


def test_bench_sets_carry_the_notebook_labels():
    samples = make_balanced(3, seed=5, variation="standard")
    assert sorted(s.defect_type or "" for s in samples) == sorted((t or "") for t in CLASSES for _ in range(3))
    assert all(s.label == LABELS[s.defect_type] for s in samples)
    assert {s.label for s in samples} == set(LABELS.values())
    mixed = make_samples(20, seed=3, defect_ratio=0.5)
    assert sum(s.defect_type is None for s in mixed) == 10
    train, validation, test = stratified_split(make_balanced(10, seed=1, variation="standard"))
    assert (len(train), len(validation), len(test)) == (32, 4, 4)
    assert {s.defect_type for s in test} == set(CLASSES)

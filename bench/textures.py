"""Photographic-texture sets: real photographs with scratches, cracks and stains drawn by our code.

The photographs are the sample images that ship inside scikit-image's wheel (`skimage/data`,
scikit-image 0.26.0, BSD-3-Clause; pinned in pyproject.toml's dev extras): brick, grass,
gravel and moon (greyscale texture photographs, given a colour tint here) and coffee,
motorcycle_left and rocket (colour photographs). They are read from the installed package's
folder with Pillow; nothing is downloaded (scikit-image's `data` module fetches its other
images with pooch, which is never called here).

Each image is a crop of one photograph (160-200 px of it, any of the eight flips and
rotations), enlarged to 256 px, with at most one defect drawn on it, then a camera's blur,
noise and JPEG. Tuning crops come from the left 60 % of every photograph, scored crops from
the right 40 %: no scored pixel was ever seen in tuning, although the surfaces are the same.

Defects (drawn here, not by components/drawing.py):
  Scratch:        a thin (1-2 px) bright line, straight or slightly curved, 30-140 px long.
  Crack:          a dark jagged line of 6-14 segments, 1-3 px, with one to three branches.
  Discoloration:  a soft blob (one to three lobes) of another colour, laid over the
                  texture (which shows through), 14-40 px across.
Good crops have none; the photographs' own marks (mortar lines, grass blades, crevices in
gravel, craters, object edges) stay on them, which is what makes these sets hard.
"""

import importlib.util
import math
import random
from functools import cache
from pathlib import Path

from datasets import CLASSES, Sample
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from components.drawing import gaussian_noise_image, jpeg_round_trip
from components.labels import LABELS

SIZE = 256
TUNING_SHARE = 0.6  # tuning crops lie in the left 60 % of a photograph, scored ones in the rest
# Greyscale texture photographs and colour photographs of scikit-image's wheel.
GREY_SOURCES = ("brick.png", "grass.png", "gravel.png", "moon.png")
COLOUR_SOURCES = ("coffee.png", "motorcycle_left.png", "rocket.jpg")
TINTS = ((1.0, 1.0, 1.0), (1.0, 0.86, 0.66), (0.78, 0.85, 0.98), (1.0, 0.72, 0.52), (0.8, 0.95, 0.75))
STAIN_COLOURS = ((150, 72, 28), (40, 32, 24), (160, 170, 60), (196, 150, 40), (50, 150, 128), (120, 40, 90))


def data_folder() -> Path:
    """scikit-image's installed `data` folder (found without importing scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the photographic-texture sets need scikit-image==0.26.0 (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def photograph(name: str) -> Image.Image:
    with Image.open(data_folder() / name) as image:
        return image.convert("L" if name in GREY_SOURCES else "RGB")


def crop(rng: random.Random, held_out: bool) -> tuple[str, Image.Image]:
    """A random photograph's name and a random crop of it, from its tuning or its scored part, at SIZE px."""
    name = rng.choice(GREY_SOURCES + COLOUR_SOURCES)
    source = photograph(name)
    width, height = source.size
    split = int(width * TUNING_SHARE)
    left, right = (split, width) if held_out else (0, split)
    side = rng.randint(160, min(200, right - left, height))
    x, y = rng.randint(left, right - side), rng.randint(0, height - side)
    image = source.crop((x, y, x + side, y + side)).resize((SIZE, SIZE), Image.BICUBIC)
    if image.mode == "L":
        tint = rng.choice(TINTS)
        image = Image.merge("RGB", [image.point(lambda v, g=g: min(255, int(v * g))) for g in tint])
    for _ in range(rng.randint(0, 3)):
        image = image.transpose(Image.ROTATE_90)
    return name, image.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def _luminance(image: Image.Image, x: float, y: float) -> float:
    r, g, b = image.getpixel((int(min(SIZE - 1, max(0, x))), int(min(SIZE - 1, max(0, y)))))
    return 0.299 * r + 0.587 * g + 0.114 * b


def _spot(rng: random.Random, image: Image.Image, margin: int, low: float, high: float) -> tuple[float, float]:
    """A random point `margin` px inside the image whose surface luminance is within low..high
    (a scratch brighter than a white surface, or a crack darker than a black one, is no defect)."""
    for _ in range(30):
        x, y = rng.uniform(margin, SIZE - margin), rng.uniform(margin, SIZE - margin)
        if low <= _luminance(image, x, y) <= high:
            break
    return x, y


def _overlay(image: Image.Image, colour: tuple[int, int, int], layer: Image.Image) -> Image.Image:
    return Image.composite(Image.new("RGB", image.size, colour), image, layer)


def _walk(rng: random.Random, start: tuple[float, float], heading: float, steps: int, step: tuple, turn: float):
    points = [start]
    x, y = start
    for _ in range(steps):
        heading += rng.gauss(0, turn)
        length = rng.uniform(*step)
        x, y = x + length * math.cos(heading), y + length * math.sin(heading)
        points.append((x, y))
    return points, heading


def draw_scratch(rng: random.Random, image: Image.Image) -> Image.Image:
    layer = Image.new("L", image.size, 0)
    length, bend = rng.uniform(30, 140), rng.uniform(-0.3, 0.3) if rng.random() < 0.5 else 0.0
    x, y = _spot(rng, image, 40, 0, 170)
    angle = rng.uniform(0, 2 * math.pi)
    points = [
        (x + length * k / 6 * math.cos(angle + bend * k / 6), y + length * k / 6 * math.sin(angle + bend * k / 6))
        for k in range(7)
    ]
    ImageDraw.Draw(layer).line(
        [c for p in points for c in p], fill=int(rng.uniform(190, 255)), width=rng.choice((1, 1, 2)), joint="curve"
    )
    surface = _luminance(image, x, y)
    bright = int(min(255, max(surface + rng.uniform(70, 120), 200)))
    return _overlay(image, (bright, bright, min(255, bright + rng.randint(-6, 6))), layer)


def draw_crack(rng: random.Random, image: Image.Image) -> Image.Image:
    layer = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(layer)
    start = _spot(rng, image, 50, 70, 255)
    trunk, heading = _walk(rng, start, rng.uniform(0, 2 * math.pi), rng.randint(6, 14), (4, 11), 0.5)
    width = rng.choice((1, 2, 2, 3))
    draw.line([c for p in trunk for c in p], fill=255, width=width, joint="curve")
    for _ in range(rng.randint(1, 3)):
        fork = trunk[rng.randint(1, len(trunk) - 2)]
        branch, _ = _walk(
            rng, fork, heading + rng.choice((-1, 1)) * rng.uniform(0.5, 1.3), rng.randint(2, 6), (3, 9), 0.5
        )
        draw.line([c for p in branch for c in p], fill=255, width=1, joint="curve")
    darkness = rng.uniform(0.08, 0.3)
    r, g, b = image.getpixel((int(start[0]), int(start[1])))
    return _overlay(image, (int(r * darkness), int(g * darkness), int(b * darkness)), layer)


def draw_stain(rng: random.Random, image: Image.Image) -> Image.Image:
    layer = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(layer)
    x, y = rng.uniform(50, SIZE - 50), rng.uniform(50, SIZE - 50)
    for k in range(rng.choice((1, 1, 2, 3))):
        r = rng.uniform(7, 20) if k == 0 else rng.uniform(5, 12)
        cx, cy = (x, y) if k == 0 else (x + rng.uniform(-18, 18), y + rng.uniform(-18, 18))
        vertices = rng.randint(9, 15)
        draw.polygon(
            [
                (
                    cx + r * rng.uniform(0.7, 1.25) * math.cos(2 * math.pi * v / vertices),
                    cy + r * rng.uniform(0.7, 1.25) * math.sin(2 * math.pi * v / vertices),
                )
                for v in range(vertices)
            ],
            fill=int(rng.uniform(140, 210)),
        )
    colour = rng.choice(STAIN_COLOURS)
    # Multiplied in, so the texture shows through the stain, then a flat share of the colour.
    tinted = ImageChops.multiply(image, Image.new("RGB", image.size, tuple(min(255, c * 2) for c in colour)))
    soft = layer.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0)))
    return Image.composite(_overlay(tinted, colour, soft.point(lambda v: v // 3)), image, soft)


DRAWERS = {"Scratch": draw_scratch, "Crack": draw_crack, "Discoloration": draw_stain}


def camera(rng: random.Random, image: Image.Image) -> Image.Image:
    """A camera's blur, sensor noise and JPEG, the same for every class (all drawn from `rng`:
    a seed gives the same images; PIL's own noise, used before 2026-12-07, was not seeded)."""
    if rng.random() < 0.6:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    noise = gaussian_noise_image(rng, image.size, rng.uniform(1, 5))  # mean 128, drawn from rng
    image = ImageChops.add(image, Image.merge("RGB", (noise, noise, noise)), scale=1.0, offset=-128)
    return jpeg_round_trip(image, rng.randint(70, 95))


def texture_sample(rng: random.Random, defect_type: str | None, held_out: bool) -> Sample:
    name, image = crop(rng, held_out)
    if defect_type is not None:
        image = DRAWERS[defect_type](rng, image)
    return Sample(camera(rng, image), defect_type, LABELS[defect_type], source=name)


def make_textures(per_class: int, seed: int, held_out: bool) -> list[Sample]:
    """`per_class` images of each class (Pass and the three defects), shuffled; `held_out` crops
    come from the photographs' scored parts (their right 40 %), the others from the tuning parts."""
    rng = random.Random(seed)
    types = [t for t in CLASSES for _ in range(per_class)]
    rng.shuffle(types)
    return [texture_sample(rng, t, held_out) for t in types]

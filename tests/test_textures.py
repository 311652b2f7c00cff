"""Tests of the photographic-texture sets of the robustness benchmark (bench/textures.py)."""

import random
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def textures(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # bench scripts import their siblings by name
    import textures

    return textures


def test_a_seed_draws_the_same_images_and_photographs(textures):
    first, again = textures.make_textures(2, seed=5, held_out=True), textures.make_textures(2, seed=5, held_out=True)
    assert [s.image.tobytes() for s in first] == [s.image.tobytes() for s in again]
    assert [(s.defect_type, s.source) for s in first] == [(s.defect_type, s.source) for s in again]
    other = textures.make_textures(2, seed=6, held_out=True)
    assert [s.image.tobytes() for s in first] != [s.image.tobytes() for s in other]


def test_every_class_comes_from_a_named_photograph(textures):
    samples = textures.make_textures(3, seed=1, held_out=False)
    assert sorted(s.defect_type or "" for s in samples) == sorted(
        (t or "") for t in ("Scratch", "Crack", "Discoloration", None) for _ in range(3)
    )
    photographs = set(textures.GREY_SOURCES + textures.COLOUR_SOURCES)
    assert {s.source for s in samples} <= photographs
    assert all(s.image.size == (textures.SIZE, textures.SIZE) and s.image.mode == "RGB" for s in samples)


def test_tuning_and_scored_crops_come_from_their_own_parts(textures, monkeypatch):
    """A crop's pixels lie in the left 60 % of its photograph (tuning) or the rest (scored)."""
    boxes = []
    real = textures.photograph

    class Recorder:
        def __init__(self, image):
            self.image, self.size = image, image.size

        def crop(self, box):
            boxes.append((box, self.size[0]))
            return self.image.crop(box)

    monkeypatch.setattr(textures, "photograph", lambda name: Recorder(real(name)))
    rng = random.Random(3)
    for held_out in (False, True):
        boxes.clear()
        for _ in range(30):
            textures.crop(rng, held_out)
        assert len(boxes) == 30
        for (left, _, right, _), width in boxes:
            split = int(width * textures.TUNING_SHARE)
            assert left >= split if held_out else right <= split

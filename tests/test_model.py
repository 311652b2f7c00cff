"""Tests of the local tuned model (localvertex.model): learning, generation, I/O, errors."""

import io
import random

import pytest
import torch
from PIL import Image, ImageDraw

from components.helpers import LABELS, draw_product_image, judge_answer
from localvertex.model import Example, InspectorModel, TrainConfig, TrainingCancelled, load_image, train
from localvertex.model.network import Cache
from localvertex.model.tokenizer import BOS, WordTokenizer, split_pieces

# A defect the model has never heard of, with punctuation and case that must survive exactly.
BURR_LABEL = "Status: Defect - Burr (edge) at 3 o'clock; RE-GRIND now!"
CLASSES = [None, "Scratch", "Crack", "Discoloration", "Burr"]


def draw(rng: random.Random, defect_type: str | None) -> Image.Image:
    """The pipeline's synthesizer, plus a new "Burr" mark: a yellow blob on the right edge."""
    if defect_type != "Burr":
        return draw_product_image(rng, defect_type)
    image = draw_product_image(rng, None)
    x, y = 80 + rng.randint(-3, 3), 45 + rng.randint(-8, 8)
    ImageDraw.Draw(image).ellipse((x - 5, y - 5, x + 5, y + 5), fill="#FFCC00")
    return image


def label(defect_type: str | None) -> str:
    return BURR_LABEL if defect_type == "Burr" else LABELS[defect_type]


def examples(count_per_class: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [Example(draw(rng, t), label(t)) for t in CLASSES for _ in range(count_per_class)]


@pytest.fixture(scope="module")
def trained():
    """One model trained on 16 images per class (4 known classes + Burr), about 10 s."""
    epochs = []
    result = train(examples(16, seed=1), examples(2, seed=2), TrainConfig(epochs=4), on_epoch=epochs.append)
    return result, epochs


@pytest.fixture(scope="module")
def test_set() -> list[Example]:
    return examples(8, seed=3)


def test_training_reaches_high_accuracy(trained, test_set):
    result, _ = trained
    answers = result.model.generate([e.image for e in test_set])
    verdicts = [
        judge_answer(e.text, a, classes=("Scratch", "Crack", "Discoloration", "Burr"))
        for e, a in zip(test_set, answers, strict=False)
    ]
    # Always answering one class would score 0.2 (type) / 0.6 (status, Defect-only).
    assert sum(v["type_correct"] for v in verdicts) / len(verdicts) >= 0.95
    assert sum(v["status_correct"] for v in verdicts) / len(verdicts) >= 0.95


def test_unseen_label_is_emitted_verbatim(trained, test_set):
    result, _ = trained
    burrs = [e for e in test_set if e.text == BURR_LABEL]
    answers = result.model.generate([e.image for e in burrs])
    assert sum(a == BURR_LABEL for a in answers) >= len(burrs) - 1


def test_training_figures(trained):
    result, epochs = trained
    assert [e.epoch for e in epochs] == [1, 2, 3, 4] and result.epochs == epochs
    assert epochs[-1].step == result.step_count > 0
    assert epochs[-1].train_loss < epochs[0].train_loss and epochs[-1].validation_loss is not None
    assert set(epochs[0].to_dict()) == {"epoch", "step", "train_loss", "validation_loss", "seconds"}
    label_tokens = sum(len(split_pieces(label(t))) + 1 for t in CLASSES) * 16  # + EOS
    assert (result.example_count, result.token_count) == (80, label_tokens * 4)


def test_save_load_round_trip(trained, test_set, tmp_path):
    model = trained[0].model
    model.save(tmp_path)
    loaded = InspectorModel.load(tmp_path)
    images = [e.image for e in test_set]
    assert loaded.generate(images) == model.generate(images)
    assert loaded.generate(images, temperature=1.5, seed=7) == model.generate(images, temperature=1.5, seed=7)
    for name, tensor in model.network.state_dict().items():
        assert torch.equal(tensor, loaded.network.state_dict()[name]), name


def test_sampling_is_seeded_and_stays_in_vocabulary(trained, test_set):
    model = trained[0].model
    images = [e.image for e in test_set]
    hot = model.generate(images, temperature=5.0, seed=1)
    assert hot == model.generate(images, temperature=5.0, seed=1)
    assert hot != model.generate(images)  # at this temperature some answer must differ
    assert all(a == "".join(split_pieces(a)) for a in hot)
    assert set(model.generate(images, max_new_tokens=1)) == {"Status"}


def test_kv_cache_matches_full_decoding(trained):
    network = trained[0].model.network
    images = torch.rand(3, 3, 64, 64)
    tokens = torch.randint(3, network.config.vocab_size, (3, network.config.max_length))
    tokens[:, 0] = BOS
    with torch.inference_mode():
        image_kv = network.image_keys_values(images)
        full = network.decode(tokens, image_kv)
        caches = [Cache(3, layer.heads, tokens.shape[1]) for layer in network.decoder]
        stepped = torch.cat(
            [network.decode(tokens[:, i : i + 1], image_kv, caches, i) for i in range(tokens.shape[1])], dim=1
        )
    torch.testing.assert_close(stepped, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "fmt,mode", [("PNG", "RGBA"), ("PNG", "L"), ("PNG", "P"), ("JPEG", "RGB"), ("WEBP", "RGB"), ("GIF", "P")]
)
def test_load_image_any_format_and_mode(trained, fmt, mode):
    image = draw(random.Random(5), "Scratch").resize((180, 140))
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    loaded = load_image(buffer.getvalue())
    assert loaded.mode == "RGB" and loaded.size == (180, 140)
    [answer] = trained[0].model.generate([image.convert(mode)])
    assert answer in {label(t) for t in CLASSES}
    if mode != "L":  # a grey scratch may pass for a crack; colour images must be read right
        assert answer == LABELS["Scratch"]


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert load_image(buffer.getvalue()).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_load_image_rejects_garbage(data):
    with pytest.raises(ValueError, match="unreadable image"):
        load_image(data)


def test_tokenizer_round_trips_any_label():
    texts = [BURR_LABEL, "  leading, trailing  ", "Ünïcode — dash\tand\nlines.", "a..b--c"]
    tokenizer = WordTokenizer.build(texts)
    for text in texts:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.encode("unknown")


def test_empty_dataset_and_empty_label_are_rejected():
    image = Image.new("RGB", (10, 10))
    with pytest.raises(ValueError, match="training dataset is empty"):
        train([], [], TrainConfig())
    with pytest.raises(ValueError, match="example 1 has an empty label"):
        train([Example(image, "ok"), Example(image, "  ")], [], TrainConfig())
    with pytest.raises(ValueError, match="adapter_size"):
        train([Example(image, "ok")], [], TrainConfig(adapter_size=3))


def test_should_stop_cancels_training():
    calls = []
    with pytest.raises(TrainingCancelled):
        train(examples(2, seed=0), [], TrainConfig(), should_stop=lambda: calls.append(1) or len(calls) > 3)
    assert len(calls) == 4


def test_same_seed_gives_identical_weights():
    data = examples(2, seed=4)
    config = TrainConfig(epochs=1, adapter_size=1, seed=11)
    states = [train(data, [], c).model.network.state_dict() for c in (config, config, TrainConfig(1, 1.0, 1, 12))]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])

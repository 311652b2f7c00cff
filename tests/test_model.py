"""Tests of the local tuned model (localvertex.model): learning, generation, I/O, errors."""

import copy
import io
import json
import math
import random

import pytest
import torch
from PIL import Image, ImageDraw

from components.drawing import draw_product_image
from components.labels import LABELS, judge_answer
from localvertex.model import Example, InspectorModel, TrainConfig, TrainingCancelled, load_image, train
from localvertex.model import images as images_module
from localvertex.model import training as training_module
from localvertex.model.images import (
    COLOUR_CAST,
    DETAIL_CHANNELS,
    INPUT_CHANNELS,
    MAX_DECODED_SIDE,
    MAX_SENSOR_NOISE,
    augment,
    choose_input_size,
    images_to_input,
    shape_channels,
    to_rgb,
    top_hats,
    with_sensor_noise,
)
from localvertex.model.inspector import AnswerDrafts, BranchBalance, frequent_answers
from localvertex.model.network import Cache, InspectorNet, NetworkConfig
from localvertex.model.tokenizer import BOS, EOS, WordTokenizer, split_pieces

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
    """One model trained on 16 images per class (4 known classes + Burr), about 20 s on one core."""
    epochs = []
    result = train(examples(16, seed=1), examples(2, seed=2), TrainConfig(epochs=4), on_epoch=epochs.append)
    return result, epochs


@pytest.fixture(scope="module")
def test_set() -> list[Example]:
    return examples(8, seed=3)


@pytest.mark.slow
def test_training_reaches_high_accuracy(trained, test_set):
    result, _ = trained
    answers = result.model.generate([e.image for e in test_set])
    verdicts = [
        judge_answer(e.text, a, classes=("Scratch", "Crack", "Discoloration", "Burr"))
        for e, a in zip(test_set, answers, strict=True)
    ]
    # Always answering one class would score 0.2 (type) / 0.6 (status, Defect-only).
    assert sum(v["type_correct"] for v in verdicts) / len(verdicts) >= 0.95
    assert sum(v["status_correct"] for v in verdicts) / len(verdicts) >= 0.95


@pytest.mark.slow
def test_unseen_label_is_emitted_verbatim(trained, test_set):
    result, _ = trained
    burrs = [e for e in test_set if e.text == BURR_LABEL]
    answers = result.model.generate([e.image for e in burrs])
    assert sum(a == BURR_LABEL for a in answers) >= len(burrs) - 1


@pytest.mark.slow
def test_training_figures(trained):
    result, epochs = trained
    assert [e.epoch for e in epochs] == [1, 2, 3, 4] and result.epochs == epochs
    assert epochs[-1].step == result.step_count > 0
    assert epochs[-1].train_loss < epochs[0].train_loss and epochs[-1].validation_loss is not None
    assert set(epochs[0].to_dict()) == {"epoch", "step", "train_loss", "validation_loss", "seconds"}
    label_tokens = sum(len(split_pieces(label(t))) + 1 for t in CLASSES) * 16  # + EOS
    assert (result.example_count, result.token_count) == (80, label_tokens * 4)


@pytest.mark.slow
def test_save_load_round_trip(trained, test_set, tmp_path):
    model = trained[0].model
    model.save(tmp_path)
    loaded = InspectorModel.load(tmp_path)
    images = [e.image for e in test_set]
    assert loaded.generate(images) == model.generate(images)
    assert loaded.generate(images, temperature=1.5, seed=7) == model.generate(images, temperature=1.5, seed=7)
    for name, tensor in model.network.state_dict().items():
        assert torch.equal(tensor, loaded.network.state_dict()[name]), name


@pytest.mark.slow
def test_sampling_is_seeded_and_stays_in_vocabulary(trained, test_set):
    model = trained[0].model
    images = [e.image for e in test_set]
    hot = model.generate(images, temperature=5.0, seed=1)
    assert hot == model.generate(images, temperature=5.0, seed=1)
    assert hot != model.generate(images)  # at this temperature some answer must differ
    assert all(a == "".join(split_pieces(a)) for a in hot)
    assert set(model.generate(images, max_new_tokens=1)) == {"Status"}


def test_kv_cache_matches_full_decoding():
    torch.manual_seed(0)
    network = InspectorNet(NetworkConfig(vocab_size=12, max_length=9, input_size=64)).eval()
    size = network.config.input_size
    images = torch.rand(3, network.config.input_channels, size, size)
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


def test_a_block_of_new_tokens_matches_decoding_one_at_a_time():
    """Checking a drafted block in one pass gives each position the logits of stepping to it."""
    torch.manual_seed(1)
    network = InspectorNet(NetworkConfig(vocab_size=12, max_length=9, input_size=64)).eval()
    images = torch.rand(2, network.config.input_channels, 64, 64)
    tokens = torch.randint(3, 12, (2, 9))
    tokens[:, 0] = BOS
    with torch.inference_mode():
        image_kv = network.image_keys_values(images)
        one = [Cache(2, layer.heads, 9) for layer in network.decoder]
        stepped = torch.cat([network.decode(tokens[:, i : i + 1], image_kv, one, i) for i in range(9)], dim=1)
        blocks = [Cache(2, layer.heads, 9) for layer in network.decoder]
        # Positions 0-1 alone, then 2-5 as one block over a cache holding wrong tokens beyond
        # them (a rejected draft), then 6-8.
        first = network.decode(tokens[:, :2], image_kv, blocks, 0)
        network.decode(torch.full((2, 7), 5), image_kv, blocks, 2)
        parts = [
            first,
            network.decode(tokens[:, 2:6], image_kv, blocks, 2),
            network.decode(tokens[:, 6:], image_kv, blocks, 6),
        ]
    torch.testing.assert_close(torch.cat(parts, dim=1), stepped, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "prefix,limit,expected",
    [
        ((), 9, (5, 6, 7, EOS)),  # the most frequent answer
        ((5,), 9, (6, 7, EOS)),
        ((5, 6), 1, (7,)),
        ((5, 8), 9, (9, EOS)),  # a rarer answer with this prefix
        ((5, 6, 7), 9, (EOS,)),
        ((5, 6, 7, EOS), 9, ()),
        ((4,), 9, ()),  # no known answer starts so
        ((), 0, ()),
    ],
)
def test_answer_drafts_propose_the_rest_of_the_most_frequent_answer(prefix, limit, expected):
    drafts = AnswerDrafts([[5, 6, 7], [5, 8, 9], [5, 6, 7, 9]])
    assert drafts.propose(prefix, limit) == expected


def test_frequent_answers_keeps_distinct_texts_most_frequent_first():
    assert frequent_answers(["b", "a", "b", "c", "a", "b"]) == ["b", "a", "c"]
    assert frequent_answers(["x", "y", "y"], limit=1) == ["y"]


@pytest.mark.slow
def test_drafted_decoding_writes_what_token_by_token_decoding_writes(trained, test_set, tmp_path):
    """The answers drafts speed up greedy decoding without changing a single answer."""
    model = trained[0].model
    assert model.answers[0] in {label(t) for t in CLASSES} and len(model.answers) == len(CLASSES)
    assert model.balance.biases  # one Pass label against three defect labels: an uneven branch
    plain = InspectorModel(model.network, model.tokenizer, balance=model.balance)  # no drafts: one token per pass
    # Drafts that are all wrong after the first word must not change answers either.
    misleading = InspectorModel(
        model.network, model.tokenizer, ["Status: Defect - Burr (edge) at 3 o'clock."], model.balance
    )
    images = [e.image for e in test_set] + [Image.new("RGB", (100, 100), c) for c in ("black", "white", "red")]
    expected = plain.generate(images)
    for limit in (1, 3, 6, 48):
        assert model.generate(images, max_new_tokens=limit) == plain.generate(images, max_new_tokens=limit)
    assert misleading.generate(images) == expected
    assert [model.generate([image])[0] for image in images[:10]] == expected[:10]
    model.save(tmp_path)
    loaded = InspectorModel.load(tmp_path)
    assert loaded.answers == model.answers and loaded.balance.biases == model.balance.biases


def test_branch_balance_weighs_the_rarer_branch_up_by_the_answer_ratio():
    # Token ids: 5 "Status:", 6 " Pass", 7 " Defect", 8 " -", 9/10/11 three defect types.
    answers = [[5, 6], [5, 7, 8, 9], [5, 7, 8, 10], [5, 7, 8, 11], [5, 7, 8, 9]]  # a repeat counts once
    balance = BranchBalance.of_answers(answers)
    assert balance.biases == {(5,): {6: pytest.approx(math.log(3)), 7: 0.0}}  # even branches get nothing
    assert BranchBalance.from_json(json.loads(json.dumps(balance.to_json()))).biases == balance.biases
    assert BranchBalance.of_answers([[5, 6], [5, 7]]).biases == {}


def test_branch_balance_adds_its_bias_where_each_row_reaches_the_branch():
    balance = BranchBalance({(5,): {6: 1.5}})
    logits = torch.zeros(2, 3, 12)
    written = torch.tensor([[5], [4]])  # row 0 has written "Status:", row 1 something else
    fed = torch.tensor([[5, 6, 8], [4, 5, 6]])  # fed[:, 0] is the last written token, then drafts
    balance.apply(logits, written, fed)
    assert logits[0, 0, 6] == 1.5 and logits[0].abs().sum() == 1.5  # only where the prefix is (5,)
    assert logits[1].abs().sum() == 0  # row 1's prefixes are (4,), (4, 5), (4, 5, 6)


@pytest.mark.slow
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


def _grey(mode, values):
    image = Image.new(mode, (len(values), 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    return image


@pytest.mark.parametrize(
    "image,expected",
    [
        (_grey("I;16", [0, 1000, 30000, 65535]), [0, 3, 117, 255]),  # a 16-bit camera image
        (_grey("I", [0, 1000, 65535]), [0, 3, 255]),  # the same, as Pillow opens some 16-bit files
        (_grey("I", [0, 90, 255]), [0, 90, 255]),  # 32-bit integers holding 8-bit values: kept
        (_grey("F", [0.0, 0.5, 1.0]), [0, 127, 255]),  # floats in 0..1
        (_grey("F", [0.0, 90.0, 255.0]), [0, 90, 255]),  # floats in 0..255: kept
    ],
)
def test_wide_greyscale_is_scaled_to_eight_bits_not_clipped(image, expected):
    """Pillow's own convert("RGB") clips 16-bit values at 255: a dark part came out white."""
    assert [to_rgb(image).getpixel((x, 0)) for x in range(len(expected))] == [(v, v, v) for v in expected]


def test_sixteen_bit_png_is_decoded_with_its_shades():
    image = _grey("I;16", [0, 1000, 30000, 65535])
    assert [load_image(_encoded(image, "PNG")).getpixel((x, 0))[0] for x in range(4)] == [0, 3, 117, 255]


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
    for size in (0, -32):
        with pytest.raises(ValueError, match=f"input_size must be >= 1 .*got {size}"):
            train([Example(image, "ok")], [], TrainConfig(input_size=size))


@pytest.mark.parametrize("temperature,max_new_tokens", [(-0.1, 5), (float("nan"), 5), (1.0, -1)])
def test_generate_rejects_a_bad_temperature_or_length(temperature, max_new_tokens):
    model = train(
        [Example(Image.new("RGB", (16, 16)), "ok")], [], TrainConfig(epochs=1, adapter_size=1, input_size=8)
    ).model
    assert len(model.generate([Image.new("RGB", (16, 16))], temperature=1.0, seed=0)) == 1  # valid settings answer
    with pytest.raises(ValueError, match="temperature and max_new_tokens must be >= 0"):
        model.generate([Image.new("RGB", (16, 16))], temperature=temperature, max_new_tokens=max_new_tokens)


def test_should_stop_cancels_training():
    calls = []
    with pytest.raises(TrainingCancelled):
        train(examples(2, seed=0), [], TrainConfig(), should_stop=lambda: calls.append(1) or len(calls) > 3)
    assert len(calls) == 4


def test_should_stop_is_polled_while_an_epochs_images_are_prepared(monkeypatch):
    """A large job's inputs are computed group by group, each group after a poll."""
    monkeypatch.setattr(training_module, "NOISE_GROUP", 3)
    trained_epochs, polls = [], []
    monkeypatch.setattr(training_module, "_train_epoch", lambda *args: trained_epochs.append(1) or 1.0)
    with pytest.raises(TrainingCancelled):
        train(examples(2, seed=0), [], TrainConfig(), should_stop=lambda: polls.append(1) or len(polls) > 2)
    assert len(polls) == 3 and not trained_epochs  # 10 images in groups of 3: cancelled before the third group


def test_same_seed_gives_identical_weights():
    data = examples(2, seed=4)
    config = TrainConfig(epochs=1, adapter_size=1, seed=11)
    states = [train(data, [], c).model.network.state_dict() for c in (config, config, TrainConfig(1, 1.0, 1, 12))]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


# ---- resolution, memory, augmentation, sampling, best epoch (tiny inputs: fast)


def test_input_size_follows_the_training_images():
    def sized(*sides):
        return [Image.new("RGB", (side, side * 3 // 4)) for side in sides]

    assert choose_input_size(sized(100, 100, 100)) == 96  # the notebook-style images
    assert choose_input_size(sized(320, 300, 340)) == 160  # photo-like: capped
    assert choose_input_size(sized(4000, 3000, 3000)) == 160
    assert choose_input_size(sized(20, 30, 40)) == 64
    assert choose_input_size(sized(100, 330, 330)) == 160  # the median decides
    assert [choose_input_size(sized(side)) for side in (80, 112, 144)] == [96, 128, 160]  # halves round up
    image = draw(random.Random(0), "Crack")
    result = train([Example(image, LABELS["Crack"])], [], TrainConfig(epochs=1, adapter_size=1))
    assert result.model.network.config.input_size == 96
    assert result.model.network.config.encoder == "fcn-max"  # no shape channels below 128 px
    pinned = train([Example(image, LABELS["Crack"])], [], TrainConfig(epochs=1, adapter_size=1, input_size=32))
    assert pinned.model.network.config.input_size == 32
    large = train([Example(image, LABELS["Crack"])], [], TrainConfig(epochs=1, adapter_size=1, input_size=128))
    assert large.model.network.config.encoder == "fcn-max-shape"
    assert large.model.network.encoder.layers[0][0].in_channels == INPUT_CHANNELS
    assert len(large.model.generate([image])) == 1
    # A model of any input size answers images of any size.
    assert len(pinned.model.generate([Image.new("RGB", (500, 90)), image])) == 2


@pytest.mark.parametrize("channels", [0, 4, 12, 17, 19])
def test_input_channels_are_those_of_an_encoder(channels):
    with pytest.raises(ValueError, match=f"channels must be 3, {DETAIL_CHANNELS} or {INPUT_CHANNELS}.*got {channels}"):
        images_to_input([Image.new("RGB", (16, 16))], 16, channels)


def test_training_images_are_held_as_uint8():
    images = images_to_input([draw(random.Random(1), None), Image.new("L", (7, 300))], 48)
    assert images.dtype == torch.uint8 and images.shape == (2, INPUT_CHANNELS, 48, 48)
    tokenizer = WordTokenizer.build(["a b"])
    pixels, _ = training_module._tensors([Example(Image.new("RGB", (9, 9)), "a b")], tokenizer, 32)
    assert pixels.dtype == torch.uint8 and pixels.shape == (1, INPUT_CHANNELS, 32, 32)
    pixels, _ = training_module._tensors([Example(Image.new("RGB", (9, 9)), "a b")], tokenizer, 32, DETAIL_CHANNELS)
    assert pixels.shape == (1, DETAIL_CHANNELS, 32, 32)


def test_dithered_palette_images_do_not_look_scratched():
    """A GIF-style palette image is smoothed before its top-hats: dithering is no detail."""
    image = draw(random.Random(5), None).resize((180, 140))
    rgb, palette = (images_to_input([image.convert(mode)], 96, DETAIL_CHANNELS).float() / 255 for mode in ("RGB", "P"))
    assert palette[0, 3:].median() <= rgb[0, 3:].median() + 0.02
    assert palette[0, 3:].quantile(0.99) < 0.15
    assert load_image(_encoded(image.convert("P"), "GIF")).size == (180, 140)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_checkpoints_each_epoch_and_keeps_the_best_one(monkeypatch):
    """on_checkpoint gets every epoch's model (it answers); the result holds the best epoch's."""
    losses = iter([0.7, 0.3, 0.6])
    real_evaluate = training_module._evaluate

    def evaluate(*args):
        real_evaluate(*args)
        loss = next(losses)
        return loss, torch.tensor([loss, loss + 0.01])  # epoch 2 clearly lower than the last

    monkeypatch.setattr(training_module, "_evaluate", evaluate)
    data = examples(1, seed=4)
    seen = []

    def save(stats, model):
        seen.append((stats.epoch, model.generate([data[0].image]), copy.deepcopy(model.network.state_dict())))

    result = train(data, data[:2], TrainConfig(epochs=3, adapter_size=1, input_size=32), on_checkpoint=save)
    assert [epoch for epoch, _, _ in seen] == [1, 2, 3] and all(len(answer) == 1 for _, answer, _ in seen)
    final = result.model.network.state_dict()
    assert result.best_epoch == 2 and all(torch.equal(final[k], seen[1][2][k]) for k in final)


def test_top_hats_mark_thin_lines_not_edges_or_light():
    """A 1-px bright and a 2-px dark line stand out; a part's edge and a lighting ramp do not."""
    x = torch.linspace(0.2, 0.5, 64).expand(1, 1, 64, 64).clone()  # lighting gradient
    x[..., 40:, :] += 0.3  # a step edge: the part's outline
    x[..., 10, 5:60] += 0.4  # a scratch
    x[..., 25:27, 5:60] -= 0.15  # a crack
    bright, dark = top_hats(x)
    assert bright[..., 10, 8:56].min() > 0.35 and dark[..., 25:27, 8:56].min() > 0.12
    quiet = torch.ones(64, dtype=torch.bool)
    quiet[[9, 10, 11, 24, 25, 26, 27]] = False
    assert bright[..., quiet, :].max() < 0.02 and dark[..., quiet, :].max() < 0.02


def test_fine_detail_survives_reduction_to_the_input_size():
    """A 1-px scratch on a 320 px image keeps its full contrast in the 160 px input."""
    image = Image.new("RGB", (320, 320), (90, 90, 90))
    ImageDraw.Draw(image).line((40, 101, 280, 101), fill=(230, 230, 230), width=1)
    pixels = images_to_input([image], 160).float() / 255
    assert pixels[0, 3:6].max() > 0.95  # bright top-hat, x2 gain: 140 levels clip to 1
    assert pixels[0, :3].max() < 0.75  # the resized colour alone halves it
    assert pixels[0, 6:DETAIL_CHANNELS].max() < 0.1


def test_large_images_are_reduced_when_decoded():
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 1500), "navy").save(buffer, format="JPEG")
    assert load_image(buffer.getvalue()).size == (MAX_DECODED_SIDE, MAX_DECODED_SIDE // 2)


def test_augmentation_varies_geometry_but_keeps_hue():
    """Any rotation and exposure change, but a red mark stays red and a green one green."""
    image = Image.new("RGB", (64, 64), (0x55, 0x55, 0xAA))
    marks = ImageDraw.Draw(image)
    marks.rectangle((8, 28, 56, 34), fill=(0xFF, 0x33, 0x33))
    marks.ellipse((40, 4, 56, 20), fill=(0x44, 0xAA, 0x44))
    batch = images_to_input([image] * 64, 64)
    out = augment(batch, torch.Generator().manual_seed(0))[:, :3]
    assert out.dtype == torch.float32 and out.shape == (64, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    r, g, b = out[:, 0], out[:, 1], out[:, 2]
    red = (r > g + 0.25) & (r > b + 0.25)
    green = (g > r + 0.15) & (g > b + 0.15)
    assert bool((red.flatten(1).sum(1) > 60).all()) and bool((green.flatten(1).sum(1) > 40).all())
    # Geometry varies: the red bar's orientation differs between the augmented copies.
    assert len({tuple(red[i].nonzero().float().std(0).round().tolist()) for i in range(64)}) > 10
    assert not bool(((b > r + 0.1) & red).any())  # no pixel both red and blue


def test_augmentation_casts_each_colour_channel_by_up_to_colour_cast():
    """Grey stays grey under exposure and contrast; only the per-channel cast tints it."""
    batch = images_to_input([Image.new("RGB", (16, 16), (128, 128, 128))] * 256, 16)
    channels = augment(batch, torch.Generator().manual_seed(0))[:, :3].mean(dim=(2, 3))
    tint = channels[:, 1] / channels[:, 2]  # green over blue: cast_g / cast_b, noise averaged out
    widest = (1 + COLOUR_CAST) / (1 - COLOUR_CAST)
    assert float(tint.min()) > 1 / widest - 0.02 and float(tint.max()) < widest + 0.02
    assert float(tint.min()) < 0.85 and float(tint.max()) > 1.15  # wider than a slight cast


def test_sensor_noise_grains_half_the_images_within_its_limit():
    """About half come back as they were; the rest differ by Gaussian noise of at most MAX_SENSOR_NOISE."""
    grey = Image.new("RGB", (40, 30), (128, 128, 128))
    images = [grey, Image.new("L", (40, 30), 128)] * 100
    noisy = with_sensor_noise(images, torch.Generator().manual_seed(0))
    assert [(image.mode, image.size) for image in noisy] == [("RGB", (40, 30))] * 200
    spreads = [torch.tensor(list(image.tobytes()), dtype=torch.float).std().item() for image in noisy]
    clean = sum(spread == 0 for spread in spreads)
    assert 70 <= clean <= 130  # half, at random
    assert max(spreads) <= MAX_SENSOR_NOISE * 255 * 1.1 and max(spreads) > MAX_SENSOR_NOISE * 255 * 0.8
    again = with_sensor_noise(images, torch.Generator().manual_seed(0))
    assert [image.tobytes() for image in again] == [image.tobytes() for image in noisy]  # seeded
    empty = with_sensor_noise([Image.new("RGB", (0, 0))] * 8, torch.Generator().manual_seed(0))
    assert [image.size for image in empty] == [(0, 0)] * 8  # no pixels, no noise (and no error)


def test_sensor_noise_shows_in_the_detail_channels():
    """Grain on the pixels shows in the top-hats, which noise added by `augment` never reaches."""
    grey = [Image.new("RGB", (64, 64), (128, 128, 128))] * 20
    detail = images_to_input(with_sensor_noise(grey, torch.Generator().manual_seed(1)), 64)[:, 3:DETAIL_CHANNELS]
    grainy = detail.flatten(1).float().mean(1) > 0
    assert 3 <= int(grainy.sum()) <= 17


def test_every_epoch_trains_on_freshly_noised_images(monkeypatch):
    """Each epoch's inputs are computed anew: some images differ between epochs, some are clean."""
    seen = []
    real_epoch = training_module._train_epoch

    def train_epoch(network, optimizer, scheduler, images, *rest):
        seen.append(images.clone())
        return real_epoch(network, optimizer, scheduler, images, *rest)

    monkeypatch.setattr(training_module, "_train_epoch", train_epoch)
    data = examples(2, seed=4)
    train(data, [], TrainConfig(epochs=2, adapter_size=1, input_size=32))
    clean = images_to_input([e.image for e in data], 32)
    assert len(seen) == 2 and not torch.equal(seen[0], seen[1])
    for images in seen:
        unchanged = sum(torch.equal(images[i, :3], clean[i, :3]) for i in range(len(data)))
        assert 0 < unchanged < len(data)


def test_balanced_order_gives_every_label_an_equal_share():
    labels = ["rare"] * 2 + ["common"] * 18
    order = training_module._balanced_order(labels, 400, torch.Generator().manual_seed(0))
    counts = torch.bincount(order, minlength=20)
    assert len(order) == 400 and int(counts[:2].sum()) == 200 and int(counts[2:].sum()) == 200
    assert set(counts[:2].tolist()) == {100} and int(counts[2:].max() - counts[2:].min()) <= 1
    again = training_module._balanced_order(labels, 400, torch.Generator().manual_seed(0))
    assert torch.equal(order, again)


@pytest.mark.parametrize(
    "per_example, kept",  # each epoch's validation loss per example -> the epoch whose weights are kept
    [
        ([[0.9, 0.8, 0.9], [0.2, 0.3, 0.2], [0.5, 0.6, 0.5]], 2),  # epoch 2 lower on every example
        ([[0.9, 0.8, 0.9], [0.0, 1.0, 0.0], [0.5, 0.4, 0.5]], 3),  # lower on average, by chance
        ([[0.9, 0.8, 0.9], [0.5, 0.6, 0.5], [0.2, 0.3, 0.2]], 3),  # the last is the lowest
        ([[0.9], [0.2], [0.5]], 3),  # one validation example is no evidence
    ],
)
def test_an_earlier_epoch_is_kept_only_when_clearly_better(monkeypatch, per_example, kept):
    """The last epoch's weights stay unless an earlier epoch's validation loss is lower by more
    than twice the standard error of the paired per-example difference."""
    snapshots, losses = [], iter(per_example)

    def fake_evaluate(network, images, tokens):
        snapshots.append({k: v.clone() for k, v in network.state_dict().items()})
        epoch = torch.tensor(next(losses))
        return float(epoch.mean()), epoch

    monkeypatch.setattr(training_module, "_evaluate", fake_evaluate)
    data = examples(1, seed=6)
    result = train(data, data[:2], TrainConfig(epochs=3, adapter_size=1, input_size=32))
    assert result.best_epoch == kept
    assert [round(e.validation_loss, 4) for e in result.epochs] == [round(sum(v) / len(v), 4) for v in per_example]
    final = result.model.network.state_dict()
    assert all(torch.equal(final[k], snapshots[kept - 1][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[kept % 3][k]) for k in final)
    assert train(data, [], TrainConfig(epochs=2, adapter_size=1, input_size=32)).best_epoch == 2


def test_validation_loss_is_per_token_and_per_example():
    """_evaluate's mean is over label tokens (padding ignored); its per-example losses are each
    example's own token mean, and chunks of 64 give the same figures as one pass."""
    tokenizer = WordTokenizer.build(["a", "a b c d"])
    data = [Example(Image.new("RGB", (32, 32), (i * 3, 90, 200)), "a" if i % 3 else "a b c d") for i in range(70)]
    images, tokens = training_module._tensors(data, tokenizer, 32)
    network = training_module._new_network(len(tokenizer), tokens.shape[1] - 1, 32, TrainConfig(adapter_size=1))
    mean, per_example = training_module._evaluate(network, images, tokens)
    assert per_example.shape == (70,)
    with torch.no_grad():
        one = torch.stack(
            [training_module._loss(network, images[i : i + 1].float() / 255, tokens[i : i + 1]) for i in range(70)]
        )
    assert torch.allclose(per_example, one, atol=1e-5)
    lengths = (tokens[:, 1:] != 0).sum(dim=1).float()  # PAD is 0
    assert abs(mean - float((one * lengths).sum() / lengths.sum())) < 1e-5
    assert not torch.allclose(torch.tensor(mean), one.mean(), atol=1e-4)  # long labels weigh more


def test_encoder_keeps_a_one_pixel_defect_anywhere():
    """Global max pooling: a 1-px line changes the pooled maximum wherever it lies, the mean
    hardly at all."""
    network = InspectorNet(NetworkConfig(vocab_size=8, max_length=4, input_size=128)).eval()
    plain = torch.full((1, INPUT_CHANNELS, 128, 128), 0.4)
    plain[:, 3:] = 0.0
    with torch.no_grad():
        base = network.encoder.layers(plain)
        for x in (5, 64, 120):
            lined = plain.clone()
            lined[:, :3, 20:100, x] = 1.0
            lined[:, 3:6, 20:100, x] = 1.0
            features = network.encoder.layers(lined)
            peak = (features.amax(dim=(2, 3)) - base.amax(dim=(2, 3))).abs().max()
            mean = (features.mean(dim=(2, 3)) - base.mean(dim=(2, 3))).abs().max()
            # (Untrained, so the changes are small; what matters is what survives pooling.)
            assert peak > 0.5 * (features - base).abs().max() and peak > 5 * mean


def test_models_saved_before_the_new_encoder_still_load(tmp_path):
    """A saved config without "encoder" is the old 64x64 grid encoder."""
    import json

    tokenizer = WordTokenizer.build(["Status: Pass"])
    old = InspectorModel(InspectorNet(NetworkConfig(len(tokenizer), 4, input_size=64, encoder="grid64")), tokenizer)
    old.save(tmp_path)
    meta = json.loads((tmp_path / "inspector.json").read_text())
    del meta["network"]["encoder"]
    (tmp_path / "inspector.json").write_text(json.dumps(meta))
    loaded = InspectorModel.load(tmp_path)
    assert loaded.network.config.encoder == "grid64"
    image = Image.new("RGB", (100, 100), "blue")
    assert loaded.generate([image]) == old.generate([image])


def test_models_tuned_before_the_shape_channels_still_answer(tmp_path):
    """An "fcn-max" model reads the detail channels only, as it was trained."""
    tokenizer = WordTokenizer.build(["Status: Pass"])
    old = InspectorModel(InspectorNet(NetworkConfig(len(tokenizer), 4, input_size=64, encoder="fcn-max")), tokenizer)
    assert old.network.config.input_channels == DETAIL_CHANNELS
    assert old.network.encoder.layers[0][0].in_channels == DETAIL_CHANNELS
    old.save(tmp_path)
    image = draw(random.Random(3), "Crack")
    assert InspectorModel.load(tmp_path).generate([image]) == old.generate([image])
    full = images_to_input([image], 64)
    assert torch.equal(images_to_input([image], 64, DETAIL_CHANNELS), full[:, :DETAIL_CHANNELS])


def _opened_directly(x: torch.Tensor, length: int) -> torch.Tensor:
    """The reference for _straight_part: every point of each segment, min then max, no tricks."""
    x, widened = x, images_module._dilate(x, 3)
    import math

    reach, (height, width) = 2 * length, x.shape[-2:]
    best = torch.zeros_like(x)
    for k in range(images_module.LINE_ANGLES):
        points = {(0, 0)}
        for dx, dy in images_module._line_offsets(math.pi * k / images_module.LINE_ANGLES, length):
            points |= {(a + dx, b + dy) for a, b in points}
        high = torch.nn.functional.pad(widened, (reach,) * 4, value=255)
        eroded = torch.stack(
            [high[..., reach + b : reach + b + height, reach + a : reach + a + width] for a, b in points]
        )
        low = torch.nn.functional.pad(eroded.amin(0), (reach,) * 4, value=0)
        opened = torch.stack(
            [low[..., reach - b : reach - b + height, reach - a : reach - a + width] for a, b in points]
        )
        best = torch.maximum(best, opened.amax(0))
    return torch.minimum(best, x)


@pytest.mark.parametrize("shape, length", [((1, 1, 30, 30), 13), ((2, 2, 27, 41), 25), ((1, 3, 60, 9), 7)])
def test_straight_part_is_the_largest_line_opening(shape, length):
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape))) * 255).to(torch.uint8)
    x[..., shape[-2] // 2, :] = 200  # a long straight line, so something survives the opening
    assert torch.equal(images_module._straight_part(x, length), _opened_directly(x, length))


def _part_with(mark: str, angle: float = 36.5) -> Image.Image:
    """A flat grey 128 px part with one mark drawn on it."""
    import math

    image = Image.new("RGB", (128, 128), (128, 128, 128))
    draw_on = ImageDraw.Draw(image)
    if mark == "seam":  # dark, straight, across the part, at `angle` degrees
        dx, dy = 54 * math.cos(math.radians(angle)), 54 * math.sin(math.radians(angle))
        draw_on.line((64 - dx, 64 - dy, 64 + dx, 64 + dy), fill=(60, 60, 60), width=1)
    elif mark == "crack":  # dark, turning every few pixels
        draw_on.line((40, 40, 48, 44, 42, 50, 50, 54, 44, 60, 52, 64, 46, 70), fill=(60, 60, 60), width=1)
    elif mark == "stain":  # a rust-coloured blob wider than the top-hats see
        draw_on.ellipse((50, 50, 70, 68), fill=(150, 80, 40))
    return image


# Shape channels (after DETAIL_CHANNELS): 0 dark on straight lines, 1 dark off them, 2 bright
# off them; 3-5 blob contrast above the surroundings (red-green, yellow-blue, brightness), 6-8 below.
@pytest.mark.parametrize(
    "mark, angle", [("seam", a) for a in (0, 7, 20, 36.5, 52, 83, 101, 128, 166)] + [("crack", 0), ("stain", 0)]
)
def test_shape_channels_tell_lines_from_turns_and_blobs(mark, angle):
    shape = images_to_input([_part_with(mark, angle)], 128)[0, DETAIL_CHANNELS:].float()
    plain = images_to_input([_part_with("none")], 128)[0, DETAIL_CHANNELS:].float()
    assert plain.max() <= 2  # a flat part has no shape
    peaks = shape.amax(dim=(1, 2)).tolist()
    if mark == "seam":  # a seam at any angle: its dark detail is on the line, not off it
        assert peaks[0] >= 100 and peaks[1] <= 0.35 * peaks[0], peaks
    if mark == "crack":  # a crack shows off the straight lines, where a seam does not
        assert peaks[1] >= 100, peaks
    if mark == "stain":  # a rust stain: redder and yellower than grey; no line
        assert min(peaks[3], peaks[4]) >= 100 and max(peaks[:3]) <= 0.1 * peaks[4], peaks


def test_shape_channels_work_on_batches_and_uint8():
    images = [_part_with(m) for m in ("seam", "crack", "stain")]
    detail = images_to_input(images, 64, DETAIL_CHANNELS)
    together = shape_channels(detail)
    assert together.dtype == torch.uint8 and together.shape == (3, INPUT_CHANNELS - DETAIL_CHANNELS, 64, 64)
    assert all(torch.equal(together[i], shape_channels(detail[i : i + 1])[0]) for i in range(3))


def test_the_colour_alone_is_the_first_three_channels_of_the_full_input():
    rng = random.Random(3)
    images = [draw(rng, "Scratch").resize((300, 220)), draw(rng, None), Image.new("L", (50, 90), 77)]
    colour = images_to_input(images, 64, 3)
    assert colour.shape == (3, 3, 64, 64) and colour.dtype == torch.uint8
    assert torch.equal(colour, images_to_input(images, 64, INPUT_CHANNELS)[:, :3])

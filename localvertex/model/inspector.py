"""The trained inspector: generation, saving and loading."""

import json
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from localvertex.model.images import images_to_input
from localvertex.model.network import Cache, InspectorNet, NetworkConfig
from localvertex.model.tokenizer import BOS, EOS, WordTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "inspector.json"
# Bounds memory when a caller passes thousands of images at once: at most this many input
# pixel values (about 64 MB of floats) are converted at a time, and at most 256 images.
_CHUNK_VALUES = 16_000_000
_MAX_CHUNK = 256


class InspectorModel:
    """A trained image-to-text inspector (network weights plus its label vocabulary)."""

    def __init__(self, network: InspectorNet, tokenizer: WordTokenizer):
        self.network = network.eval()
        self.tokenizer = tokenizer

    def save(self, directory: Path) -> None:
        """Writes `model.safetensors` (weights) and `inspector.json` (vocabulary, shape).

        Args:
            directory: Target folder, created if missing.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.contiguous() for name, tensor in self.network.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        meta = {"format": 1, "network": self.network.config.to_dict(), "vocabulary": self.tokenizer.vocabulary}
        (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "InspectorModel":
        """Loads a model written by `save`.

        Args:
            directory: Folder holding `model.safetensors` and `inspector.json`.

        Returns:
            The model, ready to generate.
        """
        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        # Models saved before the encoder was named used the 64x64 grid encoder.
        network = InspectorNet(NetworkConfig(**{"encoder": "grid64", **meta["network"]}))
        network.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return cls(network, WordTokenizer(meta["vocabulary"]))

    def generate(
        self,
        images: list[Image.Image],
        temperature: float = 0.0,
        max_new_tokens: int = 48,
        seed: int | None = None,
    ) -> list[str]:
        """Writes an answer for each image, token by token.

        Args:
            images: Images of any size and mode (converted to RGB and resized to the
                model's input size).
            temperature: 0 decodes greedily; above 0 samples from softmax(logits / temperature).
            max_new_tokens: Cap on generated tokens (also capped by the longest trained label).
            seed: Seed for sampling; None draws a fresh one.

        Returns:
            One string per image, in order.

        Raises:
            ValueError: On a negative temperature or max_new_tokens.
        """
        if temperature < 0 or max_new_tokens < 0:
            raise ValueError(f"temperature and max_new_tokens must be >= 0, got {temperature}, {max_new_tokens}")
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        answers: list[str] = []
        config = self.network.config
        chunk = max(1, min(_MAX_CHUNK, _CHUNK_VALUES // (config.input_channels * config.input_size**2)))
        for start in range(0, len(images), chunk):
            pixels = images_to_input(images[start : start + chunk], config.input_size)
            pixels = pixels[:, : config.input_channels].float() / 255.0
            answers += self._generate_batch(pixels, temperature, max_new_tokens, generator)
        return answers

    @torch.inference_mode()
    def _generate_batch(
        self, pixels: torch.Tensor, temperature: float, max_new_tokens: int, generator: torch.Generator
    ) -> list[str]:
        n = pixels.shape[0]
        steps = min(max_new_tokens, self.network.config.max_length)
        image_kv = self.network.image_keys_values(pixels)
        heads = self.network.decoder[0].heads
        caches = [Cache(n, heads, steps) for _ in self.network.decoder]
        token = torch.full((n, 1), BOS, dtype=torch.long)
        output = torch.full((n, steps), EOS, dtype=torch.long)
        finished = torch.zeros(n, dtype=torch.bool)
        for position in range(steps):
            logits = self.network.decode(token, image_kv, caches, position)[:, -1]
            if temperature == 0:
                token = logits.argmax(-1, keepdim=True)
            else:
                probabilities = torch.softmax(logits / temperature, dim=-1)
                token = torch.multinomial(probabilities, 1, generator=generator)
            token = token.masked_fill(finished.unsqueeze(1), EOS)
            output[:, position] = token[:, 0]
            finished |= token[:, 0] == EOS
            if finished.all():
                break
        return [self.tokenizer.decode(row.tolist()) for row in output]

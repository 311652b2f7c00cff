"""The trained inspector: generation, saving and loading.

Greedy generation checks drafted answers (speculative decoding with the training answers as
the draft model): the tuned inspector mostly writes one of the answers it was trained on,
so after each token the rest of the most frequent training answer that starts the same way
is proposed, the network scores the whole draft in one pass, and every drafted token that
equals its own greedy choice is kept, plus its choice where they first differ. The text is
what token-by-token greedy decoding writes (only how many passes it takes changes), and a
"Status: Defect - Crack ..." answer takes 2-3 passes instead of 9.

Decisions are balanced where the training answers branch (`BranchBalance`): training shows
every distinct answer equally often, so "Status: Pass" is one answer in four against three
defect answers, and the network learns a prior of 3:1 for "Defect" at that word. Decoding
adds the log of that ratio back to the rarer branch (post-hoc logit adjustment, Menon et al.,
"Long-tail learning via logit adjustment", ICLR 2021), so Pass and Defect are weighed as
equally likely before the image is seen, and each defect type as likely as another.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from localvertex.model.images import images_to_input
from localvertex.model.network import Cache, InspectorNet, NetworkConfig
from localvertex.model.tokenizer import BOS, EOS, PAD, WordTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "inspector.json"
# Bounds memory when a caller passes thousands of images at once: at most this many input
# pixel values (about 64 MB of floats) are converted at a time, and at most 256 images.
_CHUNK_VALUES = 16_000_000
_MAX_CHUNK = 256
# Drafts come from at most this many distinct training answers (the most frequent ones).
MAX_DRAFT_ANSWERS = 512


class AnswerDrafts:
    """Proposes how an answer goes on: the rest of the most frequent known answer with its prefix.

    Answers are token id lists without BOS; each continuation ends with EOS.
    """

    def __init__(self, answers: Iterable[list[int]]):
        self._rest: dict[tuple[int, ...], tuple[int, ...]] = {}
        for ids in answers:  # most frequent first: the first answer with a prefix wins it
            full = (*ids, EOS)
            for k in range(len(full)):
                self._rest.setdefault(full[:k], full[k:])

    def propose(self, prefix: Iterable[int], limit: int) -> tuple[int, ...]:
        """Up to `limit` tokens that follow `prefix`; empty when no known answer starts so."""
        return self._rest.get(tuple(prefix), ())[:limit]


class BranchBalance:
    """Logit biases where the distinct training answers branch unevenly.

    For a prefix whose next tokens lead to different numbers of distinct answers, each next
    token gets log(largest count / its count): "Status:" -> " Pass" (1 answer) gets log 3
    against " Defect" (3 answers); even branches and tokens outside the answers get nothing.
    """

    def __init__(self, biases: dict[tuple[int, ...], dict[int, float]] | None = None):
        self.biases = biases or {}
        self._lengths = {len(prefix) for prefix in self.biases}  # positions where a bias may apply

    @classmethod
    def of_answers(cls, answers: Iterable[list[int]]) -> "BranchBalance":
        """The biases of distinct answers (token id lists without BOS; EOS is appended)."""
        branches: dict[tuple[int, ...], Counter] = {}
        for full in {(*ids, EOS) for ids in answers}:
            for k in range(len(full)):
                branches.setdefault(full[:k], Counter())[full[k]] += 1
        biases = {
            prefix: {token: math.log(max(counts.values()) / n) for token, n in counts.items()}
            for prefix, counts in branches.items()
            if len(set(counts.values())) > 1
        }
        return cls(biases)

    def to_json(self) -> list:
        return [[list(prefix), sorted(biases.items())] for prefix, biases in sorted(self.biases.items())]

    @classmethod
    def from_json(cls, entries: list) -> "BranchBalance":
        return cls({tuple(prefix): {int(t): float(b) for t, b in biases} for prefix, biases in entries})

    def apply(self, logits: torch.Tensor, written: torch.Tensor, fed: torch.Tensor) -> torch.Tensor:
        """Adds the biases to logits (N, T, vocab) in place: position t of row r continues the
        prefix written[r] + fed[r, 1 : t + 1] (fed[:, 0] is the last written token)."""
        position = written.shape[1]
        steps = [t for t in range(logits.shape[1]) if position + t in self._lengths]
        if not steps:  # most decoding passes: no branch at these positions
            return logits
        for r, row in enumerate(torch.cat([written, fed[:, 1:]], dim=1).tolist()):
            for t in steps:
                for token, bias in self.biases.get(tuple(row[: position + t]), {}).items():
                    logits[r, t, token] += bias
        return logits


def frequent_answers(texts: Iterable[str], limit: int = MAX_DRAFT_ANSWERS) -> list[str]:
    """Distinct texts, most frequent first (ties in first-seen order), at most `limit`."""
    return [text for text, _ in Counter(texts).most_common(limit)]


class InspectorModel:
    """A trained image-to-text inspector (network weights, its vocabulary, its answers).

    `answers` are the distinct training answers, most frequent first: the drafts of greedy
    decoding (a model without them decodes one token per pass, with the same result).
    `balance` weighs the branches of the training answers evenly (module docstring); a model
    saved without it decodes without biases.
    """

    def __init__(
        self,
        network: InspectorNet,
        tokenizer: WordTokenizer,
        answers: list[str] | None = None,
        balance: BranchBalance | None = None,
    ):
        self.network = network.eval()
        self.tokenizer = tokenizer
        self.answers = list(answers or [])[:MAX_DRAFT_ANSWERS]
        self._drafts = AnswerDrafts(tokenizer.encode(text) for text in self.answers)
        self.balance = balance or BranchBalance()

    def save(self, directory: Path) -> None:
        """Writes `model.safetensors` (weights) and `inspector.json` (vocabulary, shape).

        Args:
            directory: Target folder, created if missing.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.contiguous() for name, tensor in self.network.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        meta = {
            "format": 1,
            "network": self.network.config.to_dict(),
            "vocabulary": self.tokenizer.vocabulary,
            "answers": self.answers,
            "branch_balance": self.balance.to_json(),
        }
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
        balance = BranchBalance.from_json(meta.get("branch_balance", []))
        return cls(network, WordTokenizer(meta["vocabulary"]), meta.get("answers"), balance)

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
        if not temperature >= 0 or max_new_tokens < 0:  # `not >=` also refuses NaN
            raise ValueError(f"temperature and max_new_tokens must be >= 0, got {temperature}, {max_new_tokens}")
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        answers: list[str] = []
        for pixels in self.pixel_batches(images):
            answers += self._generate_batch(pixels, temperature, max_new_tokens, generator)
        return answers

    def pixel_batches(self, images: list[Image.Image]) -> Iterator[torch.Tensor]:
        """The images as the network reads them (floats in [0, 1]), in chunks that bound memory."""
        config = self.network.config
        chunk = max(1, min(_MAX_CHUNK, _CHUNK_VALUES // (config.input_channels * config.input_size**2)))
        for start in range(0, len(images), chunk):
            pixels = images_to_input(images[start : start + chunk], config.input_size, config.input_channels)
            yield pixels.float() / 255.0

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
        position = 0  # output[:, :position] is written; `token` is fed at `position`
        while position < steps and not finished.all():
            drafts = self._draft(output[:, :position], finished, steps - position - 1) if temperature == 0 else None
            fed = token if drafts is None else torch.cat([token, drafts], dim=1)
            logits = self.balance.apply(self.network.decode(fed, image_kv, caches, position), output[:, :position], fed)
            if temperature == 0:
                chosen = logits.argmax(-1)
            else:
                probabilities = torch.softmax(logits[:, -1] / temperature, dim=-1)
                chosen = torch.multinomial(probabilities, 1, generator=generator)
            count = 1 if drafts is None else _kept_count(chosen, drafts, finished)
            new = _end_after_eos(chosen[:, :count].masked_fill(finished.unsqueeze(1), EOS))
            output[:, position : position + count] = new
            finished |= (new == EOS).any(dim=1)
            token = new[:, -1:]
            position += count
        return [self.tokenizer.decode(row.tolist()) for row in output]

    def _draft(self, written: torch.Tensor, finished: torch.Tensor, limit: int) -> torch.Tensor | None:
        """Each unfinished row's draft (padded with PAD to the longest), or None if none has one."""
        proposals = [
            () if done else self._drafts.propose(row, limit)
            for row, done in zip(written.tolist(), finished.tolist(), strict=True)
        ]
        longest = max(map(len, proposals))
        if longest == 0:
            return None
        return torch.tensor([[*p, *[PAD] * (longest - len(p))] for p in proposals], dtype=torch.long)


def _kept_count(chosen: torch.Tensor, drafts: torch.Tensor, finished: torch.Tensor) -> int:
    """How many tokens of the pass every row can keep (the same count for all rows, so their
    positions stay aligned): a row keeps its drafted tokens up to the first that differs from
    its greedy choice, plus that choice; a row whose choices end (EOS) within those, all."""
    agree = (chosen[:, :-1] == drafts).long().cumprod(dim=1).sum(dim=1)
    keep = agree + 1
    ends = (chosen == EOS).long().argmax(dim=1)
    done = finished | ((chosen == EOS).any(dim=1) & (ends < keep))
    keep = torch.where(done, chosen.shape[1], keep)
    return int(keep.min())


def _end_after_eos(tokens: torch.Tensor) -> torch.Tensor:
    """Tokens after a row's first EOS become EOS."""
    seen = (tokens == EOS).long().cumsum(dim=1)
    after = torch.cat([torch.zeros_like(seen[:, :1]), seen[:, :-1]], dim=1) > 0
    return tokens.masked_fill(after, EOS)

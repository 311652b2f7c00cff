"""Word-level tokenizer whose vocabulary is built from the training labels.

Pieces are words or single punctuation marks, each carrying the whitespace before it
(" Defect", " -", "."), so joining the pieces gives back the label string exactly.
"""

import re
from collections.abc import Iterable

# Any string splits into these pieces without loss: every character is whitespace,
# a word character or another symbol; a trailing run of whitespace is its own piece.
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")

PAD, BOS, EOS = 0, 1, 2
_SPECIALS = ["<pad>", "<bos>", "<eos>"]


def split_pieces(text: str) -> list[str]:
    """Splits text into lossless word/punctuation pieces."""
    return _PIECE.findall(text)


class WordTokenizer:
    """Maps label text to token ids and back, round-tripping exactly."""

    def __init__(self, vocabulary: list[str]):
        if vocabulary[: len(_SPECIALS)] != _SPECIALS:
            raise ValueError("vocabulary must start with the special tokens")
        self.vocabulary = list(vocabulary)
        self._ids = {piece: i for i, piece in enumerate(self.vocabulary)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> "WordTokenizer":
        """Builds a vocabulary holding every piece of the given texts (sorted, so stable)."""
        return cls(_SPECIALS + sorted({piece for text in texts for piece in split_pieces(text)} - set(_SPECIALS)))

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        """Returns the token ids of text, without BOS/EOS."""
        try:
            return [self._ids[piece] for piece in split_pieces(text)]
        except KeyError as error:
            raise ValueError(f"text has a piece outside the vocabulary: {error.args[0]!r}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Joins the pieces of ids, stopping at EOS and skipping other special tokens."""
        pieces = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(_SPECIALS):
                pieces.append(self.vocabulary[i])
        return "".join(pieces)

"""The prediction process: ``python -m localvertex.prediction_worker FD``.

:class:`localvertex.prediction.Predictor` starts it on the first ``generateContent`` and
sends it batches over a socket (``multiprocessing.connection`` framing, inherited as file
descriptor FD). It owns the tuned models (an LRU cache) and torch, so the model runs on its
own core at full speed: in the server's process every release of the GIL by torch waited
for the event loop, which tripled a batch's time under load.

Messages (pickled tuples; the two ends are one program, started together):

* in:  ``("generate", model_dir, kwargs, images)``, images as bytes (decoded here) or PIL
  images; ``("stop",)`` or end of stream: exit.
* out: ``("ok", [answer, ...])``, one answer per image: ``(text, finishReason)`` or
  ``("error", "decode" | "failed", message)``; or ``("error", kind, message)`` for the whole
  batch (``"missing"``: no model files; ``"failed"``: anything else).

It never imports the web stack (tests/test_localvertex_parts.py checks the import graph).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

CACHE_SIZE = 4


def finish_reason(text: str, limit: int | None) -> str:
    """MAX_TOKENS when the answer took the whole maxOutputTokens budget, so the model's end
    token did not fit. generate returns strings, so this re-splits the text into the
    tokenizer's pieces; re-splitting can only merge pieces, never report MAX_TOKENS wrongly."""
    from .model.tokenizer import split_pieces

    return "MAX_TOKENS" if limit is not None and len(split_pieces(text)) >= limit else "STOP"


class Models:
    """Tuned models by directory, least recently used dropped beyond ``size``."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._models: OrderedDict[str, Any] = OrderedDict()

    def get(self, directory: str):
        if directory in self._models:
            self._models.move_to_end(directory)
            return self._models[directory]
        from .model import InspectorModel

        model = InspectorModel.load(Path(directory))
        self._models[directory] = model
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        return model


def answer(models: Models, model_dir: str, kwargs: dict, images: list) -> tuple:
    """The reply to one ``generate`` message."""
    from .model import load_image

    if not Path(model_dir, "inspector.json").is_file():
        return ("error", "missing", f"model files in {model_dir} are missing")
    try:
        model = models.get(model_dir)
    except Exception as exc:  # a broken model directory fails its batch, not the process
        return ("error", "failed", f"cannot load the model: {type(exc).__name__}: {exc}")
    out: list = [None] * len(images)
    decoded, where = [], []
    for i, image in enumerate(images):
        if isinstance(image, (bytes, bytearray)):
            try:
                image = load_image(bytes(image))
            except ValueError as exc:
                out[i] = ("error", "decode", str(exc))
                continue
        decoded.append(image)
        where.append(i)
    if decoded:
        try:
            texts = model.generate(decoded, **kwargs)
        except Exception as exc:
            traceback.print_exc()
            texts = None
            failure = ("error", "failed", f"{type(exc).__name__}: {exc}")
        limit = kwargs.get("max_new_tokens")
        for k, i in enumerate(where):
            out[i] = (texts[k], finish_reason(texts[k], limit)) if texts is not None else failure
    return ("ok", out)


def serve(conn: Connection) -> None:
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("LOCALVERTEX_PREDICT_THREADS") or 1)))
    models = Models()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if not isinstance(message, tuple) or not message or message[0] != "generate":
            return
        _, model_dir, kwargs, images = message
        try:
            reply = answer(models, model_dir, kwargs, images)
        except Exception as exc:  # keep serving; this batch fails
            traceback.print_exc()
            reply = ("error", "failed", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (OSError, EOFError):
            return


def main(argv: list[str]) -> int:
    conn = Connection(int(argv[1]))
    try:
        serve(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

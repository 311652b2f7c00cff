"""Prediction on tuned models: a per-endpoint model cache and a batching generator.

The HTTP side of ``generateContent`` (request parsing, image loading, response body) is in
generate.py; this module only turns (model id, decoded image, sampling settings) into text.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import not_found
from .ids import check_id


@dataclass
class _Pending:
    image: Any
    future: asyncio.Future


class Predictor:
    """Loads tuned models lazily (LRU cache per endpoint) and batches greedy requests.

    ``generate`` runs on one dedicated thread so the event loop never blocks; requests
    that arrive while a batch is running are gathered into the next batch.
    """

    MAX_BATCH = 64
    GATHER_S = 0.003

    def __init__(self, models_dir: Path, cache_size: int = 4) -> None:
        self.models_dir = Path(models_dir)
        self.cache_size = cache_size
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="localvertex-generate")
        self._queues: dict[tuple, list[_Pending]] = {}
        self._tasks: dict[tuple, asyncio.Task] = {}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._models.clear()

    def model(self, model_id: str):
        with self._load_lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
                return self._models[model_id]
        path = self.models_dir / check_id(model_id, "model id")
        if not path.is_dir():
            raise not_found(f"model files for {model_id} are missing")
        from .model import InspectorModel  # torch: imported on first use only

        model = InspectorModel.load(path)
        with self._load_lock:
            self._models[model_id] = model
            while len(self._models) > self.cache_size:
                self._models.popitem(last=False)
        return model

    async def generate(
        self, model_id: str, image: Any, temperature: float, max_new_tokens: int | None, seed: int | None
    ) -> tuple[str, str]:
        """Return (text, finishReason)."""
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {"temperature": temperature}
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = max_new_tokens
        if temperature > 0 or seed is not None:
            # Sampling: one request per call so a seed gives the same answer every time.
            if seed is not None:
                kwargs["seed"] = seed
            out = await loop.run_in_executor(self._executor, self._run, model_id, [image], kwargs)
            return out[0]
        key = (model_id, max_new_tokens)
        fut = loop.create_future()
        self._queues.setdefault(key, []).append(_Pending(image, fut))
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = loop.create_task(self._drain(key, kwargs))
        return await fut

    def _run(self, model_id: str, images: list, kwargs: dict) -> list[tuple[str, str]]:
        model = self.model(model_id)
        limit = kwargs.get("max_new_tokens")
        return [(text, finish_reason(text, limit)) for text in model.generate(images, **kwargs)]

    async def _drain(self, key: tuple, kwargs: dict) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.GATHER_S)
        pending = self._queues.get(key)
        while pending:
            batch, pending[:] = pending[: self.MAX_BATCH], pending[self.MAX_BATCH :]
            try:
                answers = await loop.run_in_executor(
                    self._executor, self._run, key[0], [p.image for p in batch], kwargs
                )
                for p, answer in zip(batch, answers, strict=False):
                    if not p.future.done():
                        p.future.set_result(answer)
            except BaseException as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
            pending = self._queues.get(key)


def finish_reason(text: str, limit: int | None) -> str:
    """MAX_TOKENS when the answer took the whole maxOutputTokens budget, so the model's end
    token did not fit. generate returns strings, so this re-splits the text into the
    tokenizer's pieces; re-splitting can only merge pieces, never report MAX_TOKENS wrongly."""
    from .model.tokenizer import split_pieces

    return "MAX_TOKENS" if limit is not None and len(split_pieces(text)) >= limit else "STOP"

"""Prediction on tuned models: batching on the server's side, the model in its own process.

The HTTP side of ``generateContent`` (request parsing, image loading, response body) is in
generate.py; :class:`Predictor` only turns (model key, image, sampling settings) into text.

* The models run in a child process (``python -m localvertex.prediction_worker``), started
  on the first request and restarted if it dies: torch there has a core and a GIL of its
  own. In the server's process every release of the GIL by torch waited for the event loop
  (up to the 5 ms switch interval), which tripled a batch's time under load.
* One dispatcher thread takes requests from a queue, sends each batch to the worker and
  hands the answers back to the event loop with one ``call_soon_threadsafe`` per batch. It
  waits on the socket, so it holds the GIL for microseconds per batch.
* Greedy requests (temperature 0, no seed) that wait in the queue when the dispatcher comes
  round are answered together in one ``generate`` call per (model, maxOutputTokens), up to
  ``MAX_BATCH``. A lone request is sent at once (no gathering delay); under load the queue
  fills while a batch runs, so batches grow with the load, and the dispatcher waits up to
  ``GATHER_S`` for a batch as large as the last one (a batch of 16 costs the model several
  times less per image than a batch of 2).
* Sampling requests (temperature > 0 or a seed) go one at a time, so a seed always gives the
  same answer.
* Images may arrive as bytes: the worker decodes them (a bad image fails its own request,
  400), so the server needs neither torch nor a thread hand-off to decode.

The worker runs torch with ``LOCALVERTEX_PREDICT_THREADS`` intra-op threads (default 1).
It dies with the server (``PR_SET_PDEATHSIG`` from the dispatcher thread, and end of stream
on its socket); its output goes to ``<data_dir>/logs/prediction.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .childproc import die_with_parent, wait_or_kill
from .errors import invalid, not_found
from .ids import check_id
from .prediction_worker import finish_reason

__all__ = ["Predictor", "finish_reason"]

log = logging.getLogger("localvertex.prediction")


@dataclass
class _Request:
    model_key: str
    image: Any  # bytes (decoded by the worker) or a decoded image
    kwargs: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    greedy: bool = True

    @property
    def group(self) -> tuple:
        return (self.model_key, self.kwargs.get("max_new_tokens"))


def _settle(results: list[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    """On the event loop: hand each future its answer or error, unless it was cancelled."""
    for future, answer, error in results:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(answer)


class WorkerDied(RuntimeError):
    """The prediction process ended while it had a batch."""


class Predictor:
    """Batches requests for tuned models and has the prediction process answer them."""

    MAX_BATCH = 64
    GATHER_S = 0.002
    REPLY_TIMEOUT_S = 600.0  # a start (torch import, model load) plus a batch of 64

    def __init__(self, models_dir: Path, log_path: Path | None = None) -> None:
        self.models_dir = Path(models_dir)
        self.log_path = Path(log_path) if log_path else self.models_dir.parent / "logs" / "prediction.log"
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None

    # -- the event loop's side
    async def generate(
        self, model_key: str, image: Any, temperature: float, max_new_tokens: int | None, seed: int | None
    ) -> tuple[str, str]:
        """(text, finishReason). ``image`` is the image's bytes or a decoded image."""
        if self._closed:
            raise RuntimeError("the predictor is closed")
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {"temperature": temperature}
        if max_new_tokens is not None:
            kwargs["max_new_tokens"] = max_new_tokens
        if seed is not None:
            kwargs["seed"] = seed
        request = _Request(
            model_key, image, kwargs, loop, loop.create_future(), greedy=temperature <= 0 and seed is None
        )
        self._ensure_dispatcher()
        self._queue.put(request)
        return await request.future

    def _ensure_dispatcher(self) -> None:
        if self._dispatcher is None:
            with self._start_lock:
                if self._dispatcher is None:
                    self._dispatcher = threading.Thread(target=self._dispatch, daemon=True, name="localvertex-predict")
                    self._dispatcher.start()

    def close(self) -> None:
        self._closed = True
        if self._dispatcher is not None:
            self._queue.put(None)
            self._dispatcher.join(timeout=15)
            self._dispatcher = None
        self._stop_worker()

    # -- the dispatcher thread
    def _dispatch(self) -> None:
        held: list[_Request] = []
        last_batch = 0
        try:
            while True:
                batch, held, stop = self._next_batch(held, last_batch)
                if batch:
                    last_batch = len(batch)
                    self._answer(batch)
                if stop:
                    return
        finally:
            self._stop_worker()  # the worker dies with this thread in any case (pdeathsig)

    def _next_batch(self, held: list[_Request], last_batch: int) -> tuple[list[_Request], list[_Request], bool]:
        """(the next batch, requests left for later rounds, stop after this batch)."""
        first = held.pop(0) if held else self._queue.get()
        if first is None:
            return [], held, True
        waiting, stop, deadline = [first, *held], False, None
        while True:  # everything queued by now joins this round (see the module docstring)
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                if len(waiting) < 2 or len(waiting) >= last_batch:
                    break
                now = time.monotonic()
                deadline = deadline or now + self.GATHER_S
                if now >= deadline:
                    break
                try:
                    nxt = self._queue.get(timeout=deadline - now)
                except queue.Empty:
                    break
            if nxt is None:
                stop = True
                break
            waiting.append(nxt)
        if first.greedy:
            batch = [r for r in waiting if r.greedy and r.group == first.group][: self.MAX_BATCH]
        else:
            batch = [first]
        chosen = set(map(id, batch))
        return batch, [r for r in waiting if id(r) not in chosen], stop

    def _answer(self, batch: list[_Request]) -> None:
        first = batch[0]
        try:
            answers = self._ask(first.model_key, first.kwargs, [r.image for r in batch])
            results = [(r.future, *_result(a)) for r, a in zip(batch, answers, strict=True)]
        except Exception as exc:
            results = [(r.future, None, exc) for r in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for request, result in zip(batch, results, strict=True):
            by_loop.setdefault(request.loop, []).append(result)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these
                loop.call_soon_threadsafe(_settle, items)

    def _ask(self, model_key: str, kwargs: dict, images: list) -> list:
        model_dir = self.models_dir / check_id(model_key, "model id")
        if not model_dir.is_dir():
            raise not_found(f"model files for {model_key} are missing")
        for attempt in (1, 2):  # a worker that died since the last batch is started again
            conn = self._worker()
            try:
                conn.send(("generate", str(model_dir), kwargs, images))
                if not conn.poll(self.REPLY_TIMEOUT_S):
                    self._stop_worker(kill=True)
                    raise WorkerDied(
                        f"the prediction process did not answer within "
                        f"{self.REPLY_TIMEOUT_S:.0f} s; see {self.log_path}"
                    )
                reply = conn.recv()
                break
            except (EOFError, OSError) as exc:
                tail = self._stop_worker()
                if attempt == 2:
                    raise WorkerDied(f"the prediction process stopped ({tail or exc}); see {self.log_path}") from None
                log.warning("prediction process gone (%s); starting it again", tail or exc)
        if reply[0] == "error":
            _, kind, message = reply
            raise not_found(message) if kind == "missing" else RuntimeError(message)
        return reply[1]

    def _worker(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self._stop_worker()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair()
        with ours, theirs, open(self.log_path, "ab") as log_file:
            # Forked by the dispatcher thread, which lives as long as the worker should.
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "localvertex.prediction_worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parent.parent,
                preexec_fn=die_with_parent(),
            )
            self._conn = Connection(ours.detach())
        log.info("prediction process started (pid %s)", self._proc.pid)
        return self._conn

    def _stop_worker(self, kill: bool = False) -> str:
        """Stop the worker (if any); the last line of its log, for error messages."""
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            conn.close()  # end of stream: the worker exits
        if proc is None:
            return ""
        if kill:
            proc.kill()
        wait_or_kill(proc)
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            return lines[-1][:300] if lines else ""
        except OSError:
            return ""


def _result(answer: Any) -> tuple[Any, BaseException | None]:
    """(answer, None) or (None, error) from the worker's answer for one image."""
    if answer[0] == "error":
        _, kind, message = answer
        return None, (invalid(f"cannot decode the image: {message}") if kind == "decode" else RuntimeError(message))
    return (answer[0], answer[1]), None

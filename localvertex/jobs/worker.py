"""The training worker: ``python -m localvertex.jobs <spec.json>``, one process per job.

A plain child process rather than a multiprocessing child: multiprocessing's spawn
re-imports the parent's ``__main__`` (a pipeline runner, a notebook, a script without a
main guard), which a plain child process never does. It talks to the runner through the
messages of protocol.py, and ends by itself if the server dies (its stdin closes).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import datasets
from ..errors import RPC_INTERNAL, RPC_INVALID_ARGUMENT
from ..storage import GcsReader
from .protocol import (
    CANCEL_COMMAND,
    Cancelled,
    DataLoaded,
    Done,
    EpochFinished,
    Failed,
    Message,
    Outcome,
    WorkerSpec,
    encode,
)

Emit = Callable[[Message], None]


@dataclass
class LoadedData:
    train_records: list[datasets.SftRecord]
    train: list[Any]  # model.Example
    validation: list[Any]


def _read_records(reader: GcsReader, uri: str | None) -> list[datasets.SftRecord]:
    if not uri:
        return []
    try:
        raw = reader.read_bytes(uri)
    except Exception as exc:  # ObjectNotFound, network, size
        raise datasets.DatasetError(uri, None, f"cannot read dataset: {exc}") from None
    return datasets.parse_jsonl(raw, uri)


def _load_data(spec: WorkerSpec, reader: GcsReader) -> LoadedData:
    # Parse and check both files before importing the model (torch): bad data fails fast.
    train_records = _read_records(reader, spec.training_uri)
    val_records = _read_records(reader, spec.validation_uri)
    from .. import model as M

    def examples(records, uri):
        pairs = datasets.load_images(records, uri, reader.read_bytes, M.load_image)
        return [M.Example(image=img, text=rec.label) for rec, img in pairs]

    return LoadedData(
        train_records, examples(train_records, spec.training_uri), examples(val_records, spec.validation_uri)
    )


def _save_model(model: Any, spec: WorkerSpec) -> None:
    """Save into ``<model_dir>.partial``, then rename: a half-saved model is never served."""
    final = Path(spec.model_dir)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial)
    (partial / "localvertex_model.json").write_text(json.dumps(spec.model_meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)


def _train(spec: WorkerSpec, data: LoadedData, emit: Emit, should_stop: Callable[[], bool]) -> Outcome:
    from .. import model as M

    cfg = spec.config
    config = M.TrainConfig(
        epochs=cfg["epochs"],
        learning_rate_multiplier=cfg["learning_rate_multiplier"],
        adapter_size=cfg["adapter_size"],
        seed=cfg["seed"],
    )
    t0 = time.monotonic()
    try:
        result = M.train(
            data.train,
            data.validation,
            config,
            should_stop=should_stop,
            on_epoch=lambda stats: emit(EpochFinished(stats.to_dict())),
        )
    except M.TrainingCancelled:
        return Cancelled()
    seconds = time.monotonic() - t0
    _save_model(result.model, spec)
    return Done(
        epochs=[e.to_dict() for e in result.epochs],
        step_count=int(result.step_count),
        example_count=int(result.example_count),
        token_count=int(result.token_count),
        train_seconds=round(seconds, 3),
    )


def _failure(exc: Exception) -> Failed:
    if isinstance(exc, datasets.DatasetError):
        return Failed(RPC_INVALID_ARGUMENT, f"Invalid dataset: {exc}")
    if isinstance(exc, ValueError):
        return Failed(RPC_INVALID_ARGUMENT, f"Invalid tuning data: {exc}")
    traceback.print_exc()
    return Failed(RPC_INTERNAL, f"Training failed: {type(exc).__name__}: {exc}")


def train_worker(spec: WorkerSpec, emit: Emit, should_stop: Callable[[], bool]) -> None:
    """Load the datasets, train, save the model. Reports through ``emit``: DataLoaded once
    the data is loaded, EpochFinished per epoch, and finally Done, Cancelled or Failed."""
    try:
        reader = GcsReader(spec.storage_endpoint, spec.project)
        data = _load_data(spec, reader)
        stats = datasets.dataset_stats(data.train_records, spec.config["epochs"])
        emit(DataLoaded(stats, len(data.validation)))
        emit(_train(spec, data, emit, should_stop))
    except Exception as exc:
        emit(_failure(exc))


def _watch_stdin(stop: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == CANCEL_COMMAND:
            break
    stop.set()  # "cancel" or EOF (the server went away)


def worker_main(argv: list[str]) -> int:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = WorkerSpec.from_json(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    lock = threading.Lock()

    def emit(msg: Message) -> None:
        with lock:
            out.write(encode(msg) + "\n")
            out.flush()

    train_worker(spec, emit, stop.is_set)
    return 0

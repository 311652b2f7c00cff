"""The training worker: ``python -m localvertex.jobs <spec.json>``, one process per job.

A plain child process rather than a multiprocessing child: multiprocessing's spawn
re-imports the parent's ``__main__`` (a pipeline runner, a notebook, a script without a
main guard), which a plain child process never does. It talks to the runner through the
messages of protocol.py, and ends by itself if the server dies (its stdin closes).

Intermediate checkpoints (checkpoints.py): after each epoch in ``WorkerSpec.checkpoint_epochs``
the worker saves the network's weights as a model of its own next to the job's model
(``<model_dir>-checkpoint-<n>``, written to ``.partial`` and renamed) and then reports
``CheckpointSaved``; the runner lists the checkpoint only after that. It needs the model's
``train(..., on_checkpoint=...)`` hook, which hands over the weights after an epoch; with
an older ``train`` that lacks it, no intermediate checkpoint is saved (a warning goes to the
job's log) and the job lists only its final checkpoint.

Continuous tuning (``WorkerSpec.initial_model_dir``): training starts from that saved model's
weights and vocabulary (model.training ``initial_model``); what was loaded goes to the job's
log and into ``Done.initial_weights``.
"""

from __future__ import annotations

import inspect
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

from .. import tuning_data
from ..errors import RPC_INTERNAL, RPC_INVALID_ARGUMENT
from ..storage import GcsReader
from .checkpoints import checkpoint_model_key
from .protocol import (
    CANCEL_COMMAND,
    Cancelled,
    CheckpointSaved,
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
    train_records: list[tuning_data.SftRecord]
    train: list[Any]  # model.Example
    validation: list[Any]


def _limits(spec: WorkerSpec) -> dict[str, int]:
    return {**tuning_data.default_limits(), **spec.limits}


def _read_records(reader: GcsReader, uri: str | None, limits: dict[str, Any]) -> list[tuning_data.SftRecord]:
    if not uri:
        return []
    try:
        raw = reader.read_bytes(uri)
    except Exception as exc:  # ObjectNotFound, network, size
        raise tuning_data.DatasetError(uri, None, f"cannot read dataset: {exc}") from None
    return tuning_data.parse_jsonl(raw, uri, limits)


def _load_data(spec: WorkerSpec, reader: GcsReader) -> LoadedData:
    # Parse and check both files before importing the model (torch): bad data fails fast.
    limits = _limits(spec)
    train_records = _read_records(reader, spec.training_uri, limits)
    val_records = _read_records(reader, spec.validation_uri, limits)
    if spec.validation_uri:
        tuning_data.check_validation_size(val_records, spec.validation_uri, limits)
    from .. import model as M

    def examples(records, uri):
        pairs = tuning_data.load_images(records, uri, reader.read_bytes, M.load_image, limits["max_image_bytes"])
        return [M.Example(image=img, text=rec.label) for rec, img in pairs]

    return LoadedData(
        train_records, examples(train_records, spec.training_uri), examples(val_records, spec.validation_uri)
    )


def _save_model(model: Any, target: Path, meta: dict[str, Any]) -> None:
    """Save into ``<target>.partial``, then rename: a half-saved model is never served."""
    final = Path(target)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save(partial)
    (partial / "localvertex_model.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)


class _Checkpoints:
    """Saves the weights after each checkpoint epoch and reports them (module docstring)."""

    def __init__(self, spec: WorkerSpec, emit: Emit) -> None:
        self.spec, self.emit = spec, emit
        self.epochs = list(spec.checkpoint_epochs)
        self.saved = 0

    def __call__(self, stats: Any, model: Any) -> None:
        if stats.epoch not in self.epochs:
            return
        self.saved += 1
        checkpoint_id = str(self.saved)
        model_dir = Path(self.spec.model_dir)
        target = model_dir.with_name(checkpoint_model_key(model_dir.name, checkpoint_id))
        _save_model(
            model,
            target,
            {**self.spec.model_meta, "checkpointId": checkpoint_id, "epoch": stats.epoch, "step": stats.step},
        )
        self.emit(
            CheckpointSaved(
                checkpoint_id=checkpoint_id, epoch=int(stats.epoch), step=int(stats.step), model_key=target.name
            )
        )


def _train(spec: WorkerSpec, data: LoadedData, emit: Emit, should_stop: Callable[[], bool]) -> Outcome:
    from .. import model as M

    cfg = spec.config
    config = M.TrainConfig(
        epochs=cfg["epochs"],
        learning_rate_multiplier=cfg["learning_rate_multiplier"],
        adapter_size=cfg["adapter_size"],
        seed=cfg["seed"],
    )
    hooks: dict[str, Any] = {"on_epoch": lambda stats: emit(EpochFinished(stats.to_dict()))}
    if spec.checkpoint_epochs:
        if "on_checkpoint" in inspect.signature(M.train).parameters:
            hooks["on_checkpoint"] = _Checkpoints(spec, emit)
        else:
            print(
                "localvertex: model.train has no on_checkpoint hook; intermediate checkpoints are not saved",
                file=sys.stderr,
                flush=True,
            )
    if spec.initial_model_dir:
        hooks["initial_model"] = _initial_model(M, Path(spec.initial_model_dir))
    t0 = time.monotonic()
    try:
        result = M.train(data.train, data.validation, config, should_stop=should_stop, **hooks)
    except M.TrainingCancelled:
        return Cancelled()
    seconds = time.monotonic() - t0
    initial = None
    if result.initial_weights is not None:
        initial = {"modelDir": Path(spec.initial_model_dir).name, **result.initial_weights.to_dict()}
        print(f"localvertex: continued from {spec.initial_model_dir}: {result.initial_weights}", file=sys.stderr)
    _save_model(result.model, Path(spec.model_dir), spec.model_meta)
    return Done(
        epochs=[e.to_dict() for e in result.epochs],
        step_count=int(result.step_count),
        example_count=int(result.example_count),
        token_count=int(result.token_count),
        train_seconds=round(seconds, 3),
        initial_weights=initial,
    )


def _initial_model(M: Any, directory: Path) -> Any:
    """The pre-tuned model to start from; a clear error when its weights are gone."""
    if not (directory / "inspector.json").is_file():
        raise RuntimeError(f"the pre-tuned model's weights are missing ({directory.name}); tune it again")
    print(f"localvertex: starting from the weights of {directory}", file=sys.stderr, flush=True)
    return M.InspectorModel.load(directory)


def _failure(exc: Exception) -> Failed:
    if isinstance(exc, tuning_data.DatasetError):
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
        stats = tuning_data.dataset_stats(data.train_records, spec.config["epochs"])
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

"""What the runner and a training worker say to each other.

The runner writes a :class:`WorkerSpec` to a JSON file and starts
``python -m localvertex.jobs <spec.json>``. The worker prints one line per message on
stdout, ``@@localvertex@@ {"kind": ..., ...fields}`` (anything else is logged), and stops
at the next optimizer step when ``cancel`` or EOF arrives on its stdin.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

PROTOCOL_PREFIX = "@@localvertex@@ "
CANCEL_COMMAND = "cancel"  # a line on the worker's stdin


@dataclass(frozen=True)
class WorkerSpec:
    job_id: str
    project: str
    storage_endpoint: str
    training_uri: str
    validation_uri: str | None
    config: dict[str, Any]  # TrainConfig fields: epochs, learning_rate_multiplier, ...
    model_dir: str
    model_meta: dict[str, Any]  # saved next to the model as localvertex_model.json
    # Dataset limits Vertex AI enforces (platform_facts/gemini.py, for this base model):
    # max_example_tokens, max_validation_examples, max_images_per_example, max_image_bytes.
    limits: dict[str, Any] = field(default_factory=dict)
    # Epochs whose weights are saved as intermediate checkpoints, in
    # ``<model_dir>-checkpoint-<n>`` (n counting from 1; see checkpoints.py).
    checkpoint_epochs: list[int] = field(default_factory=list)
    # Continuous tuning: the saved model (the pre-tuned model or one of its checkpoints)
    # whose weights and vocabulary training starts from; None trains a fresh network.
    initial_model_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSpec:
        return cls(**data)


@dataclass(frozen=True)
class DataLoaded:
    """Both datasets parsed and their images decoded: training starts."""

    kind: ClassVar[str] = "data"
    stats: dict[str, Any]  # supervisedTuningDataStats
    validation_example_count: int


@dataclass(frozen=True)
class EpochFinished:
    kind: ClassVar[str] = "epoch"
    stats: dict[str, Any]  # EpochStats.to_dict(): epoch, step, train_loss, validation_loss...


@dataclass(frozen=True)
class CheckpointSaved:
    """An intermediate checkpoint's weights are saved, complete, in the directory
    ``model_key`` next to the job's model directory."""

    kind: ClassVar[str] = "checkpoint"
    checkpoint_id: str
    epoch: int
    step: int
    model_key: str


@dataclass(frozen=True)
class Done:
    """The model is saved in ``WorkerSpec.model_dir``."""

    kind: ClassVar[str] = "done"
    epochs: list[dict[str, Any]]
    step_count: int
    example_count: int
    token_count: int
    train_seconds: float
    # Continuous tuning: what training started from (model.training.InitialWeights.to_dict()).
    initial_weights: dict[str, Any] | None = None

    def metrics(self) -> dict[str, Any]:
        """The job's final metrics, as the local epochs route serves them."""
        out = {
            "epochs": self.epochs,
            "stepCount": self.step_count,
            "exampleCount": self.example_count,
            "tokenCount": self.token_count,
            "trainSeconds": self.train_seconds,
        }
        if self.initial_weights is not None:
            out["initialWeights"] = self.initial_weights
        return out


@dataclass(frozen=True)
class Cancelled:
    kind: ClassVar[str] = "cancelled"


@dataclass(frozen=True)
class Failed:
    kind: ClassVar[str] = "error"
    code: int  # google.rpc code for TuningJob.error
    message: str


Progress = DataLoaded | EpochFinished | CheckpointSaved
Outcome = Done | Cancelled | Failed  # the worker's last message
Message = Progress | Outcome
_BY_KIND: dict[str, type] = {
    cls.kind: cls for cls in (DataLoaded, EpochFinished, CheckpointSaved, Done, Cancelled, Failed)
}


def encode(msg: Message) -> str:
    """One protocol line (without the newline)."""
    return PROTOCOL_PREFIX + json.dumps({"kind": msg.kind, **asdict(msg)})


def is_message(line: str) -> bool:
    return line.startswith(PROTOCOL_PREFIX)


def decode(line: str) -> Message:
    """The message on a protocol line; ValueError if it is not one."""
    try:
        fields = json.loads(line[len(PROTOCOL_PREFIX) :])
        cls = _BY_KIND[fields.pop("kind")]
        return cls(**fields)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"bad worker message: {exc!r}") from None

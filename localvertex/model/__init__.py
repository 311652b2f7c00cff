"""The local tuned model: a compact vision-language model trained per tuning job on CPU.

A batch-normalised CNN encodes the image; a small transformer decoder with cross-attention
writes the answer word by word from a vocabulary built from the job's labels.
"""

from localvertex.model.images import load_image
from localvertex.model.inspector import InspectorModel
from localvertex.model.training import (
    EpochStats,
    Example,
    InitialWeights,
    TrainConfig,
    TrainingCancelled,
    TrainResult,
    train,
)

__all__ = [
    "EpochStats",
    "Example",
    "InitialWeights",
    "InspectorModel",
    "TrainConfig",
    "TrainResult",
    "TrainingCancelled",
    "load_image",
    "train",
]

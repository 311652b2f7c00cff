"""Tuning jobs: create requests, the on-disk store, and the runner that trains one job at
a time in a worker process (``python -m localvertex.jobs``).

* resource.py: the TuningJob resource, its states and transitions (pure dict updates);
* request.py: validation of create-TuningJob bodies (with platform_facts/gemini.py) and
  the new PENDING job;
* checkpoints.py: which epochs become checkpoints, their endpoints and weight directories;
* filters.py: the AIP-160 ``filter`` of list;
* store.py: ``<data_dir>/jobs/<id>.json``, one job per file, written atomically;
* protocol.py: the worker spec and the typed messages between runner and worker;
* runner.py: the queue, the worker process, the restart rule (see its docstring);
* worker.py: the worker itself (datasets -> model -> saved model and checkpoints).
"""

from .checkpoints import SERVING_STATES, checkpoint_epochs, serving_key
from .filters import parse_filter
from .request import (
    ADAPTER_SIZES,
    TuningRequest,
    build_job,
    normalize_base_model,
    parse_tuning_request,
)
from .resource import (
    CANCELLED,
    CANCELLING,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    TERMINAL,
    endpoint_name,
    endpoint_path,
    model_name,
    now_rfc3339,
    public_view,
    serving_location,
    state_word,
)
from .runner import TrainingRunner
from .store import JobStore

__all__ = [
    "ADAPTER_SIZES",
    "CANCELLED",
    "CANCELLING",
    "FAILED",
    "JobStore",
    "PENDING",
    "RUNNING",
    "SERVING_STATES",
    "SUCCEEDED",
    "TERMINAL",
    "TrainingRunner",
    "TuningRequest",
    "build_job",
    "checkpoint_epochs",
    "endpoint_name",
    "endpoint_path",
    "model_name",
    "normalize_base_model",
    "now_rfc3339",
    "parse_filter",
    "parse_tuning_request",
    "public_view",
    "serving_key",
    "serving_location",
    "state_word",
]

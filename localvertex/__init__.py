"""localvertex: a local stand-in for the slice of Vertex AI + Cloud Storage the pipeline uses.

The unchanged ``google-genai``, ``google-cloud-aiplatform``, ``kfp`` registry and
``google-cloud-storage`` clients reach it through environment variables they already honour
(see :class:`LocalStack` and README.md). It is at least as strict as Vertex AI: shapes come
from the vendored discovery documents (``schema/``), limits and model rules from
``platform_facts``; it imports nothing of the pipeline's ``components``.

Where to change what: ``routes/`` (the REST API, one module per resource), ``jobs/`` (tuning
jobs: request rules, store, runner, training worker), ``model/`` (the model tuned on this
machine), ``tuning_data.py`` (the tuning JSONL), ``generate.py`` + ``prediction.py``
(generateContent), ``pipelines/`` (PipelineJobs, Schedules, the KFP template registry),
``metadata/`` (ML Metadata, for Experiments), ``console/`` (the web console at /console),
``storage.py`` + ``emulator.py`` (Cloud Storage), ``stack.py`` (starting it all), ``auth.py``.
"""

from __future__ import annotations

__all__ = ["DataDirInUse", "LocalStack", "default_data_dir"]


def __getattr__(name):  # lazy: keep ``import localvertex.model`` light for training workers
    if name in __all__:
        from . import stack

        return getattr(stack, name)
    raise AttributeError(name)

"""localvertex: a local stand-in for the slice of Vertex AI + Cloud Storage the pipeline uses.

The unchanged ``google-genai`` and ``google-cloud-storage`` clients reach it through
environment variables they already honour (see :class:`LocalStack` and README.md).
"""

from __future__ import annotations

__all__ = ["DataDirInUse", "LocalStack", "default_data_dir"]


def __getattr__(name):  # lazy: keep ``import localvertex.model`` light for training workers
    if name in __all__:
        from . import stack

        return getattr(stack, name)
    raise AttributeError(name)

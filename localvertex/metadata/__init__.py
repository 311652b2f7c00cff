"""ML Metadata as Vertex AI writes it: the store (store.py), what a pipeline run records
(pipeline_runs.py) and the filters of the list calls (filters.py)."""

from .store import KINDS, MetadataStore

__all__ = ["KINDS", "MetadataStore"]

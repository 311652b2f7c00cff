"""The pipeline and the commands around it.

Where to change what: ``pipeline.py`` (the DAG, composed of named parts: data, tuning,
evaluation, promotion, summary, notification), ``params.py`` (parameter checks before any
work), ``commands/`` (``python -m pipeline``: one module per command, its options and output;
``commands/__init__.py`` lists them), and the logic the commands call: ``offline.py`` +
``local_child.py`` (runs under kfp.local), ``task_views.py`` + ``terminal.py`` (live progress,
the shared console), ``uploads.py`` (your local images to Cloud Storage), ``champion.py`` (the
champion's records, the data folder's local Vertex AI), ``inspector.py`` (asking an endpoint
about images), ``models.py`` (the models table), ``validate.py`` (checking a tuning JSONL),
``vertex.py`` (Vertex AI requests for submit, schedule, upload, compare) and ``vertex_smoke/``
(the checks of ``make vertex-smoke``, one module each).
"""

"""The pipeline and the commands around it.

Where to change what: ``pipeline.py`` (the DAG, composed of named parts: data, tuning,
evaluation, promotion, summary, notification), ``params.py`` (parameter checks before any
work), ``cli.py`` (``python -m pipeline``: compile, run, runs, inspect; the other commands
register from ``validate.py``, ``champion.py``, ``models.py``, ``vertex.py``,
``vertex_smoke.py``), ``offline.py`` + ``local_child.py`` + ``terminal.py`` (runs under
kfp.local with live progress), ``uploads.py`` (your local images to Cloud Storage).
"""

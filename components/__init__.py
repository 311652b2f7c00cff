"""The pipeline's steps: one KFP lightweight component per file, and the pure rules they ship.

Where to change what:
- a step's I/O: its own file (``synthesize_images.py`` ... ``notify_run.py``), a short body
  that reads, calls the rules and writes;
- the rules, pure and tested alone: ``dataset_rules.py`` (classes, manifests, tuning
  examples), ``evaluation.py`` (scoring, confusion matrix, the HTML report), ``labels.py``
  (the prompt, the labels and the scoring rule), ``checkpoints.py`` (which epoch ships),
  ``cost.py`` (the cost guard), ``champion.py`` + ``champion_store.py`` (the champion's
  records in the bucket), ``drawing.py`` (synthetic images, built from small painters);
- shared plumbing: ``clients.py`` (Google clients), ``manifests.py``, ``progress.py``,
  ``gcp_resources.py``; ``packages.py`` (the one pin table), ``entrypoint.py`` (Python as
  the container's PID 1), ``shipping.py`` (what KFP ships with each component: derived from
  the code, never listed by hand).

Google's facts (models, limits, dates, token counts) are not here: ``platform_facts``.
Components ship only functions (imports inside, no module constants), so that KFP can copy
each one into the container.
"""

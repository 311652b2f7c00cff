"""The local console: a web UI for the local Vertex AI at ``/console`` (``make console``).

It reads and writes only through the REST APIs the SDKs use (api.py), never the server's
files. One module per page, its Jinja2 templates in templates/, a little plain JavaScript
and CSS in static/ (no build step, no CDN):

* app.py: the mounted app, its guards and error pages; security.py: Host check, login
  token, session cookie, CSRF, headers;
* page_runs.py (Runs), page_run.py (Run: DAG from dag.py, artifacts from artifacts.py),
  page_create.py (Create run: the form of run_form.py with run_choices.py),
  page_templates.py (Templates), page_experiments.py (Experiments: experiment_rows.py,
  chart.py), page_schedules.py (Schedules), page_inspector.py (Inspector);
* views.py: the Jinja2 environment (autoescape everywhere) and formatters;
* __main__.py: ``python -m localvertex.console`` (``make console``) prints the login URL.
"""

from .app import mount

__all__ = ["mount"]

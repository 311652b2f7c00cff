"""A run's artifacts, rendered rather than linked as files: metrics as a table, a
classification's confusion matrix as a matrix, Markdown as HTML (raw HTML in it escaped),
an HTML report served to a sandboxed frame (page_run.py). The artifacts are the
``outputs`` of the job's ``taskDetails`` (ML Metadata Artifacts, as the API returns them);
Markdown and HTML contents are read through the Cloud Storage API at the artifact's URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .views import number

RENDERED = ("system.Metrics", "system.ClassificationMetrics", "system.HTML", "system.Markdown")
MAX_MARKDOWN = 512 * 1024
TUNING_JOB_RE = re.compile(r"projects/[^/\"\s]+/locations/[^/\"\s]+/tuningJobs/[0-9a-z-]+")


@dataclass
class Shown:
    """One artifact as the run page shows it."""

    task: str
    output: str
    kind: str  # schemaTitle
    uri: str
    display_name: str
    metrics: list[tuple[str, str]] = field(default_factory=list)
    matrix: dict[str, Any] | None = None
    markdown_html: str = ""


def task_artifacts(job: dict) -> list[tuple[str, str, dict]]:
    """(task name, output name, Artifact) for every output artifact of every task."""
    out = []
    for task in job.get("jobDetail", {}).get("taskDetails", []):
        for output, listed in sorted((task.get("outputs") or {}).items()):
            for artifact in listed.get("artifacts", []):
                out.append((task.get("taskName", ""), output, artifact))
    return out


def artifact_uris(job: dict) -> set[str]:
    return {a.get("uri", "") for _, _, a in task_artifacts(job)}


def metric_rows(metadata: dict) -> list[tuple[str, str]]:
    return [(k, number(v)) for k, v in sorted(metadata.items()) if k != "display_name"]


def confusion_matrix(metadata: dict) -> dict[str, Any] | None:
    """``{"labels", "rows", "max"}`` from ``metadata.confusionMatrix`` as KFP logs it
    (``annotationSpecs`` with display names, ``rows`` of counts), or None."""
    matrix = metadata.get("confusionMatrix")
    if not isinstance(matrix, dict):
        return None
    labels = [str(s.get("displayName", "")) for s in matrix.get("annotationSpecs", [])]
    rows = matrix.get("rows") or []
    if not labels or not rows:
        return None
    counts = [[int(c) for c in (r.get("row", r) if isinstance(r, dict) else r)] for r in rows]
    peak = max((c for r in counts for c in r), default=0)
    return {"labels": labels, "rows": counts, "max": peak or 1}


def markdown_html(text: str) -> str:
    """Markdown as HTML, raw HTML in it escaped (not passed through), unsafe links dropped."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    return md.render(text[:MAX_MARKDOWN])


async def shown_artifacts(api, job: dict) -> list[Shown]:
    """The artifacts the run page renders, Markdown already read and converted."""
    shown = []
    for task, output, artifact in task_artifacts(job):
        kind = artifact.get("schemaTitle", "")
        if kind not in RENDERED:
            continue
        metadata = artifact.get("metadata") or {}
        item = Shown(task, output, kind, artifact.get("uri", ""), artifact.get("displayName") or output)
        if kind == "system.Metrics":
            item.metrics = metric_rows(metadata)
        elif kind == "system.ClassificationMetrics":
            item.matrix = confusion_matrix(metadata)
            item.metrics = [(k, v) for k, v in metric_rows(metadata) if k != "confusionMatrix"]
        elif kind == "system.Markdown" and item.uri:
            try:
                item.markdown_html = markdown_html((await api.read_object(item.uri)).decode("utf-8", "replace"))
            except Exception as exc:
                item.markdown_html = f"<p class='error'>could not read {_escape(item.uri)}: {_escape(str(exc))}</p>"
        shown.append(item)
    return shown


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def tuning_job_name(job: dict) -> str:
    """The tuning job a run launched: named in a task's ``gcp_resources`` output parameter
    (``output:gcp_resources`` in its execution's metadata), as Vertex AI's own components do."""
    for task in job.get("jobDetail", {}).get("taskDetails", []):
        metadata = (task.get("execution") or {}).get("metadata") or {}
        for key, value in metadata.items():
            if key.startswith("output:") and isinstance(value, str):
                match = TUNING_JOB_RE.search(value)
                if match:
                    return match.group(0)
    return ""


def task_parameters(task: dict, direction: str) -> list[tuple[str, str]]:
    """A task's input or output parameters: its execution's ``input:*`` / ``output:*``."""
    metadata = (task.get("execution") or {}).get("metadata") or {}
    prefix = f"{direction}:"
    return [(k[len(prefix) :], _shown_value(k, v)) for k, v in sorted(metadata.items()) if k.startswith(prefix)]


def _shown_value(name: str, value: Any) -> str:
    from .run_form import SECRET_RE

    if SECRET_RE.search(name) and value:
        return "(set, not shown)"
    text = number(value) if not isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 400 else text[:400] + "…"

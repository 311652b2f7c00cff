"""What a pipeline task prints, kept as Cloud Logging keeps it on Vertex AI.

On Vertex AI each container task of a PipelineJob runs as a CustomJob, named in the task's
``executorDetail.containerDetail.mainJob``; what its container prints is in Cloud Logging
under the monitored resource ``ml_job`` with label ``job_id`` (the CustomJob's id) and
``task_name`` (the replica, ``workerpool0-0``). Google's own client reads it that way:
gcloud's ``ai custom-jobs stream-logs`` filters ``resource.type="ml_job" AND
resource.labels.job_id="ID"`` (googlecloudsdk/command_lib/ai/log_util.py, _LogFilters:
https://github.com/google-cloud-sdk-unofficial/google-cloud-sdk/blob/master/lib/googlecloudsdk/command_lib/ai/log_util.py).

Here the pipeline worker writes each line a task prints to
``<data_dir>/logging/<project>/ml_job/<custom job id>.jsonl`` (one JSON object a line:
``t`` timestamp, ``s`` severity, ``m`` the text, ``n`` its number), stdout as INFO and
stderr as ERROR, and the server's Cloud Logging ``entries:list`` (cloud_logging.py) reads them.

Standard library only (and pipelines/resource.py, which is too): the pipeline worker
imports this module.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from .pipelines.resource import now_rfc3339  # standard library only as well

RESOURCE_TYPE = "ml_job"
# A CustomJob's first worker pool, first replica: the task's container. Used as the ml_job
# resource's task_name label (gcloud reads resource.labels.task_name) and as the log id. Not
# checked on Google's monitored-resource list: this name and the project_id label are what
# users' queries show (resource.labels.task_name="workerpool0-0"), not a published table.
REPLICA = "workerpool0-0"


def custom_job_id(pipeline_job_id: str, task_name: str) -> str:
    """The id of the CustomJob a task runs as: numeric like Vertex's, and the same in the
    worker (which writes the log) and the server (which names the job in the task)."""
    digest = hashlib.sha256(f"{pipeline_job_id}/{task_name}".encode()).digest()
    return str(10**18 + int.from_bytes(digest[:8], "big") % (9 * 10**18))


def custom_job_name(project: str, location: str, job_id: str) -> str:
    return f"projects/{project}/locations/{location}/customJobs/{job_id}"


def log_dir(data_dir: Path, project: str) -> Path:
    return Path(data_dir) / "logging" / project / RESOURCE_TYPE


class TaskLog:
    """Appends a task's lines to its log file; safe to call from the two stream readers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._lock = threading.Lock()
        with open(path, encoding="utf-8") as earlier:  # a retry appends after the first try
            self._count = sum(1 for _ in earlier)

    def write(self, severity: str, text: str, timestamp: str = "") -> None:
        with self._lock:
            record = {"t": timestamp or now_rfc3339(), "s": severity, "m": text, "n": self._count}
            self._fh.write(json.dumps(record) + "\n")
            self._fh.flush()  # read while the task runs
            self._count += 1

    def close(self) -> None:
        self._fh.close()


def log_entry(project: str, job_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """A line of a task's log as Cloud Logging's LogEntry (fields of the published schema)."""
    return {
        "logName": f"projects/{project}/logs/{REPLICA}",
        "resource": {
            "type": RESOURCE_TYPE,
            "labels": {"job_id": job_id, "project_id": project, "task_name": REPLICA},
        },
        "timestamp": record["t"],
        "receiveTimestamp": record["t"],
        "severity": record["s"],
        "textPayload": record["m"],
        "insertId": f"{job_id}-{record['n']:09d}",
    }

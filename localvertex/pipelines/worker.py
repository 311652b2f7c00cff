"""The pipeline worker: ``python -m localvertex.pipelines.worker <spec.json>`` runs one
PipelineJob's ``pipelineSpec`` with kfp.local (the runner ``make run`` uses), and reports
each task to the server as one line on its stdout::

    @@localvertex-pipeline@@ {"kind": "task_start" | "task_end" | "done", ...}

Everything else it and its tasks print goes to stderr (the run's log file).

Hooks into kfp.local (in this process only): every executor task goes through
:func:`_run_task` (start/end messages, the task's parameters and artifacts, cache hits) and
every task process through :func:`_run_process` (its pid, so SIGTERM reaches it; the last
lines it printed, for a failed task's error). Output artifacts are written under a local
pipeline root, then copied to ``gcsOutputDirectory`` in the twin's storage after each task:
their URIs, as the server records them, are ``gs://`` URIs, as on Vertex AI.

Cancel, as Vertex AI does it: SIGTERM to this process is forwarded to the running task's
process (``wait_for_tuning`` cancels its tuning job on SIGTERM); tasks not yet started
end CANCELLED without running.
"""

from __future__ import annotations

import collections
import json
import os
import queue as queue_mod
import re
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from localvertex import task_logs

PREFIX = "@@localvertex-pipeline@@ "
_EXCEPTION = re.compile(r"^\s*([\w.]*(?:Error|Exception|Timeout\w*|Cancelled|Interrupt)\b:.*)$")


class _State:
    cancelled = False
    proc: subprocess.Popen | None = None
    tail: collections.deque = collections.deque(maxlen=60)
    cache_hit = False
    failed_task = ""
    failed_error = ""
    job_id = ""
    log_dir: Path | None = None  # where the tasks' logs go (task_logs.log_dir)
    log_path: Path | None = None  # the running task's


STATE = _State()
_OUT = None  # the protocol stream: the original stdout


def emit(kind: str, **fields: Any) -> None:
    _OUT.write(PREFIX + json.dumps({"kind": kind, **fields}, default=str) + "\n")
    _OUT.flush()


def _on_sigterm(signum, frame) -> None:
    STATE.cancelled = True
    proc = STATE.proc
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)


def _stream_lines(proc: subprocess.Popen):
    """(severity, line, when read) as the task prints them: stdout INFO, stderr ERROR (what
    Vertex AI's container logs record for each stream); one reader thread a stream. As in Cloud
    Logging, lines of the two streams are ordered by the time they were read, not written."""
    lines: queue_mod.Queue = queue_mod.Queue()

    def read(stream, severity: str) -> None:
        for line in iter(stream.readline, ""):
            lines.put((severity, line, task_logs.now_rfc3339()))
        lines.put(None)

    for stream, severity in ((proc.stdout, "INFO"), (proc.stderr, "ERROR")):
        threading.Thread(target=read, args=(stream, severity), daemon=True).start()
    open_streams = 2
    while open_streams:
        item = lines.get()
        if item is None:
            open_streams -= 1
        else:
            yield item


def _run_process(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
    """kfp.local's run_local_subprocess, keeping the pid, the last lines printed (for a failed
    task's error) and every line in the task's log (task_logs.py)."""
    from localvertex.childproc import die_with_parent

    env = {**os.environ, **(env_vars or {})}
    STATE.tail.clear()
    log = task_logs.TaskLog(STATE.log_path) if STATE.log_path else None
    with subprocess.Popen(
        full_command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=env,
        preexec_fn=die_with_parent(signal.SIGTERM),
    ) as proc:
        STATE.proc = proc
        if STATE.cancelled:  # a cancel that came while the process started
            proc.send_signal(signal.SIGTERM)
        for severity, line, when in _stream_lines(proc):
            print(line, end="")
            STATE.tail.append(line.rstrip("\n"))
            if log:
                log.write(severity, line.rstrip("\n"), when)
        code = proc.wait()
    STATE.proc = None
    if log:
        log.close()
    return code


def error_text(lines: list[str]) -> str:
    found = [m.group(1) for m in map(_EXCEPTION.match, lines) if m]
    return found[-1] if found else (lines[-1] if lines else "")


class Uploader:
    """Copies a task's output artifacts from the local pipeline root to gcsOutputDirectory."""

    def __init__(self, local_root: str, gcs_root: str, job_id: str, project: str) -> None:
        self.local_root, self.job_id, self.project = os.path.realpath(local_root), job_id, project
        self.gcs_root = gcs_root.rstrip("/")
        self.seen: dict[str, str] = {}  # local uri -> gs:// uri
        self._client = None

    def client(self):
        if self._client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            self._client = storage.Client(project=self.project, credentials=AnonymousCredentials())
        return self._client

    def gs_uri(self, task: str, output: str, local_uri: str) -> str:
        if local_uri in self.seen:
            return self.seen[local_uri]
        uri = f"{self.gcs_root}/{self.job_id}/{task}/{output}"
        self.seen[local_uri] = uri
        return uri

    def upload(self, local_uri: str, gs_uri: str) -> None:
        path = Path(local_uri)
        if not path.exists():
            return  # a Metrics artifact has only metadata
        bucket_name, _, prefix = gs_uri.removeprefix("gs://").partition("/")
        bucket = self.client().bucket(bucket_name)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            name = prefix if f == path else f"{prefix}/{f.relative_to(path).as_posix()}"
            bucket.blob(name).upload_from_filename(str(f))


def describe_value(value: Any, task: str, name: str, uploader: Uploader, upload: bool) -> tuple[str, Any]:
    """("param", value) or ("artifacts", [{uri, schemaTitle, schemaVersion, metadata, name}])."""
    from kfp import dsl

    items = value if isinstance(value, list) and value and isinstance(value[0], dsl.Artifact) else [value]
    if not isinstance(items[0], dsl.Artifact):
        return "param", value
    out = []
    for art in items:
        gs = uploader.gs_uri(task, name, art.uri) if upload or art.uri not in uploader.seen else uploader.seen[art.uri]
        if upload:
            uploader.upload(art.uri, gs)
        out.append(
            {
                "uri": gs if upload or art.uri in uploader.seen else art.uri,
                "schemaTitle": type(art).schema_title,
                "schemaVersion": getattr(type(art), "schema_version", "0.0.1"),
                "metadata": art.metadata or {},
                "name": name,
            }
        )
    return "artifacts", out


def _split(values: dict[str, Any], task: str, uploader: Uploader, upload: bool) -> tuple[dict, dict]:
    params, artifacts = {}, {}
    for name, value in values.items():
        kind, described = describe_value(value, task, name, uploader, upload)
        (params if kind == "param" else artifacts)[name] = described
    return params, artifacts


def _metadata_only_kept(deserialize):
    """kfp.local calls a cached output whose local file is missing a cache miss. A Metrics
    artifact (and any artifact a task only wrote metadata to) never has a file, so no task
    with one would ever be cached, while Vertex AI caches it. A missing file whose task
    folder still exists is such an artifact; a deleted run (its folder gone) still misses."""
    from kfp.dsl import executor

    def deserialize_artifact(data):
        uri = data.get("uri", "")
        if uri.startswith("/") and not os.path.exists(uri) and os.path.isdir(os.path.dirname(uri)):
            return executor.create_artifact_instance(
                {
                    "name": data.get("name", ""),
                    "uri": uri,
                    "metadata": data.get("metadata") or {},
                    "type": {"schemaTitle": data.get("schema_title", "system.Artifact")},
                }
            )
        return deserialize(data)

    return deserialize_artifact


def resolved_parameters(params: dict[str, Any], task_run: dict[str, Any]) -> dict[str, Any]:
    """The parameter values the task receives: kfp.local replaces these constant placeholders
    (``{{$.pipeline_job_uuid}}`` and kin) in the executor input only, so the orchestrator's
    arguments still hold them (placeholder_utils.resolve_individual_placeholder does the same
    substitution). ``{{$.pipeline_task_uuid}}`` is drawn at random inside kfp.local: kept."""
    from kfp import dsl

    constants = {
        dsl.PIPELINE_JOB_NAME_PLACEHOLDER: task_run["pipeline_resource_name"],
        dsl.PIPELINE_JOB_ID_PLACEHOLDER: task_run["unique_pipeline_id"],
        dsl.PIPELINE_ROOT_PLACEHOLDER: task_run["pipeline_root"],
    }
    out = {}
    for name, value in params.items():
        if isinstance(value, str):
            for placeholder, actual in constants.items():
                value = value.replace(placeholder, actual)
        out[name] = value
    return out


def install_hooks(uploader: Uploader) -> None:
    from kfp.local import cache as cache_module
    from kfp.local import status, subprocess_task_handler
    from kfp.local.orchestrator import orchestrator_utils, task_executor

    subprocess_task_handler.run_local_subprocess = _run_process
    original_get = cache_module.LocalCache.get

    def cache_get(self, key):
        found = original_get(self, key)
        STATE.cache_hit = STATE.cache_hit or found is not None
        return found

    cache_module.LocalCache.get = cache_get
    cache_module.LocalCache._deserialize_artifact = staticmethod(
        _metadata_only_kept(cache_module.LocalCache._deserialize_artifact)
    )
    original = task_executor.execute_single_task

    def _run_task(**kwargs):  # the orchestrators pass everything by name
        task_name, task_spec, io_store = kwargs["task_name"], kwargs["task_spec"], kwargs["io_store"]
        try:
            inputs = orchestrator_utils.OrchestratorUtils.make_task_arguments(task_spec.inputs, io_store)
        except Exception:  # the orchestrator itself reports what it cannot resolve
            inputs = {}
        params, artifacts = _split(inputs, task_name, uploader, upload=False)
        params = resolved_parameters(params, kwargs)
        if STATE.cancelled:
            emit("task_end", task=task_name, state="CANCELLED", skipped=True)
            return {}, status.Status.FAILURE
        emit("task_start", task=task_name, inputs=params, inputArtifacts=artifacts)
        STATE.cache_hit = False
        if STATE.log_dir:
            STATE.log_path = STATE.log_dir / f"{task_logs.custom_job_id(STATE.job_id, task_name)}.jsonl"
        outputs, task_status = original(**kwargs)
        if task_status == status.Status.SUCCESS:
            out_params, out_artifacts = _split(outputs, task_name, uploader, upload=True)
            state = "SKIPPED" if STATE.cache_hit else "SUCCEEDED"
            emit("task_end", task=task_name, state=state, outputs=out_params, outputArtifacts=out_artifacts)
        else:
            state = "CANCELLED" if STATE.cancelled else "FAILED"
            error = error_text(list(STATE.tail)) or f"The task {task_name} failed."
            if state == "FAILED" and not STATE.failed_task:
                STATE.failed_task, STATE.failed_error = task_name, error
            emit("task_end", task=task_name, state=state, error=error)
        return outputs, task_status

    task_executor.execute_single_task = _run_task


def apply_caching(pipeline_spec, enable_caching: bool | None) -> None:
    """``enableCaching``, when set, overrides every task's own cache setting (as on Vertex)."""
    if enable_caching is None:
        return
    dags = [pipeline_spec.root.dag] + [c.dag for c in pipeline_spec.components.values() if c.HasField("dag")]
    for dag in dags:
        for task in dag.tasks.values():
            task.caching_options.enable_cache = enable_caching


def run(spec: dict[str, Any]) -> None:
    from google.protobuf import json_format
    from kfp import local
    from kfp.local import pipeline_orchestrator
    from kfp.pipeline_spec import pipeline_spec_pb2

    pipeline_spec = json_format.ParseDict(spec["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    apply_caching(pipeline_spec, spec.get("enableCaching"))
    uploader = Uploader(spec["localRoot"], spec["gcsRoot"], spec["jobId"], spec["project"])
    STATE.job_id = spec["jobId"]
    STATE.log_dir = Path(spec["logDir"]) if spec.get("logDir") else None
    install_hooks(uploader)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=spec["localRoot"],
        raise_on_error=False,
        enable_caching=True,
        cache_root=spec["cacheRoot"],
    )
    try:
        pipeline_orchestrator.run_local_pipeline(pipeline_spec, spec["arguments"])
    except Exception as exc:  # kfp.local's own errors (an unsupported feature): the job fails saying so
        traceback.print_exc()
        if not STATE.failed_task:
            STATE.failed_error = f"{type(exc).__name__}: {exc}"
    emit(
        "done",
        cancelled=STATE.cancelled,
        failedTask=STATE.failed_task,
        error=STATE.failed_error,
    )


def main(argv: list[str]) -> int:
    global _OUT
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    _OUT = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # kfp.local's and the tasks' prints go to the log, not the protocol
    os.environ.update(spec.get("env", {}))
    os.chdir(spec["workDir"])
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.current_thread().name = f"pipeline-{spec['jobId']}"
    run(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What vertex-smoke reads of a run while it waits (pure): each task's state and outputs, and the
progress line it prints."""

from dataclasses import dataclass

from pipeline.pipeline import TASK_TITLES


@dataclass(frozen=True)
class TaskView:
    """What the smoke test reads of one ``PipelineTaskDetail``."""

    name: str  # the DAG task key when known (launch-tuning), else the task name as Vertex reports it
    state: str  # SUCCEEDED, RUNNING, ...
    job_name: str = ""  # output:job_name of launch-tuning
    gcp_resources: str = ""  # output:gcp_resources (JSON text)
    error: str = ""


_TITLE_KEYS = {title: key for key, title in TASK_TITLES.items()}


def task_key(task_name: str) -> str:
    """``launch-tuning`` for ``launch-tuning`` or its display title ``4. Launch Gemini tuning``."""
    return _TITLE_KEYS.get(task_name, task_name)


def task_view(detail) -> TaskView:
    """A ``TaskView`` of an aiplatform ``PipelineTaskDetail`` (output parameters come from the
    execution's ``output:NAME`` metadata, as Vertex AI records them)."""
    metadata = dict(detail.execution.metadata) if detail.execution else {}
    return TaskView(
        name=task_key(detail.task_name),
        state=detail.state.name,
        job_name=str(metadata.get("output:job_name") or ""),
        gcp_resources=str(metadata.get("output:gcp_resources") or ""),
        error=(detail.error.message or "") if detail.error else "",
    )


def find_task(tasks: list[TaskView], key: str) -> TaskView | None:
    return next((t for t in tasks if t.name == key), None)


def minutes(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(label: str, elapsed_s: float, state: str, tasks: list[TaskView]) -> str:
    """One progress line: run state, tasks done, tasks running."""
    known = [t for t in tasks if t.name in TASK_TITLES]
    done = sum(t.state == "SUCCEEDED" for t in known)
    running = [t.name for t in known if t.state == "RUNNING"]
    failed = [t.name for t in known if t.state == "FAILED"]
    parts = [
        f"[{minutes(elapsed_s):>8}] {label}: {state.replace('PIPELINE_STATE_', '')}",
        f"{done}/{len(TASK_TITLES) - 1} tasks done",
    ]  # promote-champion runs only when the challenger wins
    if running:
        parts.append("running " + ", ".join(running))
    if failed:
        parts.append("failed " + ", ".join(failed))
    return " · ".join(parts)


def progress_key(state: str, tasks: list[TaskView]) -> tuple:
    return state, tuple(sorted((t.name, t.state) for t in tasks))


def error_line(error: BaseException) -> str:
    text = str(getattr(error, "message", "") or error).strip()
    return (f"{type(error).__name__}: " + (text.splitlines()[0][:300] if text else "")).strip()

"""How an offline run's task events are shown: live and redrawn on a terminal (``LiveView``),
plain lines as they happen off one (``PlainView``: CI, ``nohup``, ``make run > log``).

The events come from pipeline/offline.py; the task titles and their order from pipeline/pipeline.py.
"""

import time

from pipeline.terminal import console, on_terminal, say


def dag_position(task: str) -> int:
    """Where ``task`` stands in the pipeline (TASK_TITLES is in DAG order); unknown tasks last."""
    from pipeline.pipeline import TASK_TITLES

    order = list(TASK_TITLES)
    return order.index(task) if task in order else len(order)


def task_view():
    """The view of a run's events: live and redrawn on a terminal, plain lines off one."""
    return LiveView() if on_terminal() else PlainView()


class PlainView:
    """Off a terminal (CI, ``nohup``, ``make run > log``): a plain line for each task start, end,
    warning and progress step, written when it happens; at the end the tasks in DAG order.

    A redrawn progress view there shows nothing until the run ends (rich only prints its last frame).
    """

    PROGRESS_STEP, PROGRESS_SECONDS = 0.1, 30.0  # a progress line per 10 % done, or per 30 s

    def __init__(self):
        from pipeline.pipeline import TASK_TITLES

        self.titles = TASK_TITLES
        self.started: dict[str, float] = {}
        self.ended: dict[str, tuple[str, float]] = {}  # task: (status, seconds)
        self.last_progress: dict[str, tuple[float, float]] = {}  # task: (time, fraction) of its last line

    def __enter__(self):
        return self.on_event

    def __exit__(self, *exc) -> None:
        if not self.ended:
            return
        say("tasks, in pipeline order:")
        for task in sorted(self.ended, key=dag_position):
            status, seconds = self.ended[task]
            mark = "ok    " if status == "SUCCESS" else f"{status:<6}"
            say(f"  {mark} {self.titles.get(task, task)}  ({seconds:.1f} s)")

    def on_event(self, event) -> None:
        title = self.titles.get(event.task, event.task)
        if event.kind == "start":
            self.started[event.task] = time.monotonic()
            say(f"started  {title}")
        elif event.kind == "progress" and self._progress_due(event):
            say(f"         {title}: {event.done}/{event.total}")
        elif event.kind == "end":
            seconds = time.monotonic() - self.started.get(event.task, time.monotonic())
            self.ended[event.task] = (event.status, seconds)
            say(f"{'finished' if event.status == 'SUCCESS' else 'FAILED  '} {title} ({event.status}, {seconds:.1f} s)")
        elif event.kind == "warning":
            say(f"warning  {title}: {event.text}")

    def _progress_due(self, event) -> bool:
        """True for the first and last step, and after PROGRESS_STEP of the work or PROGRESS_SECONDS."""
        now, fraction = time.monotonic(), event.done / event.total if event.total else 0.0
        last_time, last_fraction = self.last_progress.get(event.task, (0.0, -1.0))
        due = (
            event.done == event.total
            or fraction - last_fraction >= self.PROGRESS_STEP
            or now - last_time >= self.PROGRESS_SECONDS
        )
        if due:
            self.last_progress[event.task] = (now, fraction)
        return due


class LiveView:
    """On a terminal: a rich progress view, one row per task in DAG order, warnings above it."""

    def __init__(self):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from pipeline.pipeline import TASK_TITLES

        self.titles = TASK_TITLES
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),  # the estimate left, from the rate of the task's progress records
            console=console,
        )
        # Every row exists from the start, hidden until its task starts: rows stay in DAG order
        # whatever order the tasks run and finish in.
        self.rows = {
            task: self.progress.add_task(title, total=None, visible=False, start=False)
            for task, title in TASK_TITLES.items()
        }

    def __enter__(self):
        self.progress.start()
        return self.on_event

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_event(self, event) -> None:
        title = self.titles.get(event.task, event.task)
        if event.task not in self.rows and event.kind == "start":
            self.rows[event.task] = self.progress.add_task(title, total=None)
        row = self.rows.get(event.task)
        if row is None:
            return
        if event.kind == "start":
            self.progress.start_task(row)  # its clock starts now, not when the run did
            self.progress.update(row, visible=True)
        elif event.kind == "progress":
            self.progress.update(row, completed=event.done, total=event.total or None)
        elif event.kind == "end":
            mark = "[green]✓[/green]" if event.status == "SUCCESS" else "[red]✗[/red]"
            self.progress.update(row, description=f"{mark} {title}", total=1, completed=1)
        elif event.kind == "warning":
            self.progress.console.print(
                f"[yellow]warning[/yellow] {title}: {event.text}", highlight=False, soft_wrap=True
            )

"""Experiments: the experiments (``system.Experiment`` contexts), one experiment's runs side
by side with the rows ``get_experiment_df`` gives (experiment_rows.py), columns chosen and
sorted, a diff of two runs, and a chart of the evaluation accuracies over time."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from . import chart
from .api import ApiFailure
from .context import PageDep
from .experiment_rows import Row, column_order, experiment_rows, experiments
from .views import number

router = APIRouter()

CHART_METRICS = ("metric.eval_status_accuracy", "metric.eval_defect_type_accuracy")
ALWAYS = ("run_name", "state")
RANK_METRIC = "metric.eval_status_accuracy"  # best first, as make compare orders runs
# Experiment ids (context ids): they go into the API's filters, so nothing else is accepted.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


def checked_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ApiFailure(400, f"{name[:80]!r} is not an experiment name (lowercase letters, digits and hyphens).")
    return name


@router.get("/experiments")
async def experiments_page(current: PageDep) -> Response:
    found = sorted(await experiments(current.api), key=lambda c: c.get("createTime", ""), reverse=True)
    return current.render("experiments.html", experiments=found)


def default_columns(rows: list[Row], columns: list[str]) -> list[str]:
    """What ``make compare`` shows: run, state, source, every ``eval_*`` and ``base_eval_*``
    metric, and the other metrics and the parameters only where they differ between runs
    (what varies is what explains a difference)."""

    def varies(name: str) -> bool:
        return len({repr(r.columns.get(name)) for r in rows}) > 1

    def headline(name: str) -> bool:
        return name.startswith(("metric.eval_", "metric.base_eval_"))

    shown = [c for c in reading_order(columns) if c.startswith("param.") and varies(c)]
    shown += [c for c in reading_order(columns) if c.startswith("metric.") and (headline(c) or varies(c))]
    return [*ALWAYS, "source", *reading_order(shown)]


def reading_order(columns) -> list[str]:
    """make compare's order: run columns, the headline metric, ``eval_*``, ``base_eval_*``,
    the other metrics by name, then the parameters."""
    ordered = column_order(columns)
    metrics = sorted(
        (c for c in ordered if c.startswith("metric.")),
        key=lambda c: (c != RANK_METRIC, not c.startswith("metric.eval_"), not c.startswith("metric.base_eval_"), c),
    )
    params = sorted(c for c in ordered if c.startswith("param."))
    front = [c for c in ordered if not c.startswith(("metric.", "param."))]
    return front + metrics + params


def sort_key(column: str):
    """Numbers before text, numbers by value, missing values last."""

    def key(row: Row) -> tuple:
        value = _cell(row, column)
        if value is None or value == "":
            return (2, 0, "")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (0, value, "")
        return (1, 0, str(value))

    return key


def _cell(row: Row, column: str) -> Any:
    return row.source if column == "source" else row.columns.get(column)


@router.get("/experiments/{name}")
async def experiment_page(
    current: PageDep, name: str, cols: list[str] = Query(default=[]), sort: str = RANK_METRIC, desc: bool = True
) -> Response:
    rows = await experiment_rows(current.api, checked_name(name))
    columns = reading_order({c for r in rows for c in r.columns})
    chosen = [c for c in cols if c in columns or c == "source"] or default_columns(rows, columns)
    rows = sorted(rows, key=lambda r: r.created, reverse=True)  # newest first among equals
    if sort:
        present = [r for r in rows if _cell(r, sort) not in (None, "")]
        missing = [r for r in rows if _cell(r, sort) in (None, "")]
        rows = sorted(present, key=sort_key(sort), reverse=desc) + missing
    table = [[number(v) if (v := _cell(r, c)) is not None else "" for c in chosen] for r in rows]
    return current.render(
        "experiment.html",
        name=name,
        rows=rows,
        table=table,
        columns=columns + ["source"],
        chosen=chosen,
        sort=sort,
        desc=desc,
        chart=chart.over_time(rows, CHART_METRICS),
    )


@router.get("/experiments/{name}/diff")
async def diff_page(current: PageDep, name: str, run: list[str] = Query(default=[]), all: bool = False) -> Response:
    """Two runs' parameters and metrics side by side, only the differing rows unless ``all``."""
    rows = {r.columns.get("run_name"): r for r in await experiment_rows(current.api, checked_name(name))}
    picked = [rows[n] for n in run[:2] if n in rows]
    problem = "" if len(picked) == 2 else "Pick two runs of this experiment to compare."
    lines = []
    if not problem:
        a, b = picked
        for column in reading_order(set(a.columns) | set(b.columns)):
            if column in ("experiment_name", "run_name"):
                continue
            left, right = a.columns.get(column), b.columns.get(column)
            if all or left != right:
                lines.append((column, _text(left), _text(right), left != right))
    return current.render("diff.html", name=name, picked=picked, lines=lines, problem=problem, all=all, runs=run[:2])


def _text(value: Any) -> str:
    return "" if value is None else number(value)

"""Rendering: the Jinja2 environment (autoescape on for every template, so run names,
labels and model answers are escaped wherever they appear) and the small formatters the
pages share (times, durations, states)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"

# The published states, short for people: PIPELINE_STATE_RUNNING -> running.
_PREFIXES = ("PIPELINE_STATE_", "JOB_STATE_", "STATE_")


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time of the API (``2026-12-07T02:00:01.123456Z``), or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def when(text: str | None) -> str:
    moment = parse_time(text)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def duration(start: str | None, end: str | None = None) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``42 s``; a running job counts to now."""
    begun = parse_time(start)
    if begun is None:
        return ""
    seconds = int(((parse_time(end) or datetime.now(UTC)) - begun).total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{max(seconds, 0)} s"


def state_word(state: Any) -> str:
    text = str(state or "unspecified")
    for prefix in _PREFIXES:
        text = text.removeprefix(prefix)
    return text.lower()


def number(value: Any) -> str:
    """Metrics as people read them: 0.9166666 -> 0.9167; integers and text unchanged."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:  # token counts arrive as floats
            return str(int(value))
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
    return str(value)


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=duration, state=state_word, number=number)
    return env


ENV = _env()


def render(template_name: str, status: int = 200, /, **context: Any) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(template_name).render(**context), status_code=status)

"""A small line chart drawn on the server as SVG (no script, no CDN): metrics of an
experiment's runs over their creation time, on a 0..1 axis (the accuracies are fractions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .views import parse_time

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40


@dataclass
class Series:
    name: str
    css: str  # the class that colours it (console.css: .series-0, .series-1)
    points: list[tuple[float, float, str, float]] = field(default_factory=list)  # x, y, run, value

    @property
    def path(self) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y, _, _) in enumerate(self.points))


@dataclass
class Chart:
    series: list[Series]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def over_time(rows, metrics: tuple[str, ...]) -> Chart:
    """One series per metric column: (run creation time, value) of each run that has it."""
    timed = sorted(((parse_time(r.created), r) for r in rows if parse_time(r.created)), key=lambda p: p[0])
    if not timed:
        return Chart([Series(m, f"series-{i}") for i, m in enumerate(metrics)], [], [])
    t0, t1 = timed[0][0].timestamp(), timed[-1][0].timestamp()
    span = (t1 - t0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(t: float) -> float:
        return LEFT + (plot_w / 2 if t1 == t0 else (t - t0) / span * plot_w)

    def y_of(v: float) -> float:
        return TOP + (1 - min(max(v, 0.0), 1.0)) * plot_h

    series = []
    for i, metric in enumerate(metrics):
        s = Series(metric, f"series-{i}")
        for moment, row in timed:
            value = row.columns.get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                s.points.append((x_of(moment.timestamp()), y_of(float(value)), str(row.columns.get("run_name")), value))
        series.append(s)
    x_ticks = [(x_of(m.timestamp()), m.strftime("%m-%d %H:%M")) for m, _ in _spread(timed, 6)]
    y_ticks = [(y_of(v / 4), f"{v / 4:.2f}") for v in range(5)]
    return Chart(series, x_ticks, y_ticks)


def _spread(items: list, most: int) -> list:
    """At most ``most`` items, evenly spaced, first and last kept (tick labels)."""
    if len(items) <= most:
        return items
    step = (len(items) - 1) / (most - 1)
    return [items[round(i * step)] for i in range(most)]

"""The Outcomes page's two charts as plain geometry for inline SVG (server-rendered: no script, CSP-clean).

Each function turns a series from :mod:`engage.outcomes.figures` into coordinates in a fixed view box; the
template draws them and carries the same figures as a table for screen readers and for copying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 10, 10, 30


@dataclass
class Chart:
    """A view box with its plotting area, y ticks, x labels and the shapes to draw."""

    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT  # where the plotting area starts (y labels end just before it)
    right: int = WIDTH - RIGHT
    y_ticks: list[tuple[float, str]] = field(default_factory=list)  # (y, label)
    x_labels: list[tuple[float, str]] = field(default_factory=list)  # (x, label)
    band: str = ""  # polygon points
    line: str = ""  # polyline points
    dots: list[tuple[float, float]] = field(default_factory=list)
    bars: list[dict[str, Any]] = field(default_factory=list)  # x, y, width, height, label


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * index / (count - 1) if count > 1 else span / 2)


def _y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def pain_chart(points: list[dict[str, Any]]) -> Chart:
    """Median pain (0-10) by sessions begun, with the interquartile range as a band."""
    chart = Chart(y_ticks=[(_y(v, 10), str(v)) for v in (0, 2, 4, 6, 8, 10)])
    count = len(points)
    xs = [_x(i, count) for i in range(count)]
    chart.x_labels = [
        (x, "Before" if p["session"] == 0 else str(p["session"])) for x, p in zip(xs, points, strict=True)
    ]
    upper = [f"{x:.1f},{_y(p['q3'], 10):.1f}" for x, p in zip(xs, points, strict=True)]
    lower = [f"{x:.1f},{_y(p['q1'], 10):.1f}" for x, p in reversed(list(zip(xs, points, strict=True)))]
    chart.band = " ".join(upper + lower)
    chart.dots = [(x, _y(p["median"], 10)) for x, p in zip(xs, points, strict=True)]
    chart.line = " ".join(f"{x:.1f},{y:.1f}" for x, y in chart.dots)
    return chart


def responder_chart(months: list[dict[str, Any]]) -> Chart:
    """The responder rate (both criteria) by month of the first session, as bars 0-100 %."""
    chart = Chart(y_ticks=[(_y(v, 100), f"{v} %") for v in (0, 25, 50, 75, 100)])
    count = len(months)
    span = WIDTH - LEFT - RIGHT
    slot = span / max(count, 1)
    for i, month in enumerate(months):
        rate = month["rate"] or 0.0
        y = _y(100 * rate, 100)
        x = LEFT + i * slot + slot * 0.15
        chart.bars.append(
            {"x": round(x, 1), "y": round(y, 1), "width": round(slot * 0.7, 1), "height": round(_y(0, 100) - y, 1)}
        )
        chart.x_labels.append((LEFT + i * slot + slot / 2, month["month"]))
    return chart

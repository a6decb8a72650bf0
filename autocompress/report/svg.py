"""Small inline-SVG charts generated in Python (no JavaScript, no external files).

Only what the report needs: a scatter plot with marker styles and a front
line, a step/line chart, and horizontal bar rows. Every chart is a complete
``<svg>`` element whose ``class`` and ``data-*`` attributes let a test find it
in the DOM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 460, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 58, 16, 28, 44


@dataclass(frozen=True)
class Point:
    """A marker: position, style (``feasible``/``infeasible``/``front``/``teacher``), tooltip."""

    x: float
    y: float
    style: str
    label: str = ""


@dataclass(frozen=True)
class Axis:
    """An axis range with its label."""

    label: str
    low: float
    high: float
    ticks: Sequence[float] = field(default_factory=tuple)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def axis_for(label: str, values: Sequence[float], *, include_zero: bool = False) -> Axis:
    """An axis whose range covers ``values`` with round ticks."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low = min(finite) if finite else 0.0
    high = max(finite) if finite else 1.0
    if include_zero:
        low = min(low, 0.0)
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 0.05
    ticks = nice_ticks(low if include_zero and low >= 0 else low - pad, high + pad)
    return Axis(label, ticks[0], ticks[-1], ticks)


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.4g}"


class _Frame:
    def __init__(self, x: Axis, y: Axis, width: int, height: int) -> None:
        self.x, self.y, self.width, self.height = x, y, width, height
        self.plot_w = width - MARGIN_LEFT - MARGIN_RIGHT
        self.plot_h = height - MARGIN_TOP - MARGIN_BOTTOM

    def px(self, value: float) -> float:
        span = (self.x.high - self.x.low) or 1.0
        return MARGIN_LEFT + (value - self.x.low) / span * self.plot_w

    def py(self, value: float) -> float:
        span = (self.y.high - self.y.low) or 1.0
        return MARGIN_TOP + self.plot_h - (value - self.y.low) / span * self.plot_h

    def axes(self) -> list[str]:
        parts = [
            f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{self.plot_w}" '
            f'height="{self.plot_h}" '
            'fill="#fff" stroke="#999"/>'
        ]
        for tick in self.x.ticks:
            px = self.px(tick)
            parts.append(
                f'<line x1="{px:.1f}" y1="{MARGIN_TOP}" x2="{px:.1f}" '
                f'y2="{MARGIN_TOP + self.plot_h}" stroke="#eee"/>'
                f'<text x="{px:.1f}" y="{MARGIN_TOP + self.plot_h + 15}" text-anchor="middle" '
                f'font-size="11">{_fmt(tick)}</text>'
            )
        for tick in self.y.ticks:
            py = self.py(tick)
            parts.append(
                f'<line x1="{MARGIN_LEFT}" y1="{py:.1f}" x2="{MARGIN_LEFT + self.plot_w}" '
                f'y2="{py:.1f}" stroke="#eee"/>'
                f'<text x="{MARGIN_LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" '
                f'font-size="11">{_fmt(tick)}</text>'
            )
        parts.append(
            f'<text x="{MARGIN_LEFT + self.plot_w / 2:.1f}" y="{self.height - 8}" '
            'text-anchor="middle" '
            f'font-size="12">{escape(self.x.label)}</text>'
            f'<text transform="translate(14 {MARGIN_TOP + self.plot_h / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle" font-size="12">{escape(self.y.label)}</text>'
        )
        return parts


_MARKERS = {
    "front": '<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#1f77b4" stroke="#0b3d66"/>',
    "feasible": '<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#9ecae1" stroke="#1f77b4"/>',
    "infeasible": (
        '<path d="M{x0:.1f},{y0:.1f}L{x1:.1f},{y1:.1f}M{x0:.1f},{y1:.1f}L{x1:.1f},{y0:.1f}" '
        'stroke="#d62728" stroke-width="2"/>'
    ),
    "teacher": (
        '<path d="M{x:.1f},{ya:.1f}L{xc:.1f},{y:.1f}L{x:.1f},{yc:.1f}L{xb:.1f},{y:.1f}Z" '
        'fill="#ff7f0e" stroke="#a04000"/>'
    ),
}

LEGEND = (
    ("front", "Pareto front (feasible)"),
    ("feasible", "feasible"),
    ("infeasible", "over budget"),
    ("teacher", "teacher (float)"),
)


def _marker(style: str, x: float, y: float) -> str:
    return _MARKERS[style].format(
        x=x, y=y, x0=x - 4, y0=y - 4, x1=x + 4, y1=y + 4, ya=y - 7, xb=x - 6, xc=x + 6, yc=y + 7
    )


def scatter_plot(
    points: Sequence[Point],
    x: Axis,
    y: Axis,
    *,
    title: str,
    chart_id: str,
    x_limit: float | None = None,
    y_limit: float | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """A scatter plot; front points joined by a step line; budget limits as dashed lines."""
    frame = _Frame(x, y, width, height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart scatter" id="{escape(chart_id)}" '
        f'data-points="{len(points)}" width="{width}" height="{height}" viewBox="0 0 {width} '
        f'{height}" '
        'font-family="DejaVu Sans, Arial, sans-serif">',
        f'<text x="{MARGIN_LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
        *frame.axes(),
    ]
    if x_limit is not None and x.low <= x_limit <= x.high:
        px = frame.px(x_limit)
        parts.append(
            f'<line class="budget" x1="{px:.1f}" y1="{MARGIN_TOP}" x2="{px:.1f}" '
            f'y2="{MARGIN_TOP + frame.plot_h}" stroke="#d62728" stroke-dasharray="5,4"/>'
        )
    if y_limit is not None and y.low <= y_limit <= y.high:
        py = frame.py(y_limit)
        parts.append(
            f'<line class="budget" x1="{MARGIN_LEFT}" y1="{py:.1f}" '
            f'x2="{MARGIN_LEFT + frame.plot_w}" '
            f'y2="{py:.1f}" stroke="#d62728" stroke-dasharray="5,4"/>'
        )
    front = sorted((p for p in points if p.style == "front"), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{frame.px(p.x):.1f},{frame.py(p.y):.1f}"
            for i, p in enumerate(front)
        )
        parts.append(
            f'<path class="front-line" d="{path}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>'
        )
    order = {"infeasible": 0, "feasible": 1, "front": 2, "teacher": 3}
    for point in sorted(points, key=lambda p: order.get(p.style, 0)):
        marker = _marker(point.style, frame.px(point.x), frame.py(point.y))
        parts.append(
            f'<g class="point {point.style}"><title>{escape(point.label)}</title>{marker}</g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def legend_svg() -> str:
    """The marker legend shared by the scatter plots."""
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" class="legend" width="560" height="24" '
        'font-family="DejaVu Sans, Arial, sans-serif">'
    ]
    x = 10
    for style, text in LEGEND:
        parts.append(_marker(style, x, 12))
        parts.append(f'<text x="{x + 10}" y="16" font-size="12">{escape(text)}</text>')
        x += 24 + 7 * len(text)
    parts.append("</svg>")
    return "".join(parts)


def line_plot(
    points: Sequence[tuple[float, float]],
    x: Axis,
    y: Axis,
    *,
    title: str,
    chart_id: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """A step line (value holds until the next point), markers at each point."""
    frame = _Frame(x, y, width, height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart line" id="{escape(chart_id)}" '
        f'data-points="{len(points)}" width="{width}" height="{height}" viewBox="0 0 {width} '
        f'{height}" '
        'font-family="DejaVu Sans, Arial, sans-serif">',
        f'<text x="{MARGIN_LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
        *frame.axes(),
    ]
    if points:
        path = []
        for i, (px, py) in enumerate(points):
            if i:
                path.append(f"L{frame.px(px):.1f},{frame.py(points[i - 1][1]):.1f}")
            path.append(f"{'M' if i == 0 else 'L'}{frame.px(px):.1f},{frame.py(py):.1f}")
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="#2ca02c" stroke-width="2"/>')
        for px, py in points:
            parts.append(
                f'<circle class="point" cx="{frame.px(px):.1f}" cy="{frame.py(py):.1f}" r="2.5" '
                'fill="#2ca02c">'
                f"<title>trial {px:g}: {py:.4g}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class BarRow:
    """One layer in the per-layer chart."""

    label: str
    kept_fraction: float  # kept / teacher channels
    kept_text: str  # e.g. "24/32"
    bits_text: str  # e.g. "w4 a8"
    latency_share: float  # of the model's latency
    energy_share: float  # of the model's energy
    highlight: bool = False


def layer_bars(rows: Sequence[BarRow], *, chart_id: str, width: int = 940) -> str:
    """Per-layer rows: kept channels, bits, and latency / energy share bars."""
    row_h = 20
    label_w, kept_w, bits_w, bar_w = 190, 170, 80, 220
    height = 30 + row_h * len(rows) + 10
    x_kept, x_bits = label_w, label_w + kept_w + 10
    x_lat = x_bits + bits_w
    x_en = x_lat + bar_w + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart layers" id="{escape(chart_id)}" '
        f'data-rows="{len(rows)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
        f'<text x="4" y="16" font-weight="bold">layer</text>'
        f'<text x="{x_kept}" y="16" font-weight="bold">kept channels</text>'
        f'<text x="{x_bits}" y="16" font-weight="bold">bits</text>'
        f'<text x="{x_lat}" y="16" font-weight="bold">share of latency</text>'
        f'<text x="{x_en}" y="16" font-weight="bold">share of energy</text>',
    ]
    for i, row in enumerate(rows):
        y = 26 + i * row_h
        weight = ' font-weight="bold"' if row.highlight else ""
        parts.append(
            f'<g class="layer-row"><text x="4" y="{y + 12}"{weight}>{escape(row.label)}</text>'
            f'<rect x="{x_kept}" y="{y + 3}" width="{kept_w - 60}" height="12" fill="#eee"/>'
            f'<rect x="{x_kept}" y="{y + 3}" '
            f'width="{(kept_w - 60) * min(row.kept_fraction, 1.0):.1f}" '
            'height="12" fill="#1f77b4"/>'
            f'<text x="{x_kept + kept_w - 55}" y="{y + 12}">{escape(row.kept_text)}</text>'
            f'<text x="{x_bits}" y="{y + 12}">{escape(row.bits_text)}</text>'
            f'<rect x="{x_lat}" y="{y + 3}" width="{bar_w * row.latency_share:.1f}" height="12" '
            'fill="#ff7f0e"/>'
            f'<text x="{x_lat + bar_w * row.latency_share + 4:.1f}" '
            f'y="{y + 12}">{row.latency_share:.0%}</text>'
            f'<rect x="{x_en}" y="{y + 3}" width="{bar_w * row.energy_share:.1f}" height="12" '
            'fill="#9467bd"/>'
            f'<text x="{x_en + bar_w * row.energy_share + 4:.1f}" '
            f'y="{y + 12}">{row.energy_share:.0%}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)

"""Charts as inline SVG, drawn on the server: nothing to download, nothing fetched at run time, readable without
JavaScript. Two kinds: a time chart (lines and/or bars over a time or number axis, with anomaly markers and
vertical event lines) and a bar chart of categories. Every chart is a ``<figure data-testid="chart"
data-chart="<key>">``; each point's value is in a ``<title>`` (the browser's tooltip) when there are few enough.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")
WIDTH, HEIGHT = 560, 200
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 10, 24
MAX_TITLED_POINTS = 400  # more points than this: no per-point tooltip (keeps the page small)


@dataclass
class Series:
    name: str
    points: Sequence[tuple[Any, float | None]]
    kind: str = "line"  # line | bar
    color: str | None = None


@dataclass
class Marker:
    """A point to flag (an anomaly): at (x, y), or on the top edge when y is None."""

    x: Any
    y: float | None
    label: str


@dataclass
class Chart:
    key: str
    title: str
    series: list[Series] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    vlines: list[tuple[Any, str]] = field(default_factory=list)  # (x, label): maintenance, failures
    y_format: Callable[[float], str] = lambda v: _number(v)
    y_min: float | None = None
    y_max: float | None = None


def _number(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e9:
        return f"{value / 1e9:.3g}G"
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:.4g}"


def percent(value: float) -> str:
    return f"{value:.1%}" if abs(value) < 10 else f"{value:.0%}"


def _x_value(x: Any) -> float:
    if isinstance(x, dt.datetime):
        return (x if x.tzinfo else x.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(x, dt.date):
        return dt.datetime.combine(x, dt.time(), dt.UTC).timestamp()
    return float(x)


def _x_label(x: Any, span_seconds: float) -> str:
    if isinstance(x, dt.datetime):
        return x.strftime("%m-%d %H:%M") if span_seconds <= 3 * 86400 else x.strftime("%Y-%m-%d")
    if isinstance(x, dt.date):
        return x.isoformat()
    return _number(float(x))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round numbers covering ``low .. high``."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + (abs(low) * 0.1 or 1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while value <= high + step * 0.001 and len(ticks) < 20:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def render(chart: Chart, *, width: int = WIDTH, height: int = HEIGHT) -> str:
    """The chart as a ``<figure>`` holding an inline SVG (or a line saying there is nothing to draw)."""
    points = [(x, y) for s in chart.series for x, y in s.points if x is not None]
    values = [y for _, y in points if y is not None and math.isfinite(y)]
    head = (f'<figure class="chart" data-testid="chart" data-chart="{_esc(chart.key)}">'
            f"<figcaption>{_esc(chart.title)}</figcaption>")
    if not values:
        return head + '<p class="empty" data-testid="no-data">nothing to draw for this selection</p></figure>'
    xs = [_x_value(x) for x, _ in points]
    x_low, x_high = min(xs), max(xs)
    bars = [s for s in chart.series if s.kind == "bar"]
    slots = max((len(s.points) for s in bars), default=1)
    pad = (x_high - x_low) / max(slots - 1, 1) / 2 if bars and slots > 1 else (0.5 if bars else 0.0)
    x_low, x_high = x_low - pad, x_high + pad
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    marker_values = [m.y for m in chart.markers if m.y is not None and math.isfinite(m.y)]
    y_low = chart.y_min if chart.y_min is not None else min([*values, *marker_values, 0.0 if bars else min(values)])
    y_high = chart.y_max if chart.y_max is not None else max([*values, *marker_values])
    ticks = nice_ticks(y_low, y_high)
    y_low, y_high = min(ticks[0], y_low), max(ticks[-1], y_high)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def sx(x: Any) -> float:
        return LEFT + (_x_value(x) - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / ((y_high - y_low) or 1.0) * plot_h

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(chart.title)}" '
             'class="chart-svg">']
    for tick in ticks:
        ty = sy(tick)
        parts.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">'
                     f"{_esc(chart.y_format(tick))}</text>")
    span = x_high - x_low
    labelled = sorted({x for x, _ in points}, key=_x_value)
    step = max(1, math.ceil(len(labelled) / 6))
    for x in labelled[::step]:
        parts.append(f'<text x="{sx(x):.1f}" y="{height - 8}" text-anchor="middle" font-size="11" fill="#6b7280">'
                     f"{_esc(_x_label(x, span))}</text>")
    for x, label in chart.vlines:
        px = sx(x)
        if LEFT <= px <= width - RIGHT:
            parts.append(f'<line class="vline" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                         f'stroke="#9ca3af" stroke-dasharray="3 3"><title>{_esc(label)}</title></line>')
    bar_width = min(max(1.0, plot_w / max(slots, 1) * 0.8 / max(len(bars), 1)), 36.0)
    for index, series in enumerate(chart.series):
        color = PALETTE[_color_index(series, index)]
        titled = len(series.points) <= MAX_TITLED_POINTS
        if series.kind == "bar":
            offset = (bars.index(series) - (len(bars) - 1) / 2) * bar_width
            base = sy(max(y_low, 0.0))
            for x, y in series.points:
                if x is None or y is None or not math.isfinite(y):
                    continue
                top = sy(y)
                tip = f"<title>{_esc(series.name)} {_esc(_x_label(x, 0))}: {_esc(chart.y_format(y))}</title>"
                parts.append(f'<rect x="{sx(x) + offset - bar_width / 2:.1f}" y="{min(top, base):.1f}" '
                             f'width="{bar_width:.1f}" height="{abs(base - top):.1f}" fill="{color}">'
                             f"{tip if titled else ''}</rect>")
            continue
        path: list[str] = []
        move = True
        for x, y in sorted(((x, y) for x, y in series.points if x is not None), key=lambda p: _x_value(p[0])):
            if y is None or not math.isfinite(y):
                move = True
                continue
            path.append(f"{'M' if move else 'L'}{sx(x):.1f} {sy(y):.1f}")
            move = False
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.6">'
                     f"<title>{_esc(series.name)}</title></path>")
        if titled and len(series.points) <= 60:
            for x, y in series.points:
                if x is not None and y is not None and math.isfinite(y):
                    parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}"><title>'
                                 f"{_esc(series.name)} {_esc(_x_label(x, 0))}: {_esc(chart.y_format(y))}"
                                 "</title></circle>")
    for marker in chart.markers:
        px = sx(marker.x)
        py = sy(marker.y) if marker.y is not None and math.isfinite(marker.y) else TOP + 4
        py = min(max(py, TOP), TOP + plot_h)
        parts.append(f'<circle class="anomaly" data-testid="anomaly-marker" cx="{px:.1f}" cy="{py:.1f}" r="4" '
                     f'fill="none" stroke="#dc2626" stroke-width="2"><title>{_esc(marker.label)}</title></circle>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i class="swatch" data-color="{_color_index(s, index)}"></i>'
                     f"{_esc(s.name)}</span>" for index, s in enumerate(chart.series))
    if chart.markers:
        legend += '<span class="key"><i class="swatch anomaly"></i>anomaly</span>'
    return head + "".join(parts) + f'<div class="legend">{legend}</div></figure>'


def _color_index(series: Series, index: int) -> int:
    return PALETTE.index(series.color) if series.color in PALETTE else index % len(PALETTE)


def categories(key: str, title: str, labels: Sequence[str], values: Sequence[float | None], *,
               y_format: Callable[[float], str] = _number, limit: int = 40) -> str:
    """Horizontal bars, one per category (the first ``limit``)."""
    pairs = [(str(label), float(v)) for label, v in zip(labels, values, strict=False)
             if v is not None and math.isfinite(float(v))][:limit]
    head = (f'<figure class="chart" data-testid="chart" data-chart="{_esc(key)}">'
            f"<figcaption>{_esc(title)}</figcaption>")
    if not pairs:
        return head + '<p class="empty" data-testid="no-data">nothing to draw for this selection</p></figure>'
    row, label_w, width = 22, 150, WIDTH
    height = row * len(pairs) + 8
    high = max(max(v for _, v in pairs), 0.0) or 1.0
    low = min(min(v for _, v in pairs), 0.0)
    scale = (width - label_w - 70) / ((high - low) or 1.0)
    zero = label_w + (0 - low) * scale
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(title)}" class="chart-svg">']
    for index, (label, value) in enumerate(pairs):
        y = 4 + index * row
        x0, x1 = sorted((zero, label_w + (value - low) * scale))
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" font-size="12" fill="#374151">'
                     f"{_esc(label[:24])}</text>"
                     f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" height="{row - 8}" '
                     f'fill="{PALETTE[0]}"><title>{_esc(label)}: {_esc(y_format(value))}</title></rect>'
                     f'<text x="{x1 + 4:.1f}" y="{y + 15}" font-size="11" fill="#6b7280">'
                     f"{_esc(y_format(value))}</text>")
    parts.append("</svg>")
    return head + "".join(parts) + "</figure>"

"""Server-side SVG charts for the analytics pages: no JavaScript, no library, no external asset.

Each chart is one <svg role="img"> with a <title>, a <desc>, axes, a legend and a <title>
tooltip on every bar or point; the page puts a table of the same numbers beside it, for screen
readers and for copying. Every text that reaches the markup (team, model and error names are
user input) goes through escape(); numbers are formatted here, never taken as markup.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Tableau 10: distinguishable colours, also for the most common colour-vision deficiencies.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip
WIDTH = 760
PLOT_HEIGHT = 240
LEFT, RIGHT, TOP = 72, 16, 16
AXIS_BAND = 44  # x tick labels and the x axis title
LEGEND_ROW = 20
LEGEND_ITEM = 180
MAX_X_LABELS = 16


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: list[float | None]
    dashed: bool = False


def colour(n: int) -> str:
    return PALETTE[n % len(PALETTE)]


def nice_ceiling(value: float, ticks: int = 4) -> tuple[float, float]:
    """A round axis top at or above `value`, and the step between its ticks."""
    if value <= 0:
        return 1.0, 0.25
    raw = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(value / step - 1e-9), step


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


class _Canvas:
    """Shared frame: title, axes with ticks, legend; the chart kinds draw the marks."""

    def __init__(self, *, chart_id, title, labels, series, fmt, y_title, x_title, desc, tick_fmt):
        self.chart_id = chart_id
        self.tick_fmt = tick_fmt or fmt
        self.labels = labels
        self.series = series
        self.fmt = fmt
        self.parts: list[str] = []
        self.plot_w = WIDTH - LEFT - RIGHT
        per_row = max(1, self.plot_w // LEGEND_ITEM)
        self.legend_rows = math.ceil(len(series) / per_row) if series else 0
        self.height = TOP + PLOT_HEIGHT + AXIS_BAND + self.legend_rows * LEGEND_ROW + 8
        self.title, self.desc = title, desc
        self.y_title, self.x_title = y_title, x_title
        self.per_row = per_row

    def y(self, value: float, top: float) -> float:
        return TOP + PLOT_HEIGHT - (value / top) * PLOT_HEIGHT

    def band(self) -> float:
        return self.plot_w / max(1, len(self.labels))

    def x_center(self, n: int) -> float:
        return LEFT + self.band() * (n + 0.5)

    def axes(self, top: float, step: float) -> None:
        p = self.parts
        p.append('<g class="axis y-axis" aria-hidden="true">')
        ticks = round(top / step)
        for n in range(ticks + 1):
            value = step * n
            y = self.y(value, top)
            p.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="#ddd" stroke-width="1"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
                f'font-size="11">{escape(self.tick_fmt(value))}</text>'
            )
        mid = TOP + PLOT_HEIGHT / 2
        p.append(
            f'<text x="14" y="{mid:.1f}" transform="rotate(-90 14 {mid:.1f})" '
            f'text-anchor="middle" font-size="11">{escape(self.y_title)}</text></g>'
        )
        base = TOP + PLOT_HEIGHT
        p.append(
            f'<g class="axis x-axis" aria-hidden="true"><line x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{base}" y2="{base}" stroke="#333" stroke-width="1"/>'
        )
        every = max(1, math.ceil(len(self.labels) / MAX_X_LABELS))
        for n, label in enumerate(self.labels):
            if n % every == 0:
                p.append(
                    f'<text class="tick" x="{self.x_center(n):.1f}" y="{base + 16}" '
                    f'text-anchor="middle" font-size="11">{escape(label)}</text>'
                )
        p.append(
            f'<text x="{LEFT + self.plot_w / 2:.1f}" y="{base + 36}" text-anchor="middle" '
            f'font-size="11">{escape(self.x_title)}</text></g>'
        )

    def legend(self, dashed: Callable[[int], bool] = lambda n: False) -> None:
        p = self.parts
        base = TOP + PLOT_HEIGHT + AXIS_BAND
        p.append(f'<g class="legend" transform="translate({LEFT} {base})">')
        for n, s in enumerate(self.series):
            x = (n % self.per_row) * LEGEND_ITEM
            y = (n // self.per_row) * LEGEND_ROW
            dash = ' stroke-dasharray="4 3"' if dashed(n) else ""
            p.append(
                f'<g class="legend-item" data-series="{escape(s.name)}">'
                f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour(n)}"/>'
                f'<line x1="{x}" x2="{x + 12}" y1="{y + 6}" y2="{y + 6}" '
                f'stroke="{colour(n)}"{dash}/>'
                f'<text x="{x + 18}" y="{y + 10}" font-size="12">{escape(_clip(s.name))}</text>'
                f"</g>"
            )
        p.append("</g>")

    def render(self) -> SafeString:
        cid = escape(self.chart_id)
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{cid}" role="img" '
            f'viewBox="0 0 {WIDTH} {self.height}" width="100%" '
            f'aria-labelledby="{cid}-title {cid}-desc" font-family="sans-serif">'
            f'<title id="{cid}-title">{escape(self.title)}</title>'
            f'<desc id="{cid}-desc">{escape(self.desc)}</desc>'
        )
        return mark_safe(head + "".join(self.parts) + "</svg>")  # noqa: S308 - escaped above


def _clip(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def stacked_bars(
    *,
    chart_id: str,
    title: str,
    labels: list[str],
    series: list[Series],
    fmt: Callable[[float], str],
    y_title: str,
    x_title: str = "day (UTC)",
    tick_fmt: Callable[[float], str] | None = None,
) -> SafeString:
    """One bar per label, one segment per series (zero segments are not drawn)."""
    totals = [sum(s.values[n] or 0 for s in series) for n in range(len(labels))]
    top, step = nice_ceiling(max(totals, default=0))
    highest = fmt(max(totals, default=0))
    desc = f"Stacked bars, {len(labels)} bars, {len(series)} series; highest total {highest}."
    c = _Canvas(
        chart_id=chart_id,
        title=title,
        labels=labels,
        series=series,
        fmt=fmt,
        y_title=y_title,
        x_title=x_title,
        desc=desc,
        tick_fmt=tick_fmt,
    )
    c.axes(top, step)
    width = c.band() * 0.7
    c.parts.append('<g class="marks">')
    for n, label in enumerate(labels):
        stacked = 0.0
        x = c.x_center(n) - width / 2
        for k, s in enumerate(series):
            value = s.values[n] or 0
            if value <= 0:
                continue
            y_top = c.y(stacked + value, top)
            height = c.y(stacked, top) - y_top
            stacked += value
            c.parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y_top:.1f}" width="{width:.1f}" '
                f'height="{max(height, 0.5):.1f}" fill="{colour(k)}" '
                f'data-series="{escape(s.name)}" data-label="{escape(label)}" '
                f'data-value="{_num(value)}"><title>{escape(s.name)}, {escape(label)}: '
                f"{escape(fmt(value))}</title></rect>"
            )
    c.parts.append("</g>")
    c.legend()
    return c.render()


def lines(
    *,
    chart_id: str,
    title: str,
    labels: list[str],
    series: list[Series],
    fmt: Callable[[float], str],
    y_title: str,
    x_title: str = "day (UTC)",
    tick_fmt: Callable[[float], str] | None = None,
) -> SafeString:
    """One line per series; a None value breaks the line (no data that day, not zero)."""
    values = [v for s in series for v in s.values if v is not None]
    top, step = nice_ceiling(max(values, default=0))
    desc = f"Line chart, {len(series)} series over {len(labels)} points."
    c = _Canvas(
        chart_id=chart_id,
        title=title,
        labels=labels,
        series=series,
        fmt=fmt,
        y_title=y_title,
        x_title=x_title,
        desc=desc,
        tick_fmt=tick_fmt,
    )
    c.axes(top, step)
    c.parts.append('<g class="marks">')
    for k, s in enumerate(series):
        path, pen_down, points = [], False, []
        for n, value in enumerate(s.values):
            if value is None:
                pen_down = False
                continue
            x, y = c.x_center(n), c.y(value, top)
            path.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
            pen_down = True
            points.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour(k)}" '
                f'data-label="{escape(labels[n])}" data-value="{_num(value)}">'
                f"<title>{escape(s.name)}, {escape(labels[n])}: {escape(fmt(value))}</title>"
                f"</circle>"
            )
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        c.parts.append(
            f'<g class="series" data-series="{escape(s.name)}">'
            f'<path d="{" ".join(path)}" fill="none" stroke="{colour(k)}" '
            f'stroke-width="2"{dash}/>{"".join(points)}</g>'
        )
    c.parts.append("</g>")
    c.legend(lambda n: series[n].dashed)
    return c.render()

"""Server-rendered SVG charts for the audit dashboard: no JavaScript, no CDN.

Every text that reaches the SVG goes through ``escape``; numbers are formatted here. Colours
are presentation attributes (not inline ``style``), so a strict Content-Security-Policy
without 'unsafe-inline' still renders them.
"""

from __future__ import annotations

import datetime as dt

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Okabe–Ito: told apart with every common colour-vision deficiency (no red/green pair).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 58


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return step * 4
    magnitude = 10 ** (len(str(int(value))) - 1)
    return (int(value / magnitude) + 1) * magnitude


def _frame(title: str, y_max: float, unit: str, days: list[dt.date]) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(title)}" class="kg-chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        label = f"{value:g}{unit}"
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555">{escape(label)}</text>'
        )
    step = max(1, len(days) // 10)
    slot = plot_w / max(1, len(days))
    for i, day in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            x = LEFT + slot * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle" font-size="10" fill="#555">'
                f"{day:%m-%d}</text>"
            )
    parts.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#999"/>')
    return parts


def _legend(names: list[str], colours: list[str]) -> list[str]:
    parts, x = [], LEFT
    y = HEIGHT - 14
    for name, colour in zip(names, colours, strict=True):
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}" font-size="11" fill="#333">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def stacked_bars(title: str, days: list[dt.date], series: dict[str, list[int]]) -> SafeString:
    """One bar per day, stacked by series; each segment has a <title> tooltip."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    y_max = _nice_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    bar_w = max(2.0, slot * 0.7)
    parts = _frame(title, y_max, "", days)
    names = list(series)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(names))]
    for i, day in enumerate(days):
        base = float(TOP + plot_h)
        x = LEFT + slot * i + (slot - bar_w) / 2
        for name, colour in zip(names, colours, strict=True):
            value = series[name][i]
            if not value:
                continue
            h = plot_h * value / y_max
            base -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(f'{day:%Y-%m-%d} {name}: {value}')}</title></rect>"
            )
    parts += _legend(names, colours)
    parts.append("</svg>")
    # Every text above went through escape(); numbers and colours are ours (bandit B308/B703 reviewed).
    return mark_safe("".join(parts))  # noqa: S308  # nosec


def rate_lines(title: str, days: list[dt.date], series: dict[str, list[float | None]]) -> SafeString:
    """Percentages per day as lines with dots; days without attempts leave a gap."""
    values = [v for line in series.values() for v in line if v is not None]
    y_max = min(100.0, _nice_max(max(values))) if values and max(values) > 0 else 100.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    parts = _frame(title, y_max, "%", days)
    names = list(series)
    colours = [PALETTE[(i + 1) % len(PALETTE)] for i in range(len(names))]
    for name, colour in zip(names, colours, strict=True):
        segment: list[str] = []
        for i, day in enumerate(days):
            value = series[name][i]
            if value is None:
                if len(segment) > 1:
                    parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}"/>')
                segment = []
                continue
            x = LEFT + slot * (i + 0.5)
            y = TOP + plot_h - plot_h * min(value, y_max) / y_max
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(f'{day:%Y-%m-%d} {name}: {value}%')}</title></circle>"
            )
        if len(segment) > 1:
            parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{colour}"/>')
    parts += _legend(names, colours)
    parts.append("</svg>")
    # Every text above went through escape(); numbers and colours are ours (bandit B308/B703 reviewed).
    return mark_safe("".join(parts))  # noqa: S308  # nosec

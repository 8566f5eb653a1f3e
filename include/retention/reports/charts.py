"""Inline SVG charts for the DPO report: no JavaScript, no image file, nothing to fetch.

A report handed to a regulator must render the same in ten years, offline: the charts
are plain SVG elements inside the HTML, with their title, their legend and their numbers
as text (the total above each bar, each segment's count in its tooltip and attributes).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from html import escape

COLOURS = ("#3b6ea5", "#c0392b", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d")
_LINE = 14  # height of a line of text
_CHAR = 6.2  # average width of an 11px character, to wrap the title and space the legend


def stacked_bars(
    labels: Sequence[tuple[str, str]],
    series: Mapping[str, Sequence[int]],
    *,
    title: str,
    colours: Sequence[str] = COLOURS,
    width: int = 720,
    plot_height: int = 120,
) -> str:
    """One stacked bar per label, one coloured segment per series; the total above each bar.

    The segments of a bar must not overlap - the same row in two series would make the bar
    taller than what it counts -: the caller gives disjoint series, and the total printed is
    their sum. ``labels`` are two lines under each bar (e.g. the month, then the year).
    Each bar is a ``<g class="bar">``; each segment carries ``data-segment`` and ``data-rows``.
    """
    if len(colours) < len(series):
        raise ValueError(f"{len(series)} series but only {len(colours)} colours: two segments would share a colour")
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    title_lines = textwrap.wrap(title, width=int(width / (_CHAR + 0.8))) or [""]
    legend_y = _LINE * len(title_lines) + 6
    plot_top = legend_y + _LINE * len(series) + _LINE + 4  # room for the total above the tallest bar
    axis_y = plot_top + plot_height
    height = axis_y + 2 * _LINE + 6
    left = 40
    step = (width - left - 10) / max(len(labels), 1)
    bar_w = max(min(step * 0.6, 80), 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" style="font:11px sans-serif">',
        f"<title>{escape(title)}</title>",
    ]
    parts += [
        f'<text class="chart-title" x="0" y="{_LINE * (i + 1) - 2}" style="font-weight:bold">{escape(line)}</text>'
        for i, line in enumerate(title_lines)
    ]
    parts.append('<g class="legend">')
    for i, (colour, name) in enumerate(zip(colours, series, strict=False)):
        y = legend_y + _LINE * i
        parts.append(
            f'<rect x="{left}" y="{y + 2}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{left + 14}" y="{y + 11}">{escape(name)}</text>'
        )
    parts.append("</g>")
    parts += [
        f'<line x1="{left}" y1="{axis_y}" x2="{width - 5}" y2="{axis_y}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{plot_top + 4}" text-anchor="end">{top}</text>',
        f'<text x="{left - 4}" y="{axis_y}" text-anchor="end">0</text>',
    ]
    for index, (first_line, second_line) in enumerate(labels):
        x = left + index * step + (step - bar_w) / 2
        parts.append(_bar(x, bar_w, axis_y, plot_height, top, index, series, colours, f"{first_line} {second_line}"))
        centre = x + bar_w / 2
        parts.append(
            f'<text x="{centre:.1f}" y="{axis_y + _LINE}" text-anchor="middle">{escape(first_line)}</text>'
            f'<text x="{centre:.1f}" y="{axis_y + 2 * _LINE}" text-anchor="middle">'
            f"{escape(second_line)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _bar(
    x: float,
    bar_w: float,
    axis_y: float,
    plot_height: int,
    top: int,
    index: int,
    series: Mapping[str, Sequence[int]],
    colours: Sequence[str],
    label: str,
) -> str:
    """One bar: its segments bottom-up, then its total above it."""
    y, parts, total = axis_y, ['<g class="bar">'], 0
    for colour, (name, values) in zip(colours, series.items(), strict=False):
        value = values[index]
        if value:
            h = plot_height * value / top
            y -= h
            total += value
            parts.append(
                f'<rect data-segment="{escape(name)}" data-rows="{value}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(label)} · {escape(name)}: {value}</title></rect>"
            )
    parts.append(f'<text class="total" x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{total}</text></g>')
    return "".join(parts)

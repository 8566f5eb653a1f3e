"""Inline SVG charts for the DPO report: no JavaScript, no image file, nothing to fetch.

A report handed to a regulator must render the same in ten years, offline: the charts
are plain SVG elements inside the HTML, with their numbers as text beside the bars.
"""

from __future__ import annotations

from html import escape
from typing import Sequence

COLOURS = ("#3b6ea5", "#c0392b", "#7f8c8d", "#27ae60")


def stacked_bars(labels: Sequence[str], series: dict[str, Sequence[int]], *, title: str,
                 width: int = 640, height: int = 180) -> str:
    """One stacked bar per label (a month), one colour per series (archived, destroyed...)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    left, bottom, legend = 40, 30, 18
    plot_h = height - bottom - legend - 10
    step = (width - left - 10) / max(len(labels), 1)
    bar_w = max(step * 0.6, 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" style="font:11px sans-serif">',
             f"<title>{escape(title)}</title>",
             f'<line x1="{left}" y1="{legend + 5 + plot_h}" x2="{width - 5}" y2="{legend + 5 + plot_h}" stroke="#999"/>',
             f'<text x="{left - 4}" y="{legend + 12}" text-anchor="end">{top}</text>',
             f'<text x="{left - 4}" y="{legend + 5 + plot_h}" text-anchor="end">0</text>']
    for index, label in enumerate(labels):
        x = left + index * step + (step - bar_w) / 2
        y = legend + 5 + plot_h
        for colour, (name, values) in zip(COLOURS, series.items(), strict=False):
            h = plot_h * values[index] / top
            if h:
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                             f"<title>{escape(name)} {escape(label)}: {values[index]}</title></rect>")
        if totals[index]:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{totals[index]}</text>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle">{escape(label)}</text>')
    x = left
    for colour, name in zip(COLOURS, series, strict=False):
        parts.append(f'<rect x="{x}" y="2" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="11">{escape(name)}</text>')
        x += 14 + 7 * len(name) + 16
    parts.append("</svg>")
    return "".join(parts)

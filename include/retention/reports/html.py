"""Small, dependency-free HTML building blocks for the DPO's documents.

Certificates, the DPO report and the UI view are files a DPO may hand to a regulator
years later: self-contained pages (inline style, no script, no external asset), with
every value escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:75em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0 1.5em} caption{text-align:left;font-weight:bold;padding:.3em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top} th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#070} .ko{color:#b00;font-weight:bold} .warn{color:#a60}
tr.ko td{background:#fdd} code{font-size:.9em;word-break:break-all}
form{margin:1em 0} label{margin-right:1em} nav a{margin-right:1.2em}
"""


def page(title: str, body: str, *, lang: str = "en", nav: str = "") -> str:
    """A whole HTML document around ``body`` (already HTML)."""
    return (
        f'<!doctype html>\n<html lang="{escape(lang)}"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{nav}"
        f"<h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def cell(value: Any) -> str:
    """One table cell: numbers right-aligned, ``None`` blank, everything escaped."""
    if isinstance(value, Raw):
        return f"<td>{value.html}</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, float)):
        return f"<td class='n'>{value:,}</td>".replace(",", "\u202f")
    return f"<td>{escape('' if value is None else str(value))}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str = "", row_class: Any = None) -> str:
    """An HTML table; ``row_class(row)`` may give a CSS class per row."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f"<tr{(' class=' + repr(row_class(r))) if row_class and row_class(r) else ''}>"
        f"{''.join(cell(v) for v in r)}</tr>"
        for r in rows
    )
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<tr>{head}</tr>{body}</table>"


class Raw:
    """HTML that is already safe (built here from escaped parts), to put in a cell as is."""

    def __init__(self, html: str) -> None:
        self.html = html


def text(value: Any) -> str:
    return escape("" if value is None else str(value))

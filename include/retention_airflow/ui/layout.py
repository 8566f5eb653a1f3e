"""The frame of every page of the Retention view: Airflow 3's look, a tab bar, the language switch.

The pages are shown in an iframe inside Airflow's UI, so they look like it: the system font,
Airflow's blue, light tables with a header row, a tab bar like the DAG pages' tabs. Still a
self-contained HTML document (inline style, no script, no external asset) with every value
escaped, like the other documents the DPO may keep.

Stable hooks for the browser test: ``nav#retention-tabs`` (one ``a[data-page]`` per page, the
current one ``aria-current='page'``), ``a#language-switch``, ``main#retention-page[data-page]``
and its ``h1``.
"""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from include.retention.language import N_, translator
from include.retention.reports import html
from include.retention_airflow.ui.reader import Reader

STYLE = """
:root{color-scheme:light}
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
font-size:14px;line-height:1.5;color:#18181b;background:#fff;margin:0;padding:0 24px 24px}
h1{font-size:20px;font-weight:600;margin:16px 0 8px} h2{font-size:16px;font-weight:600;margin:24px 0 8px}
a{color:#0060c0} a:hover{text-decoration:underline}
nav.tabs{display:flex;flex-wrap:wrap;align-items:center;gap:2px;border-bottom:1px solid #e4e4e7;margin:0 -24px;
padding:0 24px;background:#fff;position:sticky;top:0;z-index:1}
nav.tabs a{padding:10px 12px;color:#52525b;text-decoration:none;border-bottom:2px solid transparent;margin-bottom:-1px}
nav.tabs a:hover{color:#18181b;background:#f4f4f5}
nav.tabs a[aria-current=page]{color:#0060c0;border-bottom-color:#017cee;font-weight:600}
nav.tabs a#language-switch{margin-left:auto;font-size:12px;font-weight:600}
table{border-collapse:collapse;margin:8px 0 16px;min-width:50%}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{padding:6px 10px;border-bottom:1px solid #e4e4e7;text-align:left;vertical-align:top}
th{background:#f4f4f5;font-weight:600;color:#3f3f46;font-size:13px}
tbody tr:hover td,tr:hover td{background:#fafafa}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ok{color:#15803d} .ko{color:#b91c1c;font-weight:600} .warn{color:#b45309}
.badge{display:inline-block;padding:0 8px;border-radius:9999px;font-size:12px;font-weight:600;white-space:nowrap}
.badge.ok{background:#dcfce7} .badge.ko{background:#fee2e2} .badge.warn{background:#fef3c7} .badge.off{background:#e4e4e7}
tr.bad td{background:#fef2f2}
dl.details{margin:0;display:grid;grid-template-columns:max-content minmax(10em,24em);column-gap:8px}
dl.details dt{color:#52525b} dl.details dd{margin:0;overflow-wrap:break-word;white-space:pre-wrap}
section#audit-events{overflow-x:auto} td{overflow-wrap:break-word}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;overflow-wrap:break-word}
form{margin:12px 0;display:flex;flex-wrap:wrap;gap:8px 16px;align-items:flex-end}
form.filters{padding:12px;background:#f4f4f5;border-radius:6px}
label{display:flex;flex-direction:column;font-size:12px;color:#52525b;gap:2px}
input,select,button{font:inherit;font-size:14px;padding:4px 8px;border:1px solid #d4d4d8;border-radius:4px;background:#fff;
color:#18181b}
button{background:#017cee;color:#fff;border-color:#017cee;cursor:pointer} button:hover{background:#0060c0}
nav.pager{display:flex;gap:16px;align-items:center;margin:8px 0}
.muted,small{color:#52525b;font-size:12px}
p{max-width:60em}
"""

# (path, label, page key): the tab bar, in the order a DPO reads them.
TABS = (
    ("", N_("Overview"), "overview"),
    ("/tonight", N_("Tonight"), "tonight"),
    ("/audit", N_("Audit log"), "audit"),
    ("/certificates", N_("Run certificates"), "certificates"),
    ("/reports", N_("DPO reports"), "reports"),
    ("/approvals", N_("Approvals"), "approvals"),
    ("/schedule", N_("Schedule"), "schedule"),
    ("/holds", N_("Legal holds"), "holds"),
    ("/chain", N_("Chain status"), "chain"),
    ("/lookup", N_("Was X erased?"), "lookup"),
)


def document(lang: str, title: str, body: str, *, nav: str = "", page: str = "") -> str:
    """A whole self-contained HTML document around ``body`` (already HTML)."""
    return (
        f"<!doctype html>\n<html lang='{html.text(lang)}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.text(title)}</title><style>{STYLE}</style></head><body>{nav}"
        f"<main id='retention-page' data-page='{html.text(page)}'><h1>{html.text(title)}</h1>\n{body}\n</main>"
        "</body></html>\n"
    )


def tab_bar(reader: Reader, current: str) -> str:
    """The tabs of the view, the current one marked, and the switch to the other language."""
    _ = translator(reader.lang, "ui")
    tabs = "".join(
        f"<a href='{html.text(reader.href(path))}' data-page='{key}'"
        f"{' aria-current=page' if key == current else ''}>{html.text(_(label))}</a>"
        for path, label, key in TABS
    )
    other = "en" if reader.lang == "fr" else "fr"
    switch = (
        f"<a id='language-switch' href='{html.text(reader.switch_href(other))}' hreflang='{other}'>{other.upper()}</a>"
    )
    return f"<nav class='tabs' id='retention-tabs'>{tabs}{switch}</nav>"


def page(reader: Reader, title: str, body: str, current: str, *, status_code: int = 200) -> HTMLResponse:
    """A page of the view: the tab bar (``current`` marked), the title (with the target's
    name when several are served) and ``body``."""
    shown = title if reader.site.name is None else f"{title} - {reader.site.name}"
    return HTMLResponse(
        document(reader.lang, shown, body, nav=tab_bar(reader, current), page=current), status_code=status_code
    )


def section(element_id: str, content: str) -> str:
    """``content`` in a ``<section id=...>``: a stable hook for the browser test around a table."""
    return f"<section id='{element_id}'>{content}</section>"


def badge(text: str, kind: str) -> str:
    """A short verdict in a coloured pill (``ok``, ``ko``, ``warn``, ``off``)."""
    return f"<span class='badge {kind}'>{html.text(text)}</span>"


def number(value: int) -> str:
    """A count as the tables show it: thousands apart by a narrow space (``html.cell``'s way)."""
    return f"{value:,}".replace(",", "\u202f")

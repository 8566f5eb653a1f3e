"""The legal-hold register: every hold, in force or not, with its reason.

For the DPO only: the audit log and the reports carry only references. Holds are changed by
the ``legal_hold`` DAG; nothing here changes them. Stable hook: ``section#holds``.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from include.retention.dates.words import day_words
from include.retention.language import N_, translator
from include.retention.records.holds import list_holds
from include.retention.reports import html
from include.retention_airflow.ui.layout import page, section
from include.retention_airflow.ui.reader import READER, Reader
from include.retention_airflow.ui.served import target_of

router = APIRouter()
STATUS_WORDS = {"in_force": N_("in force"), "expired": N_("expired"), "lifted": N_("lifted")}
SCOPE_WORDS = {"category": N_("category"), "rows": N_("rows"), "subject": N_("person")}


@router.get("/holds", response_class=HTMLResponse)
def legal_holds(reader: Reader = READER) -> HTMLResponse:
    _ = translator(reader.lang, "ui")
    policy = reader.policy
    target = target_of(reader.site, policy)
    today = datetime.now(policy.zone).date()
    with target.read() as conn:
        holds = list_holds(conn, target.archive_schema, today)
    rows = [
        (
            h.reference,
            _(STATUS_WORDS[h.status]) if h.status in STATUS_WORDS else h.status,
            _(SCOPE_WORDS[h.scope]) if h.scope in SCOPE_WORDS else h.scope,
            h.category or h.table or "",
            h.items,
            h.reason,
            h.created_by,
            reader.short_moment(h.created_at) if h.created_at else "",
            day_words(h.expires_on, reader.lang) if h.expires_on else _("until lifted"),
            h.lifted_by or "",
        )
        for h in holds
    ]
    headers = (
        _("reference"),
        _("status"),
        _("scope"),
        _("category / table"),
        _("items"),
        _("reason"),
        _("requested by"),
        _("created ({zone})").format(zone=reader.zone),
        _("expires"),
        _("lifted by"),
    )
    in_force = sum(h.status == "in_force" for h in holds)
    table = (
        html.table(headers, rows, row_class=lambda r: "ok" if r[1] == _("in force") else "")
        if rows
        else "<p>" + html.text(_("No legal hold recorded.")) + "</p>"
    )
    intro = _(
        "{count} hold(s) in force on {day}. Held rows are never archived, deleted or anonymised. Add, list or "
        "lift holds with the legal_hold DAG."
    ).format(count=in_force, day=day_words(today, reader.lang))
    return page(reader, _("Legal holds"), f"<p>{html.text(intro)}</p>" + section("holds", table), "holds")

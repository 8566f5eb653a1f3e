""" "Was X erased?": the rows about one person now, and the events logged about them.

A POST form, so an identifier never lands in a URL or in the access log; the identifier is
hashed with the subject key and compared in the database, never stored, logged or echoed.
Stable hooks: ``form#lookup-form``, ``p#lookup-verdict``, ``section#lookup-presence``,
``section#lookup-events``.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import HTMLResponse

from include.retention.database.identifiers import IDENTIFIER_KINDS
from include.retention.database.identity import normalise
from include.retention.errors import RetentionError
from include.retention.language import N_, translator
from include.retention.reports import html
from include.retention.rights.erased import Presence, was_erased
from include.retention_airflow.hooks import subject_key
from include.retention_airflow.ui.layout import page, section
from include.retention_airflow.ui.reader import READER, Reader
from include.retention_airflow.ui.served import target_of

router = APIRouter()
MAX_IDENTIFIER = 320  # an e-mail address is at most 254 characters; room for phone separators
RECORD_KINDS_SHOWN = {
    "personal_data": N_("the person's data"),
    "kept_by_obligation": N_("kept by legal obligation"),
    "request_evidence": N_("evidence of a request (register)"),
    "retained_dependant": N_("record of another category attached to theirs (archived_with)"),
}
VERDICT_CLASS = {"erased": "ok", "none_held": "ok", "erased_except_kept": "warn", "archived": "warn", "active": "ko"}


@router.get("/lookup", response_class=HTMLResponse)
def lookup_form(reader: Reader = READER) -> HTMLResponse:
    _ = translator(reader.lang, "ui")
    return page(reader, _("Was X erased?"), _form(reader), "lookup")


@router.post("/lookup", response_class=HTMLResponse)
def lookup(
    kind: str = Form(..., max_length=50),
    identifier: str = Form(..., max_length=MAX_IDENTIFIER),
    reader: Reader = READER,
) -> HTMLResponse:
    """Hash the identifier with the subject key; count the person's rows now; list events about them."""
    _ = translator(reader.lang, "ui")
    title = _("Was X erased?")
    if kind not in IDENTIFIER_KINDS:
        raise HTTPException(
            400, f"bad parameter kind: unknown identifier kind {kind!r}; known: {', '.join(IDENTIFIER_KINDS)}"
        )
    try:
        normalise(kind, identifier)
    except RetentionError as exc:  # the message names the kind, never the value
        return page(
            reader, title, f"<p class='ko'>identifier: {html.text(exc)}</p>{_form(reader)}", "lookup", status_code=400
        )
    try:
        key = subject_key()
    except RetentionError as exc:
        raise HTTPException(503, str(exc)) from exc
    try:
        answer = was_erased(target_of(reader.site, reader.policy), reader.policy, key, kind, identifier)
    except RetentionError as exc:
        return page(reader, title, f"<p class='ko'>{html.text(exc)}</p>{_form(reader)}", "lookup")
    presence = html.table(
        (_("category"), _("table"), _("kind of record"), _("active rows"), _("archived rows"), _("kept")),
        [
            (
                reader.category(p.category),
                p.table,
                _(RECORD_KINDS_SHOWN[p.kind]),
                p.active,
                p.archived,
                _kept(reader, p),
            )
            for p in answer.presence
        ],
    )
    events = html.table(
        (
            "#",
            _("recorded ({zone})").format(zone=reader.zone),
            _("action"),
            _("category"),
            _("table"),
            _("rows"),
            _("run"),
        ),
        [
            (
                e["event_id"],
                reader.short_moment(e["recorded_at"]),
                e["action"],
                e["category"],
                e["table_name"],
                e["row_count"],
                e["run_id"],
            )
            for e in answer.events
        ],
    )
    explained = _(
        "The person's data: their rows in the active base and the restricted archive. Kept by legal obligation: "
        "their rows in a category an erasure keeps (on_erasure: keep, e.g. invoices), or archived rows a record of "
        "another category still needs (a customer row its kept invoices point at), kept as long as that record. "
        "Records of another category attached to theirs: rows of another category archived with theirs "
        "(archived_with, e.g. their invoices), kept on that category's own clock. Evidence of a request: the "
        "rights-request register entry, kept to prove the request was handled, then destroyed with its category."
    )
    body = (
        f"<p id='lookup-verdict' class='{VERDICT_CLASS[answer.verdict]}'><b>{html.text(answer.sentence(reader.lang))}</b></p>"
        f"<p>"
        + html.text(_("Keyed hash of the {kind}:").format(kind=kind))
        + f" <code>{answer.subject_hash}</code></p>"
        f"<h2>"
        + html.text(_("Rows about this person now, per kind of record"))
        + "</h2>"
        + section("lookup-presence", presence)
        + f"<p><small>{html.text(explained)}</small></p>"
        f"<h2>"
        + html.text(_("Events logged about this person"))
        + "</h2>"
        + section("lookup-events", events)
        + _form(reader)
    )
    return page(reader, title, body, "lookup")


def _kept(reader: Reader, presence: Presence) -> str:
    """Until when, and for which category's obligation when another category keeps the rows."""
    _ = translator(reader.lang, "ui")
    until = presence.horizon.text(reader.lang) if presence.horizon else ""
    if presence.kept_for:
        return _("{until} (needed by kept records of {category})").format(until=until, category=presence.kept_for)
    return until


def _form(reader: Reader) -> str:
    _ = translator(reader.lang, "ui")
    kinds = "".join(f"<option>{k}</option>" for k in IDENTIFIER_KINDS)
    explained = _(
        "The identifier is hashed with the subject key and compared in the database; it is neither stored nor logged."
    )
    return (
        "<form method='post' id='lookup-form'><label>"
        + html.text(_("Identifier"))
        + f" <select name='kind'>{kinds}</select></label>"
        "<label>&#8203;<input name='identifier' size='40' autocomplete='off' required></label>"
        f"<button>" + html.text(_("Look up")) + f"</button></form><p><small>{html.text(explained)}</small></p>"
    )

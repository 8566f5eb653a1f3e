"""The audit browser: the events of the audit log, newest first, filtered, one page at a time.

Filters: category, action, run, and the days the events were recorded (in the policy's zone,
like every time on the page). Pages are numbered from 1, with the total count and links to the
previous and next pages that keep the filters. An event's details read as ``key: value``
lines that wrap, so a long value never squeezes the column. Actions, categories and yes/no
read in the reader's language; the filters' values stay the codes the log holds, so that a
link to a filtered page reads the same in either language.

Stable hooks: ``form#audit-filters``, ``section#audit-events`` (its table, one ``tbody tr`` per
event), ``dl.details``, ``nav#audit-pager`` above the events (``a[rel=prev]``,
``a[rel=next]``, ``span#audit-count``), and the same pager without ids below them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from include.retention.database import store
from include.retention.dates.words import day_words
from include.retention.language import N_, translator
from include.retention.records import audit
from include.retention.records.audit import ACTIONS
from include.retention.reports import html
from include.retention_airflow.ui.certificates import mode_words
from include.retention_airflow.ui.guards import MAX_RUN_ID, valid_run_id
from include.retention_airflow.ui.layout import page, section
from include.retention_airflow.ui.reader import READER, Reader
from include.retention_airflow.ui.served import audit_log

router = APIRouter()
PAGE_SIZE = 200
# Far beyond any audit log (two billion events), and small enough that the offset stays a
# 64-bit integer for every database: ?page=99999999999999999999 is a 400, not an overflow.
MAX_PAGE = 10_000_000
# What each action of the log (``audit.ACTIONS``) is called on the page; translated where shown.
ACTION_WORDS: dict[str, str] = {
    "plan": N_("plan"),
    "archive": N_("archive"),
    "delete": N_("deletion"),
    "anonymize": N_("anonymization"),
    "quality_finding": N_("quality finding"),
    "validation": N_("data-quality check"),
    "run_summary": N_("run summary"),
    "rights_request": N_("rights request"),
    "erase": N_("erasure"),
    "rectify": N_("rectification"),
    "legal_hold": N_("legal hold"),
    "approval": N_("approval"),
    "reconsent_campaign": N_("re-consent campaign"),
    "reconsent_answer": N_("re-consent answer"),
}


@router.get("/audit", response_class=HTMLResponse)
def audit_browser(
    category: str | None = Query(None, max_length=100),
    action: str | None = Query(None, max_length=100),
    run_id: str | None = Query(None, max_length=MAX_RUN_ID),
    date_from: date | None = None,
    date_to: date | None = None,
    page_number: int = Query(1, alias="page", ge=1, le=MAX_PAGE),
    reader: Reader = READER,
) -> HTMLResponse:
    """Events, newest first, filtered; ``date_from``/``date_to`` are days the events were
    recorded, in the policy's zone; ``page`` counts from 1."""
    _ = translator(reader.lang, "ui")
    valid_run_id(run_id)
    policy = reader.policy
    if category and category not in policy.categories:
        raise HTTPException(400, f"unknown category {category!r}; known: {', '.join(policy.categories)}")
    if action and action not in ACTIONS:
        raise HTTPException(400, f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if date_from and date_to and date_to < date_from:
        raise HTTPException(400, f"date_to ({date_to}) is before date_from ({date_from})")
    target, trail = audit_log(reader.site, policy)
    conditions = [
        trail.c[name] == value
        for name, value in (("category", category), ("action", action), ("run_id", run_id))
        if value
    ]
    if date_from:
        conditions.append(trail.c.recorded_at >= _midnight(date_from, reader))
    if date_to and date_to < date.max:  # up to 9999-12-31: no upper bound (the day after does not exist)
        conditions.append(trail.c.recorded_at < _midnight(date_to + timedelta(days=1), reader))
    with target.read() as conn:
        if store.table_exists(conn, trail):
            total = conn.execute(select(func.count()).select_from(trail).where(*conditions)).scalar_one()
            found = audit.latest_events(conn, trail, *conditions, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE)
        else:
            total, found = 0, []
    filters = {
        "category": category,
        "action": action,
        "run_id": run_id,
        "date_from": date_from,
        "date_to": date_to,
    }
    body = (
        _filters_form(reader, filters)
        + _pager(reader, filters, page_number, total, len(found), top=True)
        + section("audit-events", _events_table(reader, found))
        + _pager(reader, filters, page_number, total, len(found), top=False)
    )
    return page(reader, _("Audit log"), body, "audit")


def _midnight(day: date, reader: Reader) -> datetime:
    """The start of ``day`` on the policy's clocks, as the instant the log compares with."""
    return datetime.combine(day, time(), reader.policy.zone).astimezone(UTC)


def action_words(action: str, lang: str) -> str:
    """An action of the log in the reader's words (the code itself for one this view does not know)."""
    _ = translator(lang, "ui")
    return _(ACTION_WORDS[action]) if action in ACTION_WORDS else action


def _events_table(reader: Reader, found: list[dict[str, Any]]) -> str:
    _ = translator(reader.lang, "ui")
    headers = (
        "#",
        _("recorded ({zone})").format(zone=reader.zone),
        _("category"),
        _("action"),
        _("table"),
        _("rows"),
        _("mode"),
        _("run"),
        _("policy"),
        _("day of the run"),
        _("person (keyed hash)"),
        _("details"),
    )
    head = "".join(f"<th>{html.text(h)}</th>" for h in headers)
    rows = "".join(
        "<tr>"
        + "".join(
            html.cell(value)
            for value in (
                e["event_id"],
                reader.short_moment(e["recorded_at"]),
                reader.category(e["category"]) if e["category"] else None,
                action_words(e["action"], reader.lang),
                e["table_name"],
                e["row_count"],
                mode_words(e["dry_run"], reader.lang),
                e["run_id"],
                e["policy_version"],
                day_words(e["as_of"], reader.lang),
                (e["subject_hash"] or "")[:12],
                html.Raw(details_html(e["details"], reader.lang)),
            )
        )
        + "</tr>"
        for e in found
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def details_html(details: dict[str, Any], lang: str) -> str:
    """An event's details as ``key: value`` lines that wrap; a nested value gives one line per
    leaf, its key the path to it (``tables.archived.prospects: 12``); true and false in words."""
    if not details:
        return ""
    _ = translator(lang, "ui")
    words = {True: _("yes"), False: _("no")}
    lines = "".join(f"<dt>{html.text(key)}:</dt><dd>{html.text(value)}</dd>" for key, value in _leaves(details, words))
    return f"<dl class='details'>{lines}</dl>"


def _leaves(value: dict[str, Any], words: dict[bool, str], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            yield from _leaves(item, words, f"{path}.")
        elif isinstance(item, (dict, list)):
            yield path, ", ".join(map(str, item)) if item else "-"
        elif isinstance(item, bool):
            yield path, words[item]
        else:
            yield path, "" if item is None else str(item)


def _pager(reader: Reader, filters: dict[str, Any], number: int, total: int, shown: int, *, top: bool) -> str:
    """Where this page is in the log: events first-last of total, page n of m, previous and next.
    Shown above and below the events; only the one above carries the ids."""
    _ = translator(reader.lang, "ui")
    pages = max(1, -(-total // PAGE_SIZE))
    if shown:
        first = (number - 1) * PAGE_SIZE + 1
        count = _("Events {first} to {last} of {total} - page {page} of {pages}").format(
            first=first, last=first + shown - 1, total=total, page=number, pages=pages
        )
    elif total:
        count = _("No event on page {page}: the {total} events fill {pages} page(s).").format(
            page=number, total=total, pages=pages
        )
    else:
        count = _("No event matches these filters.")
    previous = (
        f"<a rel='prev' href='{html.text(reader.href('/audit', **filters, page=min(number - 1, pages)))}'>"
        f"← " + html.text(_("Previous page")) + "</a>"
        if number > 1
        else ""
    )
    following = (
        f"<a rel='next' href='{html.text(reader.href('/audit', **filters, page=number + 1))}'>"
        + html.text(_("Next page"))
        + " →</a>"
        if number < pages
        else ""
    )
    ids = (" id='audit-pager'", " id='audit-count'") if top else ("", "")
    return f"<nav class='pager'{ids[0]}>{previous}<span class='audit-count'{ids[1]}>{html.text(count)}</span>{following}</nav>"


def _filters_form(reader: Reader, chosen: dict[str, Any]) -> str:
    _ = translator(reader.lang, "ui")

    def options(values: Any, picked: str | None, label: Any = str) -> str:
        return (
            "<option value=''>"
            + html.text(_("any"))
            + "</option>"
            + "".join(
                f"<option value='{html.text(v)}'{' selected' if v == picked else ''}>{html.text(label(v))}</option>"
                for v in values
            )
        )

    site, policy = reader.site, reader.policy
    actions = options(ACTIONS, chosen["action"], lambda action: action_words(action, reader.lang))
    return (
        "<form method='get' class='filters' id='audit-filters'>"
        + ("" if site.name is None else f"<input type='hidden' name='target' value='{html.text(site.name)}'>")
        + ("" if not reader.lang_asked else f"<input type='hidden' name='lang' value='{reader.lang}'>")
        + "<label>"
        + html.text(_("Category"))
        + f" <select name='category'>"
        f"{options(policy.categories, chosen['category'], reader.category)}</select></label>"
        f"<label>" + html.text(_("Action")) + f" <select name='action'>{actions}</select></label>"
        f"<label>"
        + html.text(_("Run"))
        + f" <input name='run_id' value='{html.text(chosen['run_id'] or '')}' size='40'></label>"
        f"<label>"
        + html.text(_("From"))
        + f" <input type='date' name='date_from' value='{chosen['date_from'] or ''}'></label>"
        f"<label>"
        + html.text(_("To"))
        + f" <input type='date' name='date_to' value='{chosen['date_to'] or ''}'></label>"
        f"<button>" + html.text(_("Filter")) + "</button></form>"
    )

"""The overview: is the schedule kept (per category, conforme or not and why), can the record be
trusted (the chain), what ran lately, and the re-consent campaigns.

Compliance is the DPO report's own (``dpo_report.build`` for today: the same counting, counted
now in the database), so the page and the report never disagree. A deployment that serves
several targets and was not told which one gets the list of targets to choose from.

Stable hooks: ``section#compliance`` (one ``tr`` per category, ``data-category`` and
``data-compliant='yes|no'``), ``p#chain-status``, ``p#last-event``, ``a#dpo-report-link``,
``section#latest-runs``, ``section#campaigns``, ``section#targets`` (the chooser).
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError

from include.retention.database.target import Target
from include.retention.dates.words import day_words
from include.retention.errors import RetentionError, describe
from include.retention.files import site_folder
from include.retention.language import translator
from include.retention.records import audit
from include.retention.reports import certificate, dpo_render, dpo_report, html
from include.retention.reports.dpo_report import Compliance
from include.retention_airflow.hooks import optional_subject_key
from include.retention_airflow.targets import Site
from include.retention_airflow.ui.certificates import runs_table
from include.retention_airflow.ui.layout import badge, document, page, section
from include.retention_airflow.ui.reader import LANG_PARAMETER, Reader, language, reader_from
from include.retention_airflow.ui.reports import latest_report, report_href
from include.retention_airflow.ui.served import audit_log, served, site_of

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request, target: str | None = Query(None, max_length=40), lang: str | None = LANG_PARAMETER
) -> HTMLResponse:
    """With several targets served and none named: the list of targets to choose from."""
    sites = served()
    if target is None and sites[0].name is not None:
        return _chooser(request, sites, lang)
    reader = reader_from(request, site_of(target), lang)
    _ = translator(reader.lang, "ui")
    policy = reader.policy
    db, trail = audit_log(reader.site, policy)
    today = datetime.now(policy.zone).date()
    with site_folder(reader.site.reports_folder):
        compliance, chain = _compliance_and_chain(reader, db, today)
        with db.read() as conn:
            exists = chain.events > 0
            last = audit.latest_events(conn, trail, limit=1) if exists else []
            runs = certificate.latest_runs(conn, trail, limit=10) if exists else []
            refusals = (
                audit.events(conn, trail, trail.c.details.like('%"refused"%'), action="reconsent_answer")
                if exists
                else []
            )
            campaigns = dpo_report.campaigns(conn, db.archive_schema, policy, today, refusals)
    body = (
        "<p>"
        + html.text(
            _("Policy version {version}, {count} categories.").format(
                version=policy.version, count=len(policy.categories)
            )
        )
        + "</p>"
        "<h2>" + html.text(_("Compliance today")) + f"</h2>{_compliance_table(reader, compliance)}"
        f"{_report_link(reader)}"
        f"<h2>" + html.text(_("Audit log")) + f"</h2>{chain_line(reader, chain)}{_last_event(reader, last)}"
        f"<h2>" + html.text(_("Latest runs")) + f"</h2>{runs_table(reader, runs)}"
        f"<h2>"
        + html.text(_("Re-consent campaigns"))
        + "</h2>"
        + section(
            "campaigns",
            "<p>{}</p>".format(
                html.text(
                    _(
                        "Every ask recorded so far, and where it stands on {day} (the DPO report counts those of "
                        "its period). Delivered: handed to the mail server; not asked: no usable address, or on "
                        "the suppression list; a yes restarts the clock, a no is an opposition, no answer once the "
                        "links expired lets the schedule go on."
                    ).format(day=day_words(today, reader.lang))
                )
            )
            + dpo_render.campaigns_section(policy, campaigns, reader.lang),
        )
    )
    return page(reader, _("Retention"), body, "overview")


def _compliance_and_chain(
    reader: Reader, db: Target, today: date
) -> tuple[list[Compliance] | str, certificate.ChainStatus]:
    """The DPO report's compliance for today and the chain's verdict; when the database does not
    match the policy (a table or a column missing), the problem instead of the compliance - the
    rest of the overview still shows."""
    try:
        report = dpo_report.build(db, reader.policy, today, today, today, optional_subject_key())
    except (RetentionError, SQLAlchemyError) as exc:
        _, trail = audit_log(reader.site, reader.policy)
        with db.read() as conn:
            return describe(exc), certificate.chain_status(conn, trail)
    return report.compliance, report.chain


def chain_line(reader: Reader, status: certificate.ChainStatus) -> str:
    """The chain's verdict in one line, green when the log can be trusted."""
    _ = translator(reader.lang, "ui")
    return (
        f"<p id='chain-status' class='{'ok' if status.intact else 'ko'}'><b>"
        + html.text(_("Audit log"))
        + f" {html.text(status.sentence(reader.lang))}</b></p>"
    )


def _last_event(reader: Reader, last: list[dict]) -> str:
    _ = translator(reader.lang, "ui")
    if not last:
        return "<p id='last-event'>" + html.text(_("The audit log is empty: no run has been recorded yet.")) + "</p>"
    event = last[0]
    words = _("Last audit event {number}, recorded on {moment}, hash {hash}.")
    return "<p id='last-event'>{}</p>".format(
        html.text(words)
        .replace("{number}", f"<b>#{event['event_id']}</b>")
        .replace("{moment}", html.text(reader.moment(event["recorded_at"])))
        .replace("{hash}", f"<code>{html.text(event['event_hash'])}</code>")
    )


def _reasons(reader: Reader, tables: list[Compliance]) -> str:
    """Why a category is not compliant: each table's overdue rows and expired archive rows."""
    _ = translator(reader.lang, "ui")
    reasons = []
    for c in tables:
        if c.overdue:
            reasons.append(
                _("{table}: {count} row(s) overdue, the oldest had to leave the active base on {day}").format(
                    table=c.table, count=c.overdue, day=_day(reader, c.limit_date)
                )
            )
        if c.expired_in_archive:
            reasons.append(
                _("{table}: {count} row(s) past their retention still in the archive").format(
                    table=c.table, count=c.expired_in_archive
                )
            )
    return "; ".join(reasons)


def _day(reader: Reader, day: date | None) -> str:
    return "" if day is None else day_words(day, reader.lang)


def _compliance_table(reader: Reader, compliance: list[Compliance] | str) -> str:
    """One row per category: conforme or not, why, and what it keeps apart lawfully (rows that
    cannot be aged, held by a legal hold, waiting for the re-consent ask); or why it could not
    be counted."""
    _ = translator(reader.lang, "ui")
    if isinstance(compliance, str):
        problem = _("Compliance could not be counted: {problem}").format(problem=compliance)
        return section("compliance", f"<p class='ko'>{html.text(problem)}</p>")
    headers = (
        _("category"),
        _("status"),
        _("reason"),
        _("rows that cannot be aged (defects)"),
        _("rows kept by a legal hold"),
        _("rows waiting for the re-consent ask"),
    )
    head = "".join(f"<th>{html.text(h)}</th>" for h in headers)
    rows = []
    for key in reader.policy.categories:
        tables = [c for c in compliance if c.category == key]
        ok = all(c.compliant for c in tables)
        verdict = badge(_("compliant"), "ok") if ok else badge(_("not compliant"), "ko")
        rows.append(
            f"<tr data-category='{html.text(key)}' data-compliant='{'yes' if ok else 'no'}'"
            f"{'' if ok else ' class=bad'}>"
            f"<td>{html.text(reader.category(key))}</td><td>{verdict}</td>"
            f"<td>{html.text(_reasons(reader, tables))}</td>"
            + html.cell(sum(c.missing_start for c in tables))
            + html.cell(sum(c.legal_hold for c in tables))
            + html.cell(sum(c.waiting_for_reconsent for c in tables))
            + "</tr>"
        )
    return section("compliance", f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _report_link(reader: Reader) -> str:
    """The latest DPO report, and where the others are."""
    _ = translator(reader.lang, "ui")
    latest = latest_report(reader)
    others = f"<a href='{html.text(reader.href('/reports'))}'>" + html.text(_("every DPO report")) + "</a>"
    if latest is None:
        return "<p>{} ({})</p>".format(
            html.text(_("No DPO report has been written yet: the {dag} DAG writes one each month.")).format(
                dag=html.text(reader.site.dag_id("retention_dpo_report"))
            ),
            others,
        )
    return (
        f"<p><a id='dpo-report-link' href='{html.text(report_href(reader, latest))}'>"
        + html.text(_("The latest DPO report"))
        + f"</a> ({others})</p>"
    )


def _chooser(request: Request, sites: list[Site], lang: str | None) -> HTMLResponse:
    """The overview of a deployment that serves several targets, before one is chosen."""
    shown = language(lang, sites[0].policy().language)
    _ = translator(shown, "ui")
    root = request.scope.get("root_path", "")
    keep = "" if lang is None else f"&lang={shown}"
    items = "".join(
        f"<li><a href='{html.text(root + '/?target=' + quote(site.name or '') + keep)}'>{html.text(site.name or '')}</a></li>"
        for site in sites
    )
    body = section(
        "targets",
        "<p>" + html.text(_("This deployment serves several target databases. Choose one:")) + f"</p><ul>{items}</ul>",
    )
    return HTMLResponse(document(shown, _("Retention"), body, page="targets"))

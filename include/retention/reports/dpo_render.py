"""The DPO report as one self-contained HTML page, and writing it under ``reports/dpo/``.

The facts come from dpo_report.py; here they are laid out in the charter's order: schedule,
volumes, compliance today, holds and requests, re-consent campaigns, findings, the chain.

In French by default, English on request: the texts are written in English and translated by
the ``report`` catalog (``language``), the engine's codes by their words in dpo_texts.py, the
dates and the moment the report was made by ``dates.words`` - a reader's dates, never ISO, and
the time on the policy's clocks with its zone named. The file's name keeps ISO dates: programs
read it.
"""

from __future__ import annotations

from datetime import date

from include.retention.dates.periods import Period
from include.retention.dates.words import (
    bar_label,
    day_words,
    during_words,
    moment_words,
    period_words,
    span_words,
)
from include.retention.files import Location, reports_dir, safe_name, write_whole
from include.retention.language import LANGUAGES, Translate, translator
from include.retention.policy.model import Category, RetentionPolicy, StartEvent
from include.retention.reports import charts, html
from include.retention.reports.certificate import ChainStatus
from include.retention.reports.dpo_report import SEGMENTS, Campaigns, DpoReport
from include.retention.reports.dpo_texts import (
    END_ACTION_WORDS,
    HOLD_SCOPE_WORDS,
    HOLD_STATUS_WORDS,
    REFUSAL_WORDS,
    REQUEST_TYPE_WORDS,
    SEGMENT_WORDS,
    value_words,
)


def render(report: DpoReport, lang: str = "fr") -> str:
    """The report as one self-contained HTML page, in ``lang`` (``fr`` or ``en``)."""
    if lang not in LANGUAGES:
        raise ValueError(f"DPO report: language {lang!r}: use one of {', '.join(LANGUAGES)}")
    _ = translator(lang, "report")
    policy = report.policy
    intro = _(
        "Period covered: {period} (runs dated in this period, from the audit log) · policy version "
        "{version} · state counted on {today} in the database, not taken from the log."
    ).format(
        period=period_words(report.period_start, report.period_end, lang),
        version=policy.version,
        today=day_words(report.today, lang),
    )
    campaigns_text = _(
        "The charter commits to contacting each person again before their active period ends, to ask "
        "whether they wish to keep receiving commercial solicitations. Asks recorded in the period, and "
        "where they stand on {today}: delivered to the mail server, failed (refused for good, or bounced), "
        "or never sent (no usable address, or the person is on the suppression list). A yes restarts the "
        "retention period; a no is an opposition (suppression and erasure); with no answer when the links "
        "expire, the schedule goes on: archive, then destruction."
    ).format(today=day_words(report.today, lang))
    holds_text = _(
        "A record under a legal hold is neither archived, destroyed nor anonymised - by the schedule or by "
        "an erasure request - until the hold is lifted or expires."
    )
    footer = _("Generated on {moment}. This report holds only counts, dates and names from the policy.").format(
        moment=moment_words(report.generated_at, lang, policy.zone)
    )
    body = [
        _paragraph(intro),
        _heading(_("1. Retention schedule (as configured)")),
        schedule_table(policy, lang),
        _heading(_("2. Records handled per month")),
        _volumes_section(report, lang),
        _heading(_("3. Compliance today")),
        _compliance_table(report, lang),
        _heading(_("4. Legal holds and rights requests")) + _paragraph(holds_text),
        _holds_table(report, lang) + _requests_table(report, lang),
        _heading(_("5. Re-consent campaigns")),
        _paragraph(campaigns_text),
        campaigns_section(policy, report.campaigns, lang),
        _heading(_("6. Data-quality findings in the period")),
        _findings_table(report, lang),
        _heading(_("7. Audit log integrity")),
        _chain_paragraph(report.chain, lang),
        f"<p><small>{html.text(footer)}</small></p>",
    ]
    return html.page(_("Personal data retention report"), "\n".join(body), lang=lang)


def _heading(text: str) -> str:
    return f"<h2>{html.text(text)}</h2>"


def _paragraph(text: str) -> str:
    return f"<p>{html.text(text)}</p>"


def _label(category: Category, lang: str) -> str:
    return getattr(category.label, lang)


def schedule_table(policy: RetentionPolicy, lang: str) -> str:
    """The schedule laid out like the charter's table, in ``lang``: the report's first section,
    and the Retention view's schedule page. The policy's own columns stay as named (code)."""
    _ = translator(lang, "report")
    rows = []
    for category in policy.categories.values():
        starts = ", ".join(sorted({_clock_words(table.start_event, _) for table in category.tables}))
        counted = getattr(category.counted_from, lang) if category.counted_from else starts
        parent_event = _parent_event_words(policy, category, lang)
        if category.active_period.is_zero:
            active = _("until {event}").format(event=parent_event or counted)
        elif parent_event:  # "1 year after the end of the relationship"
            active = _("{period} after {event}").format(
                period=category.active_period.in_words(lang), event=parent_event
            )
        else:
            active = f"{category.active_period.in_words(lang)}, {counted}"
        archive = category.archive_or_zero.in_words(lang) if category.has_archive else _("no archive")
        if parent_event and category.has_archive:
            # Released by the parent's event, it still ends on its own clock: its own start +
            # the active period + the archive period ("10 years from the invoice date").
            archive = _("{period} from {event}").format(period=_whole_horizon(category).in_words(lang), event=counted)
        basis = (
            f"{category.archive_purpose} / {category.legal_basis}" if category.archive_purpose else category.legal_basis
        )
        rows.append(
            (
                html.Raw(f"<code>{html.text(category.key)}</code>"),
                _label(category, lang),
                html.Raw(f"{html.text(active)}<br><small><code>{html.text(starts)}</code></small>"),
                archive,
                basis,
                value_words(END_ACTION_WORDS, category.end_action, _),
            )
        )
    headers = (
        _("Category"),
        _("Purpose (charter)"),
        _("Active base: period, counted from"),
        _("Intermediate archive"),
        _("Purpose of the archive / legal basis"),
        _("End of life"),
    )
    return html.table(headers, rows)


def _parent_event_words(policy: RetentionPolicy, category: Category, lang: str) -> str | None:
    """For a category whose rows leave the active base on their parent's start event
    (``archived_with.leaves_active: on_parent_event``): that event in the parent categories'
    words ("the end of the relationship"), in policy order; None otherwise."""
    parents = {
        t.archived_with.table
        for t in category.tables
        if t.archived_with is not None and t.archived_with.on_parent_event
    }
    if not parents:
        return None
    _ = translator(lang, "report")
    words = []
    for other in policy.categories.values():
        for table in other.tables:
            if table.table in parents:
                words.append(
                    getattr(other.counted_from, lang) if other.counted_from else _clock_words(table.start_event, _)
                )
    either = _("or")
    return f" {either} ".join(dict.fromkeys(words))


def _clock_words(start: StartEvent, _: Translate) -> str:
    """A table's start event as the policy names it - its columns as written, the words between
    them in the reader's language: ``latest interactions.occurred_at else created_at``."""
    sources = []
    for source in start.sources:
        if source.latest is not None:
            sources.append(_("latest {value}").format(value=source.latest.describe_value()))
        elif source.earliest is not None:
            sources.append(_("earliest {value}").format(value=source.earliest.describe_value()))
        else:
            sources.append(str(source.column))
    otherwise = _("else")
    return f" {otherwise} ".join(sources)


def _whole_horizon(category: Category) -> Period:
    active, archive = category.active_period, category.archive_or_zero
    return Period(active.years + archive.years, active.months + archive.months, active.days + archive.days)


def _volumes_section(report: DpoReport, lang: str) -> str:
    """Per category, a chart of disjoint segments (a bar per month, its total the records
    handled); then one table row per category, root table and month."""
    _ = translator(lang, "report")
    spans = [_month_span(month, report.period_start, report.period_end) for month in report.months]
    during = during_words(report.period_start, report.period_end, lang)
    explained = _(
        "Records of each category's main tables (their linked rows follow them), handled by executed runs "
        "(not dry runs). A run counts each record once: archived and kept, or archived then destroyed (or "
        "anonymised) by that same run, or destroyed from the archive where an earlier run had put it, or "
        "destroyed directly in the active base for a category without an archive. A record archived by one "
        "run and destroyed by a later run counts for each of the two."
    )
    parts, rows = [f"<p>{html.text(explained)}</p>"], []
    for key, category in report.policy.categories.items():
        label = _label(category, lang)
        parts.append(f"<h3>{html.text(label)}</h3>")
        by_month = [report.volume(key, month) for month in report.months]
        shown = [name for name in SEGMENTS if any(getattr(v, name) for v in by_month)]
        if not shown:
            parts.append(_paragraph(_("No record handled in the period.")))
            continue
        series = {value_words(SEGMENT_WORDS, name, _): [getattr(v, name) for v in by_month] for name in shown}
        colours = [charts.COLOURS[SEGMENTS.index(name)] for name in shown]  # one colour per segment, everywhere
        parts.append(
            charts.stacked_bars(
                [bar_label(first, last, lang) for first, last in spans],
                series,
                title=_("{label}: records handled by the runs {during}, each counted once").format(
                    label=label, during=during
                ),
                colours=colours,
            )
        )
        for table in category.tables:
            for month, (first, last) in zip(report.months, spans, strict=True):
                v = report.volume(key, month, table.table)
                if v.rows:
                    rows.append(
                        (
                            label,
                            table.table,
                            span_words(first, last, lang),
                            v.archived,
                            v.ended_same_run,
                            v.ended_from_archive,
                            v.deleted_directly,
                            v.rows,
                        )
                    )
    headers = (
        _("Category"),
        _("Table"),
        _("Month"),
        _("Archived"),
        _("of which destroyed or anonymised in the same run"),
        _("Destroyed or anonymised from the archive (archived before)"),
        _("Destroyed directly in the active base (no archive)"),
        _("Records handled (each once)"),
    )
    return "".join(parts) + (html.table(headers, rows) if rows else "")


def _compliance_table(report: DpoReport, lang: str) -> str:
    """One row per root table; when rows wait for the re-consent ask, a sentence saying why
    they are not overdue and how long the promise may keep them."""
    _ = translator(lang, "report")
    labels = {key: _label(c, lang) for key, c in report.policy.categories.items()}
    compliant, not_compliant = html.text(_("compliant")), html.text(_("NOT COMPLIANT"))
    rows = [
        (
            labels[c.category],
            c.table,
            day_words(c.oldest_start, lang) if c.oldest_start else _("none"),
            day_words(c.limit_date, lang) if c.limit_date else "",
            c.overdue,
            c.missing_start,
            c.held_open,
            c.waiting_for_reconsent,
            c.expired_in_archive,
            c.legal_hold,
            html.Raw(
                f"<span class='ok'>{compliant}</span>" if c.compliant else f"<span class='ko'>{not_compliant}</span>"
            ),
        )
        for c in report.compliance
    ]
    headers = (
        _("Category"),
        _("Table"),
        _("Oldest active record"),
        _("Had to leave the active base on"),
        _("Overdue"),
        _("No start date"),
        _("Held (open link)"),
        _("Waiting for re-consent"),
        _("Expired in archive"),
        _("Legal hold"),
        _("Status"),
    )
    # Not compliant: rows overdue (cell 4) or expired in the archive (cell 8), as ``Compliance.compliant``.
    table = html.table(headers, rows, row_class=lambda r: "" if r[4] == r[8] == 0 else "ko")
    return table + _waiting_paragraph(report, lang)


def _waiting_paragraph(report: DpoReport, lang: str) -> str:
    """Why the rows waiting for re-consent are not overdue: each waiting category's notice
    window (``30 jours``, or ``30 jours (Prospection), 60 jours (Adhérents)``); none waits: nothing."""
    waiting = dict.fromkeys(c.category for c in report.compliance if c.waiting_for_reconsent)
    notices = {
        key: Period(days=reconsent.notice_days).in_words(lang)
        for key in waiting
        if (reconsent := report.policy.categories[key].reconsent) is not None
    }
    if not notices:
        return ""
    if len(set(notices.values())) == 1:
        windows = next(iter(notices.values()))
    else:
        labels = report.policy.categories
        windows = ", ".join(f"{days} ({_label(labels[key], lang)})" for key, days in notices.items())
    _ = translator(lang, "report")
    why = _(
        "Waiting for re-consent: records whose active period has ended and that the charter keeps while the "
        "person is asked whether they wish to keep receiving commercial solicitations, at most {windows} after "
        "their period ends; they are not overdue. A record still there after that is counted overdue."
    )
    return f"<p>{html.text(why.format(windows=windows))}</p>"


def _holds_table(report: DpoReport, lang: str) -> str:
    """The register of legal holds. Reasons and requesters stay in the register: free text and
    people's names are not for a report that holds only counts, dates and policy names."""
    _ = translator(lang, "report")
    if not report.holds:
        return _paragraph(_("No legal hold recorded."))
    rows = [
        (
            h.reference,
            value_words(HOLD_SCOPE_WORDS, h.scope, _),
            h.category or h.table or "",
            h.items,
            day_words(h.created_at.astimezone(report.policy.zone).date(), lang) if h.created_at else "",
            day_words(h.expires_on, lang) if h.expires_on else _("none"),
            value_words(HOLD_STATUS_WORDS, h.status, _),
        )
        for h in report.holds
    ]
    headers = (
        _("Reference"),
        _("Scope"),
        _("Category / table"),
        _("Items"),
        _("Created on"),
        _("Expires on"),
        _("Status"),
    )
    return html.table(headers, rows)


def _requests_table(report: DpoReport, lang: str) -> str:
    """The open rights requests, the most urgent first: their type in words, their due day."""
    _ = translator(lang, "report")
    if not report.open_requests:
        return _paragraph(_("No open rights request."))
    overdue = html.text(_("OVERDUE"))
    rows = [
        (
            d.reference,
            value_words(REQUEST_TYPE_WORDS, d.request_type, _),
            day_words(d.due, lang),
            html.Raw(f"<span class='ko'>{overdue} ({d.days_left})</span>") if d.days_left < 0 else d.days_left,
        )
        for d in report.open_requests
    ]
    return html.table((_("Reference"), _("Type"), _("Due"), _("Days left")), rows)


def campaigns_section(policy: RetentionPolicy, campaigns: Campaigns, lang: str) -> str:
    """One row per category with ``reconsent``: its asks and their outcome (counts only), and
    the refused tokens no such category can be told for; or why there is nothing to count."""
    _ = translator(lang, "report")
    if not any(category.reconsent for category in policy.categories.values()):
        return _paragraph(_("No category of the policy asks for re-consent."))
    if not campaigns.started:
        return _paragraph(_("No campaign has run yet: the re-consent register does not exist yet."))
    rows = [
        (
            _label(policy.categories[c.category], lang),
            c.recorded,
            c.unsent,
            c.sent,
            c.failed,
            c.no_address,
            c.suppressed,
            c.yes,
            c.no,
            c.awaiting,
            c.no_answer,
            c.clock_restarts,
            _reasons(c.refused, lang) or 0,
        )
        for c in campaigns.categories
    ]
    unattributed = _(
        "Refused tokens naming no category that asks for re-consent (a forged token names none that can be "
        "believed): {reasons}."
    ).format(reasons=_reasons(campaigns.unattributed, lang))
    headers = (
        _("Category"),
        _("Asks recorded"),
        _("Waiting to be sent"),
        _("Delivered"),
        _("Failed"),
        _("Not asked: no address"),
        _("Not asked: suppressed"),
        _("Yes"),
        _("No"),
        _("Awaiting an answer"),
        _("No answer (links expired)"),
        _("Clock restarts"),
        _("Refused tokens"),
    )
    return html.table(headers, rows) + (f"<p>{html.text(unattributed)}</p>" if campaigns.unattributed else "")


def _reasons(refused: dict[str, int], lang: str) -> str:
    """Refused tokens by reason, in words: ``falsifié 2, expiré 1``."""
    _ = translator(lang, "report")
    return ", ".join(f"{value_words(REFUSAL_WORDS, reason, _)} {count}" for reason, count in sorted(refused.items()))


def _findings_table(report: DpoReport, lang: str) -> str:
    _ = translator(lang, "report")
    if not report.findings:
        return _paragraph(_("No finding in the period."))
    labels = {key: _label(c, lang) for key, c in report.policy.categories.items()}
    rows = [
        (labels.get(key, key), f.get("missing_start_date", 0), f.get("failed_check", 0))
        for key, f in report.findings.items()
    ]
    headers = (_("Category"), _("Records without a start date reported"), _("Failed checks"))
    return html.table(headers, rows)


def _chain_paragraph(chain: ChainStatus, lang: str) -> str:
    """The audit log's verdict, in the same order of verdicts as ``ChainStatus.sentence``."""
    return f"<p class='{'ok' if chain.intact else 'ko'}'>{html.text(_chain_verdict(chain, translator(lang, 'report')))}</p>"


def _chain_verdict(chain: ChainStatus, _: Translate) -> str:
    if chain.intact:
        return _("Hash chain intact: {n} events verified, hashes of {c} run certificate(s) matched.").format(
            n=chain.events, c=chain.certificates
        )
    if not chain.chain_holds:
        return _("CHAIN BROKEN at event {at}: {reason} ({n} events read).").format(
            at=chain.broken_at, reason=chain.reason, n=chain.events
        )
    if chain.mismatches and not chain.events:
        gone = _("LOG EMPTIED: {first}") if chain.exists else _("LOG REMOVED: {first}")
        return gone.format(first=chain.mismatches[0])
    if chain.mismatches:
        return _(
            "LOG REWRITTEN: it no longer matches the run certificates ({m} mismatch(es), the first: {first}); "
            "its chain is consistent, so it was re-hashed."
        ).format(m=len(chain.mismatches), first=chain.mismatches[0])
    if chain.unverified and chain.reports_missing:
        return _(
            "NOT VERIFIED: the certificates folder {dir} is missing (not mounted, or $RETENTION_REPORTS_DIR is "
            "wrong); its chain holds ({n} events), but a re-hashed log would pass unseen."
        ).format(n=chain.events, dir=chain.reports)
    if chain.unverified:  # the certificates and anchors all name another log
        return _(
            "NOT VERIFIED against the run certificates: its chain holds ({n} events), but the {o} "
            "certificate(s) in {dir} name another log ({other}), none this one."
        ).format(n=chain.events, o=chain.other_logs, dir=chain.reports, other=chain.other_log)
    return _(
        "CERTIFICATES MISSING: {m} finished run(s) with no certificate of this log in {dir} and no recorded "
        "failure to write it (the first: {first})."
    ).format(m=len(chain.missing_certificates), dir=chain.reports, first=chain.missing_certificates[0])


def write(report: DpoReport, lang: str = "fr") -> Location:
    """Render and write under ``reports/dpo/`` (``files.write_whole``: a report made again for
    the same period replaces the earlier one in one step); return the file's location."""
    name = f"retention-dpo-report_{report.period_start}_{report.period_end}.{lang}.html"
    path = reports_dir() / "dpo" / safe_name(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, render(report, lang).encode("utf-8"))
    return path


def _month_span(month: str, start: date, end: date) -> tuple[date, date]:
    """The days of ``month`` (YYYY-MM) inside the period: a bar may cover part of a month."""
    year, number = int(month[:4]), int(month[5:])
    first = date(year, number, 1)
    last = date.fromordinal((date(year + number // 12, number % 12 + 1, 1)).toordinal() - 1)
    return max(first, start), min(last, end)

"""The DPO report as one self-contained HTML page, and writing it under ``reports/dpo/``.

The facts come from dpo_report.py, the words from dpo_texts.py; here they are laid out in the
charter's order: schedule, volumes, compliance today, holds and requests, re-consent campaigns,
findings, the chain.
"""

from __future__ import annotations

from datetime import date

from include.retention.dates.periods import Period
from include.retention.dates.words import bar_label, day_words, during_words, period_words, span_words
from include.retention.files import Location, reports_dir, safe_name, write_whole
from include.retention.policy.model import Category, RetentionPolicy
from include.retention.reports import charts, html
from include.retention.reports.certificate import ChainStatus
from include.retention.reports.dpo_report import SEGMENTS, Campaigns, DpoReport
from include.retention.reports.dpo_texts import LANGUAGES, TEXT


def render(report: DpoReport, lang: str = "fr") -> str:
    """The report as one self-contained HTML page, in ``lang`` (``fr`` or ``en``)."""
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: use one of {', '.join(LANGUAGES)}")
    t, policy = TEXT[lang], report.policy
    intro = t["intro"].format(
        period=period_words(report.period_start, report.period_end, lang),
        version=policy.version,
        today=day_words(report.today, lang),
    )
    body = [
        f"<p>{html.text(intro)}</p>",
        f"<h2>{t['schedule']}</h2>",
        schedule_table(policy, lang),
        f"<h2>{t['volumes']}</h2>",
        _volumes_section(report, lang),
        f"<h2>{t['compliance']}</h2>",
        _compliance_table(report, lang),
        f"<h2>{t['holds']}</h2><p>{html.text(t['holds_text'])}</p>{_holds_table(report, lang)}"
        f"{_requests_table(report, lang)}",
        f"<h2>{t['campaigns']}</h2>",
        f"<p>{html.text(t['campaigns_text'].format(today=day_words(report.today, lang)))}</p>",
        campaigns_section(policy, report.campaigns, lang),
        f"<h2>{t['findings']}</h2>",
        _findings_table(report, lang),
        f"<h2>{t['chain']}</h2>",
        _chain_paragraph(report.chain, lang),
        f"<p><small>{html.text(t['footer'].format(at=report.generated_at.strftime('%Y-%m-%d %H:%M UTC')))}</small></p>",
    ]
    return html.page(t["title"], "\n".join(body), lang=lang)


def _label(category: Category, lang: str) -> str:
    return getattr(category.label, lang)


def schedule_table(policy: RetentionPolicy, lang: str) -> str:
    t = TEXT[lang]
    rows = []
    for category in policy.categories.values():
        starts = ", ".join(sorted({table.start_event.describe() for table in category.tables}))
        counted = getattr(category.counted_from, lang) if category.counted_from else starts
        parent_event = _parent_event_words(policy, category, lang)
        if category.active_period.is_zero:
            active = f"{t['until_end']} {parent_event or counted}"
        elif parent_event:  # "1 year after the end of the relationship"
            active = f"{category.active_period.in_words(lang)} {t['after']} {parent_event}"
        else:
            active = f"{category.active_period.in_words(lang)}, {counted}"
        archive = category.archive_or_zero.in_words(lang) if category.has_archive else t["no_archive"]
        if parent_event and category.has_archive:
            # Released by the parent's event, it still ends on its own clock: its own start +
            # the active period + the archive period ("10 years from the invoice date").
            archive = f"{_whole_horizon(category).in_words(lang)} {t['from']} {counted}"
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
                t[category.end_action],
            )
        )
    return html.table(t["schedule_cols"], rows)


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
    words = []
    for other in policy.categories.values():
        for table in other.tables:
            if table.table in parents:
                words.append(getattr(other.counted_from, lang) if other.counted_from else table.start_event.describe())
    return f" {TEXT[lang]['or']} ".join(dict.fromkeys(words))


def _whole_horizon(category: Category) -> Period:
    active, archive = category.active_period, category.archive_or_zero
    return Period(active.years + archive.years, active.months + archive.months, active.days + archive.days)


def _volumes_section(report: DpoReport, lang: str) -> str:
    """Per category, a chart of disjoint segments (a bar per month, its total the records
    handled); then one table row per category, root table and month."""
    t = TEXT[lang]
    spans = [_month_span(month, report.period_start, report.period_end) for month in report.months]
    during = during_words(report.period_start, report.period_end, lang)
    parts, rows = [f"<p>{html.text(t['volumes_text'])}</p>"], []
    for key, category in report.policy.categories.items():
        label = _label(category, lang)
        parts.append(f"<h3>{html.text(label)}</h3>")
        by_month = [report.volume(key, month) for month in report.months]
        shown = [name for name in SEGMENTS if any(getattr(v, name) for v in by_month)]
        if not shown:
            parts.append(f"<p>{html.text(t['no_volume'])}</p>")
            continue
        series = {t["segments"][name]: [getattr(v, name) for v in by_month] for name in shown}
        colours = [charts.COLOURS[SEGMENTS.index(name)] for name in shown]  # one colour per segment, everywhere
        parts.append(
            charts.stacked_bars(
                [bar_label(first, last, lang) for first, last in spans],
                series,
                title=t["chart_title"].format(label=label, during=during),
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
    return "".join(parts) + (html.table(t["volume_cols"], rows) if rows else "")


def _compliance_table(report: DpoReport, lang: str) -> str:
    """One row per root table; when rows wait for the re-consent ask, a sentence saying why
    they are not overdue and how long the promise may keep them."""
    t = TEXT[lang]
    labels = {key: _label(c, lang) for key, c in report.policy.categories.items()}
    rows = [
        (
            labels[c.category],
            c.table,
            c.oldest_start.isoformat() if c.oldest_start else t["none"],
            c.limit_date.isoformat() if c.limit_date else "",
            c.overdue,
            c.missing_start,
            c.held_open,
            c.waiting_for_reconsent,
            c.expired_in_archive,
            c.legal_hold,
            html.Raw(f"<span class='ok'>{t['ok']}</span>" if c.compliant else f"<span class='ko'>{t['ko']}</span>"),
        )
        for c in report.compliance
    ]
    # Not compliant: rows overdue (cell 4) or expired in the archive (cell 8), as ``Compliance.compliant``.
    table = html.table(t["compliance_cols"], rows, row_class=lambda r: "" if r[4] == r[8] == 0 else "ko")
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
    return f"<p>{html.text(TEXT[lang]['compliance_waiting'].format(windows=windows))}</p>"


def _holds_table(report: DpoReport, lang: str) -> str:
    """The register of legal holds. Reasons and requesters stay in the register: free text and
    people's names are not for a report that holds only counts, dates and policy names."""
    t = TEXT[lang]
    if not report.holds:
        return f"<p>{html.text(t['no_holds'])}</p>"
    rows = [
        (
            h.reference,
            h.scope,
            h.category or h.table or "",
            h.items,
            h.created_at.astimezone(report.policy.zone).strftime("%Y-%m-%d") if h.created_at else "",
            h.expires_on.isoformat() if h.expires_on else t["none"],
            t["hold_status"][h.status],
        )
        for h in report.holds
    ]
    return html.table(t["holds_cols"], rows)


def _requests_table(report: DpoReport, lang: str) -> str:
    t = TEXT[lang]
    if not report.open_requests:
        return f"<p>{html.text(t['no_requests'])}</p>"
    rows = [
        (
            d.reference,
            d.request_type,
            d.due.isoformat(),
            html.Raw(f"<span class='ko'>{t['overdue']} ({d.days_left})</span>") if d.days_left < 0 else d.days_left,
        )
        for d in report.open_requests
    ]
    return html.table(t["requests_cols"], rows)


def campaigns_section(policy: RetentionPolicy, campaigns: Campaigns, lang: str) -> str:
    """One row per category with ``reconsent``: its asks and their outcome (counts only), and
    the refused tokens no such category can be told for; or why there is nothing to count."""
    t = TEXT[lang]
    if not any(category.reconsent for category in policy.categories.values()):
        return f"<p>{html.text(t['no_reconsent'])}</p>"
    if not campaigns.started:
        return f"<p>{html.text(t['no_campaign'])}</p>"
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
    unattributed = (
        f"<p>{html.text(t['unattributed'].format(reasons=_reasons(campaigns.unattributed, lang)))}</p>"
        if campaigns.unattributed
        else ""
    )
    return html.table(t["campaigns_cols"], rows) + unattributed


def _reasons(refused: dict[str, int], lang: str) -> str:
    """Refused tokens by reason, in words: ``falsifié 2, expiré 1``."""
    names = TEXT[lang]["refusal_reasons"]
    return ", ".join(f"{names.get(reason, reason)} {count}" for reason, count in sorted(refused.items()))


def _findings_table(report: DpoReport, lang: str) -> str:
    t = TEXT[lang]
    if not report.findings:
        return f"<p>{html.text(t['no_findings'])}</p>"
    labels = {key: _label(c, lang) for key, c in report.policy.categories.items()}
    rows = [
        (labels.get(key, key), f.get("missing_start_date", 0), f.get("failed_check", 0))
        for key, f in report.findings.items()
    ]
    return html.table(t["findings_cols"], rows)


def _chain_paragraph(chain: ChainStatus, lang: str) -> str:
    t = TEXT[lang]
    if chain.intact:
        return f"<p class='ok'>{html.text(t['chain_ok'].format(n=chain.events, c=chain.certificates))}</p>"
    if not chain.chain_holds:
        text = t["chain_ko"].format(at=chain.broken_at, reason=chain.reason, n=chain.events)
    elif chain.mismatches and not chain.events:
        text = t["chain_emptied" if chain.exists else "chain_removed"].format(first=chain.mismatches[0])
    elif chain.mismatches:
        text = t["chain_rewritten"].format(m=len(chain.mismatches), first=chain.mismatches[0])
    elif chain.unverified and chain.reports_missing:
        text = t["chain_no_reports"].format(n=chain.events, dir=chain.reports)
    elif chain.unverified:  # the certificates and anchors all name another log
        text = t["chain_unverified"].format(
            n=chain.events, o=chain.other_logs, dir=chain.reports, other=chain.other_log
        )
    else:  # the same order of verdicts as ChainStatus.sentence
        text = t["chain_missing_certificates"].format(
            m=len(chain.missing_certificates), dir=chain.reports, first=chain.missing_certificates[0]
        )
    return f"<p class='ko'>{html.text(text)}</p>"


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

"""The DPO's periodic report: the schedule, what was done, and whether it holds now.

Four questions a regulator asks, answered from two sources:

- *What is your schedule?* The policy, laid out like the charter's table (one row per
  category, same columns), so the two can be compared line by line.
- *What did you do?* Rows archived, destroyed and anonymised per category and month,
  read from the audit log (executed runs only, not dry runs).
- *Does it hold today?* Counted now in the database, not taken from the log: per table,
  the oldest active record's age against the allowed age, rows overdue, rows that cannot
  be aged (missing start date), rows held open, expired rows left in the archive.
- *Can the record be trusted?* The audit log's hash chain, verified while building.

The report holds counts, dates and names from the policy - never a row's content.
It renders in French (default) or English, as one self-contained HTML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import and_, func, inspect, not_, select
from sqlalchemy.engine import Connection

from . import audit, charts, html
from .audit import ChainReport
from .catalog import TableNode, archive_exists, open_category
from .clock import local_date
from .holds import HoldsInForce, HoldView, hold_tables, holds_in_force, list_holds
from .policy import Category, RetentionPolicy
from .report import reports_dir, safe_name
from .requests import Deadline, open_deadlines, register_table
from .subjects import SubjectKey
from .target import Target

LANGUAGES = ("fr", "en")
_VOLUME_ACTIONS = ("archive", "delete", "anonymize")


@dataclass(frozen=True)
class Compliance:
    """One root table's state today."""

    category: str
    table: str
    oldest_start: date | None
    limit_date: date | None     # oldest_start + active period: the day it had to leave the active base
    overdue: int                # active rows past their active period now
    missing_start: int          # rows that cannot be aged (defects, or ongoing by design)
    held_open: int              # rows past their date kept active by an open related row
    expired_in_archive: int     # archive rows past retention_until, not yet destroyed
    legal_hold: int = 0         # rows past their date (active or archive) that a legal hold keeps

    @property
    def compliant(self) -> bool:
        return self.overdue == 0 and self.expired_in_archive == 0


@dataclass
class DpoReport:
    policy: RetentionPolicy
    period_start: date
    period_end: date
    today: date
    months: list[str]
    volumes: dict[str, dict[str, list[int]]]            # category -> action -> count per month
    compliance: list[Compliance]
    findings: dict[str, dict[str, int]]                 # category -> finding -> count (in the period)
    chain: ChainReport
    open_requests: list[Deadline] = field(default_factory=list)  # the rights-request register, open ones
    holds: list[HoldView] = field(default_factory=list)  # the legal-hold register, every hold and its status
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def build(target: Target, policy: RetentionPolicy, period_start: date, period_end: date, today: date,
          key: SubjectKey | None = None) -> DpoReport:
    """Gather the report's facts: the log for the period, the database for today.

    ``key`` (the subject key) is needed only when a legal hold protects a person."""
    if period_end < period_start:
        raise ValueError(f"the report period ends ({period_end}) before it starts ({period_start})")
    months = _months(period_start, period_end)
    trail = audit.audit_table(target.archive_schema, policy.audit_table)
    with target.read() as conn:
        holds = holds_in_force(conn, hold_tables(target.archive_schema), today, key, target.dialect)
        compliance = [c for category in policy.categories.values()
                      for c in _compliance(conn, target, policy, category, today, holds)]
        logged = audit.table_exists(conn, trail)
        period_events = audit.events(conn, trail, trail.c.as_of >= period_start, trail.c.as_of <= period_end,
                                     trail.c.dry_run.is_(False)) if logged else []
        chain = audit.verify_chain(conn, trail) if logged else ChainReport(0)
        requests = _open_requests(conn, target, policy, today)
        registered = list_holds(conn, target.archive_schema, today)
    return DpoReport(policy, period_start, period_end, today, months, _volumes(policy, period_events, months),
                     compliance, _findings(period_events), chain, requests, registered)


def _open_requests(conn: Connection, target: Target, policy: RetentionPolicy, today: date) -> list[Deadline]:
    """Every open request in the register with its deadline (none without a register)."""
    if not policy.rights_register:
        return []
    register = register_table(target.source_schema(policy.source_schema), policy.rights_register)
    if not inspect(conn).has_table(register.name, schema=register.schema):
        return []
    return open_deadlines(conn, register, today, within_days=100_000)


def _months(start: date, end: date) -> list[str]:
    months, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _volumes(policy: RetentionPolicy, events: list[dict], months: list[str]) -> dict[str, dict[str, list[int]]]:
    """Records (root-table rows) archived, destroyed and anonymised, per category and month."""
    volumes = {key: {action: [0] * len(months) for action in _VOLUME_ACTIONS} for key in policy.categories}
    roots = {key: {t.table for t in category.tables} for key, category in policy.categories.items()}
    for event in events:
        category = event["category"]
        if event["action"] in _VOLUME_ACTIONS and category in volumes and event["table_name"] in roots[category]:
            volumes[category][event["action"]][months.index(event["as_of"].strftime("%Y-%m"))] += event["row_count"]
    return volumes


def _findings(events: list[dict]) -> dict[str, dict[str, int]]:
    """Per category: defects reported and checks that failed during the period."""
    found: dict[str, dict[str, int]] = {}
    for event in events:
        kind = ("missing_start_date" if event["action"] == "quality_finding"
                else "failed_check" if event["action"] == "validation" and not event["details"].get("success")
                else None)
        if kind:
            counts = found.setdefault(event["category"], {})
            counts[kind] = counts.get(kind, 0) + (event["row_count"] if kind == "missing_start_date" else 1)
    return found


def _compliance(conn: Connection, target: Target, policy: RetentionPolicy, category: Category,
                today: date, holds: HoldsInForce) -> list[Compliance]:
    nodes = open_category(conn, policy, category, target.source_schema, target.archive_schema, target.dialect)
    return [_table_compliance(conn, target, policy, category, root, today, holds) for root in nodes]


def _table_compliance(conn: Connection, target: Target, policy: RetentionPolicy, category: Category,
                      root: TableNode, today: date, holds: HoldsInForce) -> Compliance:
    """Rows a legal hold keeps past their date are counted apart: the hold outranks the schedule."""
    day = local_date(root.start, target.dialect, policy.zones)
    due = root.due(category.active_period, today, policy.zones)
    on_hold = holds.held(root, "source", category.key)
    oldest, overdue, missing, held, legal = conn.execute(select(
        func.min(day).filter(root.ageable()),
        func.count().filter(and_(due, not_(on_hold))),
        func.count().filter(root.missing_start()),
        func.count().filter(root.held_open()),
        func.count().filter(and_(due, on_hold)),
    ).select_from(root.source)).one()
    oldest = date.fromisoformat(oldest) if isinstance(oldest, str) else oldest
    expired = 0
    if category.has_archive and archive_exists(conn, root):
        archived_hold = holds.held(root, "archive", category.key)
        expired, legal_archived = conn.execute(select(
            func.count().filter(and_(root.expired(today), not_(archived_hold))),
            func.count().filter(and_(root.expired(today), archived_hold)),
        ).select_from(root.archive)).one()
        legal += legal_archived
    return Compliance(category.key, root.name, oldest, category.active_period.add_to(oldest) if oldest else None,
                      overdue, missing, held, expired, legal)


# -- rendering ------------------------------------------------------------------------------

TEXT = {
    "fr": {
        "title": "Rapport de conservation des données personnelles",
        "intro": "Période du {start} au {end} · politique version {version} · état calculé le {today} "
                 "dans la base, pas dans le journal.",
        "schedule": "1. Durées de conservation (telles que configurées)",
        "schedule_cols": ("Catégorie", "Finalité (charte)", "Base active : durée, à compter de",
                          "Archive intermédiaire", "Finalité de l'archive / base légale", "Sort final"),
        "volumes": "2. Volumes traités par mois",
        "volume_cols": ("Catégorie", "Mois", "Archivés", "Détruits", "Anonymisés"),
        "series": ("archivés", "détruits", "anonymisés"),
        "compliance": "3. Conformité aujourd'hui",
        "compliance_cols": ("Catégorie", "Table", "Plus ancien enregistrement actif", "Devait quitter la base "
                            "active le", "En retard", "Sans date de départ", "Maintenus (lien ouvert)",
                            "Archive échue non détruite", "Gel juridique", "Statut"),
        "ok": "conforme", "ko": "NON CONFORME",
        "holds": "4. Gels juridiques et demandes de droits",
        "holds_text": "Un enregistrement sous gel juridique n'est ni archivé, ni détruit, ni anonymisé, par le "
                      "calendrier comme par une demande d'effacement, jusqu'à la levée ou l'échéance du gel.",
        "holds_cols": ("Référence", "Portée", "Catégorie / table", "Éléments", "Créé le",
                       "Échéance", "Statut"),
        "no_holds": "Aucun gel juridique enregistré.",
        "hold_status": {"in_force": "en vigueur", "lifted": "levé", "expired": "échu"},
        "requests_cols": ("Référence", "Type", "Échéance", "Jours restants"),
        "no_requests": "Aucune demande de droits ouverte.",
        "overdue": "EN RETARD",
        "findings": "5. Constats de qualité des données sur la période",
        "findings_cols": ("Catégorie", "Enregistrements sans date de départ signalés", "Contrôles en échec"),
        "no_findings": "Aucun constat sur la période.",
        "chain": "6. Intégrité du journal d'audit",
        "chain_ok": "Chaîne de hachage intacte : {n} événements vérifiés.",
        "chain_ko": "CHAÎNE ROMPUE à l'événement {at} : {reason} ({n} événements lus).",
        "none": "néant", "no_archive": "aucune", "delete": "destruction", "anonymize": "anonymisation",
        "until_end": "jusqu'à",
        "footer": "Généré le {at}. Ce rapport ne contient que des nombres, des dates et les noms de la politique.",
    },
    "en": {
        "title": "Personal data retention report",
        "intro": "Period {start} to {end} · policy version {version} · state counted on {today} "
                 "in the database, not taken from the log.",
        "schedule": "1. Retention schedule (as configured)",
        "schedule_cols": ("Category", "Purpose (charter)", "Active base: period, counted from",
                          "Intermediate archive", "Purpose of the archive / legal basis", "End of life"),
        "volumes": "2. Volumes handled per month",
        "volume_cols": ("Category", "Month", "Archived", "Destroyed", "Anonymised"),
        "series": ("archived", "destroyed", "anonymised"),
        "compliance": "3. Compliance today",
        "compliance_cols": ("Category", "Table", "Oldest active record", "Had to leave the active base on",
                            "Overdue", "No start date", "Held (open link)", "Expired in archive", "Legal hold",
                            "Status"),
        "ok": "compliant", "ko": "NOT COMPLIANT",
        "holds": "4. Legal holds and rights requests",
        "holds_text": "A record under a legal hold is neither archived, destroyed nor anonymised - by the "
                      "schedule or by an erasure request - until the hold is lifted or expires.",
        "holds_cols": ("Reference", "Scope", "Category / table", "Items", "Created",
                       "Expires", "Status"),
        "no_holds": "No legal hold recorded.",
        "hold_status": {"in_force": "in force", "lifted": "lifted", "expired": "expired"},
        "requests_cols": ("Reference", "Type", "Due", "Days left"),
        "no_requests": "No open rights request.",
        "overdue": "OVERDUE",
        "findings": "5. Data-quality findings in the period",
        "findings_cols": ("Category", "Records without a start date reported", "Failed checks"),
        "no_findings": "No finding in the period.",
        "chain": "6. Audit log integrity",
        "chain_ok": "Hash chain intact: {n} events verified.",
        "chain_ko": "CHAIN BROKEN at event {at}: {reason} ({n} events read).",
        "none": "none", "no_archive": "none", "delete": "deletion", "anonymize": "anonymisation",
        "until_end": "until",
        "footer": "Generated {at}. This report holds only counts, dates and names from the policy.",
    },
}


def render(report: DpoReport, lang: str = "fr") -> str:
    """The report as one self-contained HTML page, in ``lang`` (``fr`` or ``en``)."""
    if lang not in LANGUAGES:
        raise ValueError(f"language {lang!r}: use one of {', '.join(LANGUAGES)}")
    t, policy = TEXT[lang], report.policy
    intro = t["intro"].format(start=report.period_start, end=report.period_end, version=policy.version,
                              today=report.today)
    body = [f"<p>{html.text(intro)}</p>",
            f"<h2>{t['schedule']}</h2>", schedule_table(policy, lang),
            f"<h2>{t['volumes']}</h2>", _volumes_section(report, lang),
            f"<h2>{t['compliance']}</h2>", _compliance_table(report, lang),
            f"<h2>{t['holds']}</h2><p>{html.text(t['holds_text'])}</p>{_holds_table(report, lang)}"
            f"{_requests_table(report, lang)}",
            f"<h2>{t['findings']}</h2>", _findings_table(report, lang),
            f"<h2>{t['chain']}</h2>", _chain_paragraph(report.chain, lang),
            f"<p><small>{html.text(t['footer'].format(at=report.generated_at.strftime('%Y-%m-%d %H:%M UTC')))}"
            "</small></p>"]
    return html.page(t["title"], "\n".join(body), lang=lang)


def _label(category: Category, lang: str) -> str:
    return getattr(category.label, lang)


def schedule_table(policy: RetentionPolicy, lang: str) -> str:
    t = TEXT[lang]
    rows = []
    for category in policy.categories.values():
        starts = ", ".join(sorted({table.start_event.describe() for table in category.tables}))
        counted = getattr(category.counted_from, lang) if category.counted_from else starts
        active = (f"{t['until_end']} {counted}" if category.active_period.is_zero
                  else f"{category.active_period.in_words(lang)}, {counted}")
        archive = category.archive_or_zero.in_words(lang) if category.has_archive else t["no_archive"]
        basis = f"{category.archive_purpose} / {category.legal_basis}" if category.archive_purpose \
            else category.legal_basis
        rows.append((html.Raw(f"<code>{html.text(category.key)}</code>"), _label(category, lang),
                     html.Raw(f"{html.text(active)}<br><small><code>{html.text(starts)}</code></small>"),
                     archive, basis, t[category.end_action]))
    return html.table(t["schedule_cols"], rows)


def _volumes_section(report: DpoReport, lang: str) -> str:
    t = TEXT[lang]
    parts, rows = [], []
    for key, category in report.policy.categories.items():
        by_action = report.volumes[key]
        series = dict(zip(t["series"], (by_action[a] for a in _VOLUME_ACTIONS), strict=True))
        parts.append(f"<h3>{html.text(_label(category, lang))}</h3>")
        parts.append(charts.stacked_bars(report.months, series, title=_label(category, lang), height=150))
        rows += [(_label(category, lang), month, *(by_action[a][i] for a in _VOLUME_ACTIONS))
                 for i, month in enumerate(report.months) if any(by_action[a][i] for a in _VOLUME_ACTIONS)]
    return "".join(parts) + html.table(t["volume_cols"], rows)


def _compliance_table(report: DpoReport, lang: str) -> str:
    t = TEXT[lang]
    labels = {key: _label(c, lang) for key, c in report.policy.categories.items()}
    rows = [(labels[c.category], c.table, c.oldest_start.isoformat() if c.oldest_start else t["none"],
             c.limit_date.isoformat() if c.limit_date else "", c.overdue, c.missing_start, c.held_open,
             c.expired_in_archive, c.legal_hold, html.Raw(f"<span class='ok'>{t['ok']}</span>" if c.compliant
                                            else f"<span class='ko'>{t['ko']}</span>"))
            for c in report.compliance]
    return html.table(t["compliance_cols"], rows, row_class=lambda r: "" if r[4] == r[7] == 0 else "ko")


def _holds_table(report: DpoReport, lang: str) -> str:
    """The register of legal holds. Reasons and requesters stay in the register: free text and
    people's names are not for a report that holds only counts, dates and policy names."""
    t = TEXT[lang]
    if not report.holds:
        return f"<p>{html.text(t['no_holds'])}</p>"
    rows = [(h.reference, h.scope, h.category or h.table or "", h.items,
             h.created_at.strftime("%Y-%m-%d") if h.created_at else "",
             h.expires_on.isoformat() if h.expires_on else t["none"], t["hold_status"][h.status])
            for h in report.holds]
    return html.table(t["holds_cols"], rows)


def _requests_table(report: DpoReport, lang: str) -> str:
    t = TEXT[lang]
    if not report.open_requests:
        return f"<p>{html.text(t['no_requests'])}</p>"
    rows = [(d.reference, d.request_type, d.due.isoformat(),
             html.Raw(f"<span class='ko'>{t['overdue']} ({d.days_left})</span>") if d.days_left < 0 else d.days_left)
            for d in report.open_requests]
    return html.table(t["requests_cols"], rows)


def _findings_table(report: DpoReport, lang: str) -> str:
    t = TEXT[lang]
    if not report.findings:
        return f"<p>{html.text(t['no_findings'])}</p>"
    labels = {key: _label(c, lang) for key, c in report.policy.categories.items()}
    rows = [(labels.get(key, key), f.get("missing_start_date", 0), f.get("failed_check", 0))
            for key, f in report.findings.items()]
    return html.table(t["findings_cols"], rows)


def _chain_paragraph(chain: ChainReport, lang: str) -> str:
    t = TEXT[lang]
    if chain.intact:
        return f"<p class='ok'>{html.text(t['chain_ok'].format(n=chain.events))}</p>"
    return f"<p class='ko'>{html.text(t['chain_ko'].format(at=chain.broken_at, reason=chain.reason, n=chain.events))}</p>"


def write(report: DpoReport, lang: str = "fr") -> Path:
    """Render and write under ``reports/dpo/``; return the file's path."""
    name = f"retention-dpo-report_{report.period_start}_{report.period_end}.{lang}.html"
    path = reports_dir() / "dpo" / safe_name(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report, lang), encoding="utf-8")
    return path


def previous_month(day: date) -> tuple[date, date]:
    """The calendar month before ``day``'s: what the monthly run reports on."""
    first_this = day.replace(day=1)
    last_previous = date.fromordinal(first_this.toordinal() - 1)
    return last_previous.replace(day=1), last_previous

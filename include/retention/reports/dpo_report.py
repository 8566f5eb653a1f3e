"""The DPO's periodic report: the schedule, what was done, and whether it holds now.

Four questions a regulator asks, answered from two sources:

- *What is your schedule?* The policy, laid out like the charter's table (one row per
  category, same columns), so the two can be compared line by line.
- *What did you do?* Records handled per category, table and month, read from the audit
  log (executed runs only, not dry runs), each counted once: archived and kept, archived
  then destroyed or anonymised by the same run, destroyed or anonymised from the archive
  (archived by an earlier run), destroyed directly in the active base (no archive).
- *Does it hold today?* Counted now in the database, not taken from the log: per table,
  the oldest active record's age against the allowed age, rows overdue, rows that cannot
  be aged (missing start date), rows held open, expired rows left in the archive.
- *Can the record be trusted?* The audit log's hash chain, verified while building.

The report holds counts, dates and names from the policy - never a row's content.
It renders in French (default) or English, as one self-contained HTML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypedDict

from sqlalchemy import and_, func, inspect, not_, or_, select
from sqlalchemy.engine import Connection

from include.retention.database import store
from include.retention.database.identity import SubjectKey
from include.retention.database.reflect import Side, TableNode, archive_exists, open_category
from include.retention.database.store import hold_tables, register_table
from include.retention.database.target import Target
from include.retention.dates.clock import is_due, local_date
from include.retention.dates.periods import Period
from include.retention.errors import RetentionError
from include.retention.files import reports_dir, safe_name
from include.retention.policy.model import Category, RetentionPolicy
from include.retention.records import audit
from include.retention.records.held_rows import HoldsInForce, holds_in_force
from include.retention.records.holds import HoldView, list_holds
from include.retention.reports import certificate, charts, html
from include.retention.reports.certificate import ChainStatus
from include.retention.rights.requests import Deadline, open_deadlines
from include.retention.schedule import dependants

LANGUAGES = ("fr", "en")
_VOLUME_ACTIONS = ("archive", "delete", "anonymize")
_VERB = {"delete": "deleted", "anonymize": "anonymized"}

# What happened to a record in one run, one of these and only one: the report's segments.
SEGMENTS = (
    "archived_kept",
    "deleted_same_run",
    "anonymized_same_run",
    "deleted_from_archive",
    "anonymized_from_archive",
    "deleted_directly",
)


@dataclass(frozen=True)
class Volume:
    """Records of one root table handled by the executed runs of one month.

    A run's audit events count its rows per step: the archive step's ``archive`` events, the
    end-of-life step's ``delete``/``anonymize`` events, whose ``details.same_run`` says how
    many of those rows the same run had just archived. Adding the steps would count those
    rows twice; here each of a run's rows is in exactly one segment. A row archived by one
    run and destroyed by a later one is in each run's count (two operations, two runs).
    """

    category: str
    table: str
    month: str  # YYYY-MM: the month of the runs' date (as_of)
    archived_kept: int = 0  # archived, and still in the archive after the run
    deleted_same_run: int = 0  # archived, then destroyed by the same run
    anonymized_same_run: int = 0  # archived, then anonymised by the same run
    deleted_from_archive: int = 0  # destroyed from the archive, archived by an earlier run
    anonymized_from_archive: int = 0  # anonymised in the archive, archived by an earlier run
    deleted_directly: int = 0  # destroyed in the active base: a category without archive

    @property
    def archived(self) -> int:
        """Every row the month's runs archived (kept or not)."""
        return self.archived_kept + self.deleted_same_run + self.anonymized_same_run

    @property
    def ended_same_run(self) -> int:
        """Of the archived rows, those destroyed or anonymised by the run that archived them."""
        return self.deleted_same_run + self.anonymized_same_run

    @property
    def ended_from_archive(self) -> int:
        return self.deleted_from_archive + self.anonymized_from_archive

    @property
    def rows(self) -> int:
        """Records handled, each once: the segments do not overlap."""
        return sum(getattr(self, name) for name in SEGMENTS)

    def plus(self, other: Volume) -> Volume:
        return Volume(
            self.category,
            self.table,
            self.month,
            **{name: getattr(self, name) + getattr(other, name) for name in SEGMENTS},
        )


@dataclass(frozen=True)
class Compliance:
    """One root table's state today."""

    category: str
    table: str
    oldest_start: date | None
    limit_date: date | None  # oldest_start + active period: the day it had to leave the active base
    overdue: int  # active rows past their active period now
    missing_start: int  # rows that cannot be aged (defects, or ongoing by design)
    held_open: int  # rows past their date kept active by an open related row
    expired_in_archive: int  # archive rows past retention_until, not yet destroyed
    legal_hold: int = 0  # rows past their date (active or archive) that a legal hold keeps

    @property
    def compliant(self) -> bool:
        return self.overdue == 0 and self.expired_in_archive == 0


@dataclass
class DpoReport:
    policy: RetentionPolicy
    period_start: date
    period_end: date
    today: date
    months: list[str]  # YYYY-MM, every month the period touches
    volumes: list[Volume]  # per category, root table and month (non-empty only)
    compliance: list[Compliance]
    findings: dict[str, dict[str, int]]  # category -> finding -> count (in the period)
    chain: ChainStatus
    open_requests: list[Deadline] = field(default_factory=list)  # the rights-request register, open ones
    holds: list[HoldView] = field(default_factory=list)  # the legal-hold register, every hold and its status
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def volume(self, category: str, month: str, table: str | None = None) -> Volume:
        """The category's records handled in ``month``: one root table, or all of them."""
        total = Volume(category, table or "*", month)
        for volume in self.volumes:
            if (volume.category, volume.month) == (category, month) and table in (None, volume.table):
                total = total.plus(volume)
        return total


def build(
    target: Target,
    policy: RetentionPolicy,
    period_start: date,
    period_end: date,
    today: date,
    key: SubjectKey | None = None,
) -> DpoReport:
    """Gather the report's facts: the log for the period, the database for today.

    ``key`` (the subject key) is needed only when a legal hold protects a person."""
    check_period(period_start, period_end, today)
    months = _months(period_start, period_end)
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    with target.read() as conn:
        holds = holds_in_force(conn, hold_tables(target.archive_schema), today, key, target.dialect)
        compliance = [
            c
            for category in policy.categories.values()
            for c in _compliance(conn, target, policy, category, today, holds)
        ]
        logged = store.table_exists(conn, trail)
        period_events = (
            audit.events(
                conn, trail, trail.c.as_of >= period_start, trail.c.as_of <= period_end, trail.c.dry_run.is_(False)
            )
            if logged
            else []
        )
        # The same verdict as retention_audit_verify and the Retention view (chain and certificates).
        chain = certificate.chain_status(conn, trail)
        requests = _open_requests(conn, target, policy, today)
        registered = list_holds(conn, target.archive_schema, today)
    return DpoReport(
        policy,
        period_start,
        period_end,
        today,
        months,
        _volumes(policy, period_events),
        compliance,
        _findings(period_events),
        chain,
        requests,
        registered,
    )


# The bounds of a report's period. Ten years: the charter's longest retention (accounting
# records, Code de commerce art. L123-22), so no record the report counts outlives it; it
# renders as 120 monthly bars. No earlier than 2000: the log's dates are the days its runs
# were for, and a year 0001 or 1026 is a typing mistake (0001-9999 wrote 49 MB). At most a
# year after today: "this year" can be asked on any day of it.
MAX_PERIOD = Period(years=10)
EARLIEST_PERIOD_START = date(2000, 1, 1)
LATEST_PERIOD_END = Period(years=1)


class ReportPeriodError(RetentionError, ValueError):
    """A report period that cannot be meant: reversed, before 2000, over 10 years, or far ahead."""


def check_period(start: date, end: date, today: date) -> None:
    """Refuse an absurd period before anything is read, naming the period and the bound."""
    period = f"the report period {start} to {end}"
    latest_end = _plus(LATEST_PERIOD_END, today)
    if end < start:
        raise ReportPeriodError(f"the report period ends ({end}) before it starts ({start})")
    if start < EARLIEST_PERIOD_START:
        raise ReportPeriodError(
            f"{period} starts before {EARLIEST_PERIOD_START}: no run of the log is dated earlier; check the year"
        )
    if end > latest_end:
        raise ReportPeriodError(f"{period} ends after {latest_end}, a year after today ({today}); check the year")
    if end >= _plus(MAX_PERIOD, start):
        raise ReportPeriodError(
            f"{period} is longer than 10 years ({MAX_PERIOD}), the longest retention of the "
            "charter; ask for several reports"
        )


def _plus(period: Period, day: date) -> date:
    """``day`` + ``period``, or the last day of the calendar when that is past year 9999."""
    try:
        return period.add_to(day)
    except (OverflowError, ValueError):
        return date.max


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


def _volumes(policy: RetentionPolicy, events: list[dict]) -> list[Volume]:
    """Records (root-table rows) handled per category, table and month, each once per run.

    Child rows follow their parent and are not counted apart. Events are grouped by run
    first: a run cannot have destroyed more of the rows it archived than it archived, and a
    log that says so is refused rather than drawn."""
    by_run: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for event in events:
        category = policy.categories.get(event["category"])
        if (
            event["action"] not in _VOLUME_ACTIONS
            or category is None
            or event["table_name"] not in {t.table for t in category.tables}
        ):
            continue
        run_key = (event["run_id"], category.key, event["table_name"], _month_of(event["as_of"]))
        _count_event(by_run.setdefault(run_key, dict.fromkeys(("archived", *SEGMENTS), 0)), event, category)
    totals: dict[tuple[str, str, str], Volume] = {}
    for (run_id, category_key, table, month), counts in by_run.items():
        ended = counts["deleted_same_run"] + counts["anonymized_same_run"]
        if ended > counts["archived"]:
            raise RetentionError(
                f"audit log: run {run_id} (category {category_key}, table {table}) destroyed or anonymised "
                f"{ended} rows it archived, but archived {counts['archived']}: the log is inconsistent, "
                "the report would count rows that were never archived"
            )
        counts["archived_kept"] = counts["archived"] - ended
        volume = Volume(category_key, table, month, **{name: counts[name] for name in SEGMENTS})
        key = (category_key, table, month)
        totals[key] = totals[key].plus(volume) if key in totals else volume
    return [totals[key] for key in sorted(totals)]


def _count_event(counts: dict[str, int], event: dict, category: Category) -> None:
    """Add one event's rows to its run's counts, in the segment each row belongs to."""
    rows = event["row_count"]
    if event["action"] == "archive":
        counts["archived"] += rows
        return
    verb = _VERB[event["action"]]
    same_run = int(event["details"].get("same_run", 0))  # events before same_run existed: none
    if not 0 <= same_run <= rows:
        raise RetentionError(
            f"audit log: event {event['event_id']} ({event['action']} of {event['table_name']}) "
            f"says {same_run} of its {rows} rows were archived by the same run"
        )
    counts[f"{verb}_same_run"] += same_run
    # The rest was archived by an earlier run - or, without an archive, never archived at all.
    # Anonymised rows are always in the archive (a policy cannot anonymise without one).
    direct = not category.has_archive and verb == "deleted"
    counts["deleted_directly" if direct else f"{verb}_from_archive"] += rows - same_run


def _month_of(as_of: object) -> str:
    """``YYYY-MM`` of a run's date, whether the driver returns a date, a datetime or ISO text."""
    return str(as_of)[:7]


def _findings(events: list[dict]) -> dict[str, dict[str, int]]:
    """Per category: defects reported and checks that failed during the period."""
    found: dict[str, dict[str, int]] = {}
    for event in events:
        kind = (
            "missing_start_date"
            if event["action"] == "quality_finding"
            else "failed_check"
            if event["action"] == "validation" and not event["details"].get("success")
            else None
        )
        if kind:
            counts = found.setdefault(event["category"], {})
            counts[kind] = counts.get(kind, 0) + (event["row_count"] if kind == "missing_start_date" else 1)
    return found


def _compliance(
    conn: Connection, target: Target, policy: RetentionPolicy, category: Category, today: date, holds: HoldsInForce
) -> list[Compliance]:
    nodes = open_category(conn, policy, category, target.source_schema, target.archive_schema, target.dialect)
    return [_table_compliance(conn, target, policy, category, root, today, holds) for root in nodes]


def _table_compliance(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    category: Category,
    root: TableNode,
    today: date,
    holds: HoldsInForce,
) -> Compliance:
    """Rows a legal hold keeps past their date are counted apart: the hold outranks the schedule."""
    day = local_date(root.start, target.dialect, policy.zones)
    # Past its period and started before today, both in the company's zone: a row whose
    # clock started today (a request closed this morning, zero active period) is due today
    # and tonight's run moves it - it is not overdue before a run could have moved it.
    started_before_today = is_due(root.start, Period(), today - timedelta(days=1), policy.zones)
    if root.release is not None:
        # Released by its parent's event: overdue once that event (plus the period) was
        # reached before today, whatever its own start (it may have none).
        started_before_today = root.due(category.active_period, today - timedelta(days=1), policy.zones)
    due = and_(root.due(category.active_period, today, policy.zones), started_before_today)
    on_hold = holds.held(root, Side.ACTIVE, category.key)
    if root.release is not None and holds.any:  # a held customer keeps its released invoices active
        on_hold = or_(on_hold, dependants.held_through_parent(conn, policy, target, root, Side.ACTIVE, holds))
    oldest, overdue, missing, held, legal = conn.execute(
        select(
            func.min(day).filter(root.ageable()),
            func.count().filter(and_(due, not_(on_hold))),
            func.count().filter(root.missing_start()),
            func.count().filter(root.held_open()),
            func.count().filter(and_(due, on_hold)),
        ).select_from(root.source)
    ).one()
    oldest = date.fromisoformat(oldest) if isinstance(oldest, str) else oldest
    expired = 0
    if category.has_archive and archive_exists(conn, root):
        # As the purge decides: a hold on the row, on a dependant of it, or on the parent it
        # depends on protects it; a retained dependant that stays keeps its parent lawfully.
        archived_hold = or_(
            dependants.held(holds, root, Side.ARCHIVE, category.key),
            dependants.held_through_parent(conn, policy, target, root, Side.ARCHIVE, holds),
        )
        past = and_(root.expired(today), not_(dependants.kept_by_any(root, today, holds)))
        expired, legal_archived = conn.execute(
            select(
                func.count().filter(and_(past, not_(archived_hold))),
                func.count().filter(and_(past, archived_hold)),
            ).select_from(root.archive)
        ).one()
        legal += legal_archived
    return Compliance(
        category.key,
        root.name,
        oldest,
        category.active_period.add_to(oldest) if oldest else None,
        overdue,
        missing,
        held,
        expired,
        legal,
    )


# -- rendering ------------------------------------------------------------------------------

# The report's words in one language: headings, sentences (``{name}`` filled by ``format``),
# column headers, and names per segment, per hold status and per end action. The functional
# form because two keys, ``from`` and ``or``, are Python keywords.
ReportTexts = TypedDict(
    "ReportTexts",
    {
        "title": str,
        "intro": str,
        "schedule": str,
        "schedule_cols": tuple[str, ...],
        "volumes": str,
        "volumes_text": str,
        "chart_title": str,
        "volume_cols": tuple[str, ...],
        "segments": dict[str, str],
        "no_volume": str,
        "compliance": str,
        "compliance_cols": tuple[str, ...],
        "ok": str,
        "ko": str,
        "holds": str,
        "holds_text": str,
        "holds_cols": tuple[str, ...],
        "no_holds": str,
        "hold_status": dict[str, str],
        "requests_cols": tuple[str, ...],
        "no_requests": str,
        "overdue": str,
        "findings": str,
        "findings_cols": tuple[str, ...],
        "no_findings": str,
        "chain": str,
        "chain_ok": str,
        "chain_ko": str,
        "chain_rewritten": str,
        "chain_unverified": str,
        "chain_emptied": str,
        "chain_removed": str,
        "chain_no_reports": str,
        "chain_missing_certificates": str,
        "none": str,
        "no_archive": str,
        "delete": str,
        "anonymize": str,
        "until_end": str,
        "from": str,
        "or": str,
        "after": str,
        "footer": str,
    },
)

TEXT: dict[str, ReportTexts] = {
    "fr": {
        "title": "Rapport de conservation des données personnelles",
        "intro": "Période couverte : {period} (passages datés de cette période, d'après le journal d'audit) · "
        "politique version {version} · état compté le {today} dans la base, pas dans le journal.",
        "schedule": "1. Durées de conservation (telles que configurées)",
        "schedule_cols": (
            "Catégorie",
            "Finalité (charte)",
            "Base active : durée, à compter de",
            "Archive intermédiaire",
            "Finalité de l'archive / base légale",
            "Sort final",
        ),
        "volumes": "2. Enregistrements traités par mois",
        "volumes_text": "Enregistrements des tables principales de chaque catégorie (leurs lignes liées les "
        "suivent), traités par les passages exécutés (pas les simulations). Un passage compte "
        "chaque enregistrement une seule fois : archivé et conservé, ou archivé puis détruit "
        "(ou anonymisé) par ce même passage, ou détruit depuis l'archive où un passage antérieur "
        "l'avait mis, ou détruit directement dans la base active pour une catégorie sans archive. "
        "Un enregistrement archivé par un passage puis détruit par un passage ultérieur compte "
        "pour chacun des deux.",
        "chart_title": "{label} : enregistrements traités par les passages {during}, chacun compté une fois",
        "volume_cols": (
            "Catégorie",
            "Table",
            "Mois",
            "Archivés",
            "dont détruits ou anonymisés dans le même passage",
            "Détruits ou anonymisés depuis l'archive (archivés auparavant)",
            "Détruits directement dans la base active (sans archive)",
            "Enregistrements traités (chacun une fois)",
        ),
        "segments": {
            "archived_kept": "archivés et conservés",
            "deleted_same_run": "archivés puis détruits dans le même passage",
            "anonymized_same_run": "archivés puis anonymisés dans le même passage",
            "deleted_from_archive": "détruits depuis l'archive (archivés lors d'un passage antérieur)",
            "anonymized_from_archive": "anonymisés dans l'archive (archivés lors d'un passage antérieur)",
            "deleted_directly": "détruits directement dans la base active",
        },
        "no_volume": "Aucun enregistrement traité sur la période.",
        "compliance": "3. Conformité aujourd'hui",
        "compliance_cols": (
            "Catégorie",
            "Table",
            "Plus ancien enregistrement actif",
            "Devait quitter la base active le",
            "En retard",
            "Sans date de départ",
            "Maintenus (lien ouvert)",
            "Archive échue non détruite",
            "Gel juridique",
            "Statut",
        ),
        "ok": "conforme",
        "ko": "NON CONFORME",
        "holds": "4. Gels juridiques et demandes de droits",
        "holds_text": "Un enregistrement sous gel juridique n'est ni archivé, ni détruit, ni anonymisé, par le "
        "calendrier comme par une demande d'effacement, jusqu'à la levée ou l'échéance du gel.",
        "holds_cols": ("Référence", "Portée", "Catégorie / table", "Éléments", "Créé le", "Échéance", "Statut"),
        "no_holds": "Aucun gel juridique enregistré.",
        "hold_status": {"in_force": "en vigueur", "lifted": "levé", "expired": "échu"},
        "requests_cols": ("Référence", "Type", "Échéance", "Jours restants"),
        "no_requests": "Aucune demande de droits ouverte.",
        "overdue": "EN RETARD",
        "findings": "5. Constats de qualité des données sur la période",
        "findings_cols": ("Catégorie", "Enregistrements sans date de départ signalés", "Contrôles en échec"),
        "no_findings": "Aucun constat sur la période.",
        "chain": "6. Intégrité du journal d'audit",
        "chain_ok": "Chaîne de hachage intacte : {n} événements vérifiés, empreintes de {c} certificat(s) de passage concordantes.",
        "chain_ko": "CHAÎNE ROMPUE à l'événement {at} : {reason} ({n} événements lus).",
        "chain_rewritten": "JOURNAL RÉÉCRIT : il ne correspond plus aux certificats de passage ({m} écart(s), "
        "le premier : {first}) ; sa chaîne est cohérente, il a donc été recalculé.",
        "chain_unverified": "NON VÉRIFIÉ par les certificats de passage : sa chaîne tient ({n} événements), mais "
        "les {o} certificat(s) de {dir} nomment un autre journal ({other}), aucun celui-ci.",
        "chain_emptied": "JOURNAL VIDÉ : {first}",
        "chain_removed": "JOURNAL SUPPRIMÉ : {first}",
        "chain_no_reports": "NON VÉRIFIÉ : le dossier des certificats {dir} est absent (non monté, ou "
        "$RETENTION_REPORTS_DIR erroné) ; sa chaîne tient ({n} événements), mais un journal "
        "recalculé passerait inaperçu.",
        "chain_missing_certificates": "CERTIFICATS MANQUANTS : {m} passage(s) terminé(s) sans certificat de ce "
        "journal dans {dir} ni échec d'écriture consigné (le premier : {first}).",
        "none": "néant",
        "no_archive": "aucune",
        "delete": "destruction",
        "anonymize": "anonymisation",
        "until_end": "jusqu'à",
        "from": "à compter de",
        "or": "ou",
        "after": "après",
        "footer": "Généré le {at}. Ce rapport ne contient que des nombres, des dates et les noms de la politique.",
    },
    "en": {
        "title": "Personal data retention report",
        "intro": "Period covered: {period} (runs dated in this period, from the audit log) · "
        "policy version {version} · state counted on {today} in the database, not taken from the log.",
        "schedule": "1. Retention schedule (as configured)",
        "schedule_cols": (
            "Category",
            "Purpose (charter)",
            "Active base: period, counted from",
            "Intermediate archive",
            "Purpose of the archive / legal basis",
            "End of life",
        ),
        "volumes": "2. Records handled per month",
        "volumes_text": "Records of each category's main tables (their linked rows follow them), handled by "
        "executed runs (not dry runs). A run counts each record once: archived and kept, or "
        "archived then destroyed (or anonymised) by that same run, or destroyed from the archive "
        "where an earlier run had put it, or destroyed directly in the active base for a "
        "category without an archive. A record archived by one run and destroyed by a later "
        "run counts for each of the two.",
        "chart_title": "{label}: records handled by the runs {during}, each counted once",
        "volume_cols": (
            "Category",
            "Table",
            "Month",
            "Archived",
            "of which destroyed or anonymised in the same run",
            "Destroyed or anonymised from the archive (archived before)",
            "Destroyed directly in the active base (no archive)",
            "Records handled (each once)",
        ),
        "segments": {
            "archived_kept": "archived and kept",
            "deleted_same_run": "archived then destroyed in the same run",
            "anonymized_same_run": "archived then anonymised in the same run",
            "deleted_from_archive": "destroyed from the archive (archived by an earlier run)",
            "anonymized_from_archive": "anonymised in the archive (archived by an earlier run)",
            "deleted_directly": "destroyed directly in the active base",
        },
        "no_volume": "No record handled in the period.",
        "compliance": "3. Compliance today",
        "compliance_cols": (
            "Category",
            "Table",
            "Oldest active record",
            "Had to leave the active base on",
            "Overdue",
            "No start date",
            "Held (open link)",
            "Expired in archive",
            "Legal hold",
            "Status",
        ),
        "ok": "compliant",
        "ko": "NOT COMPLIANT",
        "holds": "4. Legal holds and rights requests",
        "holds_text": "A record under a legal hold is neither archived, destroyed nor anonymised - by the "
        "schedule or by an erasure request - until the hold is lifted or expires.",
        "holds_cols": ("Reference", "Scope", "Category / table", "Items", "Created", "Expires", "Status"),
        "no_holds": "No legal hold recorded.",
        "hold_status": {"in_force": "in force", "lifted": "lifted", "expired": "expired"},
        "requests_cols": ("Reference", "Type", "Due", "Days left"),
        "no_requests": "No open rights request.",
        "overdue": "OVERDUE",
        "findings": "5. Data-quality findings in the period",
        "findings_cols": ("Category", "Records without a start date reported", "Failed checks"),
        "no_findings": "No finding in the period.",
        "chain": "6. Audit log integrity",
        "chain_ok": "Hash chain intact: {n} events verified, hashes of {c} run certificate(s) matched.",
        "chain_ko": "CHAIN BROKEN at event {at}: {reason} ({n} events read).",
        "chain_rewritten": "LOG REWRITTEN: it no longer matches the run certificates ({m} mismatch(es), "
        "the first: {first}); its chain is consistent, so it was re-hashed.",
        "chain_unverified": "NOT VERIFIED against the run certificates: its chain holds ({n} events), but the "
        "{o} certificate(s) in {dir} name another log ({other}), none this one.",
        "chain_emptied": "LOG EMPTIED: {first}",
        "chain_removed": "LOG REMOVED: {first}",
        "chain_no_reports": "NOT VERIFIED: the certificates folder {dir} is missing (not mounted, or "
        "$RETENTION_REPORTS_DIR is wrong); its chain holds ({n} events), but a re-hashed log "
        "would pass unseen.",
        "chain_missing_certificates": "CERTIFICATES MISSING: {m} finished run(s) with no certificate of this log "
        "in {dir} and no recorded failure to write it (the first: {first}).",
        "none": "none",
        "no_archive": "none",
        "delete": "deletion",
        "anonymize": "anonymisation",
        "until_end": "until",
        "from": "from",
        "or": "or",
        "after": "after",
        "footer": "Generated {at}. This report holds only counts, dates and names from the policy.",
    },
}


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
    during = _during(report.period_start, report.period_end, lang)
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
                [_bar_label(first, last, lang) for first, last in spans],
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
                            _span_words(first, last, lang),
                            v.archived,
                            v.ended_same_run,
                            v.ended_from_archive,
                            v.deleted_directly,
                            v.rows,
                        )
                    )
    return "".join(parts) + (html.table(t["volume_cols"], rows) if rows else "")


def _compliance_table(report: DpoReport, lang: str) -> str:
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
            c.expired_in_archive,
            c.legal_hold,
            html.Raw(f"<span class='ok'>{t['ok']}</span>" if c.compliant else f"<span class='ko'>{t['ko']}</span>"),
        )
        for c in report.compliance
    ]
    return html.table(t["compliance_cols"], rows, row_class=lambda r: "" if r[4] == r[7] == 0 else "ko")


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


def write(report: DpoReport, lang: str = "fr") -> Path:
    """Render and write under ``reports/dpo/``; return the file's path."""
    name = f"retention-dpo-report_{report.period_start}_{report.period_end}.{lang}.html"
    path = reports_dir() / "dpo" / safe_name(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report, lang), encoding="utf-8")
    return path


# -- the period in words -----------------------------------------------------------------------

_MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_SHORT_MONTHS = {
    "fr": ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


def _day_number(day: date, lang: str) -> str:
    return "1er" if lang == "fr" and day.day == 1 else str(day.day)


def day_words(day: date, lang: str) -> str:
    """``1er décembre 2026`` / ``1 December 2026``."""
    return f"{_day_number(day, lang)} {_MONTHS[lang][day.month - 1]} {day.year}"


def _whole_month(start: date, end: date) -> bool:
    return (
        start.day == 1
        and (start.year, start.month) == (end.year, end.month)
        and date.fromordinal(end.toordinal() + 1).month != end.month
    )


def _span_words(start: date, end: date, lang: str) -> str:
    """A span as a label: ``1er décembre 2026``, ``novembre 2026``, ``1er-15 décembre 2026``..."""
    if start == end:
        return day_words(start, lang)
    if _whole_month(start, end):
        return f"{_MONTHS[lang][start.month - 1]} {start.year}"
    if (start.year, start.month) == (end.year, end.month):
        return f"{_day_number(start, lang)}-{day_words(end, lang)}"
    return f"{day_words(start, lang)} - {day_words(end, lang)}"


def period_words(start: date, end: date, lang: str) -> str:
    """The reported period as a reader says it: one day, one calendar month, or from ... to ...

    ``le 1er décembre 2026``, ``novembre 2026``, ``du 1er au 15 décembre 2026``,
    ``du 1er octobre au 30 novembre 2026`` (``1 December 2026``, ``November 2026``,
    ``1 to 15 December 2026``, ``1 October to 30 November 2026`` in English)."""
    if start == end:
        return f"le {day_words(start, lang)}" if lang == "fr" else day_words(start, lang)
    if _whole_month(start, end):
        return _span_words(start, end, lang)
    if start.year != end.year:
        first = day_words(start, lang)
    elif start.month != end.month:
        first = f"{_day_number(start, lang)} {_MONTHS[lang][start.month - 1]}"
    else:
        first = _day_number(start, lang)
    return f"du {first} au {day_words(end, lang)}" if lang == "fr" else f"{first} to {day_words(end, lang)}"


def _during(start: date, end: date, lang: str) -> str:
    """The period after "the runs ...": ``de novembre 2026``, ``du 1er décembre 2026``, ``from 1 to 15 ...``."""
    words = period_words(start, end, lang)
    if lang == "en":
        return f"of {words}" if start == end or _whole_month(start, end) else f"from {words}"
    if start == end:
        return f"du {day_words(start, lang)}"
    if _whole_month(start, end):
        return f"d'{words}" if words[0] in "aeiou" else f"de {words}"
    return words


def _month_span(month: str, start: date, end: date) -> tuple[date, date]:
    """The days of ``month`` (YYYY-MM) inside the period: a bar may cover part of a month."""
    year, number = int(month[:4]), int(month[5:])
    first = date(year, number, 1)
    last = date.fromordinal((date(year + number // 12, number % 12 + 1, 1)).toordinal() - 1)
    return max(first, start), min(last, end)


def _bar_label(first: date, last: date, lang: str) -> tuple[str, str]:
    """Two short lines under a bar: ``nov.`` / ``2026``, or ``1er-15 déc.`` / ``2026`` for part of a month."""
    month = _SHORT_MONTHS[lang][first.month - 1]
    if _whole_month(first, last):
        return month, str(first.year)
    days = _day_number(first, lang) if first == last else f"{_day_number(first, lang)}-{last.day}"
    return f"{days} {month}", str(first.year)


def previous_month(day: date) -> tuple[date, date]:
    """The calendar month before ``day``'s: what the monthly run reports on."""
    first_this = day.replace(day=1)
    last_previous = date.fromordinal(first_this.toordinal() - 1)
    return last_previous.replace(day=1), last_previous

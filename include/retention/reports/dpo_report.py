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
  be aged (missing start date), rows held open, expired rows left in the archive, and the
  rows past their period that the re-consent promise keeps until the person is asked (at most
  the category's notice window: counted apart, not overdue, as the nightly run sees them).
- *Did you keep your promise to ask?* Per category with ``reconsent``, the asks recorded in
  the re-consent register during the period and where each stands on the report's day
  (delivered, failed, not asked, yes, no, no answer), and the answer tokens refused.
- *Can the record be trusted?* The audit log's hash chain, verified while building.

The report holds counts, dates and names from the policy - never a row's content.
This module gathers the facts; dpo_texts.py holds its words (French and English) and
dpo_render.py lays it out as one self-contained HTML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args

from sqlalchemy import Table, and_, func, inspect, literal, not_, or_, select
from sqlalchemy.engine import Connection

from include.retention.database import store
from include.retention.database.identity import SubjectKey
from include.retention.database.reflect import Side, TableNode, archive_exists, open_category
from include.retention.database.store import hold_tables, reconsent_table, register_table
from include.retention.database.target import Target
from include.retention.dates.clock import is_due, local_date
from include.retention.dates.periods import Period
from include.retention.errors import RetentionError
from include.retention.policy.conditions import is_not_true
from include.retention.policy.model import Category, RetentionPolicy
from include.retention.reconsent.tokens import RefusalReason
from include.retention.records import audit
from include.retention.records.held_rows import HoldsInForce, holds_in_force
from include.retention.records.holds import HoldView, list_holds
from include.retention.reports import certificate
from include.retention.reports.certificate import ChainStatus
from include.retention.rights.requests import Deadline, open_deadlines
from include.retention.schedule import dependants
from include.retention.schedule.waiting import waiting_for_reconsent

_VOLUME_ACTIONS = ("archive", "delete", "anonymize")
# Why an answer token was refused. A reported bounce that changed nothing (its ask answered,
# already failed, never sent) is refused too, but its token was good: not counted.
TOKEN_REFUSALS: tuple[str, ...] = get_args(RefusalReason)
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
    # Rows past their active period that the re-consent promise keeps until the person is asked:
    # at most notice_days past their period end (``schedule.waiting``), so not overdue.
    waiting_for_reconsent: int = 0

    @property
    def compliant(self) -> bool:
        return self.overdue == 0 and self.expired_in_archive == 0


@dataclass(frozen=True)
class Campaign:
    """One category's re-consent asks recorded in a period (the register's ``recorded_at``, a
    company-local day), where each stands on the report's day, and the answer tokens refused.

    Every ask is in one delivery status: ``unsent`` (recorded, not handed to the mail server
    yet: the next campaign run sends it), ``sent``, ``failed`` (refused for good, or bounced),
    ``no_address`` or ``suppressed`` (recorded, never asked). A sent ask is answered ``yes`` or
    ``no``, ``awaiting`` an answer, or has ``no_answer`` (its links expired): the schedule goes
    on. Counts only: never a hash, an address or a token."""

    category: str
    recorded: int = 0
    unsent: int = 0
    sent: int = 0
    failed: int = 0
    no_address: int = 0
    suppressed: int = 0
    yes: int = 0
    no: int = 0
    awaiting: int = 0
    no_answer: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # refused answer tokens, per reason

    @property
    def not_asked(self) -> int:
        """Recorded but never mailed: no usable address, or on the suppression list."""
        return self.no_address + self.suppressed

    @property
    def clock_restarts(self) -> int:
        """Each yes restarts the row's clock (the consent is its new start)."""
        return self.yes


@dataclass(frozen=True)
class Campaigns:
    """The re-consent campaigns of the policy's categories with ``reconsent``, in policy order.

    ``started``: the register exists (a campaign ran at least once); ``unattributed``:
    refused tokens that name no category of the policy (a forged token names none that can
    be believed), per reason."""

    started: bool
    categories: list[Campaign] = field(default_factory=list)
    unattributed: dict[str, int] = field(default_factory=dict)


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
    campaigns: Campaigns = field(default_factory=lambda: Campaigns(started=False))
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
        # No register yet: no ask settled any promise, every due row in the window with an address waits.
        register = reconsent_table(target.archive_schema)
        asks = register if store.table_exists(conn, register) else None
        compliance = [
            c
            for category in policy.categories.values()
            for c in _compliance(conn, target, policy, category, today, holds, asks)
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
        asked = campaigns(conn, target.archive_schema, policy, today, period_events, (period_start, period_end))
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
        asked,
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


def campaigns(
    conn: Connection,
    archive_schema: str | None,
    policy: RetentionPolicy,
    today: date,
    events: list[dict[str, Any]],
    period: tuple[date, date] | None = None,
) -> Campaigns:
    """The re-consent campaigns: asks recorded in ``period`` (company-local days; None: every
    ask so far) counted per category in the register, one statement, and the tokens refused
    among ``events`` (the audit events the caller read: the report's period, or every
    ``reconsent_answer`` event). No register table yet means no campaign yet."""
    register = reconsent_table(archive_schema)
    if not store.table_exists(conn, register):
        return Campaigns(started=False)
    counted = _register_counts(conn, register, policy, today, period)
    refused, unattributed = _refusals(policy, events)
    return Campaigns(
        started=True,
        categories=[
            Campaign(key, **counted.get(key, {}), refused=refused.get(key, {}))
            for key, category in policy.categories.items()
            if category.reconsent is not None
        ],
        unattributed=unattributed,
    )


def _register_counts(
    conn: Connection, register: Table, policy: RetentionPolicy, today: date, period: tuple[date, date] | None
) -> dict[str, dict[str, int]]:
    """Per category: the register's asks by delivery status and answer, as ``Campaign``'s fields."""
    c = register.c
    sent_unanswered = and_(c.status == "sent", c.answer.is_(None))
    counts = {
        "recorded": func.count(),
        "unsent": func.count().filter(c.status.in_(("pending", "sending"))),
        "sent": func.count().filter(c.status == "sent"),
        "failed": func.count().filter(c.status == "failed"),
        "no_address": func.count().filter(c.status == "no_address"),
        "suppressed": func.count().filter(c.status == "suppressed"),
        "yes": func.count().filter(c.answer == "yes"),
        "no": func.count().filter(c.answer == "no"),
        # A token is accepted up to expires_on included: the day after, the answer is "none".
        "awaiting": func.count().filter(and_(sent_unanswered, c.expires_on >= today)),
        "no_answer": func.count().filter(and_(sent_unanswered, c.expires_on < today)),
    }
    query = select(c.category, *(count.label(name) for name, count in counts.items())).group_by(c.category)
    if period is not None:
        first, last = (datetime.combine(day, time(), policy.zone) for day in (period[0], period[1] + timedelta(days=1)))
        query = query.where(c.recorded_at >= first, c.recorded_at < last)
    return {row.category: {name: row._mapping[name] for name in counts} for row in conn.execute(query)}


def _refusals(
    policy: RetentionPolicy, events: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Refused answer tokens (``reconsent_answer`` events refused for a token's reason:
    ``TOKEN_REFUSALS``), per category with ``reconsent`` and reason; and per reason, those that
    name no such category (a token that names no known ask is logged under ``reconsent``)."""
    asking = {key for key, category in policy.categories.items() if category.reconsent is not None}
    per_category: dict[str, dict[str, int]] = {}
    unattributed: dict[str, int] = {}
    for event in events:
        details = event["details"] or {}
        if event["action"] != "reconsent_answer" or details.get("refused") not in TOKEN_REFUSALS:
            continue
        category = details.get("category") or event["category"]
        counts = per_category.setdefault(category, {}) if category in asking else unattributed
        reason = str(details["refused"])
        counts[reason] = counts.get(reason, 0) + 1
    return per_category, unattributed


def _compliance(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    category: Category,
    today: date,
    holds: HoldsInForce,
    asks: Table | None,
) -> list[Compliance]:
    """``asks``: the re-consent register, None when no campaign created it yet."""
    nodes = open_category(conn, policy, category, target.source_schema, target.archive_schema, target.dialect)
    return [_table_compliance(conn, target, policy, category, root, today, holds, asks) for root in nodes]


def _table_compliance(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    category: Category,
    root: TableNode,
    today: date,
    holds: HoldsInForce,
    asks: Table | None,
) -> Compliance:
    """Rows a legal hold keeps past their date are counted apart: the hold outranks the schedule.
    So are the rows waiting for the re-consent ask, as tonight's run decides (``schedule.waiting``
    as of today): the promise keeps them at most the notice window, then they are overdue."""
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
    due_unheld = and_(due, not_(on_hold))
    waiting = waiting_for_reconsent(root, category, asks, today, policy.zones, target.dialect)
    oldest, overdue, missing, held, legal, kept_for_ask = conn.execute(
        select(
            func.min(day).filter(root.ageable()),
            func.count().filter(due_unheld if waiting is None else and_(due_unheld, is_not_true(waiting))),
            func.count().filter(root.missing_start()),
            func.count().filter(root.held_open()),
            func.count().filter(and_(due, on_hold)),
            literal(0) if waiting is None else func.count().filter(and_(due_unheld, waiting)),
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
        kept_for_ask,
    )


def previous_month(day: date) -> tuple[date, date]:
    """The calendar month before ``day``'s: what the monthly run reports on."""
    first_this = day.replace(day=1)
    last_previous = date.fromordinal(first_this.toordinal() - 1)
    return last_previous.replace(day=1), last_previous

"""What is due, per table, on a given day - counted, never changed.

The plan is what a dry run shows and what the DAG logs before anything moves: rows due
for the archive, rows at end of life, rows that cannot be aged because their start date
is missing, and the child rows that will move with their parents. It writes a ``plan``
audit event per table and, for defective missing dates, a ``quality_finding`` event -
counts only, never the rows themselves. The counting alone (``count_category``) writes
nothing: the forecast of tonight's run (``tonight``) reads it on a read-only connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, exists, false, func, literal, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.reflect import Dependant, Side, TableNode, archive_exists, key_of
from include.retention.dates.clock import retention_dates
from include.retention.policy.conditions import is_not_true
from include.retention.records import audit
from include.retention.records.held_rows import HoldsInForce
from include.retention.records.holds import record_expiries
from include.retention.schedule import dependants
from include.retention.schedule.batches import child_condition
from include.retention.schedule.context import StepContext, holds_of, open_step
from include.retention.schedule.waiting import waiting_in_step

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TablePlan:
    table: str
    active_rows: int
    due_for_archive: int
    due_for_end_of_life: int
    missing_start: int
    missing_start_means: str
    last_due_start: date
    children: dict[str, int] = field(default_factory=dict)
    held_open: int = 0  # kept active by an open related row, or a parent still active
    # Rows past their active period that wait for the re-consent ask (``waiting``): not in
    # the due counts, they stay active at most the notice window.
    waiting_for_reconsent: int = 0
    kept_for_dependants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A few keys of the rows with a defective (missing) start, for the engineer who fixes
    # them: in the XCom and the task log only, never in the audit log.
    missing_start_sample: list[Any] = field(default_factory=list)
    # Rows a legal hold keeps where they are: due for the archive, and at end of life.
    legal_hold_due: int = 0
    legal_hold_end_of_life: int = 0
    # Rows in the archive now (the base of the deletion limit's fraction there).
    archive_rows: int = 0
    # Archive rows whose retention_until is on or before this day reach end of life.
    end_of_life_horizon: date | None = None
    # A few keys of the rows that would move or go (XCom and task log only).
    sample_keys: dict[str, list[Any]] = field(default_factory=dict)
    # Retained dependants this run destroys (or anonymises), per dependant table: past their
    # own horizon, in the archive already or arriving with their parent tonight.
    # ``{"invoices": {"rows": 3, "archive_rows": 40, "category": "billing"}}``; ``archive_rows``:
    # the rows of that archive table (not anonymised), plus those arriving: the base of the
    # deletion limit; ``category``: the dependant's, whose limit applies too.
    dependants_end_of_life: dict[str, dict[str, Any]] = field(default_factory=dict)

    def reasons(self) -> list[str]:
        """Why expired rows are still kept, in words: for the task log and the reports."""
        return [
            f"{kept['rows']} {self.table} kept because {kept['dependants']} {table} are retained until {kept['until']}"
            for table, kept in self.kept_for_dependants.items()
        ]

    @property
    def defective(self) -> int:
        return self.missing_start if self.missing_start_means == "defect" else 0

    def to_xcom(self) -> dict[str, Any]:
        """JSON-friendly: dates as ISO strings."""
        data = asdict(self)
        data["last_due_start"] = self.last_due_start.isoformat()
        if self.end_of_life_horizon:
            data["end_of_life_horizon"] = self.end_of_life_horizon.isoformat()
        for kept in data["kept_for_dependants"].values():
            kept["until"] = kept["until"].isoformat() if kept["until"] else None
        return data

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> TablePlan:
        """The inverse of ``to_xcom``: dates read back from their ISO strings."""
        horizon = data.get("end_of_life_horizon")
        kept = {
            table: {**k, "until": date.fromisoformat(k["until"]) if k["until"] else None}
            for table, k in data.get("kept_for_dependants", {}).items()
        }
        return cls(
            **{
                **data,
                "last_due_start": date.fromisoformat(data["last_due_start"]),
                "end_of_life_horizon": date.fromisoformat(horizon) if horizon else None,
                "kept_for_dependants": kept,
            }
        )


@dataclass(frozen=True)
class Excess:
    """One table side whose removals pass the limit."""

    table: str
    side: Side  # active: leaving the active base; archive: leaving the archive
    rows: int
    base: int  # rows that side holds (the archive: plus those arriving in the same run)
    limit_rows: int | None
    limit_fraction: float | None

    def __str__(self) -> str:
        share = f"{self.rows / self.base:.1%}" if self.base else "all"
        limits = []
        if self.limit_rows is not None:
            limits.append(f"{self.limit_rows} rows")
        if self.limit_fraction is not None:
            limits.append(f"{self.limit_fraction:.0%}")
        where = "the active base" if self.side == Side.ACTIVE else "the archive"
        return (
            f"{self.rows} of {self.base} rows of {self.table} ({share}) would leave {where}; "
            f"the limit is {' and '.join(limits)}"
        )

    def to_xcom(self) -> dict[str, Any]:
        """As the plan task's XCom has always carried it: its fields, and the sentence."""
        return {**asdict(self), "side": self.side.value, "text": str(self)}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> Excess:
        return cls(
            table=data["table"],
            side=Side(data["side"]),
            rows=data["rows"],
            base=data["base"],
            limit_rows=data["limit_rows"],
            limit_fraction=data["limit_fraction"],
        )


@dataclass(frozen=True, kw_only=True)
class CategoryPlan:
    """What a run of one category would do, table by table; ``over_limit``: the deletion
    limits it passes (``limits.flag_excesses``), which ``approve_deletions`` asks a person about."""

    category: str
    as_of: date
    policy_version: str
    has_archive: bool
    end_action: str
    tables: list[TablePlan]
    dry_run: bool = False
    over_limit: tuple[Excess, ...] = ()

    def to_xcom(self) -> dict[str, Any]:
        """The plan task's XCom, JSON-friendly (dates as ISO strings), with the keys the
        approval, the archive and purge tasks and the task log have always read."""
        return {
            "category": self.category,
            "as_of": self.as_of.isoformat(),
            "policy_version": self.policy_version,
            "has_archive": self.has_archive,
            "end_action": self.end_action,
            "tables": [table.to_xcom() for table in self.tables],
            "dry_run": self.dry_run,
            "over_limit": [excess.to_xcom() for excess in self.over_limit],
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> CategoryPlan:
        """The plan a later task reads back from the plan task's XCom (task results cross
        processes as JSON)."""
        return cls(
            category=data["category"],
            as_of=date.fromisoformat(data["as_of"]),
            policy_version=data["policy_version"],
            has_archive=data["has_archive"],
            end_action=data["end_action"],
            tables=[TablePlan.from_xcom(table) for table in data["tables"]],
            dry_run=bool(data.get("dry_run", False)),
            over_limit=tuple(Excess.from_xcom(e) for e in data.get("over_limit", [])),
        )


def plan_category(step: StepContext) -> CategoryPlan:
    """Count what the category's run would do on ``step.ctx.as_of``; audit the counts."""
    nodes = open_step(step, create_archive=False)
    holds = holds_of(step)
    with step.target.read() as conn:
        plan = count_category(conn, step, nodes, holds)
    with step.target.engine.begin() as conn:
        for table in plan.tables:
            _audit_plan(conn, step, table)
        expired = record_expiries(conn, step.target, step.policy, step.ctx, datetime.now(step.policy.zone).date())
    if expired:
        log.info("%d legal hold(s) expired since the last check: recorded in the audit log", expired)
    for table in plan.tables:
        if table.legal_hold_due or table.legal_hold_end_of_life:
            log.info(
                "%s: %d rows due for the archive and %d at end of life are kept by a legal hold",
                table.table,
                table.legal_hold_due,
                table.legal_hold_end_of_life,
            )
    for table in plan.tables:
        if table.waiting_for_reconsent:
            log.info(
                "%s: %d rows past their active period are waiting for re-consent (kept at most the notice window)",
                table.table,
                table.waiting_for_reconsent,
            )
    for reason in (r for table in plan.tables for r in table.reasons()):
        log.info("%s (category %s, as of %s)", reason, step.category.key, step.ctx.as_of)
    return plan


def count_category(
    conn: Connection, step: StepContext, nodes: list[TableNode], holds: HoldsInForce, *, detail: bool = True
) -> CategoryPlan:
    """The plan's counts, read on ``conn`` and written nowhere: ``plan_category`` audits them,
    the forecast of tonight's run (``tonight``) shows them - the same SQL for both.

    ``detail=False`` leaves out what only the task log, the XCom and the audit event read - the
    child rows moving with the due rows, sample keys, the rows kept for their dependants -
    none of which the counts depend on: counting the children joins every child row, most of a
    forecast's time on a large table."""
    return CategoryPlan(
        category=step.category.key,
        as_of=step.ctx.as_of,
        policy_version=step.policy.version,
        has_archive=step.category.has_archive,
        end_action=step.category.end_action,
        tables=[_plan_table(conn, root, step, holds, waiting_in_step(conn, step, root), detail) for root in nodes],
        dry_run=step.ctx.dry_run,
    )


def _plan_table(
    conn: Connection,
    root: TableNode,
    step: StepContext,
    holds: HoldsInForce,
    waiting: ColumnElement[bool] | None,
    detail: bool,
) -> TablePlan:
    """``waiting``: the rows that wait for the re-consent ask (``waiting.waiting_in_step``),
    None when nobody is asked from this table; they are counted apart, never as due.
    ``detail``: with ``_detail`` (see ``count_category``)."""
    policy = root.root_policy
    category, as_of = step.category, step.ctx.as_of
    overdue = root.due(category.active_period, as_of, step.policy.zones)
    held = dependants.held_released(conn, step.policy, step.target, root, Side.ACTIVE, category.key, holds)
    not_held = and_(overdue, *([not_(held)] if holds.any else []))
    due = not_held if waiting is None else and_(not_held, is_not_true(waiting))
    active_rows, due_rows, held_due, missing, held_open, waiting_rows = conn.execute(
        select(
            func.count().filter(root.scope),
            func.count().filter(due),
            func.count().filter(and_(overdue, held)),
            func.count().filter(root.missing_start()),
            func.count().filter(root.held_open()),
            func.count().filter(and_(not_held, waiting)) if waiting is not None else literal(0),
        ).select_from(root.source)
    ).one()
    archive_rows = held_end = 0
    if category.has_archive:
        due_for_archive = due_rows
        eol, archive_rows, held_end = _archive_end_of_life(conn, root, step, holds)
        end_of_life = eol + _due_and_already_expired(conn, root, step, due, holds)
    else:
        due_for_archive, end_of_life = 0, due_rows
    dependant_ends = _dependants_end_of_life(conn, root, step, holds, due) if category.has_archive else {}
    return TablePlan(
        table=root.name,
        active_rows=active_rows,
        due_for_archive=due_for_archive,
        due_for_end_of_life=end_of_life,
        missing_start=missing,
        missing_start_means=policy.start_event.when_missing,
        last_due_start=category.active_period.last_due_start(as_of),
        held_open=held_open,
        waiting_for_reconsent=waiting_rows,
        legal_hold_due=held_due,
        legal_hold_end_of_life=held_end,
        archive_rows=archive_rows,
        end_of_life_horizon=as_of if category.has_archive else None,
        dependants_end_of_life=dependant_ends,
        **(_detail(conn, root, step, holds, due, missing) if detail else {}),
    )


def _detail(
    conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce, due: ColumnElement[bool], missing: int
) -> dict[str, Any]:
    """A table plan's fields for the task log, the XCom and the audit event, beyond the counts:
    the child rows moving with the due rows, a few keys of the rows that would move or go (and
    of the defects), the expired rows kept for their dependants."""
    has_archive = step.category.has_archive
    sample = {"archive" if has_archive else "end_of_life": _sample(conn, root.source, root, due)}
    if has_archive and archive_exists(conn, root):
        sample["end_of_life"] = _sample(conn, root.archive, root, _expired_not_held(conn, root, step, holds))
    defect = missing and root.root_policy.start_event.when_missing == "defect"
    return {
        "children": {
            node.name: conn.execute(select(func.count()).select_from(node.source).where(cond)).scalar_one()
            for node, cond in _descendant_conditions(root, due)
        },
        "sample_keys": sample,
        "missing_start_sample": _sample(conn, root.source, root, root.missing_start(), MISSING_SAMPLE_SIZE)
        if defect
        else [],
        "kept_for_dependants": _kept_for_dependants(conn, root, step, holds) if has_archive else {},
    }


MISSING_SAMPLE_SIZE = 20
SAMPLE_SIZE = 5


def _sample(
    conn: Connection, table: Any, root: TableNode, where: ColumnElement[bool], size: int = SAMPLE_SIZE
) -> list[Any]:
    """The first few keys (in key order) of the rows ``where`` selects: enough to check by hand."""
    keys = [table.c[c] for c in root.key_columns]
    rows = conn.execute(select(*keys).where(where).order_by(*keys).limit(size)).all()
    return [_json_key(row) for row in rows]


def _json_key(row: Any) -> Any:
    values = [v if isinstance(v, (int, str)) else str(v) for v in row]
    return values[0] if len(values) == 1 else values


def _archive_end_of_life(
    conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce
) -> tuple[int, int, int]:
    """Archive rows at end of life (not held), rows in the archive not yet anonymised, and
    end-of-life rows held."""
    if not archive_exists(conn, root):
        return 0, 0, 0
    at_end = _expired(root, step, holds)
    held = _held(conn, root, step, holds)
    return conn.execute(
        select(
            func.count().filter(and_(at_end, not_(held))),
            func.count().filter(root.archive.c.anonymized == false()),  # anonymised rows are no one's data
            func.count().filter(and_(at_end, held)),
        ).select_from(root.archive)
    ).one()


def _expired(root: TableNode, step: StepContext, holds: HoldsInForce) -> ColumnElement[bool]:
    """Archive rows past their horizon that no dependant staying in the archive keeps (those
    past their own horizon go first, in the same run)."""
    if not root.dependants:
        return root.expired(step.ctx.as_of)
    return and_(root.expired(step.ctx.as_of), ~dependants.kept_by_any(root, step.ctx.as_of, holds))


def _held(conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce) -> ColumnElement[bool]:
    """Archive rows of ``root`` a legal hold protects: held themselves (or through a child), or
    - a retained dependant - through their parent (a held customer keeps its invoices)."""
    held = holds.held(root, Side.ARCHIVE, step.category.key)
    if not holds.any:
        return held
    return or_(held, dependants.held_through_parent(conn, step.policy, step.target, root, Side.ARCHIVE, holds))


def _expired_not_held(conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce) -> ColumnElement[bool]:
    return and_(_expired(root, step, holds), not_(_held(conn, root, step, holds)))


def _kept_for_dependants(
    conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce
) -> dict[str, dict[str, Any]]:
    """Expired archive rows kept because a dependant stays in the archive, per dependant table.

    E.g. ``{"invoices": {"rows": 1, "dependants": 3, "until": 2031-03-31}}``: one customer
    is kept because 3 invoices are retained until 31 March 2031.
    """
    kept: dict[str, dict[str, Any]] = {}
    if not archive_exists(conn, root):
        return kept
    for dep in root.dependants:
        if not archive_exists(conn, dep.node):
            continue
        waiting = root.expired(step.ctx.as_of) & dependants.kept(dep, root, step.ctx.as_of, holds)
        rows = conn.execute(select(func.count()).select_from(root.archive).where(waiting)).scalar_one()
        if not rows:
            continue
        count, until = conn.execute(
            select(func.count(), func.max(dep.node.archive.c.retention_until)).where(
                dep.linked(Side.ARCHIVE, root, waiting), dependants.staying(dep, step.ctx.as_of, holds)
            )
        ).one()
        kept[dep.node.name] = {"rows": rows, "dependants": count, "until": until}
    return kept


def _dependants_end_of_life(
    conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce, due: ColumnElement[bool]
) -> dict[str, dict[str, Any]]:
    """Per dependant table, the rows this run destroys: in the archive past their own horizon
    (under a parent in this category's archive, neither held), and those arriving tonight with
    their parents already past it (a held parent is not due: nothing of it arrives). The base:
    that archive table, plus the arrivals."""
    out: dict[str, dict[str, Any]] = {}
    root_archived = archive_exists(conn, root)
    for dep in root.dependants:
        node, category = dep.node, dep.category
        _, until = retention_dates(
            node.start, category.active_period, category.archive_or_zero, step.target.dialect, step.policy.zones
        )
        arriving = dep.linked(Side.ACTIVE, root, due)
        arriving_ends = and_(
            arriving, until <= literal(step.ctx.as_of), *holds.not_held(node, Side.ACTIVE, category.key)
        )
        now_rows, now_arriving = conn.execute(
            select(func.count().filter(arriving_ends), func.count().filter(arriving)).select_from(node.source)
        ).one()
        in_archive = base = 0
        if archive_exists(conn, node):
            parents = dependants.parents_of(conn, step.policy, step.target, node)
            # Under a parent in this category's archive, or arriving there tonight (an invoice
            # released earlier by its customer's event, whose customer now leaves too).
            ends = and_(
                node.expired(step.ctx.as_of),
                key_of(node.archive, dep.foreign_key).in_(
                    select(*(root.source.c[c] for c in root.key_columns)).where(due)
                ),
                *dependants.not_held_dependant(holds, node, Side.ARCHIVE, category.key, parents),
            )
            if root_archived:
                ends = or_(ends, dependants.at_end_of_life(dep, root, step.ctx.as_of, holds, parents))
            in_archive, base = conn.execute(
                select(
                    func.count().filter(ends), func.count().filter(node.archive.c.anonymized == false())
                ).select_from(node.archive)
            ).one()
        if now_rows + in_archive:
            # ``category``: whose rows they are - its deletion limit applies too (``limits.limit_for``).
            out[node.name] = {
                "rows": now_rows + in_archive,
                "archive_rows": base + now_arriving,
                "category": category.key,
            }
    return out


def _due_and_already_expired(
    conn: Connection, root: TableNode, step: StepContext, due: ColumnElement[bool], holds: HoldsInForce
) -> int:
    """Active rows so late that their archive period has also ended: purged the same run,
    unless a dependant stays in the archive (within its own horizon) - one moving with them
    tonight, or one already there (released earlier by its parent's event)."""
    _, until = retention_dates(
        root.start, step.category.active_period, step.category.archive_or_zero, step.target.dialect, step.policy.zones
    )
    keeps = [_keeps_when_moved(root, dep, step) for dep in root.dependants]
    keeps += [
        _kept_from_the_archive(root, dep, step, holds) for dep in root.dependants if archive_exists(conn, dep.node)
    ]
    return conn.execute(
        select(func.count())
        .select_from(root.source)
        .where(due, until <= literal(step.ctx.as_of), *(~keep for keep in keeps))
    ).scalar_one()


def _keeps_when_moved(root: TableNode, dep: Dependant, step: StepContext) -> ColumnElement[bool]:
    """Active rows of ``root`` with a dependant that, moved with them tonight, stays in the
    archive: its own horizon is after ``as_of``, or it has none (no start date: it cannot be
    aged, so it stays, with its parent). (A held dependant holds its parent, which is then
    not due at all.)"""
    node, category = dep.node, dep.category
    _, until = retention_dates(
        node.start, category.active_period, category.archive_or_zero, step.target.dialect, step.policy.zones
    )
    return exists().where(
        *(node.source.c[fk] == root.source.c[pk] for fk, pk in zip(dep.foreign_key, root.key_columns, strict=True)),
        or_(until.is_(None), until > literal(step.ctx.as_of)),
    )


def _kept_from_the_archive(
    root: TableNode, dep: Dependant, step: StepContext, holds: HoldsInForce
) -> ColumnElement[bool]:
    """Active rows of ``root`` with a dependant already in the archive that stays there (a
    released invoice of a customer still active): the customer, archived tonight, waits."""
    archive = dep.node.archive
    return exists().where(
        *(archive.c[fk] == root.source.c[pk] for fk, pk in zip(dep.foreign_key, root.key_columns, strict=True)),
        dependants.staying(dep, step.ctx.as_of, holds),
    )


def _descendant_conditions(node: TableNode, cond: ColumnElement[bool]) -> list[tuple[TableNode, ColumnElement[bool]]]:
    out = []
    for child in node.children:
        child_cond = child_condition(child, node, Side.ACTIVE, cond)
        out.append((child, child_cond))
        out += _descendant_conditions(child, child_cond)
    return out


def _audit_plan(conn: Connection, step: StepContext, table: TablePlan) -> None:
    details = {
        "active_rows": table.active_rows,
        "due_for_archive": table.due_for_archive,
        "due_for_end_of_life": table.due_for_end_of_life,
        "missing_start": table.missing_start,
        "held_open": table.held_open,
        "waiting_for_reconsent": table.waiting_for_reconsent,
        "kept_for_dependants": table.kept_for_dependants,
        "last_due_start": table.last_due_start,
        "children": table.children,
        "legal_hold_due": table.legal_hold_due,
        "legal_hold_end_of_life": table.legal_hold_end_of_life,
        # Counts only: the audit log takes no free text (whose category they are is in the policy).
        "dependants_end_of_life": {
            name: {k: v for k, v in d.items() if k != "category"} for name, d in table.dependants_end_of_life.items()
        },
    }
    dependant_rows = sum(d["rows"] for d in table.dependants_end_of_life.values())
    audit.record(
        conn,
        step.audit_table,
        step.ctx,
        category=step.category.key,
        action="plan",
        table_name=table.table,
        row_count=table.due_for_archive + table.due_for_end_of_life + dependant_rows,
        details=details,
    )
    if table.defective:
        log.warning(
            "%d rows of %s have no start date: they cannot be aged and need fixing; first keys: %s",
            table.defective,
            table.table,
            table.missing_start_sample,
        )
        audit.record(
            conn,
            step.audit_table,
            step.ctx,
            category=step.category.key,
            action="quality_finding",
            table_name=table.table,
            row_count=table.defective,
            details={"missing_start_date": table.defective},
        )

"""The post-run gate: after ``purge``, prove that the schedule now holds.

Per table of the category, with the same clock expressions as ``plan``:

* ``no_overdue_active_rows`` - no active row is older than its category allows (rows
  kept by an open related row, waiting for the re-consent ask, or with a missing start, are
  not due and so not counted);
* ``retention_until_matches_policy`` - every archive row stamped with the current policy
  version has ``retention_until = retention_start + active period + archive period``
  (rows archived under an earlier version are not re-checked: only the current policy
  is known here);
* ``no_expired_archive_rows`` - no archive row is past its ``retention_until`` (unless a
  retained dependant that stays - within its own horizon, or held - keeps it);
* for each retained dependant (``archived_with``) of the category's tables - rows of another
  category that this run moved, or that keep this category's rows in the archive - the same
  two checks on the dependant's table, by its own category's clock: no row left in the
  active base past its active period while its parent is in this category's archive
  (``no_overdue_active_rows``), and no row past its own horizon in the archive under such
  a parent or moved by this run (``no_expired_archive_rows``);
* ``anonymised_columns_follow_rules`` - anonymised rows hold only NULLs or generalised
  values;
* ``archive_counts_reconcile`` - rows this run removed from the active base arrived in
  the archive: those still there, plus those the same run then destroyed or anonymised;
* ``no_suppressed_subjects`` (categories with ``deleted_on: [opposition]``) - no active row
  belongs to a person on the suppression list;
* ``child_rows_without_a_governed_parent`` (non-blocking, per child table at every depth) -
  active child rows no category's tree holds: no parent row in the active base (NULL key,
  or a key pointing at no row), or a parent row that no category declaring the table
  governs (a supplier's contacts, when only prospects and customers are governed). No run
  ever moves or destroys them, so they are reported on every run for a person to fix,
  never kept silently. A table several categories declare is checked by the first one in
  policy order declaring it. Root rows in no category's scope are not reported: a table
  may hold rows governed by nobody on purpose.

Every check is one query with bound parameters, run in the database - plain SQLAlchemy
rather than Great Expectations, whose custom-SQL expectations take SQL text: these checks
use the policy's scopes and clocks, whose values must stay bound parameters. Outcomes go
to the audit log (action ``validation``, counts only) and into the run's report, like the
pre-archive gate's; any failure fails the task after the outcomes are written.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import DateTime, Integer, and_, cast, false, func, literal, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.identity import KEY_VARIABLE
from include.retention.database.reflect import (
    Dependant,
    Side,
    TableNode,
    archive_exists,
    key_of,
    linked_rows,
    reflect_category,
)
from include.retention.database.store import suppression_table
from include.retention.dates.clock import add_period
from include.retention.errors import RetentionError
from include.retention.policy.conditions import is_not_true
from include.retention.policy.model import Category, PrefixRule, RetentionPolicy, RoundRule, TableBase
from include.retention.records import audit
from include.retention.records.held_rows import HoldsInForce
from include.retention.records.suppression import suppressed_active_rows
from include.retention.schedule import dependants
from include.retention.schedule.context import StepContext, holds_of, open_step
from include.retention.schedule.quality import CheckResult, conclude_gate
from include.retention.schedule.waiting import not_waiting_in_step
from include.retention.settings import KEY_ENV_VAR

log = logging.getLogger(__name__)
SUITE = "post_run"


def post_run_gate(step: StepContext) -> list[CheckResult]:
    """Run the post-run checks; audit them; raise ``QualityGateFailed`` if one fails."""
    nodes = open_step(step, create_archive=False)
    holds = holds_of(step)
    results: list[CheckResult] = []
    with step.target.read() as conn:
        results += _ungoverned_children(conn, nodes, step)
        for root in nodes:
            # A dry run changed nothing, so overdue rows are expected: reported, not blocking.
            results.append(_overdue_active(conn, root, step, holds, blocking=not step.ctx.dry_run))
            if "opposition" in step.category.deleted_on:
                results.append(_suppressed(conn, root, step, holds))
            for node, category in _archived_trees(conn, root, step.category):
                results += _archive_checks(conn, node, category, step, holds, is_root=node is root)
            if step.category.has_archive and archive_exists(conn, root):
                for dep in root.dependants:
                    results += _dependant_checks(conn, root, dep, step, holds)
    return conclude_gate(step, results, "post-run", "the run's batches are committed - investigate before the next run")


def _check(table: str, expectation: str, unexpected: int, blocking: bool = True, sample: str = "") -> CheckResult:
    return CheckResult(SUITE, table, expectation, unexpected == 0, unexpected, blocking, sample)


def _ungoverned_children(conn: Connection, nodes: list[TableNode], step: StepContext) -> list[CheckResult]:
    """``child_rows_without_a_governed_parent`` for each child table (any depth) whose first
    declaring category, in policy order, is this one: one count query per table, and one key
    of a row to fix (a key, never a value: the task log, not the audit log, shows it)."""
    mine = [
        node
        for root in nodes
        for node in root.walk()[1:]
        if _first_declaring(step.policy, node.policy) == step.category.key
    ]
    if not mine:
        return []
    trees = _Trees(conn, step, nodes)
    results, seen = [], set()
    for node in mine:
        if _table_id(node) in seen:  # declared twice in this category: one check
            continue
        seen.add(_table_id(node))
        ungoverned = is_not_true(trees.held_anywhere(node))  # a NULL key matches no parent: counted
        count = conn.execute(select(func.count()).select_from(node.source).where(ungoverned)).scalar_one()
        results.append(
            _check(
                node.name,
                "child_rows_without_a_governed_parent",
                count,
                blocking=False,
                sample=_first_key(conn, node, ungoverned) if count else "",
            )
        )
    return results


def _first_declaring(policy: RetentionPolicy, table: TableBase) -> str | None:
    """The first category, in policy order, declaring ``table``'s table as a child."""
    schema = table.schema_name or policy.source_schema
    for key, category in policy.categories.items():
        for root in category.tables:
            if any(
                n.table == table.table and (n.schema_name or policy.source_schema) == schema for n in root.walk()[1:]
            ):
                return key
    return None


class _Trees:
    """Which active rows of a child table some category's tree holds: a root's rows in its
    effective scope, a child's rows linked to its tree's held parent rows, at every depth.

    The trees: this category's, and those of every category declaring one of its child
    tables (sharing a table with it, they passed ``open_step``'s check against the
    database). Each category reflects a table on its own Table object: rows are matched
    across them by key, never mixed in one FROM."""

    def __init__(self, conn: Connection, step: StepContext, nodes: list[TableNode]) -> None:
        children = {_policy_id(step.policy, n.policy) for root in nodes for n in root.walk()[1:]}
        self._parent: dict[int, TableNode | None] = {}
        self._nodes: dict[tuple[str | None, str], list[TableNode]] = {}
        for key, category in step.policy.categories.items():
            roots = nodes if key == step.category.key else None
            if roots is None and any(
                _policy_id(step.policy, n) in children for t in category.tables for n in t.walk()[1:]
            ):
                roots = reflect_category(
                    conn, step.policy, category, step.target.source_schema, step.target.archive_schema
                )
            for root in roots or []:
                self._index(root, None)

    def _index(self, node: TableNode, parent: TableNode | None) -> None:
        self._parent[id(node)] = parent
        self._nodes.setdefault(_table_id(node), []).append(node)
        for child in node.children:
            self._index(child, node)

    def held(self, node: TableNode) -> ColumnElement[bool]:
        """Rows of ``node``'s table its tree holds, at its place in the tree."""
        parent = self._parent[id(node)]
        if parent is None:
            return node.scope
        return linked_rows(node, Side.ACTIVE, node.foreign_key, parent, self.held(parent))

    def held_anywhere(self, node: TableNode) -> ColumnElement[bool]:
        """Rows of ``node``'s table some tree holds, wherever it declares the table: on the
        same Table object directly, on another category's by key."""
        key = key_of(node.source, node.key_columns)
        return or_(
            *(
                self.held(other)
                if other.source is node.source
                else key.in_(
                    select(*(other.source.c[c] for c in other.key_columns)).where(self.held(other)).correlate(None)
                )
                for other in self._nodes[_table_id(node)]
            )
        )


def _table_id(node: TableNode) -> tuple[str | None, str]:
    return (node.source.schema, node.source.name)


def _policy_id(policy: RetentionPolicy, table: TableBase) -> tuple[str | None, str]:
    """A declared table's schema and name as the policy states them (categories not reflected yet)."""
    return (table.schema_name or policy.source_schema, table.table)


def _first_key(conn: Connection, node: TableNode, where: ColumnElement[bool]) -> str:
    keys = [node.source.c[c] for c in node.key_columns]
    row = conn.execute(select(*keys).where(where).order_by(*keys).limit(1)).one()
    return ", ".join(f"{c}={v}" for c, v in zip(node.key_columns, row, strict=True))


def _overdue_active(
    conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce, blocking: bool
) -> CheckResult:
    due = root.due(step.category.active_period, step.ctx.as_of, step.policy.zones)
    # Rows waiting for the re-consent ask are not overdue: the promise keeps them, at most the
    # notice window (``waiting``).
    not_waiting = not_waiting_in_step(conn, step, root)
    # Rows a legal hold keeps are not overdue: the hold outranks the schedule.
    count = conn.execute(
        select(func.count())
        .select_from(root.source)
        .where(
            due,
            *not_waiting,
            *dependants.not_held_released(conn, step.policy, step.target, root, Side.ACTIVE, step.category.key, holds),
        )
    ).scalar_one()
    return _check(root.name, "no_overdue_active_rows", count, blocking)


def _dependant_checks(
    conn: Connection, root: TableNode, dep: Dependant, step: StepContext, holds: HoldsInForce
) -> list[CheckResult]:
    """The retained dependants this run moved or keeps: none left in the active base past its
    active period while its parent is in the archive, and none in the archive past its own
    horizon under a parent of this category (or moved by this run), unless a hold keeps it or
    its parent."""
    node, owner, as_of = dep.node, dep.category, step.ctx.as_of
    blocking = not step.ctx.dry_run
    left_behind = conn.execute(
        select(func.count())
        .select_from(node.source)
        .where(
            _under_archived_parent(dep, root),
            node.due(owner.active_period, as_of, step.policy.zones),
            *holds.not_held(node, Side.ACTIVE, owner.key),
        )
    ).scalar_one()
    results = [_check(node.name, "no_overdue_active_rows", left_behind, blocking)]
    if archive_exists(conn, node):
        mine = or_(dep.linked(Side.ARCHIVE, root, true()), node.archive.c.run_id == literal(step.ctx.run_id))
        parents = dependants.parents_of(conn, step.policy, step.target, node) if holds.any else []
        expired = conn.execute(
            select(func.count())
            .select_from(node.archive)
            .where(
                mine, node.expired(as_of), *dependants.not_held_dependant(holds, node, Side.ARCHIVE, owner.key, parents)
            )
        ).scalar_one()
        results.append(_check(node.name, "no_expired_archive_rows", expired, blocking))
    return results


def _under_archived_parent(dep: Dependant, root: TableNode) -> ColumnElement[bool]:
    """Active rows of ``dep`` whose parent row is in ``root``'s archive."""
    source = dep.node.source
    return key_of(source, dep.foreign_key).in_(select(*(root.archive.c[c] for c in root.key_columns)))


def _suppressed(conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce) -> CheckResult:
    """Active rows of a prospection category whose person opposed prospection: they came back
    by some path other than the guarded import, and must not be contacted."""
    if step.subject_key is None:
        raise RetentionError(
            f"category {step.category.key} lists opposition in deleted_on: its post-run check "
            f"needs the subject key ({KEY_VARIABLE!r} Variable or ${KEY_ENV_VAR})"
        )
    found = suppressed_active_rows(
        conn,
        suppression_table(step.target.archive_schema),
        step.subject_key,
        root,
        step.target.dialect,
        holds.not_held(root, Side.ACTIVE, step.category.key),
    )
    return _check(root.name, "no_suppressed_subjects", found.rows)


def _archived_trees(conn: Connection, root: TableNode, category: Category) -> list[tuple[TableNode, Category]]:
    """The archive tables this run wrote to: its own tree and its dependants' trees."""
    if not category.has_archive:
        return []
    trees = [(n, category) for n in root.walk()] + [
        (n, dep.category) for dep in root.dependants for n in dep.node.walk()
    ]
    return [(node, owner) for node, owner in trees if archive_exists(conn, node)]


def _archive_checks(
    conn: Connection, node: TableNode, category: Category, step: StepContext, holds: HoldsInForce, is_root: bool
) -> list[CheckResult]:
    archive = node.archive
    results = [_reconcile(conn, node, step)]
    if is_root:
        expected = add_period(
            add_period(archive.c.retention_start, category.active_period, step.target.dialect),
            category.archive_or_zero,
            step.target.dialect,
        )
        current = and_(archive.c.policy_version == step.policy.version, archive.c.anonymized == false())
        dated = archive.c.retention_start.is_not(None)
        wrong = conn.execute(
            select(func.count())
            .select_from(archive)
            .where(current, dated, or_(expected != archive.c.retention_until, archive.c.retention_until.is_(None)))
        ).scalar_one()
        results.append(_check(node.name, "retention_until_matches_policy", wrong))
        # A retained dependant without a start date left the active base with its parent:
        # it cannot be aged, so it stays (with its parent) until a person dates it. Reported
        # on every run, not blocking - like a defective active row's quality finding.
        undated = conn.execute(
            select(func.count())
            .select_from(archive)
            .where(archive.c.anonymized == false(), archive.c.retention_start.is_(None))
        ).scalar_one()
        results.append(_check(node.name, "archive_rows_have_a_start_date", undated, blocking=False))
        # Kept only by a dependant that stays (within its horizon, or held): one past its own
        # horizon should have gone first, in this same run.
        # A held parent keeps its dependant (billing's own run: its invoices under a held customer).
        parents = dependants.parents_of(conn, step.policy, step.target, node) if holds.any else []
        expired = conn.execute(
            select(func.count())
            .select_from(archive)
            .where(
                node.expired(step.ctx.as_of),
                ~dependants.kept_by_any(node, step.ctx.as_of, holds),
                *dependants.not_held_dependant(holds, node, Side.ARCHIVE, step.category.key, parents),
            )
        ).scalar_one()
        results.append(_check(node.name, "no_expired_archive_rows", expired, blocking=not step.ctx.dry_run))
    if node.policy.anonymize:
        broken = [
            _breaks_rule(archive.c[column], rule, step.target.dialect, step.policy.zone.key)
            for column, rule in node.policy.anonymize.items()
            if rule != "keep"
        ]
        count = conn.execute(
            select(func.count())
            .select_from(archive)
            .where(archive.c.anonymized == true(), or_(*broken) if broken else false())
        ).scalar_one()
        results.append(_check(node.name, "anonymised_columns_follow_rules", count))
    return results


def _breaks_rule(column: Any, rule: Any, dialect: str, zone: str) -> ColumnElement[bool]:
    """True for a value an anonymised row must not hold under ``rule``.

    Dates are read in the company's zone, where ``anonymize`` truncated them.
    """
    if rule == "null":
        return column.is_not(None)
    if isinstance(rule, PrefixRule):
        return func.length(column) > rule.prefix
    if isinstance(rule, RoundRule):
        whole = cast(column / rule.round, Integer) if dialect == "sqlite" else func.trunc(column / rule.round)
        return column != whole * rule.round
    if dialect != "sqlite" and isinstance(column.type, DateTime) and column.type.timezone:
        column = func.timezone(literal(zone), column)
    day = func.strftime("%d", column) if dialect == "sqlite" else func.extract("day", column)
    month = func.strftime("%m", column) if dialect == "sqlite" else func.extract("month", column)
    first = "01" if dialect == "sqlite" else 1
    if rule == "month":
        return day != first
    return or_(day != first, month != first)  # year


def _reconcile(conn: Connection, node: TableNode, step: StepContext) -> CheckResult:
    """Archived by this run = still in the archive from this run + destroyed/anonymised by it."""
    table = store.audit_table(step.target.archive_schema, step.policy.audit_table)
    moved = _audited(conn, table, step, node.name, "archive", "row_count")
    gone = _audited(conn, table, step, node.name, "delete", "same_run") + _audited(
        conn, table, step, node.name, "anonymize", "same_run"
    )
    present = conn.execute(
        select(func.count()).select_from(node.archive).where(node.archive.c.run_id == literal(step.ctx.run_id))
    ).scalar_one()
    return _check(node.name, "archive_counts_reconcile", abs(moved - present - gone))


def _audited(conn: Connection, table: Any, step: StepContext, table_name: str, action: str, field: str) -> int:
    total = 0
    for event in audit.events(conn, table, run_id=step.ctx.run_id, table_name=table_name, action=action):
        total += event["row_count"] if field == "row_count" else int(event["details"].get(field, 0))
    return total

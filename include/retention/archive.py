"""Move rows whose active period has ended into the restricted archive.

Per batch, in one transaction:

1. choose the batch's parent rows once (``batches.in_batches``; locked on PostgreSQL, so
   the application cannot change them or give them new children before the commit);
2. copy the parents, then each level of children, keeping only the archive columns and
   stamping ``retention_until = start + active period + archive period`` - counted from
   the start event, not from today, so a late run never extends retention; copy the
   parents' retained dependants (``archived_with``) with their own category's clock;
3. delete dependants and children bottom-up, then parents - only rows whose copy is in
   the archive;
4. check that every table removed exactly as many rows as it copied, and write one
   audit event per table (under the category whose rule applied).

If anything fails the whole batch rolls back: no row is ever in neither place or in both.
"""

from __future__ import annotations

import logging
from functools import partial
from datetime import datetime, timezone

from sqlalchemy import and_, delete, exists, false, func, insert, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from . import audit, limits
from .batches import add_counts, child_condition, in_batches, same_key
from .catalog import ARCHIVE_METADATA_COLUMNS, TableNode
from .clock import retention_dates
from .errors import BatchIntegrityError
from .policy import Category
from .holds import HoldsInForce
from .steps import (
    StepContext,
    batch_size_of,
    check_policy_unchanged,
    create_archive_tables,
    holds_of,
    open_step,
)

log = logging.getLogger(__name__)


def archive_category(step: StepContext, batch_size: int | None = None,
                     approved: dict[str, int] | None = None) -> dict[str, int]:
    """Archive every due row of the category; returns rows archived per table.

    ``approved``: the removals a person approved (``limits.approved_counts``); past the
    category's deletion limit without it, nothing moves (``limits.check``)."""
    category = step.category
    totals: dict[str, int] = {}
    if not category.has_archive:
        log.info("%s has no archive period: rows go straight to end of life in purge", category.key)
        return totals
    size = batch_size_of(step, batch_size)
    if not step.ctx.dry_run:
        check_policy_unchanged(step)
    nodes = open_step(step, create_archive=False)
    holds = holds_of(step)
    due_by_root = [(root, due_for_archive(root, step, holds)) for root in nodes]
    if not step.ctx.dry_run:
        for root, due in due_by_root:  # every table is checked before anything is created or moved
            limits.check_in_database(step, root.name, root.source, "active", due, root.scope, approved)
        create_archive_tables(step, nodes)
    for root, due in due_by_root:
        if step.ctx.dry_run:
            _log_would_archive(step, root, due)
            continue
        for batch in in_batches(step.target.engine, table=root.source, key_columns=root.key_columns,
                                where=due, batch_size=size, lock=True,
                                work=partial(_move_batch, root=root, step=step)):
            add_counts(totals, batch.counts)
            log.info("Archived batch %d of %s in %.2fs: %s", batch.number, root.name, batch.seconds, batch.counts)
    return totals


def due_for_archive(root: TableNode, step: StepContext, holds: HoldsInForce) -> ColumnElement[bool]:
    """Rows whose active period has ended, less those a legal hold keeps where they are."""
    return and_(root.due(step.category.active_period, step.ctx.as_of, step.policy.zones),
                *holds.not_held(root, "source", step.category.key))


def _move_batch(conn: Connection, cond: ColumnElement[bool], *, root: TableNode, step: StepContext) -> dict[str, int]:
    """Copy the batch's rows, their children and their retained dependants; then delete them."""
    copied = {step.category.key: _copy_tree(conn, root, cond, step, step.category)}
    for dep in root.dependants:
        # A dependant keeps its own category's clock: retention counted from its own start.
        linked = dep.linked("source", root, cond)
        copied.setdefault(dep.category.key, {}).update(_copy_tree(conn, dep.node, linked, step, dep.category))
    removed: dict[str, int] = {}
    for dep in root.dependants:  # before the parent: their foreign keys point at it
        removed.update(_delete_copied_tree(conn, dep.node, dep.linked("source", root, cond)))
    removed.update(_delete_copied_tree(conn, root, cond))
    all_copied = {table: n for counts in copied.values() for table, n in counts.items()}
    if all_copied != removed:
        raise BatchIntegrityError(
            f"archive of {root.name}: copied {all_copied} but removed {removed} rows; the batch was rolled back"
        )
    for category_key, counts in copied.items():
        for table_name, count in counts.items():
            if count:
                audit.record(conn, step.audit_table, step.ctx, category=category_key, action="archive",
                             table_name=table_name, row_count=count)
    return all_copied


def _copy_tree(conn: Connection, node: TableNode, cond: ColumnElement[bool], step: StepContext,
               category: Category, parent: TableNode | None = None) -> dict[str, int]:
    kept = [c.name for c in node.archive.columns if c.name not in ARCHIVE_METADATA_COLUMNS]
    source_columns = [node.source.c[name] for name in kept]
    if parent is None:
        dates = retention_dates(node.start, category.active_period, category.archive_or_zero,
                                step.target.dialect, step.policy.zones)
        query = select(*source_columns, *dates).where(cond)
    else:
        # Children inherit their parent's dates: they live and die with it.
        parent_copy = parent.archive
        joined = node.source.join(parent_copy, same_key(node.source, parent_copy, node.foreign_key,
                                                         parent.key_columns))
        query = (select(*source_columns, parent_copy.c.retention_start, parent_copy.c.retention_until)
                 .select_from(joined).where(cond))
    stamp = [literal(datetime.now(timezone.utc), type_=node.archive.c.archived_at.type),
             literal(step.ctx.policy_version), literal(step.ctx.run_id), false()]
    query = query.add_columns(*stamp)
    # preserve_rowcount: SQLAlchemy only guarantees rowcount for UPDATE/DELETE otherwise.
    statement = insert(node.archive).from_select([*kept, *ARCHIVE_METADATA_COLUMNS], query)
    result = conn.execute(statement.execution_options(preserve_rowcount=True))
    counts = {node.name: result.rowcount}
    for child in node.children:
        counts.update(_copy_tree(conn, child, child_condition(child, node, "source", cond), step, category, node))
    return counts


def _delete_copied_tree(conn: Connection, node: TableNode, cond: ColumnElement[bool]) -> dict[str, int]:
    """Delete children first, then the parents; only rows whose archive copy exists."""
    counts: dict[str, int] = {}
    for child in node.children:
        counts.update(_delete_copied_tree(conn, child, child_condition(child, node, "source", cond)))
    # Aliased: on SQLite the archive table has the same name as its source.
    copy = node.archive.alias("archived_copy")
    copy_exists = exists().where(same_key(copy, node.source, node.key_columns, node.key_columns))
    counts[node.name] = conn.execute(delete(node.source).where(and_(cond, copy_exists))).rowcount
    return counts


def _log_would_archive(step: StepContext, root: TableNode, due: ColumnElement[bool]) -> None:
    with step.target.read() as conn:
        count = conn.execute(select(func.count()).select_from(root.source).where(due)).scalar_one()
    log.info("Would archive %d rows from %s (category %s, as of %s)", count, root.name,
             step.category.key, step.ctx.as_of)

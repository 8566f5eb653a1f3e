"""Move rows whose active period has ended into the restricted archive.

A row its category asks for re-consent waits for the ask, at most the notice window past
the end of its active period (``waiting``), and a yes restarts its clock (``start_events``).

Per batch, in one transaction:

1. choose the batch's parent rows once, with their retention dates
   (``batches.in_batches``; locked on PostgreSQL, so the application cannot change them
   before the commit - nor give them new children through a foreign key, which waits for
   the lock; a child added through a link only the policy declares is caught in step 4):
   ``retention_until = start + active
   period + archive period`` - counted from the start event, not from today, so a late
   run never extends retention;
2. move the parents' retained dependants (``archived_with``), with their own category's
   clock: copied, then deleted where their copy is in the archive (those already past
   their own horizon too: the purge of the same run destroys them, see ``dependants``;
   a parent with a held dependant is held, and moves nowhere);
3. move the children bottom-up, then the parents, keeping only the archive columns; the
   children take their parent's dates. On PostgreSQL each table moves in one statement
   (``DELETE ... RETURNING`` feeding the ``INSERT``); elsewhere it is copied, then
   deleted where its copy is in the archive;
4. on PostgreSQL, move the late children too: rows the application inserted, while the
   batch ran, under a parent the batch has moved, through a link the policy declares and
   no foreign key enforces (nothing in the database made them wait for the batch). They
   are found again from the parents' archive copies, at every depth, and follow their
   parent with its dates. A sweep after the last batch moves those committed in the last
   instant before a batch's commit;
5. check that every table removed exactly as many rows as it copied, and write one
   audit event per table (under the category whose rule applied).

If anything fails the whole batch rolls back: no row is ever in neither place or in both.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, literal, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement, Label
from sqlalchemy.sql.selectable import Select

from include.retention.database.archive_tables import ARCHIVE_METADATA_COLUMNS, archive_stamp
from include.retention.database.capabilities import capabilities_of
from include.retention.database.reflect import Side, TableNode, key_of
from include.retention.dates.clock import retention_dates
from include.retention.errors import BatchIntegrityError
from include.retention.policy.model import Category
from include.retention.records import audit
from include.retention.records.held_rows import HoldsInForce
from include.retention.records.locks import batch_in_progress
from include.retention.schedule import dependants, limits, partitions
from include.retention.schedule.batches import ChosenRows, add_counts, child_condition, in_batches, same_key
from include.retention.schedule.context import OpenStep, StepContext, Walk, begin
from include.retention.schedule.progress import Progress
from include.retention.schedule.waiting import not_waiting_in_step

log = logging.getLogger(__name__)


def archive_category(
    step: StepContext, batch_size: int | None = None, approved: dict[str, int] | None = None
) -> dict[str, int]:
    """Archive every due row of the category; returns rows archived per table.

    ``approved``: the removals a person approved (``limits.approved_counts``); past the
    category's deletion limit without it, nothing moves (``limits.check_walk``)."""
    totals: dict[str, int] = {}
    if not step.category.has_archive:
        log.info("%s has no archive period: rows go straight to end of life in purge", step.category.key)
        return totals
    begun = begin(step, batch_size, _walks, partial(limits.check_walk, approved=approved), create_archive=True)
    if begun is None:  # a dry run: logged what it would do
        return totals
    opened, walks = begun
    for walk in walks:
        add_counts(totals, _archive_root(opened, walk))
    return totals


def _walks(opened: OpenStep) -> list[Walk]:
    """One walk per root table: its due rows, less those a hold keeps or that wait for the
    re-consent ask (a table whose rows are asked is never partitioned: the policy refuses it,
    as its partitions' bounds know neither who waits nor whose clock a yes restarted)."""
    step = opened.step
    limit = step.policy.deletion_limit_for(step.category)
    return [
        Walk(
            node=root,
            side=Side.ACTIVE,
            where=due,
            counted=due,
            base=root.scope,
            limit=limit,
            step=step,
            verb="archive",
            whole=tuple(partitions.whole_partitions(step, root, opened.holds)),
        )
        for root, due in ((root, due_for_archive(root, step, opened.holds)) for root in opened.nodes)
    ]


def _archive_root(opened: OpenStep, walk: Walk) -> dict[str, int]:
    """Move a root's whole partitions, then its due rows in batches, then (PostgreSQL) the
    children the application inserted under them meanwhile."""
    step, root = opened.step, walk.node
    totals: dict[str, int] = {}
    progress = Progress(log, "Archive", root.name, walk.due)
    for partition in walk.whole:
        moved = partitions.archive_partition(step, root, partition)
        add_counts(totals, {root.name: moved})
        progress.advance(moved)
    for batch in in_batches(
        step.target.engine,
        table=root.source,
        key_columns=root.key_columns,
        where=walk.where,
        batch_size=opened.batch_size,
        lock=True,
        carry=_root_dates(root, step),
        workers=step.policy.batch_workers,
        work=partial(_move_batch, root=root, step=step),
    ):
        add_counts(totals, batch.counts)
        log.debug("Archived batch %d of %s in %.2fs: %s", batch.number, root.name, batch.seconds, batch.counts)
        progress.advance(batch.counts.get(root.name, 0))
    if step.target.capabilities.concurrent_writers and (root.children or root.dependants):
        add_counts(totals, _sweep_late_children(step, root))
    progress.finish(totals)
    return totals


def due_for_archive(root: TableNode, step: StepContext, holds: HoldsInForce) -> ColumnElement[bool]:
    """Rows whose active period has ended, less those waiting for the re-consent ask
    (``waiting``: at most the notice window) and those a legal hold keeps where they are -
    held themselves, with a held retained dependant, which must not move either, or (a
    dependant released by its parent's event) with a held parent."""
    due = root.due(step.category.active_period, step.ctx.as_of, step.policy.zones)
    with step.target.read() as conn:  # a released dependant is also held through its parent
        not_waiting = not_waiting_in_step(conn, step, root)
        kept = dependants.not_held_released(conn, step.policy, step.target, root, Side.ACTIVE, step.category.key, holds)
    return and_(due, *not_waiting, *kept)


def _move_batch(conn: Connection, chosen: ChosenRows, *, root: TableNode, step: StepContext) -> dict[str, int]:
    """Move the batch's retained dependants, then its rows with their children."""
    copied: dict[str, dict[str, int]] = {}
    removed: dict[str, int] = {}
    rows = chosen.rows_of(root.source, root.key_columns)
    for dep in root.dependants:
        # A dependant keeps its own category's clock, counted from its own start: copied
        # first, while every row its clock may derive from is still in place.
        linked = dep.linked(Side.ACTIVE, root, rows)
        copied.setdefault(dep.category.key, {}).update(_copy_tree(conn, dep.node, linked, step, dep.category))
        removed.update(_delete_copied_tree(conn, dep.node, linked))
    moved = _move_tree(conn, root, rows, chosen, step, [])
    copied.setdefault(step.category.key, {}).update({name: n for name, (n, _) in moved.items()})
    removed.update({name: n for name, (_, n) in moved.items()})
    if capabilities_of(conn.dialect.name).concurrent_writers:  # SQLite: BEGIN IMMEDIATE kept every other writer out
        _move_late_children(conn, root, chosen.rows_of(root.archive, root.key_columns), step, copied, removed)
    return _check_and_audit(conn, root, step, copied, removed)


def _check_and_audit(
    conn: Connection, root: TableNode, step: StepContext, copied: dict[str, dict[str, int]], removed: dict[str, int]
) -> dict[str, int]:
    """Every table removed exactly what it copied, or the transaction rolls back; one audit
    event per table with rows moved, under the category whose rule applied."""
    all_copied = {table: n for counts in copied.values() for table, n in counts.items() if n or removed.get(table)}
    if all_copied != {table: n for table, n in removed.items() if n or all_copied.get(table)}:
        raise BatchIntegrityError(
            f"archive of {root.name}: copied {all_copied} but removed {removed} rows; the batch was rolled back"
        )
    for category_key, counts in copied.items():
        for table_name, count in counts.items():
            if count:
                audit.record(
                    conn,
                    step.audit_table,
                    step.ctx,
                    category=category_key,
                    action="archive",
                    table_name=table_name,
                    row_count=count,
                )
    return all_copied


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for name, n in counts.items():
        totals[name] = totals.get(name, 0) + n


def _move_late_children(
    conn: Connection,
    root: TableNode,
    moved: ColumnElement[bool],
    step: StepContext,
    copied: dict[str, dict[str, int]],
    removed: dict[str, int],
) -> None:
    """Move what the application inserted under parents already moved (``moved``: their rows
    in ``root``'s archive): retained dependants with their own clock, children at any depth
    with their parent's dates. A policy-declared link has no foreign key to make the
    application wait for the batch, so its children are found again from the archive."""
    parent_keys = select(*(root.archive.c[c] for c in root.key_columns)).where(moved)
    for dep in root.dependants:
        late = key_of(dep.node.source, dep.foreign_key).in_(parent_keys)
        _add(copied.setdefault(dep.category.key, {}), _copy_tree(conn, dep.node, late, step, dep.category))
        _add(removed, _delete_copied_tree(conn, dep.node, late))
        archived = key_of(dep.node.archive, dep.foreign_key).in_(parent_keys)
        _late_below(conn, dep.node, archived, step, copied.setdefault(dep.category.key, {}), removed)
    _late_below(conn, root, moved, step, copied.setdefault(step.category.key, {}), removed)


def _late_below(
    conn: Connection,
    node: TableNode,
    archived: ColumnElement[bool],
    step: StepContext,
    copied: dict[str, int],
    removed: dict[str, int],
) -> None:
    """Active children of ``node``'s archived rows (``archived``), copied with their parent's
    dates and deleted where copied; then the same one level down."""
    parent_keys = select(*(node.archive.c[c] for c in node.key_columns)).where(archived)
    for child in node.children:
        late = key_of(child.source, child.foreign_key).in_(parent_keys)
        _add(copied, _copy_tree(conn, child, late, step, step.category, node))
        _add(removed, _delete_copied_tree(conn, child, late))
        _late_below(conn, child, key_of(child.archive, child.foreign_key).in_(parent_keys), step, copied, removed)


def _sweep_late_children(step: StepContext, root: TableNode) -> dict[str, int]:
    """After the last batch, in one transaction: the late children committed in the instant
    between a batch's own look for them and its commit, found under every row this run
    archived."""
    with step.target.engine.begin() as conn:
        batch_in_progress(conn)
        copied: dict[str, dict[str, int]] = {}
        removed: dict[str, int] = {}
        _move_late_children(conn, root, root.archive.c.run_id == step.ctx.run_id, step, copied, removed)
        counts = _check_and_audit(conn, root, step, copied, removed)
    if any(counts.values()):
        log.warning(
            "Moved %s row(s) the application inserted under rows of %s while they were being archived",
            counts,
            root.name,
        )
    return counts


def _root_dates(root: TableNode, step: StepContext) -> list[Label[Any]]:
    """A root row's retention dates, computed once as the batch chooses it (``in_batches``
    carries them beside its key): its children take the same dates, and a clock derived
    from related rows is not re-evaluated while they move."""
    start, until = retention_dates(
        root.start, step.category.active_period, step.category.archive_or_zero, step.target.dialect, step.policy.zones
    )
    return [
        type_coerce(start, root.archive.c.retention_start.type).label("retention_start"),
        type_coerce(until, root.archive.c.retention_until.type).label("retention_until"),
    ]


def _move_tree(
    conn: Connection,
    node: TableNode,
    cond: ColumnElement[bool],
    chosen: ChosenRows,
    step: StepContext,
    path: list[TableNode],
) -> dict[str, tuple[int, int]]:
    """Children first (their foreign keys point at the parent): ``{table: (copied, removed)}``."""
    counts: dict[str, tuple[int, int]] = {}
    for child in node.children:
        child_cond = child_condition(child, node, Side.ACTIVE, cond, None if path else chosen)
        counts.update(_move_tree(conn, child, child_cond, chosen, step, [*path, node]))
    counts[node.name] = _move_rows(conn, node, cond, chosen, step, path)
    return counts


def _move_rows(
    conn: Connection,
    node: TableNode,
    cond: ColumnElement[bool],
    chosen: ChosenRows,
    step: StepContext,
    path: list[TableNode],
) -> tuple[int, int]:
    """Copy the rows selected by ``cond`` to the archive and delete them: ``(copied, removed)``.

    PostgreSQL does both in one statement (``DELETE ... RETURNING`` feeding the ``INSERT``,
    as a DBA would write it), and returns both counts. Elsewhere the rows are copied, then
    deleted only where their copy exists."""
    target = [*node.copied_columns, *ARCHIVE_METADATA_COLUMNS]
    if capabilities_of(conn.dialect.name).returning:
        moved = delete(node.source).where(cond).returning(*node.source.c).cte("moved")
        copy = insert(node.archive).from_select(target, _with_dates(moved, node, path, chosen, step))
        copied = copy.returning(literal(1)).cte("copied")
        counts = select(
            select(func.count()).select_from(copied).scalar_subquery(),
            select(func.count()).select_from(moved).scalar_subquery(),
        )
        n_copied, n_removed = conn.execute(counts).one()
        return n_copied, n_removed
    copy = insert(node.archive).from_select(target, _with_dates(node.source, node, path, chosen, step))
    n_copied = conn.execute(copy.execution_options(preserve_rowcount=True)).rowcount
    return n_copied, _delete_copied(conn, node, cond)


def _with_dates(
    rows: Any, node: TableNode, path: list[TableNode], chosen: ChosenRows, step: StepContext
) -> Select[Any]:
    """``rows``' archive columns with the dates of the batch row they belong to: joined up
    through their (still present) ancestors to the batch's keys."""
    joined, below, below_fk = rows, rows, node.foreign_key
    for ancestor in reversed(path[1:]):
        joined = joined.join(ancestor.source, same_key(below, ancestor.source, below_fk, ancestor.key_columns))
        below, below_fk = ancestor.source, ancestor.foreign_key
    up = below_fk if path else node.key_columns
    joined = joined.join(chosen.keys, same_key(below, chosen.keys, up, chosen.key_columns))
    return select(
        *(rows.c[name] for name in node.copied_columns),
        chosen.keys.c.retention_start,
        chosen.keys.c.retention_until,
        *archive_stamp(node.archive, step.ctx.policy_version, step.ctx.run_id),
    ).select_from(joined)


def _copy_tree(
    conn: Connection,
    node: TableNode,
    cond: ColumnElement[bool],
    step: StepContext,
    category: Category,
    parent: TableNode | None = None,
) -> dict[str, int]:
    """Copy a retained dependant's rows and their children, with the dependant's own clock."""
    kept = node.copied_columns
    source_columns = [node.source.c[name] for name in kept]
    if parent is None:
        dates = retention_dates(
            node.start, category.active_period, category.archive_or_zero, step.target.dialect, step.policy.zones
        )
        query = select(*source_columns, *dates).where(cond)
    else:
        # Children inherit their parent's dates: they live and die with it.
        parent_copy = parent.archive
        joined = node.source.join(parent_copy, same_key(node.source, parent_copy, node.foreign_key, parent.key_columns))
        query = (
            select(*source_columns, parent_copy.c.retention_start, parent_copy.c.retention_until)
            .select_from(joined)
            .where(cond)
        )
    query = query.add_columns(*archive_stamp(node.archive, step.ctx.policy_version, step.ctx.run_id))
    # preserve_rowcount: SQLAlchemy only guarantees rowcount for UPDATE/DELETE otherwise.
    statement = insert(node.archive).from_select([*kept, *ARCHIVE_METADATA_COLUMNS], query)
    result = conn.execute(statement.execution_options(preserve_rowcount=True))
    counts = {node.name: result.rowcount}
    for child in node.children:
        counts.update(_copy_tree(conn, child, child_condition(child, node, Side.ACTIVE, cond), step, category, node))
    return counts


def _delete_copied_tree(conn: Connection, node: TableNode, cond: ColumnElement[bool]) -> dict[str, int]:
    """Delete children first, then the parents; only rows whose archive copy exists."""
    counts: dict[str, int] = {}
    for child in node.children:
        counts.update(_delete_copied_tree(conn, child, child_condition(child, node, Side.ACTIVE, cond)))
    counts[node.name] = _delete_copied(conn, node, cond)
    return counts


def _delete_copied(conn: Connection, node: TableNode, cond: ColumnElement[bool]) -> int:
    # Aliased: on SQLite the archive table has the same name as its source.
    copy = node.archive.alias("archived_copy")
    copy_exists = exists().where(same_key(copy, node.source, node.key_columns, node.key_columns))
    return conn.execute(delete(node.source).where(and_(cond, copy_exists))).rowcount

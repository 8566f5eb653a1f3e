"""End of life: destroy or anonymise rows whose whole retention has run out.

* Categories with an archive: archive rows with ``retention_until <= as_of`` are deleted
  (children first) or anonymised in place, by the category's ``end_action``. Their retained
  dependants past their own horizon go first, by their own category's end action and
  audited under it (``dependants``); a parent waits only for dependants that stay.
* Categories without an archive (navigation tracking): active rows whose active period
  has ended are deleted directly, with their children - they never reach the archive.

Each batch is one transaction with its audit events; a failing batch rolls back whole.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import Any

from sqlalchemy import and_, delete, false, func, inspect, literal, null, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.anonymize import ANONYMISED_METADATA, anonymization_rules, rule_expression
from include.retention.database.capabilities import capabilities_of
from include.retention.database.reflect import Side, TableNode, archive_exists
from include.retention.errors import PolicyError, Problem
from include.retention.records import audit
from include.retention.records.held_rows import HoldsInForce
from include.retention.schedule import dependants, limits, partitions
from include.retention.schedule.batches import ChosenRows, add_counts, child_condition, in_batches
from include.retention.schedule.context import OpenStep, StepContext, Walk, begin
from include.retention.schedule.progress import Progress
from include.retention.schedule.waiting import not_waiting_in_step

log = logging.getLogger(__name__)


def purge_category(
    step: StepContext, batch_size: int | None = None, approved: dict[str, int] | None = None
) -> dict[str, dict[str, int]]:
    """Apply the end action; returns ``{"deleted"|"anonymized": {table: rows}}``.

    Retained dependants past their own horizon go first, by their own category's end action
    (``dependants``): the parents they kept are then released in the same walk.
    ``approved``: as for ``archive_category``, the removals a person approved past the limit."""
    totals: dict[str, dict[str, int]] = {_action(step): {}}
    begun = begin(step, batch_size, _all_walks, partial(_check, approved=approved), create_archive=False)
    if begun is None:  # a dry run: logged what it would do
        return totals
    opened, walks = begun
    for walk in walks:
        add_counts(totals.setdefault(_action(walk.step), {}), _end_walk(opened, walk))
    return totals


def _end_walk(opened: OpenStep, walk: Walk) -> dict[str, int]:
    """Drop a walk's whole partitions, then destroy or anonymise its rows in batches."""
    action, step = _action(walk.step), opened.step
    done: dict[str, int] = {}
    progress = Progress(log, "Anonymisation" if action == "anonymized" else "Deletion", walk.node.name, walk.due)
    for partition in walk.whole:
        dropped = partitions.drop_partition(step, walk.node, partition)
        add_counts(done, {walk.node.name: dropped})
        progress.advance(dropped)
    if walk.side == Side.ARCHIVE:
        _refresh_statistics(step, walk.node)
    work = _anonymize_batch if action == "anonymized" else _delete_batch
    for batch in in_batches(
        step.target.engine,
        table=walk.table,
        key_columns=walk.node.key_columns,
        where=walk.where,
        batch_size=opened.batch_size,
        workers=step.policy.batch_workers,
        work=partial(work, root=walk.node, side=walk.side, step=walk.step),
    ):
        add_counts(done, batch.counts)
        log.debug(
            "%s batch %d of %s in %.2fs: %s",
            action.capitalize(),
            batch.number,
            walk.node.name,
            batch.seconds,
            batch.counts,
        )
        progress.advance(batch.counts.get(walk.node.name, 0))
    progress.finish(done)
    return done


def _action(step: StepContext) -> str:
    return "anonymized" if step.category.end_action == "anonymize" else "deleted"


def _all_walks(opened: OpenStep) -> list[Walk]:
    return [walk for root in opened.nodes for walk in _walks(opened.step, root, opened.holds)]


def _walks(step: StepContext, root: TableNode, holds: HoldsInForce) -> list[Walk]:
    """The root's dependants past their own horizon first, then the root's rows at end of life."""
    side, where = end_of_life(step, root, holds)
    if where is None:
        return []
    if side == Side.ACTIVE:
        # Without an archive to go to, partitions past their horizon are destroyed whole.
        whole = partitions.whole_partitions(step, root, holds) if _action(step) == "deleted" else []
        return [_walk(step, step, root, side, where, where, whole)]
    walks = []
    with step.target.read() as conn:
        present = [
            (dep, dependants.parents_of(conn, step.policy, step.target, dep.node))
            for dep in root.dependants
            if archive_exists(conn, dep.node)
        ]
    for dep, parents in present:
        ends = dependants.at_end_of_life(dep, root, step.ctx.as_of, holds, parents)
        walks.append(_walk(step, replace(step, category=dep.category), dep.node, Side.ARCHIVE, ends, ends))
    # Counted before the dependants go: the parents they release are destroyed in this run too.
    counted = and_(
        root.expired(step.ctx.as_of),
        ~dependants.kept_by_any(root, step.ctx.as_of, holds),
        *_not_held(step, root, Side.ARCHIVE, holds),
    )
    walks.append(_walk(step, step, root, side, where, counted))
    return walks


def _walk(
    run: StepContext,
    owner: StepContext,
    node: TableNode,
    side: Side,
    where: ColumnElement[bool],
    counted: ColumnElement[bool],
    whole: list[partitions.Partition] | None = None,
) -> Walk:
    """One walk of the purge, under ``owner``'s category (its end action, its audit events).
    Its deletion limit, per table side, is the one the plan applied: the run's category's, and
    for a retained dependant destroyed in its parent's run (an invoice in the customer run) the
    stricter of both categories' limits - billing's limit must hold whichever run destroys its
    rows. The base counts rows as the plan does: in scope, or not yet anonymised."""
    table = node.table(side)
    return Walk(
        node=node,
        side=side,
        where=where,
        counted=counted,
        base=node.scope if side == Side.ACTIVE else table.c.anonymized == false(),
        limit=limits.limit_for(run.policy, run.category, owner.category),
        step=owner,
        verb="anonymise" if _action(owner) == "anonymized" else "delete",
        whole=tuple(whole or ()),
        whole_verb="drop",
    )


def _check(walk: Walk, approved: dict[str, int] | None) -> int:
    """Before the first row goes: an anonymised dependant's link can hold NULL, and the
    deletion limit holds. Returns the rows the walk will destroy or anonymise."""
    _check_link_nullable(walk)
    return limits.check_walk(walk, approved)


def _not_held(step: StepContext, root: TableNode, side: Side, holds: HoldsInForce) -> list[ColumnElement[bool]]:
    """``[NOT held]`` for the category's own rows; a retained dependant (billing's invoices) is
    also held through its parent (a held customer keeps its invoices)."""
    if not holds.any:
        return []
    with step.target.read() as conn:
        parents = dependants.parents_of(conn, step.policy, step.target, root)
    return dependants.not_held_dependant(holds, root, side, step.category.key, parents)


def _refresh_statistics(step: StepContext, root: TableNode) -> None:
    """``ANALYZE`` the archive table on PostgreSQL before walking it. The archive step has
    just added what may be millions of rows; with the statistics of the smaller table it
    was, the planner chooses each batch by scanning and sorting the whole table - once per
    batch, which makes the purge quadratic."""
    if not step.target.capabilities.planner_statistics:
        return
    with step.target.engine.begin() as conn:  # the root only: children are reached by their parent's key
        conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(root.archive)}"))


def end_of_life(step: StepContext, root: TableNode, holds: HoldsInForce) -> tuple[Side, ColumnElement[bool] | None]:
    """Which side holds the rows at end of life, and the condition that selects them.

    An archive row whose retained dependants are still in the archive (a customer whose
    invoices must be kept) waits for them: destroying it would leave them dangling. A row
    under a legal hold waits for the hold to end. Without an archive, an active row waits for
    the re-consent ask as the archive step would keep it (``waiting``).
    """
    if not step.category.has_archive:
        due = root.due(step.category.active_period, step.ctx.as_of, step.policy.zones)
        with step.target.read() as conn:
            side, where = Side.ACTIVE, and_(due, *not_waiting_in_step(conn, step, root))
    else:
        with step.target.read() as conn:
            if not archive_exists(conn, root):
                return Side.ARCHIVE, None
        side, where = (
            Side.ARCHIVE,
            and_(root.expired(step.ctx.as_of), *(~dep.retained(root) for dep in root.dependants)),
        )
    return side, and_(where, *_not_held(step, root, side, holds))


def _check_link_nullable(walk: Walk) -> None:
    """Anonymising a retained dependant sets its link to its parent to NULL (below): refuse,
    before the first row, an archive table whose link column cannot hold NULL (one created by
    hand or by another tool), naming the table and the column - not a failed batch every night."""
    link = getattr(walk.node.policy, "archived_with", None)
    if link is None or walk.side != Side.ARCHIVE or _action(walk.step) != "anonymized":
        return
    archive = walk.node.archive
    with walk.step.target.read() as conn:
        columns = {c["name"]: c for c in inspect(conn).get_columns(archive.name, schema=archive.schema)}
    strict = [c for c in link.foreign_key if c in columns and not columns[c]["nullable"]]
    if strict:
        where = f"{archive.schema}.{archive.name}" if archive.schema else archive.name
        raise PolicyError(
            "<archive>",
            [
                Problem(
                    f"table {where}",
                    f"{where}.{strict[0]} is NOT NULL, but anonymising a {walk.node.name} row (category "
                    f"{walk.step.category.key}) sets its link to {link.table} to NULL; make the column nullable "
                    f"(ALTER TABLE ... ALTER COLUMN {strict[0]} DROP NOT NULL) - nothing was changed",
                    strict[0],
                )
            ],
        )


def _delete_batch(
    conn: Connection, chosen: ChosenRows, *, root: TableNode, side: Side, step: StepContext
) -> dict[str, int]:
    same_run: dict[str, int] = {}
    counts = _delete_tree(
        conn, root, side, chosen.rows_of(root.table(side), root.key_columns), step.ctx.run_id, same_run, chosen
    )
    _audit(conn, step, "delete", counts, same_run)
    return counts


def _delete_tree(
    conn: Connection,
    node: TableNode,
    side: Side,
    cond: ColumnElement[bool],
    run_id: str,
    same_run: dict[str, int],
    chosen: ChosenRows | None = None,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for child in node.children:
        counts.update(
            _delete_tree(conn, child, side, child_condition(child, node, side, cond, chosen), run_id, same_run)
        )
    table = node.table(side)
    if side == Side.ACTIVE:
        counts[node.name] = conn.execute(delete(table).where(cond)).rowcount
    else:
        counts[node.name], same_run[node.name] = _delete_archived(conn, table, cond, run_id)
    return counts


def _delete_archived(conn: Connection, archive: Any, cond: ColumnElement[bool], run_id: str) -> tuple[int, int]:
    """Delete archive rows: ``(deleted, of which this same run archived)``. PostgreSQL counts
    both from the deleted rows themselves (``DELETE ... RETURNING``), in one statement."""
    if capabilities_of(conn.dialect.name).returning:
        gone = delete(archive).where(cond).returning(archive.c.run_id).cte("gone")
        deleted, same = conn.execute(
            select(func.count(), func.count().filter(gone.c.run_id == literal(run_id))).select_from(gone)
        ).one()
        return deleted, same
    same = _archived_by(conn, archive, cond, run_id)
    return conn.execute(delete(archive).where(cond)).rowcount, same


def _anonymize_batch(
    conn: Connection, chosen: ChosenRows, *, root: TableNode, side: Side, step: StepContext
) -> dict[str, int]:
    rows = chosen.rows_of(root.archive, root.key_columns)
    # Children are archived in the same batch as their parent, so with the same run id:
    # when this run archived none of the batch's parents, it archived none of their children.
    same_run = {root.name: _archived_by(conn, root.archive, rows, step.ctx.run_id)}
    counts = _anonymize_tree(conn, root, rows, step, same_run, chosen)
    _audit(conn, step, "anonymize", counts, same_run)
    return counts


def _anonymize_tree(
    conn: Connection,
    node: TableNode,
    cond: ColumnElement[bool],
    step: StepContext,
    same_run: dict[str, int],
    chosen: ChosenRows | None = None,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for child in node.children:
        counts.update(
            _anonymize_tree(conn, child, child_condition(child, node, Side.ARCHIVE, cond, chosen), step, same_run)
        )
    archive = node.archive
    values: dict[str, Any] = dict(ANONYMISED_METADATA)
    # The policy's rules, and NULL for the identifiers kept only for rights requests.
    for column, rule in anonymization_rules(node.policy).items():
        expression = rule_expression(archive.c[column], rule, step.target.dialect, step.policy.zone)
        if expression is not None:
            values[column] = expression
    # A retained dependant's link to its parent (an invoice's customer) is the one thing that
    # would tie the anonymised row back to a person; without it, the row keeps no parent.
    link = getattr(node.policy, "archived_with", None)
    values.update({column: null() for column in (link.foreign_key if link else [])})
    if node.name not in same_run:
        same_run[node.name] = _archived_by(conn, archive, cond, step.ctx.run_id) if any(same_run.values()) else 0
    counts[node.name] = conn.execute(update(archive).where(cond).values(**values)).rowcount
    return counts


def _archived_by(conn: Connection, archive: Any, cond: ColumnElement[bool], run_id: str) -> int:
    """How many of these archive rows the same run archived (for the post-run reconciliation)."""
    return conn.execute(
        select(func.count()).select_from(archive).where(cond, archive.c.run_id == literal(run_id))
    ).scalar_one()


def _audit(conn: Connection, step: StepContext, action: str, counts: dict[str, int], same_run: dict[str, int]) -> None:
    for table_name, count in counts.items():
        if count:
            audit.record(
                conn,
                step.audit_table,
                step.ctx,
                category=step.category.key,
                action=action,
                table_name=table_name,
                row_count=count,
                details={"same_run": same_run.get(table_name, 0)},
            )

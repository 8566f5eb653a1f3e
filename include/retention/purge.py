"""End of life: destroy or anonymise rows whose whole retention has run out.

* Categories with an archive: archive rows with ``retention_until <= as_of`` are deleted
  (children first) or anonymised in place, by the category's ``end_action``.
* Categories without an archive (navigation tracking): active rows whose active period
  has ended are deleted directly, with their children - they never reach the archive.

Each batch is one transaction with its audit events; a failing batch rolls back whole.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from sqlalchemy import and_, delete, false, func, literal, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from . import audit, limits, partitions
from .anonymize import ANONYMISED_METADATA, rule_expression
from .batches import ChosenRows, add_counts, child_condition, in_batches
from .catalog import TableNode, archive_exists
from .holds import HoldsInForce
from .steps import StepContext, batch_size_of, check_policy_unchanged, holds_of, open_step

log = logging.getLogger(__name__)


def purge_category(step: StepContext, batch_size: int | None = None,
                   approved: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
    """Apply the end action; returns ``{"deleted"|"anonymized": {table: rows}}``.

    ``approved``: as for ``archive_category``, the removals a person approved past the limit."""
    size = batch_size_of(step, batch_size)
    if not step.ctx.dry_run:
        check_policy_unchanged(step)
    nodes = open_step(step, create_archive=False)
    action = "anonymized" if step.category.end_action == "anonymize" else "deleted"
    totals: dict[str, int] = {}
    holds = holds_of(step)
    ends = [(root, *end_of_life(step, root, holds)) for root in nodes]
    if not step.ctx.dry_run:
        for root, side, where in ends:  # every table is checked before the first row goes
            if where is not None:
                _check_limit(step, root, side, where, approved)
    for root, side, where in ends:
        if where is None:
            continue
        table = getattr(root, side)
        # Without an archive to go to, partitions past their horizon are destroyed whole.
        whole = partitions.whole_partitions(step, root, holds) if side == "source" and action == "deleted" else []
        if step.ctx.dry_run:
            _log_would_purge(step, root, table, where, action, whole)
            continue
        for partition in whole:
            add_counts(totals, {root.name: partitions.drop_partition(step, root, partition)})
        if side == "archive":
            _refresh_statistics(step, root)
        work = _anonymize_batch if action == "anonymized" else _delete_batch
        for batch in in_batches(step.target.engine, table=table, key_columns=root.key_columns, where=where,
                                batch_size=size, workers=step.policy.batch_workers,
                                work=partial(work, root=root, side=side, step=step)):
            add_counts(totals, batch.counts)
            log.info("%s batch %d of %s in %.2fs: %s", action.capitalize(), batch.number, root.name,
                     batch.seconds, batch.counts)
    return {action: totals}


def _refresh_statistics(step: StepContext, root: TableNode) -> None:
    """``ANALYZE`` the archive table on PostgreSQL before walking it. The archive step has
    just added what may be millions of rows; with the statistics of the smaller table it
    was, the planner chooses each batch by scanning and sorting the whole table - once per
    batch, which makes the purge quadratic."""
    if step.target.dialect != "postgresql":
        return
    with step.target.engine.begin() as conn:  # the root only: children are reached by their parent's key
        conn.execute(text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(root.archive)}"))


def end_of_life(step: StepContext, root: TableNode, holds: HoldsInForce) -> tuple[str, ColumnElement[bool] | None]:
    """Which side holds the rows at end of life, and the condition that selects them.

    An archive row whose retained dependants are still in the archive (a customer whose
    invoices must be kept) waits for them: destroying it would leave them dangling. A row
    under a legal hold waits for the hold to end.
    """
    if not step.category.has_archive:
        side, where = "source", root.due(step.category.active_period, step.ctx.as_of, step.policy.zones)
    else:
        with step.target.read() as conn:
            if not archive_exists(conn, root):
                return "archive", None
        side, where = "archive", and_(root.expired(step.ctx.as_of), *(~dep.retained(root) for dep in root.dependants))
    return side, and_(where, *holds.not_held(root, side, step.category.key))


def _check_limit(step: StepContext, root: TableNode, side: str, where: ColumnElement[bool],
                 approved: dict[str, int] | None) -> None:
    table = getattr(root, side)
    held = root.scope if side == "source" else table.c.anonymized == false()  # as plan counts it
    limits.check_in_database(step, root.name, table, "active" if side == "source" else "archive", where, held,
                             approved)


def _delete_batch(conn: Connection, chosen: ChosenRows, *, root: TableNode, side: str,
                  step: StepContext) -> dict[str, int]:
    same_run: dict[str, int] = {}
    counts = _delete_tree(conn, root, side, chosen.rows_of(getattr(root, side), root.key_columns), step.ctx.run_id,
                          same_run, chosen)
    _audit(conn, step, "delete", counts, same_run)
    return counts


def _delete_tree(conn: Connection, node: TableNode, side: str, cond: ColumnElement[bool], run_id: str,
                 same_run: dict[str, int], chosen: ChosenRows | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for child in node.children:
        counts.update(_delete_tree(conn, child, side, child_condition(child, node, side, cond, chosen), run_id, same_run))
    table = getattr(node, side)
    if side == "source":
        counts[node.name] = conn.execute(delete(table).where(cond)).rowcount
    else:
        counts[node.name], same_run[node.name] = _delete_archived(conn, table, cond, run_id)
    return counts


def _delete_archived(conn: Connection, archive: Any, cond: ColumnElement[bool], run_id: str) -> tuple[int, int]:
    """Delete archive rows: ``(deleted, of which this same run archived)``. PostgreSQL counts
    both from the deleted rows themselves (``DELETE ... RETURNING``), in one statement."""
    if conn.dialect.name == "postgresql":
        gone = delete(archive).where(cond).returning(archive.c.run_id).cte("gone")
        deleted, same = conn.execute(select(func.count(), func.count().filter(gone.c.run_id == literal(run_id)))
                                     .select_from(gone)).one()
        return deleted, same
    same = _archived_by(conn, archive, cond, run_id)
    return conn.execute(delete(archive).where(cond)).rowcount, same


def _anonymize_batch(conn: Connection, chosen: ChosenRows, *, root: TableNode, side: str,
                     step: StepContext) -> dict[str, int]:
    rows = chosen.rows_of(root.archive, root.key_columns)
    # Children are archived in the same batch as their parent, so with the same run id:
    # when this run archived none of the batch's parents, it archived none of their children.
    same_run = {root.name: _archived_by(conn, root.archive, rows, step.ctx.run_id)}
    counts = _anonymize_tree(conn, root, rows, step, same_run, chosen)
    _audit(conn, step, "anonymize", counts, same_run)
    return counts


def _anonymize_tree(conn: Connection, node: TableNode, cond: ColumnElement[bool], step: StepContext,
                    same_run: dict[str, int], chosen: ChosenRows | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for child in node.children:
        counts.update(_anonymize_tree(conn, child, child_condition(child, node, "archive", cond, chosen), step, same_run))
    archive = node.archive
    values: dict[str, Any] = dict(ANONYMISED_METADATA)
    for column, rule in node.policy.anonymize.items():
        expression = rule_expression(archive.c[column], rule, step.target.dialect, step.policy.zone)
        if expression is not None:
            values[column] = expression
    if node.name not in same_run:
        same_run[node.name] = _archived_by(conn, archive, cond, step.ctx.run_id) if any(same_run.values()) else 0
    counts[node.name] = conn.execute(update(archive).where(cond).values(**values)).rowcount
    return counts


def _archived_by(conn: Connection, archive: Any, cond: ColumnElement[bool], run_id: str) -> int:
    """How many of these archive rows the same run archived (for the post-run reconciliation)."""
    return conn.execute(select(func.count()).select_from(archive).where(
        cond, archive.c.run_id == literal(run_id))).scalar_one()


def _audit(conn: Connection, step: StepContext, action: str, counts: dict[str, int],
           same_run: dict[str, int]) -> None:
    for table_name, count in counts.items():
        if count:
            audit.record(conn, step.audit_table, step.ctx, category=step.category.key, action=action,
                         table_name=table_name, row_count=count, details={"same_run": same_run.get(table_name, 0)})


def _log_would_purge(step: StepContext, root: TableNode, table: Any, where: ColumnElement[bool], action: str,
                     whole: list[partitions.Partition]) -> None:
    with step.target.read() as conn:
        count = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
    verb = "anonymise" if action == "anonymized" else "delete"
    log.info("Would %s %d rows of %s (category %s, as of %s)", verb, count, root.name, step.category.key,
             step.ctx.as_of)
    if whole:
        log.info("Would drop %d partition(s) whole: %s", len(whole), ", ".join(p.qualified for p in whole))

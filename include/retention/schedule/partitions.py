"""Whole partitions past their horizon: moved to the archive, or dropped, in one step each.

A CRM's largest tables (page views, e-mail events) are often range-partitioned by month
on the date their retention counts from. When the policy says so (``partitioned: true``),
a partition whose *upper bound* is at or before the first start that is not yet due holds
only due rows - that is read from its bounds, not from its rows - and it goes whole:

* to the archive: the partition is locked against writes, its rows copied to the archive
  in one ``INSERT ... SELECT`` (keeping only the archive columns, with their retention
  dates), the copy counted against the partition, then the partition is detached and
  dropped. The archive keeps fewer columns than the source and a date per row, so the
  partition itself cannot be attached to the archive as it is; the active table is
  emptied in one step instead of by deleting rows;
* to end of life (a category without an archive): the partition is locked, counted for
  the audit log, detached and dropped.

Each partition is one transaction with its audit event (``details.partition`` names it):
a failure leaves it attached and whole. A partition that holds a row under a legal hold
is not taken whole; nor are partitions that straddle the horizon, the default partition,
or one bounded by ``MAXVALUE``: their due rows go by batches, as in any table.

PostgreSQL only: on SQLite (no partitions) the same policy moves rows by batches.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import Column, Integer, MetaData, Table, cast, func, insert, literal, literal_column, select, text
from sqlalchemy.engine import Connection

from include.retention.database.archive_tables import ARCHIVE_METADATA_COLUMNS, archive_stamp
from include.retention.database.partitioning import Partition, partitions_of, quoted_name
from include.retention.database.reflect import Side, TableNode
from include.retention.dates.clock import first_not_due, retention_dates
from include.retention.errors import BatchIntegrityError, RetentionError
from include.retention.records import audit
from include.retention.records.held_rows import HoldsInForce
from include.retention.records.locks import batch_in_progress
from include.retention.schedule.context import StepContext

log = logging.getLogger(__name__)


def whole_partitions(step: StepContext, root: TableNode, holds: HoldsInForce) -> list[Partition]:
    """Partitions of a ``partitioned`` table whose every row is due, less those holding a row
    under a legal hold; none on a database without partitions."""
    if not root.root_policy.partitioned or not step.target.capabilities.partitions:
        return []
    with step.target.read() as conn:
        return _whole(conn, root, step, holds)


def _start_column(root: TableNode) -> str:
    """The column a partitioned table is partitioned on: its start event's (the policy refuses
    a partitioned table whose start event is not one column)."""
    column = root.root_policy.start_event.column
    if column is None:
        raise RetentionError(f"{root.name} is partitioned but its start event is not one column")
    return column


def _whole(conn: Connection, root: TableNode, step: StepContext, holds: HoldsInForce) -> list[Partition]:
    column = root.source.c[_start_column(root)]
    first = first_not_due(column.type, step.category.active_period, step.ctx.as_of, step.policy.zones)
    candidates = [
        p
        for p in partitions_of(conn, root.source)
        if p.upper is not None
        and conn.execute(select(cast(literal(p.upper), column.type) <= literal(first, type_=column.type))).scalar_one()
    ]
    if not candidates or not holds.any:
        return candidates
    held = set(
        conn.execute(
            select(literal_column("tableoid", Integer))
            .select_from(root.source)
            .where(holds.held(root, Side.ACTIVE, step.category.key))
            .distinct()
        ).scalars()
    )
    for partition in (p for p in candidates if p.oid in held):
        log.info("Partition %s holds a row under a legal hold: its other due rows go by batches", partition.qualified)
    return [p for p in candidates if p.oid not in held]


def archive_partition(step: StepContext, root: TableNode, partition: Partition) -> int:
    """Copy a due partition's rows to the archive, then detach and drop it; one transaction."""
    started = time.perf_counter()
    with step.target.engine.begin() as conn:
        batch_in_progress(conn)  # a running erasure waits for this move, or this move for it
        rows = _as_table(root.source, partition)
        conn.execute(text(f"LOCK TABLE {quoted_name(conn, partition.schema, partition.name)} IN SHARE MODE"))
        dates = retention_dates(
            rows.c[_start_column(root)],
            step.category.active_period,
            step.category.archive_or_zero,
            step.target.dialect,
            step.policy.zones,
        )
        stamp = archive_stamp(root.archive, step.ctx.policy_version, step.ctx.run_id)
        copy = insert(root.archive).from_select(
            [*root.copied_columns, *ARCHIVE_METADATA_COLUMNS],
            select(*(rows.c[c] for c in root.copied_columns), *dates, *stamp),
        )
        copied = conn.execute(copy.execution_options(preserve_rowcount=True)).rowcount
        present = conn.execute(select(func.count()).select_from(rows)).scalar_one()
        if copied != present:
            raise BatchIntegrityError(
                f"archive of partition {partition.qualified}: copied {copied} of {present} "
                "rows; rolled back, the partition stays attached"
            )
        _detach_and_drop(conn, root.source, partition)
        audit.record(
            conn,
            step.audit_table,
            step.ctx,
            category=step.category.key,
            action="archive",
            table_name=root.name,
            row_count=copied,
            details={"partition": partition.qualified},
        )
    log.info(
        "Archived partition %s whole in %.2fs: %d rows of %s",
        partition.qualified,
        time.perf_counter() - started,
        copied,
        root.name,
    )
    return copied


def drop_partition(step: StepContext, root: TableNode, partition: Partition) -> int:
    """Destroy a due partition (a category without an archive): count, detach, drop."""
    started = time.perf_counter()
    with step.target.engine.begin() as conn:
        batch_in_progress(conn)
        conn.execute(text(f"LOCK TABLE {quoted_name(conn, partition.schema, partition.name)} IN ACCESS EXCLUSIVE MODE"))
        count = conn.execute(select(func.count()).select_from(_as_table(root.source, partition))).scalar_one()
        _detach_and_drop(conn, root.source, partition)
        audit.record(
            conn,
            step.audit_table,
            step.ctx,
            category=step.category.key,
            action="delete",
            table_name=root.name,
            row_count=count,
            details={"partition": partition.qualified, "same_run": 0},
        )
    log.info(
        "Dropped partition %s whole in %.2fs: %d rows of %s",
        partition.qualified,
        time.perf_counter() - started,
        count,
        root.name,
    )
    return count


def _detach_and_drop(conn: Connection, parent: Table, partition: Partition) -> None:
    # Names come from the live catalogue (pg_inherits), quoted by the dialect.
    conn.execute(
        text(
            f"ALTER TABLE {quoted_name(conn, parent.schema, parent.name)} "
            f"DETACH PARTITION {quoted_name(conn, partition.schema, partition.name)}"
        )
    )
    conn.execute(text(f"DROP TABLE {quoted_name(conn, partition.schema, partition.name)}"))


def _as_table(source: Table, partition: Partition) -> Table:
    """The partition as a table of its own, with the parent's columns."""
    return Table(partition.name, MetaData(), *(Column(c.name, c.type) for c in source.columns), schema=partition.schema)

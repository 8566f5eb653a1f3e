"""Primary-key range batches: each batch is one short transaction.

A long ``DELETE`` over millions of rows holds locks for minutes and, if it fails, throws
away all its work. Here the rows a step selects are walked in primary-key order, at most
``batch_size`` at a time; each batch runs in its own transaction, so a failure leaves
the database as it was before that batch, and every earlier batch complete.

A batch's rows are chosen once, at its start: their keys go into a temporary table, and
every statement of the batch works from those keys. The selecting condition is never
evaluated again - it could change meaning half-way (a customer's clock derived from its
invoices stops matching once the invoices have moved) - and a clock derived from related
tables is computed once per batch, not once per statement. On PostgreSQL the chosen rows
are locked (``FOR UPDATE``) as they are chosen, so the application cannot change them
before the batch commits. Each batch also holds the shared lock that keeps an erasure from
meeting it half-way (``locks.batch_in_progress``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table, and_, insert, select, true, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement, Label
from sqlalchemy.sql.selectable import Select

from include.retention.database.capabilities import capabilities_of
from include.retention.database.reflect import Side, TableNode, key_of, linked_rows
from include.retention.records.locks import batch_in_progress


@dataclass(frozen=True)
class ChosenRows:
    """The rows chosen for one batch.

    ``keys`` is the temporary table of their keys, with any values carried from the
    choosing query; ``lower`` (exclusive, ``None`` for the first batch) and ``upper``
    (inclusive) bound them in key order. Every condition below says both "key in the
    batch's keys" and "key in its range": the range lets the database read only that slice
    of the key's index (or of a child's foreign-key index) instead of scanning the table
    once per batch, which on a large table would make the whole walk quadratic."""

    keys: Table
    key_columns: tuple[str, ...]
    lower: tuple[Any, ...] | None
    upper: tuple[Any, ...]

    def key_select(self) -> Select[Any]:
        return select(*(self.keys.c[c] for c in self.key_columns))

    def rows_of(self, table: Any, columns: Sequence[str]) -> ColumnElement[bool]:
        """Rows of ``table`` whose ``columns`` hold a chosen key: the chosen rows themselves
        (with the key columns) or their children (with a foreign key)."""
        key = key_of(table, columns)
        lower = [] if self.lower is None else [key > _as_key(self.lower)]
        return and_(key.in_(self.key_select()), *lower, key <= _as_key(self.upper))


@dataclass(frozen=True)
class BatchResult:
    number: int
    counts: dict[str, int]
    seconds: float


def add_counts(totals: dict[str, int], counts: dict[str, int]) -> None:
    """Accumulate per-table row counts, leaving out tables where nothing happened."""
    for name, n in counts.items():
        if n:
            totals[name] = totals.get(name, 0) + n


def same_key(left: Any, right: Any, left_columns: Sequence[str], right_columns: Sequence[str]) -> ColumnElement[bool]:
    return and_(*(left.c[a] == right.c[b] for a, b in zip(left_columns, right_columns, strict=True)))


def in_batches(
    engine: Engine,
    *,
    table: Any,
    key_columns: Sequence[str],
    where: ColumnElement[bool],
    batch_size: int,
    work: Callable[[Connection, ChosenRows], dict[str, int]],
    lock: bool = False,
    carry: Sequence[Label[Any]] = (),
    workers: int = 1,
) -> Iterator[BatchResult]:
    """Run ``work(conn, chosen)`` on successive batches, one transaction each.

    ``chosen`` holds exactly the (at most ``batch_size``) rows chosen for the batch, in key
    order after the previous batch. ``lock`` locks them on PostgreSQL. ``carry``: values
    computed once per row as it is chosen (a row's retention dates) and kept beside its key.
    ``workers``: batches run side by side on PostgreSQL, each on its own connection (SQLite
    has one writer: always one there).
    """
    walk = _Walk(engine, table, tuple(key_columns), where, batch_size, work, lock, tuple(carry))
    if workers > 1 and capabilities_of(engine.dialect.name).concurrent_writers:
        yield from _side_by_side(walk, workers)
        return
    while (batch := walk.next_batch()) is not None:
        yield batch
        if not capabilities_of(engine.dialect.name).concurrent_writers and not walk.done:
            # SQLite has one write lock and no queue: a waiting writer polls for it (every
            # 100 ms at most). This gap lets the application's writes in between two batches,
            # so they wait for one batch at most, not for the whole run.
            time.sleep(SQLITE_WRITER_GAP)


@dataclass
class _Walk:
    """The walk through a table in key order, shared by the workers: each batch chooses its
    rows (and locks them) under ``mutex``, so that batches never overlap, then does its work
    on its own connection while the next batch is chosen."""

    engine: Engine
    table: Any
    key_columns: tuple[str, ...]
    where: ColumnElement[bool]
    batch_size: int
    work: Callable[[Connection, ChosenRows], dict[str, int]]
    lock: bool
    carry: tuple[Label[Any], ...]
    lower: tuple[Any, ...] | None = None
    number: int = 0
    done: bool = False
    mutex: threading.Lock = field(default_factory=threading.Lock)

    def next_batch(self) -> BatchResult | None:
        """Choose and process the next batch in one transaction; None when the walk is over."""
        started = time.perf_counter()
        with self.engine.begin() as conn:
            batch_in_progress(conn)  # before the mutex: a worker waiting for an erasure holds no one up
            with self.mutex:
                if self.done:
                    return None
                lower = self.lower
                keys, count = _materialize(conn, self.table, self.key_columns, self.carry, self._chosen(conn, lower))
                if count == 0:
                    self.done = True
                    _drop(conn, keys)
                    return None
                last = tuple(
                    conn.execute(
                        select(*(keys.c[c] for c in self.key_columns))
                        .order_by(*(keys.c[c].desc() for c in self.key_columns))
                        .limit(1)
                    ).one()
                )
                self.lower, self.number, self.done = last, self.number + 1, count < self.batch_size
                number = self.number
            counts = self.work(conn, ChosenRows(keys, self.key_columns, lower, last))
            _drop(conn, keys)
        return BatchResult(number, counts, time.perf_counter() - started)

    def stop(self) -> None:
        with self.mutex:
            self.done = True

    def _chosen(self, conn: Connection, lower: tuple[Any, ...] | None) -> Select[Any]:
        key = key_of(self.table, self.key_columns)
        after = true() if lower is None else key > _as_key(lower)
        ordered = [self.table.c[c] for c in self.key_columns]
        chosen = select(*ordered, *self.carry).where(self.where, after).order_by(*ordered).limit(self.batch_size)
        if self.lock and capabilities_of(conn.dialect.name).row_locks:
            chosen = chosen.with_for_update(of=self.table)
        return chosen


_FINISHED = object()


def _side_by_side(walk: _Walk, workers: int) -> Iterator[BatchResult]:
    """Run the walk on ``workers`` threads (the database does the work; each waits on its
    connection) and yield each batch as it commits. A failing batch rolls back alone: the
    others stop after their current batch, which commits whole, and the error is raised."""
    results: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        try:
            while (batch := walk.next_batch()) is not None:
                results.put(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            walk.stop()
            results.put(exc)
        finally:
            results.put(_FINISHED)

    threads = [threading.Thread(target=run, name=f"retention-batch-{i + 1}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    error: BaseException | None = None
    try:
        finished = 0
        while finished < workers:
            item = results.get()
            if item is _FINISHED:
                finished += 1
            elif isinstance(item, BaseException):
                error = error or item
            else:
                yield item
    finally:
        walk.stop()
        for thread in threads:
            thread.join()
    if error is not None:
        raise error


_BATCH_KEYS = "retention_batch_keys"
SQLITE_WRITER_GAP = 0.1  # seconds between two batches on SQLite


def _materialize(
    conn: Connection, table: Any, key_columns: Sequence[str], carry: Sequence[Label[Any]], chosen: Select[Any]
) -> tuple[Table, int]:
    """Store the chosen keys in a temporary table that lives for the transaction."""
    columns = [Column(c, table.c[c].type, primary_key=True, autoincrement=False) for c in key_columns]
    columns += [Column(value.name, value.type) for value in carry]
    keys = Table(_BATCH_KEYS, MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    keys.create(conn)
    inserted = conn.execute(
        insert(keys).from_select([c.name for c in columns], chosen).execution_options(preserve_rowcount=True)
    ).rowcount
    return keys, inserted


def _drop(conn: Connection, keys: Table) -> None:
    # PostgreSQL drops it at commit (ON COMMIT DROP); SQLite keeps temporary tables for
    # the whole connection, and pooled connections are reused.
    if not capabilities_of(conn.dialect.name).temporary_tables_drop_on_commit:
        keys.drop(conn)


def _as_key(values: tuple[Any, ...]) -> Any:
    return values[0] if len(values) == 1 else tuple_(*values)


def child_condition(
    child: TableNode, parent: TableNode, side: Side, parent_where: ColumnElement[bool], chosen: ChosenRows | None = None
) -> ColumnElement[bool]:
    """The child rows that belong to the parent rows selected by ``parent_where``; when the
    parents are a batch's own rows (``chosen``), straight from its keys and key range."""
    if chosen is not None:
        return chosen.rows_of(child.table(side), child.foreign_key)
    return linked_rows(child, side, child.foreign_key, parent, parent_where)

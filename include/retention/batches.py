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
before the batch commits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import Column, Engine, MetaData, Table, and_, insert, select, true, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement, Label
from sqlalchemy.sql.selectable import Select

from .catalog import TableNode, key_of, linked_rows


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


def in_batches(engine: Engine, *, table: Any, key_columns: Sequence[str], where: ColumnElement[bool],
               batch_size: int, work: Callable[[Connection, ChosenRows], dict[str, int]],
               lock: bool = False, carry: Sequence[Label[Any]] = ()) -> Iterator[BatchResult]:
    """Run ``work(conn, chosen)`` on successive batches, one transaction each.

    ``chosen`` holds exactly the (at most ``batch_size``) rows chosen for the batch, in key
    order after the previous batch. ``lock`` locks them on PostgreSQL. ``carry``: values
    computed once per row as it is chosen (a row's retention dates) and kept beside its key.
    """
    key = key_of(table, key_columns)
    lower: Any = None
    number = 0
    while True:
        number += 1
        started = time.perf_counter()
        with engine.begin() as conn:
            after = true() if lower is None else key > _as_key(lower)
            chosen = (select(*(table.c[c] for c in key_columns), *carry).where(where, after)
                      .order_by(*(table.c[c] for c in key_columns)).limit(batch_size))
            if lock and conn.dialect.name == "postgresql":
                chosen = chosen.with_for_update(of=table)
            keys, count = _materialize(conn, table, key_columns, carry, chosen)
            if count == 0:
                _drop(conn, keys)
                return
            last = tuple(conn.execute(select(*(keys.c[c] for c in key_columns))
                                      .order_by(*(keys.c[c].desc() for c in key_columns)).limit(1)).one())
            counts = work(conn, ChosenRows(keys, tuple(key_columns), lower, last))
            _drop(conn, keys)
        yield BatchResult(number, counts, time.perf_counter() - started)
        if count < batch_size:
            return
        lower = last
        if engine.dialect.name == "sqlite":
            # SQLite has one write lock and no queue: a waiting writer polls for it (every
            # 100 ms at most). This gap lets the application's writes in between two batches,
            # so they wait for one batch at most, not for the whole run.
            time.sleep(SQLITE_WRITER_GAP)


_BATCH_KEYS = "retention_batch_keys"
SQLITE_WRITER_GAP = 0.1  # seconds between two batches on SQLite


def _materialize(conn: Connection, table: Any, key_columns: Sequence[str], carry: Sequence[Label[Any]],
                 chosen: Select[Any]) -> tuple[Table, int]:
    """Store the chosen keys in a temporary table that lives for the transaction."""
    columns = [Column(c, table.c[c].type, primary_key=True, autoincrement=False) for c in key_columns]
    columns += [Column(value.name, value.type) for value in carry]
    keys = Table(_BATCH_KEYS, MetaData(), *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    keys.create(conn)
    inserted = conn.execute(insert(keys).from_select([c.name for c in columns], chosen)
                            .execution_options(preserve_rowcount=True)).rowcount
    return keys, inserted


def _drop(conn: Connection, keys: Table) -> None:
    # PostgreSQL drops it at commit (ON COMMIT DROP); SQLite keeps temporary tables for
    # the whole connection, and pooled connections are reused.
    if conn.dialect.name != "postgresql":
        keys.drop(conn)


def _as_key(values: tuple[Any, ...]) -> Any:
    return values[0] if len(values) == 1 else tuple_(*values)


def child_condition(child: TableNode, parent: TableNode, side: str,
                    parent_where: ColumnElement[bool]) -> ColumnElement[bool]:
    """The child rows that belong to the parent rows selected by ``parent_where``."""
    return linked_rows(child, side, child.foreign_key, parent, parent_where)

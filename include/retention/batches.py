"""Primary-key range batches: each batch is one short transaction.

A long ``DELETE`` over millions of rows holds locks for minutes and, if it fails, throws
away all its work. Here the rows a step selects are walked in primary-key order, at most
``batch_size`` at a time; each batch runs in its own transaction, so a failure leaves
the database as it was before that batch, and every earlier batch complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import Engine, and_, select, true, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from .catalog import TableNode, key_of


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


def keys_in(table: Any, columns: Sequence[str], keys: Select[Any]) -> ColumnElement[bool]:
    """``columns IN (keys)``, for single or composite keys."""
    return key_of(table, columns).in_(keys)


def same_key(left: Any, right: Any, left_columns: Sequence[str], right_columns: Sequence[str]) -> ColumnElement[bool]:
    return and_(*(left.c[a] == right.c[b] for a, b in zip(left_columns, right_columns, strict=True)))


def in_batches(engine: Engine, *, table: Any, key_columns: Sequence[str], where: ColumnElement[bool],
               batch_size: int, work: Callable[[Connection, ColumnElement[bool]], dict[str, int]]
               ) -> Iterator[BatchResult]:
    """Run ``work(conn, batch_condition)`` once per key range, one transaction each.

    The upper bound of a batch is the key of its ``batch_size``-th selected row, found
    inside the batch's own transaction; the last batch has no upper bound.
    """
    key = key_of(table, key_columns)
    lower: Any = None
    number = 0
    while True:
        number += 1
        started = time.perf_counter()
        with engine.begin() as conn:
            after = true() if lower is None else key > _as_key(lower)
            upper = conn.execute(
                select(*(table.c[c] for c in key_columns)).where(where, after)
                .order_by(*(table.c[c] for c in key_columns)).offset(batch_size - 1).limit(1)
            ).first()
            until = true() if upper is None else key <= _as_key(tuple(upper))
            counts = work(conn, and_(where, after, until))
        yield BatchResult(number, counts, time.perf_counter() - started)
        if upper is None:
            return
        lower = tuple(upper)


def _as_key(values: tuple[Any, ...]) -> Any:
    return values[0] if len(values) == 1 else tuple_(*values)


def tree_keys(node: TableNode, side: str, where: ColumnElement[bool]) -> Select[Any]:
    """The keys of ``node``'s rows selected by ``where`` on the active or archive side."""
    table = getattr(node, side)
    return select(*(table.c[c] for c in node.key_columns)).where(where)


def child_condition(child: TableNode, parent: TableNode, side: str,
                    parent_where: ColumnElement[bool]) -> ColumnElement[bool]:
    """The child rows that belong to the parent rows selected by ``parent_where``."""
    return keys_in(getattr(child, side), child.foreign_key, tree_keys(parent, side, parent_where))

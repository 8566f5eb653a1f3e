"""What the legal holds in force protect, as SQL conditions on a table's rows.

A held row is never archived, deleted or anonymised - by the schedule or by a rights
request - and a parent row with a held child is held with its whole tree. Every step adds
``HoldsInForce.not_held`` to its condition; with no hold in force it adds no SQL at all.
The register itself (adding, lifting, expiring holds) is ``holds.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    exists,
    false,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.identity import SubjectKey, keyed_hash_in, require_keyed_hash_sql
from include.retention.database.reflect import KEY_SEPARATOR, Side, TableNode, key_text
from include.retention.errors import RetentionError


def register_exists(conn: Connection, tables: store.HoldTables) -> bool:
    return store.table_exists(conn, tables.holds)


def in_force_on(holds: Table, day: date) -> ColumnElement[bool]:
    return and_(holds.c.lifted_at.is_(None), or_(holds.c.expires_on.is_(None), holds.c.expires_on > day))


def hold_day(as_of: date, today: date) -> date:
    """The day a run asks about: never later than today (a future ``as_of`` ends no hold)."""
    return min(as_of, today)


@dataclass(frozen=True)
class HoldsInForce:
    """The holds in force on ``day``, as conditions on a table's rows.

    Knows which kinds of hold exist so that, with none in force, no SQL is added at all.
    """

    tables: store.HoldTables
    day: date
    categories: frozenset[str] = frozenset()
    row_tables: frozenset[str] = frozenset()
    subjects: bool = False
    key: SubjectKey | None = None
    dialect: str = "postgresql"

    @property
    def any(self) -> bool:
        return bool(self.categories or self.row_tables or self.subjects)

    def held(self, node: TableNode, side: Side, category: str) -> ColumnElement[bool]:
        """Rows of ``node`` (active or archive side) that a hold protects: held themselves,
        or with a held row among their children."""
        if category in self.categories:
            return true()
        tree = self._tree(node, side)
        return false() if tree is None else tree

    def not_held(self, node: TableNode, side: Side, category: str) -> list[ColumnElement[bool]]:
        """``[NOT held]`` to add to a step's condition - nothing at all when no hold is in force."""
        return [not_(self.held(node, side, category))] if self.any else []

    def _tree(self, node: TableNode, side: Side) -> ColumnElement[bool] | None:
        """None when no hold can reach this table or its children: no SQL added."""
        table = node.table(side)
        parts = self._own(node, table)
        for child in node.children:
            below = self._tree(child, side)
            if below is None:
                continue
            child_table = child.table(side)
            parts.append(
                exists().where(
                    below,
                    *(
                        child_table.c[fk] == table.c[pk]
                        for fk, pk in zip(child.foreign_key, node.key_columns, strict=True)
                    ),
                )
            )
        return or_(*parts) if parts else None

    def _own(self, node: TableNode, table: Any) -> list[ColumnElement[bool]]:
        parts: list[ColumnElement[bool]] = []
        if node.name in self.row_tables:
            held_keys = self._items("row", node.name)
            parts.append(key_text(table, node.key_columns).in_(held_keys))
        if self.subjects:
            if self.key is None:
                raise RetentionError(
                    "a legal hold protects a person (by keyed hash) but no subject key is "
                    "configured: set the Airflow Variable retention_subject_secret"
                )
            held_hashes = self._items("subject", "")
            for kind, columns in node.policy.subject_identifiers.items():
                parts += [
                    keyed_hash_in(self.key, kind, _identifier_column(table, c), self.dialect, held_hashes)
                    for c in columns
                ]
        return parts

    def _items(self, kind: str, table_name: str) -> Any:
        holds, items = self.tables.holds, self.tables.items
        return (
            select(items.c.item)
            .join(holds, holds.c.hold_id == items.c.hold_id)
            .where(in_force_on(holds, self.day), items.c.kind == kind, items.c.table_name == table_name)
        )


def _identifier_column(table: Any, name: str) -> Any:
    """A declared identifier column of ``table``. The archive layout keeps every one
    (``archive_tables.archive_layout``); one missing here would leave that person's rows unprotected
    without a word, so it is an error, never a skip."""
    if name not in table.c:
        raise RetentionError(
            f"{table.schema + '.' if table.schema else ''}{table.name} has no column {name}, "
            "which the policy declares in subject_identifiers: a legal hold on a person "
            "could not reach its rows (an archive table made before identifiers were "
            "archived needs the column added, see docs/explanation/policy-concepts.md)"
        )
    return table.c[name]


def holds_in_force(
    conn: Connection, tables: store.HoldTables, day: date, key: SubjectKey | None, dialect: str
) -> HoldsInForce:
    """Read which holds are in force on ``day`` (their kinds, not their rows)."""
    if not register_exists(conn, tables):
        return HoldsInForce(tables, day, dialect=dialect)
    holds = tables.holds
    rows = conn.execute(
        select(holds.c.scope, holds.c.category, holds.c.table_name).where(in_force_on(holds, day))
    ).all()
    if any(r.scope == "subject" for r in rows):
        require_keyed_hash_sql(conn, "a legal hold on a person (matched by keyed hash)")
    return HoldsInForce(
        tables,
        day,
        categories=frozenset(r.category for r in rows if r.scope == "category"),
        row_tables=frozenset(r.table_name for r in rows if r.scope == "rows"),
        subjects=any(r.scope == "subject" for r in rows),
        key=key,
        dialect=dialect,
    )


def key_value(key: Any, arity: int, where: str) -> str:
    """One primary key from the form (a value, or a list for a composite key) as stored text."""
    values = key if isinstance(key, (list, tuple)) else [key]
    if len(values) != arity or any(v is None or isinstance(v, (dict, list, bool)) for v in values):
        raise RetentionError(
            f"legal hold: key {key!r} does not fit the primary key of {where}, which has {arity} column(s)"
        )
    text = KEY_SEPARATOR.join(str(v) for v in values)
    if KEY_SEPARATOR in "".join(str(v) for v in values) or len(text) > 512:
        raise RetentionError(f"legal hold: key {key!r} of {where} is not a usable primary key value")
    return text

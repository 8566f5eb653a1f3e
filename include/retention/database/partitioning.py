"""How a partitioned PostgreSQL table is laid out: its range key and its partitions' bounds.

Read from the catalogue, never changed here: checking ``partitioned: true`` against the live
table and listing the partitions that ``schedule/partitions.py`` moves or drops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Table, text
from sqlalchemy.engine import Connection

from include.retention.errors import Problem

_RANGE_BOUND = re.compile(r"^FOR VALUES FROM \((?P<lower>.+)\) TO \((?P<upper>.+)\)$")
_LITERAL = re.compile(r"^'(?P<value>(?:[^']|'')*)'$")


@dataclass(frozen=True)
class Partition:
    oid: int
    schema: str
    name: str
    upper: str | None  # the upper bound's value as text; None: MAXVALUE or the default partition

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def layout_problems(conn: Connection, schema: str, table: str, column: str, path: str) -> list[Problem]:
    """``partitioned: true`` must describe the live table: range-partitioned on ``column``."""
    where = f"{schema}.{table}"
    definition = conn.execute(
        text(
            "SELECT pg_get_partkeydef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = :table"
        ),
        {"schema": schema, "table": table},
    ).scalar()
    if definition is None:
        return [Problem(path, f"table {where} is not partitioned in the database", True)]
    expected = f"RANGE ({column})"
    if definition.replace('"', "") != expected:
        return [
            Problem(
                path,
                f"table {where} is partitioned by {definition}, not by {expected} (its start-event "
                "column): whole partitions cannot be matched to the retention horizon",
                True,
            )
        ]
    return []


def partitions_of(conn: Connection, source: Table) -> list[Partition]:
    """The table's partitions and their upper bounds, from the catalogue."""
    rows = conn.execute(
        text(
            "SELECT c.oid, n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.inhparent = CAST(:parent AS regclass) ORDER BY c.relname"
        ),
        {"parent": quoted_name(conn, source.schema, source.name)},
    ).all()
    return [Partition(int(oid), schema, name, _upper(bound)) for oid, schema, name, bound in rows]


def _upper(bound: str) -> str | None:
    match = _RANGE_BOUND.match(bound or "")
    literal_value = _LITERAL.match(match.group("upper")) if match else None
    return literal_value.group("value").replace("''", "'") if literal_value else None


def quoted_name(conn: Connection, schema: str | None, name: str) -> str:
    """``schema.name`` quoted for the dialect: for the DDL statements that take no bound names."""
    prepare = conn.dialect.identifier_preparer
    return f"{prepare.quote_schema(schema)}.{prepare.quote(name)}" if schema else prepare.quote(name)

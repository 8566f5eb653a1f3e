"""Migration to the canonical identifier form: new-form hashes beside the old ones.

Suppression entries and subject-hold items store keyed hashes of identifiers. Those written
before ``identifiers.canonical_form`` hash the former form (``identifiers.legacy_form``),
and a keyed hash cannot be turned into another without the identifier. The matchers accept
both forms (``identity.keyed_hash_in``), so nothing that matched stops matching; but a row
written differently from the original request (``+33 (0)6...`` for a hold asked as
``06...``) only matches the new form. This migration adds, for every entry or item whose
person still has a row holding the identifier (active or archive), the new-form hash of
that row's value: set-based, ``INSERT ... SELECT new_hash(col) ... WHERE old_hash(col) IN
entries``, one transaction per identifier column, idempotent (a second run adds nothing).

Entries whose person has no row left (the usual case of the suppression list: their
prospection data was deleted) cannot be rehashed; they keep matching in the former form.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, Table, and_, exists, func, insert, inspect, literal, select
from sqlalchemy.engine import Connection

from include.retention.database.identity import (
    SubjectKey,
    keyed_hash_sql,
    legacy_keyed_hash_sql,
    require_keyed_hash_sql,
)
from include.retention.database.reflect import archive_exists, open_category
from include.retention.database.store import hold_tables, suppression_table
from include.retention.database.target import Target
from include.retention.policy.model import RetentionPolicy


@dataclass(frozen=True)
class Rehashed:
    """How many new-form hashes were added (counts only: the hashes are personal data)."""

    suppression_entries: int = 0
    hold_items: int = 0


def add_canonical_hashes(target: Target, policy: RetentionPolicy, key: SubjectKey) -> Rehashed:
    """Add the canonical-form hash of every stored identifier whose former-form hash is on the
    suppression list or in a subject hold (see the module docstring)."""
    suppressed = suppression_table(target.archive_schema)
    items = hold_tables(target.archive_schema).items
    with target.read() as conn:
        present = [t for t in (suppressed, items) if inspect(conn).has_table(t.name, schema=t.schema)]
        if not present:
            return Rehashed()
        require_keyed_hash_sql(conn, "adding canonical-form hashes")
        columns = list(_identifier_columns(conn, target, policy))
    total = Rehashed()
    for kind, column in columns:
        with target.engine.begin() as conn:
            hashes = _hashes(key, kind, column, target.dialect)
            entries = _add_suppression(conn, suppressed, hashes, kind) if suppressed in present else 0
            held = _add_hold_items(conn, items, hashes) if items in present else 0
        total = Rehashed(total.suppression_entries + entries, total.hold_items + held)
    return total


def _identifier_columns(conn: Connection, target: Target, policy: RetentionPolicy) -> Iterator[tuple[str, Any]]:
    """Every declared identifier column of every table, active and archive (a table several
    categories share is read once)."""
    seen: set[tuple[str | None, str, str]] = set()
    for category in policy.categories.values():
        for root in open_category(conn, policy, category, target.source_schema, target.archive_schema, target.dialect):
            for node in root.walk():
                sides = [node.source] + ([node.archive] if archive_exists(conn, node) else [])
                for table in sides:
                    for kind, names in node.policy.subject_identifiers.items():
                        for name in names:
                            if name in table.c and (table.schema, table.name, name) not in seen:
                                seen.add((table.schema, table.name, name))
                                yield kind, table.c[name]


def _hashes(key: SubjectKey, kind: str, column: Any, dialect: str) -> Any:
    """Each distinct stored value's hash in both forms (NULLs left out)."""
    return (
        select(
            keyed_hash_sql(key, kind, column, dialect).label("new_hash"),
            legacy_keyed_hash_sql(key, kind, column, dialect).label("old_hash"),
        )
        .where(column.is_not(None))
        .distinct()
        .subquery("stored")
    )


def _add_suppression(conn: Connection, suppressed: Table, hashes: Any, kind: str) -> int:
    listed = suppressed.alias("listed")
    query = (
        select(
            hashes.c.new_hash,
            literal(kind, String),
            func.min(suppressed.c.suppressed_on),
            func.min(suppressed.c.request_reference),
        )
        .join_from(hashes, suppressed, suppressed.c.subject_hash == hashes.c.old_hash)
        .where(hashes.c.new_hash != hashes.c.old_hash, ~exists().where(listed.c.subject_hash == hashes.c.new_hash))
        .group_by(hashes.c.new_hash)
    )
    return _inserted(
        conn,
        suppressed,
        insert(suppressed).from_select(["subject_hash", "kind", "suppressed_on", "request_reference"], query),
    )


def _add_hold_items(conn: Connection, items: Table, hashes: Any) -> int:
    existing = items.alias("existing")
    subject_item = and_(items.c.kind == "subject", items.c.table_name == "")
    query = (
        select(items.c.hold_id, literal("subject", String), literal("", String), hashes.c.new_hash)
        .join_from(hashes, items, and_(items.c.item == hashes.c.old_hash, subject_item))
        .where(
            hashes.c.new_hash != hashes.c.old_hash,
            ~exists().where(
                existing.c.hold_id == items.c.hold_id,
                existing.c.kind == "subject",
                existing.c.table_name == "",
                existing.c.item == hashes.c.new_hash,
            ),
        )
        .distinct()
    )
    return _inserted(conn, items, insert(items).from_select(["hold_id", "kind", "table_name", "item"], query))


def _inserted(conn: Connection, table: Table, statement: Any) -> int:
    """Rows ``statement`` added (counted: an INSERT ... SELECT's rowcount is -1 with psycopg)."""
    before = conn.execute(select(func.count()).select_from(table)).scalar_one()
    conn.execute(statement)
    return conn.execute(select(func.count()).select_from(table)).scalar_one() - before

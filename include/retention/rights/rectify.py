"""Rectification (GDPR art. 16): apply a person's corrections to their active rows.

Each change names a table of the policy, a column and the new value. Before anything is
written, every change is checked against the live column (it exists, the value fits its
type and length); primary and foreign keys are refused (they are not facts about the
person); a start-event column - the date a retention clock counts from - is refused
unless the request says it corrects that date, because moving it moves the person's
deletion date: such a correction is audited as such. All changes are one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, String, update
from sqlalchemy.engine import Connection

from include.retention.database import store
from include.retention.database.identity import Subject, SubjectKey
from include.retention.database.reflect import Side
from include.retention.database.target import Target
from include.retention.errors import RetentionError
from include.retention.policy.model import RetentionPolicy, TablePolicy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.rights.subjects import Found, locate


@dataclass(frozen=True)
class Rectified:
    table: str
    columns: list[str]
    rows: int


def rectify_in(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    subject: Subject,
    key: SubjectKey,
    ctx: RunContext,
    changes: dict[str, dict[str, Any]],
    correct_start_date: bool,
) -> list[Rectified]:
    """Validate every change, then update the subject's active rows, inside the caller's transaction."""
    if not changes:
        raise RetentionError("a rectification needs changes: {table: {column: new value}}")
    found = {f.node.name: f for f in locate(conn, target, policy, subject) if f.side == Side.ACTIVE}
    checked = {
        table: dict(
            _checked(_found_for(found, table), column, value, correct_start_date) for column, value in columns.items()
        )
        for table, columns in changes.items()
    }  # every change checked before the first is written
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    store.ensure_audit_table(conn, trail)
    done: list[Rectified] = []
    for table, values in checked.items():
        f = found[table]
        rows = conn.execute(update(f.table).where(f.where).values(values)).rowcount
        done.append(Rectified(table, sorted(values), rows))
        dates = [c for c in values if c in _start_columns(f)]
        audit.record(
            conn,
            trail,
            ctx,
            category=f.category,
            action="rectify",
            table_name=table,
            row_count=rows,
            subject_hash=subject.hashes(key)[0],
            details={"columns": len(values), "start_date_corrected": bool(dates)},
        )
    return done


def _found_for(found: dict[str, Found], table: str) -> Found:
    if table not in found:
        raise RetentionError(
            f"rectification: the person has no active row in table {table!r} "
            f"(tables where they were found: {', '.join(sorted(found)) or 'none'})"
        )
    return found[table]


def _start_columns(found: Found) -> set[str]:
    node = found.node.policy
    if not isinstance(node, TablePolicy):
        return set()
    return {s.column for s in node.start_event.sources if s.column}


def _checked(found: Found, column: str, value: Any, correct_start_date: bool) -> tuple[str, Any]:
    table = found.table
    where = f"rectification of {found.node.name}.{column}"
    if column not in table.c:
        raise RetentionError(f"{where}: no such column (columns: {', '.join(c.name for c in table.c)})")
    keys = set(found.node.key_columns) | set(found.node.foreign_key)
    if column in keys:
        raise RetentionError(f"{where}: a key column cannot be rectified")
    if column in _start_columns(found) and not correct_start_date:
        raise RetentionError(
            f"{where}: this date starts the retention clock; changing it moves the deletion date. "
            "Set correct_start_date if the request corrects this date (it is audited)"
        )
    return column, _coerced(table.c[column], value, where)


def _coerced(column: Any, value: Any, where: str) -> Any:
    """The value in the column's type, or a clear error naming the expected type (not the value)."""
    if value is None:
        if not column.nullable:
            raise RetentionError(f"{where}: the column does not accept an empty value")
        return None
    kind = column.type
    try:
        if isinstance(kind, Boolean):
            if not isinstance(value, bool):
                raise ValueError
            return value
        if isinstance(kind, Integer):
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if isinstance(kind, Numeric):
            return Decimal(str(value))
        if isinstance(kind, DateTime):
            moment = datetime.fromisoformat(str(value))
            if getattr(kind, "timezone", False) and moment.tzinfo is None:
                raise RetentionError(f"{where}: give a date-time with its time zone (e.g. 2026-11-26T10:00:00+01:00)")
            return moment
        if isinstance(kind, Date):
            return date.fromisoformat(str(value))
        if isinstance(kind, String):
            text = str(value)
            if kind.length and len(text) > kind.length:
                raise RetentionError(f"{where}: at most {kind.length} characters")
            return text
    except (ValueError, InvalidOperation, TypeError):
        raise RetentionError(f"{where}: the value is not a valid {type(kind).__name__.lower()}") from None
    return value

"""The audit trail: what was done, to how many rows, under which policy, by which run.

Events live in ``<archive_schema>.<audit_table>`` in the target database, so a batch's
event is written in the same transaction as the batch itself: a batch that rolls back
leaves no event behind, and a committed batch always has one.

Events never hold personal data. They carry counts, dates and names from the policy;
``details`` accepts numbers, booleans and dates only (no free text), so a value from a
row cannot slip in by accident.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Mapping

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

ACTIONS = ("plan", "archive", "delete", "anonymize", "quality_finding", "validation", "run_summary")


@dataclass(frozen=True)
class RunContext:
    """Who is acting and for which day; stamped on every event and archived row."""

    run_id: str
    dag_id: str
    as_of: date
    policy_version: str
    dry_run: bool = False


def audit_table(schema: str | None, name: str) -> Table:
    return Table(
        name, MetaData(),
        Column("event_id", Integer, primary_key=True, autoincrement=True),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("run_id", String(250), nullable=False),
        Column("dag_id", String(250), nullable=False),
        Column("category", String(64), nullable=False),
        Column("table_name", String(128)),
        Column("action", String(32), nullable=False),
        Column("row_count", Integer, nullable=False),
        Column("policy_version", String(64), nullable=False),
        Column("as_of", Date, nullable=False),
        Column("dry_run", Boolean, nullable=False),
        Column("details", Text),
        schema=schema,
    )


def ensure_audit_table(conn: Connection, table: Table) -> None:
    if not inspect(conn).has_table(table.name, schema=table.schema):
        table.create(conn)


def record(conn: Connection, table: Table, ctx: RunContext, *, category: str, action: str,
           row_count: int, table_name: str | None = None,
           details: Mapping[str, Any] | None = None) -> None:
    """Append one event, inside the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
    conn.execute(table.insert().values(
        recorded_at=datetime.now(timezone.utc),
        run_id=ctx.run_id,
        dag_id=ctx.dag_id,
        category=category,
        table_name=table_name,
        action=action,
        row_count=int(row_count),
        policy_version=ctx.policy_version,
        as_of=ctx.as_of,
        dry_run=ctx.dry_run,
        details=_serialise_details(details) if details else None,
    ))


def _serialise_details(details: Mapping[str, Any]) -> str:
    return json.dumps(_only_counts(details, "details"), sort_keys=True, separators=(",", ":"))


# The only text an event may carry: names of checks, never values from a row.
_LABEL_KEYS = {"suite", "expectation"}
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _only_counts(value: Any, path: str) -> Any:
    """Numbers, booleans, dates and nested mappings of them; anything else is refused
    (except check names under ``suite`` and ``expectation``)."""
    if isinstance(value, Mapping):
        return {str(k): _only_counts(v, f"{path}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and path.rsplit(".", 1)[-1] in _LABEL_KEYS and _LABEL.match(value):
        return value
    raise TypeError(f"audit {path}: only counts, flags and dates may be logged, not {type(value).__name__}")


def events(conn: Connection, table: Table, *conditions: Any, **filters: Any) -> list[dict[str, Any]]:
    """Events in the order they were written, filtered by conditions and column equality."""
    query = select(table).where(*conditions).order_by(table.c.event_id)
    for name, value in filters.items():
        query = query.where(table.c[name] == value)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else {}
    return rows

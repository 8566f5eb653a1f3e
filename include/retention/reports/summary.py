"""Run summaries: what one run did, and the table ``make demo`` prints.

(The per-run evidence a DPO keeps, the deletion certificate, is ``certificate.py``.)

``summarize_run`` closes a run: it counts what is still active and what cannot be aged,
now, in the database (not from memory), and writes one ``run_summary`` audit event per
category. ``summary_table`` reads those events back - the DPO's view of the last runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from include.retention.database.reflect import TableNode
from include.retention.records import audit
from include.retention.schedule.context import StepContext, open_step


@dataclass(frozen=True)
class CategorySummary:
    category: str
    archived: int
    deleted: int
    anonymized: int
    child_rows: int
    still_active: int
    missing_start: int
    dry_run: bool


def summarize_run(
    step: StepContext, archived: dict[str, int], purged: dict[str, dict[str, int]], incomplete: bool = False
) -> dict[str, Any]:
    """Write the run's ``run_summary`` event and return its content.

    ``incomplete``: a step of the run failed before the summary (the certificate says so).
    """
    nodes = open_step(step, create_archive=False)
    roots = {root.name for root in nodes}
    deleted = purged.get("deleted", {})
    anonymized = purged.get("anonymized", {})
    with step.target.read() as conn:
        still_active, missing = _active_counts(conn, nodes)
    acted_on = {
        "archived": _sum(archived, roots),
        "deleted": _sum(deleted, roots),
        "anonymized": _sum(anonymized, roots),
    }
    details: dict[str, Any] = {
        **acted_on,
        "child_rows": _sum(archived, roots, children=True)
        + _sum(deleted, roots, children=True)
        + _sum(anonymized, roots, children=True),
        "still_active": still_active,
        "missing_start": missing,
        "tables": {"archived": archived, "deleted": deleted, "anonymized": anonymized},
        "incomplete": incomplete,
    }
    with step.target.engine.begin() as conn:
        audit.record(
            conn,
            step.audit_table,
            step.ctx,
            category=step.category.key,
            action="run_summary",
            row_count=sum(acted_on.values()),
            details=details,
        )
    return details


def _active_counts(conn: Connection, nodes: list[TableNode]) -> tuple[int, int]:
    still_active = missing = 0
    for root in nodes:
        total, nulls = conn.execute(
            select(func.count().filter(root.scope), func.count().filter(root.missing_start())).select_from(root.source)
        ).one()
        still_active += total
        missing += nulls
    return still_active, missing


def _sum(counts: dict[str, int], roots: set[str], children: bool = False) -> int:
    return sum(n for table, n in counts.items() if (table in roots) != children)


def summary_table(conn: Connection, audit_table: Any, run_ids: list[str] | None = None) -> list[CategorySummary]:
    """The latest ``run_summary`` per category (optionally among ``run_ids``)."""
    latest = (
        select(func.max(audit_table.c.event_id))
        .where(audit_table.c.action == "run_summary")
        .group_by(audit_table.c.category)
    )
    if run_ids:
        latest = latest.where(audit_table.c.run_id.in_(run_ids))
    return [
        CategorySummary(
            row["category"],
            row["details"]["archived"],
            row["details"]["deleted"],
            row["details"]["anonymized"],
            row["details"]["child_rows"],
            row["details"]["still_active"],
            row["details"]["missing_start"],
            row["dry_run"],
        )
        for row in audit.events(conn, audit_table, audit_table.c.event_id.in_(latest))
    ]


def format_summary(summaries: list[CategorySummary]) -> str:
    """A plain-text table, one row per category."""
    header = ("category", "archived", "deleted", "anonymised", "child rows", "still active", "missing start")
    body = [
        (
            s.category + (" (dry run)" if s.dry_run else ""),
            s.archived,
            s.deleted,
            s.anonymized,
            s.child_rows,
            s.still_active,
            s.missing_start,
        )
        for s in summaries
    ]
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

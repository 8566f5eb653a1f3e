"""The close of a run: what it did, counted again in the database, in one audit event.

``summarize_run`` counts what is still active and what cannot be aged, now, in the database
(not from memory), and writes one ``run_summary`` audit event per category and run. Reading
those events back (the DPO's table of the last runs) is ``reports.summary``. The rows waiting
for re-consent are the plan's count, read from this run's ``plan`` events: the same number the
run's certificate shows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from include.retention.database.reflect import TableNode
from include.retention.records import audit
from include.retention.schedule.context import StepContext, open_step


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
        waiting = _waiting_in_plan(conn, step)
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
        "waiting_for_reconsent": waiting,
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


def _waiting_in_plan(conn: Connection, step: StepContext) -> int:
    """Rows waiting for the re-consent ask, as this run's plan counted them: the latest
    ``plan`` event per table (a retried plan task writes its count again)."""
    latest = {
        event["table_name"]: event["details"].get("waiting_for_reconsent", 0)
        for event in audit.events(
            conn, step.audit_table, run_id=step.ctx.run_id, category=step.category.key, action="plan"
        )
    }
    return sum(latest.values())


def _sum(counts: dict[str, int], roots: set[str], children: bool = False) -> int:
    return sum(n for table, n in counts.items() if (table in roots) != children)

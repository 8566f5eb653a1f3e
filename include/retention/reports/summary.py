"""Run summaries: what one run did, and the table ``make demo`` prints.

(The per-run evidence a DPO keeps, the deletion certificate, is ``certificate.py``.)

A run closes with one ``run_summary`` audit event per category (``schedule.summary``);
``summary_table`` reads those events back - the DPO's view of the last runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from include.retention.records import audit


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
    waiting_for_reconsent: int = 0  # past their active period, waiting for the re-consent ask


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
            row["details"].get("waiting_for_reconsent", 0),  # summaries written before re-consent: none
        )
        for row in audit.events(conn, audit_table, audit_table.c.event_id.in_(latest))
    ]


def format_summary(summaries: list[CategorySummary]) -> str:
    """A plain-text table, one row per category."""
    header = (
        "category",
        "archived",
        "deleted",
        "anonymised",
        "child rows",
        "still active",
        "missing start",
        "waiting for re-consent",
    )
    body = [
        (
            s.category + (" (dry run)" if s.dry_run else ""),
            s.archived,
            s.deleted,
            s.anonymized,
            s.child_rows,
            s.still_active,
            s.missing_start,
            s.waiting_for_reconsent,
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

"""Run summaries: what one run did, and the table ``make demo`` prints.

``summarize_run`` closes a run: it counts what is still active and what cannot be aged,
now, in the database (not from memory), and writes one ``run_summary`` audit event per
category. ``summary_table`` reads those events back - the DPO's view of the last runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from . import audit
from .catalog import TableNode
from .steps import StepContext, open_step


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


def summarize_run(step: StepContext, archived: dict[str, int], purged: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Write the run's ``run_summary`` event and return its content."""
    nodes = open_step(step, create_archive=False)
    roots = {root.name for root in nodes}
    deleted = purged.get("deleted", {})
    anonymized = purged.get("anonymized", {})
    with step.target.read() as conn:
        still_active, missing = _active_counts(conn, nodes)
    details = {
        "archived": _sum(archived, roots),
        "deleted": _sum(deleted, roots),
        "anonymized": _sum(anonymized, roots),
        "child_rows": _sum(archived, roots, children=True) + _sum(deleted, roots, children=True)
        + _sum(anonymized, roots, children=True),
        "still_active": still_active,
        "missing_start": missing,
        "tables": {"archived": archived, "deleted": deleted, "anonymized": anonymized},
    }
    with step.target.engine.begin() as conn:
        audit.record(conn, step.audit_table, step.ctx, category=step.category.key, action="run_summary",
                     row_count=details["archived"] + details["deleted"] + details["anonymized"], details=details)
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
    latest = (select(func.max(audit_table.c.event_id))
              .where(audit_table.c.action == "run_summary")
              .group_by(audit_table.c.category))
    if run_ids:
        latest = latest.where(audit_table.c.run_id.in_(run_ids))
    return [
        CategorySummary(row["category"], row["details"]["archived"], row["details"]["deleted"],
                        row["details"]["anonymized"], row["details"]["child_rows"],
                        row["details"]["still_active"], row["details"]["missing_start"], row["dry_run"])
        for row in audit.events(conn, audit_table, audit_table.c.event_id.in_(latest))
    ]


def format_summary(summaries: list[CategorySummary]) -> str:
    """A plain-text table, one row per category."""
    header = ("category", "archived", "deleted", "anonymised", "child rows", "still active", "missing start")
    body = [(s.category + (" (dry run)" if s.dry_run else ""), s.archived, s.deleted, s.anonymized,
             s.child_rows, s.still_active, s.missing_start) for s in summaries]
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                  for i, (v, w) in enumerate(zip(row, widths, strict=True)))
        for row in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


REPORTS_ENV_VAR = "RETENTION_REPORTS_DIR"
DEFAULT_REPORTS_DIR = Path(__file__).resolve().parents[2] / "reports"


def reports_dir() -> Path:
    """Where run reports go: ``$RETENTION_REPORTS_DIR``, else ``reports/`` (not committed)."""
    return Path(os.environ.get(REPORTS_ENV_VAR) or DEFAULT_REPORTS_DIR)


def write_run_report(step: StepContext) -> Path:
    """A self-contained HTML page of one run: its checks and what it did, from the audit log.

    Like the log it is read from, it holds counts and names of checks, no personal data.
    """
    table = audit.audit_table(step.target.archive_schema, step.policy.audit_table)
    with step.target.read() as conn:
        logged = audit.events(conn, table, run_id=step.ctx.run_id)
    checks = [e for e in logged if e["action"] == "validation"]
    actions = [e for e in logged if e["action"] not in ("validation", "run_summary")]
    safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", step.ctx.run_id)
    path = reports_dir() / step.ctx.dag_id / f"{safe_run}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_render(step, checks, actions), encoding="utf-8")
    return path


def _render(step: StepContext, checks: list[dict[str, Any]], actions: list[dict[str, Any]]) -> str:
    failed = [c for c in checks if not c["details"].get("success")]
    verdict = f"{len(failed)} check(s) failed" if failed else f"all {len(checks)} checks passed"
    check_rows = "".join(
        f"<tr class='{'ok' if c['details'].get('success') else 'ko'}'><td>{escape(c['details'].get('suite', ''))}</td>"
        f"<td>{escape(c['table_name'] or '')}</td><td>{escape(c['details'].get('expectation', ''))}</td>"
        f"<td>{'passed' if c['details'].get('success') else 'FAILED'}</td><td>{c['row_count']}</td></tr>"
        for c in checks)
    action_rows = "".join(
        f"<tr><td>{escape(a['action'])}</td><td>{escape(a['category'])}</td><td>{escape(a['table_name'] or '')}</td>"
        f"<td>{a['row_count']}</td><td>{'yes' if a['dry_run'] else ''}</td></tr>" for a in actions)
    title = f"{step.category.label.en} - run {step.ctx.run_id}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} tr.ko td{{background:#fdd}} tr.ok td:nth-child(4){{color:#070}}</style>
</head><body>
<h1>{escape(title)}</h1>
<p>Category <b>{escape(step.category.key)}</b>, policy version <b>{escape(step.policy.version)}</b>,
as of <b>{step.ctx.as_of.isoformat()}</b>{' (dry run)' if step.ctx.dry_run else ''}: {verdict}.</p>
<h2>Data-quality checks</h2>
<table><tr><th>suite</th><th>table</th><th>check</th><th>result</th><th>rows</th></tr>{check_rows}</table>
<h2>What the run did</h2>
<table><tr><th>action</th><th>category</th><th>table</th><th>rows</th><th>dry run</th></tr>{action_rows}</table>
<p>Read from the audit log ({escape(step.target.archive_schema)}.{escape(step.policy.audit_table)}); counts only.</p>
</body></html>
"""

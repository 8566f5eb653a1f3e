"""Deletion limits: a run that would remove far more rows than usual waits for a person.

Per root table and per side - rows leaving the active base (archived, or deleted when the
category has no archive) and rows leaving the archive (deleted or anonymised; a root's
retained dependants that the run destroys count on their own table's archive side) - a run may
remove at most ``deletion_limit.rows`` rows and ``deletion_limit.fraction`` of the rows
that side holds. A retained dependant destroyed in its parent's run is under the stricter of
the parent category's limit and its own category's (``limit_for``): billing's limit holds
whichever run destroys invoices. Past either, the run needs an approval (the DAG's ``approve_deletions``
task, Airflow's human-in-the-loop ``ApprovalOperator``). A wrong clock, a start column
swapped by a schema change or a period shortened by mistake all look like that.

The plan says which limits a run would pass (``excesses``). The destructive steps check
again, in the database, just before their first batch (``check``): without an approval,
or beyond the counts that were approved, they refuse and change nothing. So the limit
holds even if the DAG were wired wrongly, or if more rows fell due after the approval.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from include.retention.database.reflect import Side
from include.retention.errors import RetentionError
from include.retention.policy.model import Category, DeletionLimit, RetentionPolicy
from include.retention.records import audit
from include.retention.schedule.context import StepContext, Walk
from include.retention.schedule.plan import CategoryPlan, Excess


class DeletionLimitExceeded(RetentionError):
    """A step would remove more rows than its limit allows, and no approval covers them."""


def over_limit(rows: int, base: int, limit: DeletionLimit) -> bool:
    if limit.rows is not None and rows > limit.rows:
        return True
    return limit.fraction is not None and rows > 0 and rows > limit.fraction * base


def stricter(a: DeletionLimit, b: DeletionLimit) -> DeletionLimit:
    """The limit passed as soon as either is: the smaller row count, the smaller fraction."""

    def smaller(x: Any, y: Any) -> Any:
        return y if x is None else x if y is None else min(x, y)

    return DeletionLimit(rows=smaller(a.rows, b.rows), fraction=smaller(a.fraction, b.fraction))


def limit_for(policy: RetentionPolicy, run: Category, owner: Category) -> DeletionLimit:
    """The limit on removing ``owner``'s rows in a run of ``run``: that category's own, or - a
    retained dependant destroyed in its parent's run - the stricter of both. A category's
    limit holds whichever run removes its rows, and the parent's holds for all its run does."""
    limit = policy.deletion_limit_for(run)
    return limit if owner.key == run.key else stricter(limit, policy.deletion_limit_for(owner))


def removals(plan: CategoryPlan) -> list[tuple[str, Side, int, int, str]]:
    """(table, side, rows removed, rows that side holds, owning category) for every root table
    of the plan, and for the retained dependants its run destroys."""
    out = []
    for t in plan.tables:
        if plan.has_archive:
            out.append((t.table, Side.ACTIVE, t.due_for_archive, t.active_rows, plan.category))
            out.append(
                (t.table, Side.ARCHIVE, t.due_for_end_of_life, t.archive_rows + t.due_for_archive, plan.category)
            )
        else:
            out.append((t.table, Side.ACTIVE, t.due_for_end_of_life, t.active_rows, plan.category))
        # Retained dependants the run destroys with (or before) their parents: under the
        # run's limit and their own category's, as the run destroys them.
        out += [
            (table, Side.ARCHIVE, d["rows"], d["archive_rows"], d.get("category", plan.category))
            for table, d in t.dependants_end_of_life.items()
        ]
    return out


def excesses(plan: CategoryPlan, policy: RetentionPolicy) -> list[Excess]:
    """The table sides whose planned removals pass their limit (none: no approval needed): the
    plan's category's limit, and for retained dependants the stricter of it and their own
    category's (``limit_for``)."""
    run = policy.category(plan.category)
    out = []
    for table, side, rows, base, owner in removals(plan):
        limit = limit_for(policy, run, policy.category(owner))
        if over_limit(rows, base, limit):
            out.append(Excess(table, side, rows, base, limit.rows, limit.fraction))
    return out


def flag_excesses(plan: CategoryPlan, policy: RetentionPolicy) -> CategoryPlan:
    """The plan with the deletion limits it passes (``excesses``): what ``approve_deletions`` asks about."""
    return replace(plan, over_limit=tuple(excesses(plan, policy)))


def approval_key(table: str, side: Side) -> str:
    """How the audit log's ``approval`` event and the engine's check name one table side."""
    return f"{table}:{Side(side).value}"


def approved_counts(plan: CategoryPlan) -> dict[str, int]:
    """What an approval of ``plan`` allows: its planned removals, per table side."""
    out: dict[str, int] = {}
    for t in plan.tables:
        if plan.has_archive:
            out[approval_key(t.table, Side.ACTIVE)] = t.due_for_archive
            out[approval_key(t.table, Side.ARCHIVE)] = t.due_for_end_of_life
        else:
            out[approval_key(t.table, Side.ACTIVE)] = t.due_for_end_of_life
        for table, d in t.dependants_end_of_life.items():
            key = approval_key(table, Side.ARCHIVE)
            out[key] = out.get(key, 0) + d["rows"]
    return out


def check(table: str, side: Side, rows: int, base: int, limit: DeletionLimit, approved: dict[str, int] | None) -> None:
    """Refuse, before the first batch, removals past the limit that no approval covers."""
    if not over_limit(rows, base, limit):
        return
    excess = Excess(table, side, rows, base, limit.rows, limit.fraction)
    if approved is None:
        raise DeletionLimitExceeded(f"{excess}: this needs an approval (task approve_deletions); nothing was changed")
    allowed = approved.get(approval_key(table, side), 0)
    if rows > allowed:
        raise DeletionLimitExceeded(
            f"{excess}, and only {allowed} were approved (more rows fell due since the "
            "plan, or the plan was for another day); nothing was changed - run again"
        )


def check_walk(walk: Walk, approved: dict[str, int] | None) -> int:
    """``check`` for one walk of a step, on counts taken now in one query: the rows it would
    remove (``walk.counted``, returned: the walk's progress log counts towards them) and the
    rows that side of the table holds (``walk.base``)."""
    with walk.step.target.read() as conn:
        rows, base = conn.execute(
            select(func.count().filter(walk.counted), func.count().filter(walk.base)).select_from(walk.table)
        ).one()
    check(walk.node.name, walk.side, rows, base, walk.limit, approved)
    return int(rows)


def record_approval(step: StepContext, approved: dict[str, int]) -> None:
    """Write, once per run, that a person approved removals past the limit, and how many per
    table side (who approved stays in Airflow's record of the request: not a count)."""
    trail = step.audit_table
    with step.target.engine.begin() as conn:
        if audit.events(conn, trail, run_id=step.ctx.run_id, action="approval"):
            return
        audit.record(
            conn,
            trail,
            step.ctx,
            category=step.category.key,
            action="approval",
            row_count=sum(approved.values()),
            details={"outcome": "approved", "approved": approved},
        )

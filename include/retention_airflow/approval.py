"""The human approval a run needs when its plan passes the category's deletion limit.

``DeletionApproval`` is Airflow's human-in-the-loop ``ApprovalOperator`` (Required Actions in
the UI) that asks only when it must: it reads the ``plan`` task's XCom and, when nothing
passes the limit (or the run is a dry run), succeeds at once without asking anyone. When it
asks, the run waits in ``awaiting_input``:

- **Approve**: ``archive`` and ``purge`` run, allowed to remove up to the planned counts;
- **Reject**: the task fails (``fail_on_reject``), so neither runs and nothing changes;
- **no answer** within the policy's ``approval_timeout_hours``: it fails the same way
  (there is no default answer on purpose).

The engine checks the limit again before its first batch (``limits.check``), so a run
without this task, or one whose counts grew since the plan, is refused there too. Rows of a
retained dependant that a parent's run destroys (invoices in the customer run) are under the
stricter of both categories' limits: billing's approval is asked, and given, in that run.

When alerts are configured (``alerts.py``), the moment it starts waiting is told through
Airflow's notifiers (``notifiers=``): which limits the plan passes, and where to answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from include.retention.schedule.plan import CategoryPlan
from include.retention_airflow import alerts

PLAN_TASK = "plan"


class DeletionApproval(ApprovalOperator):
    """Ask a person to approve the run's removals, only when they pass the deletion limit."""

    def __init__(self, *, category: str, timeout_hours: int, **kwargs: Any) -> None:
        told = alerts.channels()
        super().__init__(
            notifiers=[alerts.ApprovalWaitingNotice(told)] if told.configured else [],
            subject=f"Approve the removals of retention_{category}: past the deletion limit",
            body="(filled in from the plan when the task runs)",
            fail_on_reject=True,
            response_timeout=timedelta(hours=timeout_hours),
            **kwargs,
        )
        self.category = category

    def execute(self, context: Any) -> Any:
        planned = context["ti"].xcom_pull(task_ids=PLAN_TASK)
        plan = CategoryPlan.from_xcom(planned) if planned else None
        if plan is None or plan.dry_run or not plan.over_limit:
            reason = "dry run" if plan and plan.dry_run else "within the deletion limit"
            self.log.info("No approval needed (%s)", reason)
            return {"needed": False}
        # The DAG id, not the category: with several targets (retention_prospection_paris,
        # retention_prospection_lyon) the approver must see which database the removals are on.
        self.subject = f"Approve the removals of {self.dag_id}: past the deletion limit"
        self.body = approval_body(plan)
        for excess in plan.over_limit:
            self.log.warning("Over the deletion limit: %s", excess)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        answer = super().execute_complete(context, event)  # raises on Reject and on timeout
        user = answer.get("responded_by_user") or {}
        return {"needed": True, "approved": True, "approved_by": user.get("name") if isinstance(user, dict) else None}


def approval_body(plan: CategoryPlan) -> str:
    """What the approver reads: which limits pass, the counts and horizons, a few keys."""
    lines = [
        f"Category **{plan.category}**, as of {plan.as_of}, policy {plan.policy_version}.",
        "",
        "Over the limit:",
    ]
    lines += [f"- {excess}" for excess in plan.over_limit]
    lines += ["", "Planned, per table:"]
    for t in plan.tables:
        lines.append(
            f"- {t.table}: {t.due_for_archive} to the archive (started on or before "
            f"{t.last_due_start}), {t.due_for_end_of_life} at end of life, "
            f"{t.legal_hold_due + t.legal_hold_end_of_life} kept by a legal hold; "
            f"sample keys {t.sample_keys}"
        )
        # Rows of another category this run destroys (an invoice past its horizon, with its
        # customer): that category's limit applies too, so they may be why the run asks.
        for table, d in t.dependants_end_of_life.items():
            lines.append(
                f"  - and {d['rows']} {table} of category {d.get('category', '?')} past their own "
                "horizon, destroyed with them (that category's deletion limit applies too)"
            )
    lines += [
        "",
        "Approve only if these volumes are expected (a first run on a backlog, a deliberate "
        "policy change). A wrong clock or a shortened period looks exactly like this.",
    ]
    return "\n".join(lines)

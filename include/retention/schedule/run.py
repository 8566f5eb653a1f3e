"""The order of a nightly run of one category, in one place.

A run is, in this order (``RUN_ORDER``, whose values are the DAG's task ids):

1. ``preflight_checks``: the data-quality gate; a failing blocking check stops the run
   before any row moves (``quality.pre_archive_gate``);
2. ``plan``: count what is due, audit the counts, and say which deletion limits the plan
   passes (``plan.plan_category``, ``limits.flag_excesses``);
3. ``approve_deletions``: a person approves the removals past a limit (in the DAG, Airflow's
   human-in-the-loop task; here, the ``approve`` callable);
4. ``archive``: move due rows to the archive (``archive.archive_category``);
5. ``purge``: destroy or anonymise rows at end of life (``purge.purge_category``);
6. ``postflight_checks``: prove the schedule holds now (``postflight.post_run_gate``);
7. ``summary``: count again and write the run's ``run_summary`` event (``summary.summarize_run``).

``run_category`` runs them in one process, for the tests, the benchmark and scripts; the DAG
(``dags/retention_dags.py``) runs each as its own task, chained in ``RUN_ORDER``. Two things
only the DAG does: a task receives the category's key (task arguments cross processes) and
opens its step again; and its summary runs even after a failed step (the certificate then
says the run is incomplete), where ``run_category`` raises at the failing step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from include.retention.database.identity import SubjectKey
from include.retention.database.target import Target
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts, flag_excesses, record_approval
from include.retention.schedule.plan import CategoryPlan, plan_category
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.purge import purge_category
from include.retention.schedule.quality import CheckResult, pre_archive_gate
from include.retention.schedule.summary import summarize_run


class Stage(StrEnum):
    """One step of a run; its value is the DAG's task id."""

    PREFLIGHT = "preflight_checks"
    PLAN = "plan"
    APPROVAL = "approve_deletions"
    ARCHIVE = "archive"
    PURGE = "purge"
    POSTFLIGHT = "postflight_checks"
    SUMMARY = "summary"


RUN_ORDER: tuple[Stage, ...] = (
    Stage.PREFLIGHT,
    Stage.PLAN,
    Stage.APPROVAL,
    Stage.ARCHIVE,
    Stage.PURGE,
    Stage.POSTFLIGHT,
    Stage.SUMMARY,
)
GATES = frozenset({Stage.PREFLIGHT, Stage.POSTFLIGHT})

# Asked with the plan: True approves its removals (up to the planned counts), False refuses.
Approve = Callable[[CategoryPlan], bool]


@dataclass(frozen=True)
class RunResult:
    """What one run did: its plan, rows archived per table, rows destroyed or anonymised
    (``{"deleted"|"anonymized": {table: rows}}``), the gates' checks, and the summary event."""

    plan: CategoryPlan
    archived: dict[str, int]
    purged: dict[str, dict[str, int]]
    checks: list[CheckResult]
    summary: dict[str, Any]


def run_category(
    target: Target,
    policy: RetentionPolicy,
    category_key: str,
    ctx: RunContext,
    *,
    subject_key: SubjectKey | None = None,
    batch_size: int | None = None,
    approve: Approve | None = None,
    gates: bool = True,
) -> RunResult:
    """Run one category's steps in ``RUN_ORDER``; a failing gate or step raises.

    ``approve``: asked with the plan; without it (or when it refuses) no removal past a
    deletion limit happens - archive and purge refuse before their first batch, as they do
    in a DAG run whose approval was rejected. ``gates=False`` leaves out the two data-quality
    gates (a test of one step's effect, without the gates' audit events)."""
    step = StepContext.build(target, policy, category_key, ctx, subject_key)
    checks: list[CheckResult] = []
    plan: CategoryPlan | None = None
    approved: dict[str, int] | None = None
    archived: dict[str, int] = {}
    purged: dict[str, dict[str, int]] = {}
    summary: dict[str, Any] = {}
    for stage in RUN_ORDER:
        if stage in GATES and not gates:
            continue
        if stage is Stage.PREFLIGHT:
            checks += pre_archive_gate(step)
        elif stage is Stage.PLAN:
            plan = flag_excesses(plan_category(step), policy)
        elif stage is Stage.APPROVAL:
            approved = _approval(step, _planned(plan), approve)
        elif stage is Stage.ARCHIVE:
            archived = archive_category(step, batch_size, approved)
        elif stage is Stage.PURGE:
            purged = purge_category(step, batch_size, approved)
        elif stage is Stage.POSTFLIGHT:
            checks += post_run_gate(step)
        elif stage is Stage.SUMMARY:
            summary = summarize_run(step, archived, purged)
    return RunResult(_planned(plan), archived, purged, checks, summary)


def _planned(plan: CategoryPlan | None) -> CategoryPlan:
    if plan is None:
        raise AssertionError("RUN_ORDER plans before it approves")
    return plan


def _approval(step: StepContext, plan: CategoryPlan, approve: Approve | None) -> dict[str, int] | None:
    """The removals a person approved (the plan's counts), or None. As in the DAG, an
    approval of removals past a limit in a run that executes is written to the audit log
    (and so on the certificate)."""
    if approve is None or not approve(plan):
        return None
    approved = approved_counts(plan)
    if plan.over_limit and not step.ctx.dry_run:
        record_approval(step, approved)
    return approved

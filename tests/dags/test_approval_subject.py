"""The approval a person is asked for names the DAG, hence the target database: with several
targets, Required Actions lists retention_prospection_paris and retention_prospection_lyon,
and an approver must never approve Lyon's removals believing they are Paris's."""

from __future__ import annotations

from datetime import date
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG

from include.retention.database.reflect import Side
from include.retention.schedule.plan import CategoryPlan, Excess
from include.retention_airflow.approval import DeletionApproval


class _Ti:
    def __init__(self, plan: CategoryPlan) -> None:
        self.plan = plan

    def xcom_pull(self, task_ids: str) -> dict[str, Any]:
        assert task_ids == "plan"
        return self.plan.to_xcom()


def test_the_approval_asked_for_a_named_targets_run_names_its_dag_and_so_its_database(monkeypatch):
    asked: dict[str, str] = {}
    # The parent's execute parks the task for a person; here it only records what would be asked.
    monkeypatch.setattr(ApprovalOperator, "execute", lambda self, context: asked.update(subject=self.subject))
    with DAG("retention_prospection_lyon", start_date=pendulum.datetime(2026, 1, 1), schedule=None):
        approval = DeletionApproval(
            task_id="approve_deletions", category="prospection", timeout_hours=24, lang="fr", labels={}
        )
    plan = CategoryPlan(
        category="prospection",
        as_of=date(2026, 12, 1),
        policy_version="lyon-1",
        has_archive=True,
        end_action="delete",
        tables=[],
        over_limit=(
            Excess(table="prospects", side=Side.ACTIVE, rows=500, base=1000, limit_rows=100, limit_fraction=None),
        ),
    )
    approval.execute({"ti": _Ti(plan)})
    assert (
        asked["subject"]
        == "Approuver les retraits (archivage ou destruction) de retention_prospection_lyon : limite de suppression dépassée"
    )


def test_the_approver_reads_the_question_in_english_when_the_policy_says_en():
    with DAG("retention_prospection", start_date=pendulum.datetime(2026, 1, 1), schedule=None):
        approval = DeletionApproval(
            task_id="approve_deletions", category="prospection", timeout_hours=24, lang="en", labels={}
        )
    assert approval.subject == "Approve the removals of retention_prospection: past the deletion limit"

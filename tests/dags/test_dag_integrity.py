"""The DAG folder parses, and every retention DAG is wired the way the brief says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from include.retention.policy.load import DEFAULT_POLICY_PATH, load_policy

POLICY = load_policy()
DAG_IDS = sorted(f"retention_{key}" for key in POLICY.categories)


def test_dag_folder_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_category_of_the_charter_the_audit_verification_and_the_dpo_report(dagbag):
    assert sorted(dagbag.dag_ids) == sorted(
        [
            *DAG_IDS,
            "retention_audit_verify",
            "retention_dpo_report",
            "retention_rights_deadlines",
            "subject_request",
            "legal_hold",
            "retention_reconsent",
            "reconsent_answer",
        ]
    )
    assert len(DAG_IDS) == 7


# DAGs that change the target: a retry must be possible (a lost connection mid-run is retried,
# safely: batches, the lease and the request register make a step safe to run again).
DESTRUCTIVE = [*DAG_IDS, "subject_request", "legal_hold", "retention_reconsent", "reconsent_answer"]
# Tasks that must never be retried: a person's answer (a rejection is final).
NEVER_RETRIED = {"approve_deletions"}


@pytest.mark.parametrize("dag_id", DESTRUCTIVE)
def test_every_task_of_a_destructive_dag_is_retried_after_a_delay(dagbag, dag_id):
    from datetime import timedelta

    for task in dagbag.dags[dag_id].tasks:
        if task.task_id in NEVER_RETRIED:
            assert task.retries == 0, task.task_id
            continue
        assert task.retries >= 1, f"{dag_id}.{task.task_id} is never retried"
        assert task.retry_delay >= timedelta(minutes=1), f"{dag_id}.{task.task_id} retries at once"


def test_every_dag_declares_one_run_at_a_time_its_tags_owner_and_documentation(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.max_active_runs == 1, dag_id
        assert {"retention", "gdpr"} <= set(dag.tags), dag_id
        assert {task.owner for task in dag.tasks} == {"data-protection"}, dag_id
        assert dag.doc_md and dag.doc_md.strip().startswith("#"), f"{dag_id} has no documentation"
        assert dag.catchup is False, dag_id


def test_the_audit_verification_runs_daily_paused_and_read_only(dagbag):
    dag = dagbag.dags["retention_audit_verify"]
    assert dag.timetable.expression == "0 5 * * *" and dag.is_paused_upon_creation is True
    assert [t.task_id for t in dag.tasks] == ["verify_chain"]
    assert {"retention", "audit"} <= set(dag.tags)


def test_the_dpo_report_runs_monthly_paused_and_read_only(dagbag):
    dag = dagbag.dags["retention_dpo_report"]
    assert dag.timetable.expression == "0 6 1 * *" and dag.is_paused_upon_creation is True
    assert [t.task_id for t in dag.tasks] == ["write_report"]
    assert dag.params["language"] == "fr"


def test_the_reconsent_campaign_runs_daily_at_nine_paris_paused_one_task_per_asking_category(dagbag):
    """Mail arrives in business hours; nothing is sent on deploy; a manual run is a dry run."""
    from airflow.sdk import CronTriggerTimetable

    dag = dagbag.dags["retention_reconsent"]
    assert isinstance(dag.timetable, CronTriggerTimetable) and dag.timetable.expression == "0 9 * * *"
    assert str(getattr(dag.timetable.timezone, "name", dag.timetable.timezone)) == "Europe/Paris"
    assert dag.is_paused_upon_creation is True
    asking = sorted(k for k, c in POLICY.categories.items() if c.reconsent is not None)
    assert asking == ["prospection", "web_forms"]
    assert sorted(t.task_id for t in dag.tasks) == [f"ask_{k}" for k in asking]
    assert all(not t.upstream_task_ids for t in dag.tasks)  # each category on its own
    assert set(dag.params.keys()) == {"mode"} and dag.params["mode"] == "preview"
    assert {"retention", "gdpr", "reconsent"} <= set(dag.tags)
    assert "#### Preview or send" in (dag.doc_md or "")


def test_the_answer_dag_is_triggered_only_active_at_creation_and_takes_tokens_bounces_and_a_csv(dagbag):
    """The website triggers it through the REST API: a paused DAG would queue the answers unseen."""
    dag = dagbag.dags["reconsent_answer"]
    assert dag.schedule is None
    assert dag.is_paused_upon_creation is False
    assert [t.task_id for t in dag.tasks] == ["record_answers"]
    assert set(dag.params.keys()) == {"tokens", "bounces", "csv_uri"}
    assert (dag.params["tokens"], dag.params["bounces"], dag.params["csv_uri"]) == ([], [], None)
    assert "POST /api/v2/dags/reconsent_answer/dagRuns" in (dag.doc_md or "")


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_runs_on_its_cron_in_europe_paris_paused_and_one_run_at_a_time(dagbag, dag_id):
    from airflow.sdk import CronTriggerTimetable

    dag = dagbag.dags[dag_id]
    category = POLICY.categories[dag_id.removeprefix("retention_")]
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == category.schedule
    assert str(getattr(dag.timetable.timezone, "name", dag.timetable.timezone)) == "Europe/Paris"
    assert dag.max_active_runs == 1
    assert dag.is_paused_upon_creation is True
    assert {"retention", "gdpr", category.key} <= set(dag.tags)
    assert all(task.retries >= 2 for task in dag.tasks if task.task_id != "approve_deletions")
    assert dag.get_task("approve_deletions").retries == 0  # a rejection is final: never asked again by a retry


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_tasks_are_preflight_plan_approval_archive_purge_postflight_summary_in_that_order(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert {t.task_id for t in dag.tasks} == {
        "preflight_checks",
        "plan",
        "approve_deletions",
        "archive",
        "purge",
        "postflight_checks",
        "summary",
    }
    assert dag.get_task("preflight_checks").downstream_task_ids == {"plan"}
    assert dag.get_task("plan").downstream_task_ids == {"approve_deletions"}
    assert dag.get_task("approve_deletions").downstream_task_ids == {"archive"}
    assert dag.get_task("archive").downstream_task_ids == {"purge", "summary"}
    assert dag.get_task("purge").downstream_task_ids == {"postflight_checks", "summary"}
    assert dag.get_task("postflight_checks").downstream_task_ids == {"summary"}
    assert dag.get_task("summary").trigger_rule == "all_done"  # a failed run is still summarised
    # after an approval that succeeded or was skipped (a preview), never after a rejection
    assert dag.get_task("archive").trigger_rule == "none_failed"


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_params_are_mode_as_of_and_batch_size(dagbag, dag_id):
    params = dagbag.dags[dag_id].params
    assert set(params.keys()) == {"mode", "as_of", "batch_size"}
    # the form previews by default; a scheduled run (conf {}) executes whatever it says (resolve_dry_run)
    assert params["mode"] == "preview"
    assert params["batch_size"] == POLICY.batch_size


def test_doc_md_states_the_schedule_in_words(dagbag):
    doc = dagbag.dags["retention_prospection"].doc_md
    # In the policy's language (the shipped policy is French).
    assert (
        "conservé en base active 3 ans à compter de `last_inbound_contact_at`, puis 5 ans en archive, puis supprimé"
        in doc
    )
    tracking = dagbag.dags["retention_navigation_tracking"].doc_md
    assert "13 mois" in tracking and "sans archive" in tracking


def test_a_broken_policy_is_an_import_error_that_names_the_key(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["categories"]["suppliers"]["active_period"] = "three years"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("RETENTION_POLICY", str(broken))
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    errors = list(bag.import_errors.values())
    # the schedule DAGs, audit verification, DPO report, deadlines check, legal holds, re-consent, and
    # subject_request (its form is in the policy's language since issue 20)
    assert len(errors) == 7
    assert all("categories.suppliers.active_period" in e and "broken.yaml" in e for e in errors)


def test_dags_follow_the_policy_named_by_retention_policy(monkeypatch):
    """A user's own policy (here the Odoo example) needs no code change: its categories become the DAGs."""
    from airflow.dag_processing.dagbag import DagBag

    example = Path(__file__).resolve().parents[2] / "examples" / "odoo" / "retention_policy.yaml"
    monkeypatch.setenv("RETENTION_POLICY", str(example))
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [
        "legal_hold",
        "retention_accounting",
        "retention_audit_verify",
        "retention_customer_relationship",
        "retention_dpo_report",
        "retention_prospection",
        "retention_rights_deadlines",
        "retention_suppliers",
        "subject_request",
    ]
    assert "archivée avec sa ligne `res_partner`" in bag.dags["retention_accounting"].doc_md

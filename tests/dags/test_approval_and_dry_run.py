"""Through Airflow on PostgreSQL: a run triggered by hand is a dry run unless it says otherwise,
and a run past the deletion limit waits for a person - it proceeds once approved, and fails
unchanged on a rejection or when nobody answers in time."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from dag_helpers import AS_OF, admin_headers
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.exc import NoResultFound
from table_checksums import checksum

from include.retention.reports import certificate

DAG_ID = "retention_prospection"


@pytest.fixture(scope="module")
def dagbag():
    """A DagBag of this module's own: ``dag.test(run_conf=...)`` leaves its params on the DAG."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture
def shipped_limits(seeded_postgres, monkeypatch):
    """The seeded CRM under the shipped policy, whose deletion limit this small seed passes."""
    monkeypatch.delenv("RETENTION_POLICY")
    return seeded_postgres


def _count(target, schema, table):
    t = Table(table, MetaData(), schema=schema, autoload_with=target.engine)
    with target.read() as conn:
        return conn.execute(select(func.count()).select_from(t)).scalar_one()


def _xcom(dag_run, task_id):
    """A task's return value, read from the metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == DAG_ID,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).one()
        return XComModel.deserialize_value(row)


def test_a_run_triggered_by_hand_is_a_dry_run_that_shows_its_plan(dagbag, shipped_limits):
    seeded_postgres = shipped_limits
    before = checksum(seeded_postgres)
    dag_run = dagbag.dags[DAG_ID].test(logical_date=datetime.now(UTC), run_conf={"as_of": AS_OF.isoformat()})
    assert dag_run.state == "success"
    assert checksum(seeded_postgres) == before
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    # past the limit, but a preview changes nothing: nobody is asked, and the skipped approval marks
    # the run as a preview in the grid; archive and purge still run, to log what they would move
    assert states["approve_deletions"] == "skipped"
    assert states["archive"] == states["purge"] == states["summary"] == "success"
    plan = _xcom(dag_run, "plan")
    prospects = next(t for t in plan["tables"] if t["table"] == "prospects")
    assert plan["dry_run"] is True and prospects["due_for_archive"] > 0
    assert prospects["last_due_start"] == "2023-11-26" and prospects["end_of_life_horizon"] == "2026-11-26"
    assert 0 < len(prospects["sample_keys"]["archive"]) <= 5
    assert {(e["table"], e["side"]) for e in plan["over_limit"]} == {("prospects", "active"), ("prospects", "archive")}
    with pytest.raises(NoResultFound):  # a skipped task returns nothing
        _xcom(dag_run, "approve_deletions")


def _awaiting(deadline: float) -> str | None:
    """The run id of the run whose approval task waits for a person (None if none by the deadline)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session

    while time.monotonic() < deadline:
        with create_session() as session:
            ti = session.scalars(
                select(TI).where(TI.dag_id == DAG_ID, TI.task_id == "approve_deletions", TI.state == "awaiting_input")
            ).first()
            if ti is not None:
                return ti.run_id
        time.sleep(0.5)
    return None


def _run_answered(dagbag, target, respond):
    """An executing run in the main thread (``dag.test`` needs it); a helper thread waits for the
    approval request, checks nothing has moved yet, then calls ``respond(run_id)``."""
    before = checksum(target)
    seen = {}

    def answer():
        run_id = _awaiting(time.monotonic() + 120)
        if run_id is None:
            return
        seen["unchanged_while_waiting"] = checksum(target) == before
        respond(run_id)
        seen["answered"] = True

    helper = threading.Thread(target=answer, daemon=True)
    helper.start()
    dag_run = dagbag.dags[DAG_ID].test(
        logical_date=datetime.now(UTC), run_conf={"as_of": AS_OF.isoformat(), "mode": "execute"}
    )
    helper.join(timeout=10)
    assert seen == {"unchanged_while_waiting": True, "answered": True}
    return dag_run, {ti.task_id: ti.state for ti in dag_run.get_task_instances()}, before


def _answer(client, option: str):
    def respond(run_id: str) -> None:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve_deletions/-1/hitlDetails"
        response = client.patch(path, json={"chosen_options": [option]}, headers=admin_headers(client))
        assert response.status_code == 200, response.text

    return respond


def test_a_run_past_the_deletion_limit_proceeds_once_approved(dagbag, shipped_limits, api_client):
    active = _count(shipped_limits, "crm", "prospects")
    dag_run, states, _ = _run_answered(dagbag, shipped_limits, _answer(api_client, "Approve"))
    assert dag_run.state == "success" and states["archive"] == states["purge"] == "success"
    assert _count(shipped_limits, "crm", "prospects") < active
    plan = _xcom(dag_run, "plan")
    prospects = next(t for t in plan["tables"] if t["table"] == "prospects")
    issued = json.loads(certificate.paths(DAG_ID, dag_run.run_id)[0].read_text())
    assert issued["approved_past_limit"] == prospects["due_for_archive"] + prospects["due_for_end_of_life"]


def test_a_rejected_run_fails_and_changes_nothing(dagbag, shipped_limits, api_client):
    dag_run, states, before = _run_answered(dagbag, shipped_limits, _answer(api_client, "Reject"))
    assert dag_run.state == "failed" and states["approve_deletions"] == "failed"
    assert states["archive"] == states["purge"] == "upstream_failed"
    assert checksum(shipped_limits) == before


def _time_out(run_id: str) -> None:
    """The policy's 24 hours pass: the scheduler's sweep resolves the unanswered request."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.scalars(
            select(TI).where(TI.dag_id == DAG_ID, TI.run_id == run_id, TI.task_id == "approve_deletions")
        ).one()
        ti.trigger_timeout = datetime.now(UTC) - timedelta(seconds=1)
    with create_session() as session:
        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts(session=session)


def test_a_run_nobody_approves_in_time_fails_and_changes_nothing(dagbag, shipped_limits):
    dag_run, states, before = _run_answered(dagbag, shipped_limits, _time_out)
    assert dag_run.state == "failed" and states["approve_deletions"] == "failed"
    assert states["archive"] == "upstream_failed"
    assert checksum(shipped_limits) == before

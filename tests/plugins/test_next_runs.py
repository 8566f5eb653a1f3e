"""The next run of each DAG of the schedule, read from Airflow's metadata as the scheduler
leaves it: its logical date, whether the DAG is paused, and a DAG Airflow has not parsed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.utils.session import create_session

from include.retention_airflow.ui.next_runs import next_runs

NEXT = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)  # 00:30 on 2 December in Paris


def test_the_next_run_its_pause_and_an_unparsed_dag_come_from_the_metadata(airflow_db):
    with create_session() as session:
        if session.get(DagBundleModel, "h3-test-bundle") is None:
            session.add(DagBundleModel(name="h3-test-bundle"))
            session.flush()
        for dag_id, paused in (("retention_h3_running", False), ("retention_h3_paused", True)):
            session.merge(
                DagModel(
                    dag_id=dag_id,
                    bundle_name="h3-test-bundle",
                    is_paused=paused,
                    is_stale=False,
                    next_dagrun=NEXT,
                    next_dagrun_create_after=NEXT,
                    max_active_tasks=16,
                    max_consecutive_failed_dag_runs=0,
                    has_task_concurrency_limits=False,
                )
            )
    with create_session() as session:
        runs = next_runs(session, ["retention_h3_running", "retention_h3_paused", "retention_h3_never_parsed"])
    running, paused, unparsed = runs.values()
    assert running.known and not running.paused and running.logical_date == NEXT
    # The day the run counts for is its logical date on the policy's clocks: already 2 December in Paris.
    assert running.day(ZoneInfo("Europe/Paris"), date(2026, 11, 30)) == date(2026, 12, 2)
    assert paused.known and paused.paused
    assert not unparsed.known and unparsed.day(ZoneInfo("Europe/Paris"), date(2026, 11, 30)) == date(2026, 11, 30)

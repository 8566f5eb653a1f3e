"""A failed demo task's log in the UI says why it failed: its exception, message and frames, as a
worker writes it (``error_detail``), masked like every other line - it said only "Task failed
with exception", with neither message nor traceback."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import text

from include.retention.database.target import connect
from tests.scripts.test_demo_task_logs import ROOT, SECRET, _demo_module, log_lines


def test_a_failed_demo_task_s_log_shows_its_error_and_traceback_without_the_address(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    demo = _demo_module()
    home = demo.DemoHome(tmp_path / ".demo")
    for name, value in home.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_VAR_RETENTION_SUBJECT_SECRET", SECRET)
    monkeypatch.setenv("RETENTION_SUBJECT_SECRET", SECRET)
    as_of = datetime.now(UTC).date()
    home.reset(as_of)
    target = connect(home.url)
    with target.read() as conn:
        email = conn.execute(text("SELECT email FROM prospects WHERE email IS NOT NULL LIMIT 1")).scalar()
    target.dispose()
    dag = DagBag(dag_folder=str(ROOT / "dags" / "subject_request.py")).get_dag("subject_request")
    conf = {"request_type": "erasure", "reference": "LOG-1", "received": as_of.isoformat(), "identity": "verified"}

    with demo.task_logs_for_the_ui():
        dag_run = dag.test(logical_date=datetime.now(UTC), run_conf={**conf, "email": "not an address " + email})

    assert dag_run.state == "failed"
    (failed,) = [ti.task_id for ti in dag_run.get_task_instances() if ti.state == "failed"]
    lines = log_lines(dag.dag_id, dag_run.run_id, failed)
    details = [line["error_detail"] for line in lines if line.get("error_detail")]
    assert details, [line.get("event") for line in lines]
    assert any("not of the form" in error["exc_value"] and error["frames"] for error in details[-1]), details
    shown = str(lines)
    assert email not in shown and email.split("@")[0] not in shown, "a task log names no address"
    assert os.environ["AIRFLOW_VAR_RETENTION_SUBJECT_SECRET"] not in shown

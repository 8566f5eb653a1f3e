"""The demo's runs have their task logs in the UI: ``dag.test`` runs each task in the demo's
process, and the demo writes its log to the file Airflow's api-server reads - the UI asked
"Log file not found on worker" for every one of them."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "task-log-test-subject-secret-" + "x" * 20


def _demo_module():
    spec = importlib.util.spec_from_file_location("retention_demo_task_logs", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _bearer(client) -> dict[str, str]:
    """The DPO's Authorization header (a viewer, as the UI's reader), from the token endpoint."""
    passwords = json.loads(Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    response = client.post("/auth/token", json={"username": "dpo", "password": passwords["dpo"]})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def log_lines(dag_id: str, run_id: str, task_id: str) -> list[dict]:
    """The task's log lines as the UI gets them: the api-server's log endpoint, first try."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    purge_cached_app()
    try:
        with TestClient(create_app("core")) as client:
            response = client.get(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1",
                headers={**_bearer(client), "Accept": "application/json"},
            )
    finally:
        purge_cached_app()
    assert response.status_code == 200, response.text
    return response.json()["content"]


def _logged_events(dag_id: str, run_id: str, task_id: str) -> list[str]:
    """The events of the task's log lines as the UI gets them."""
    return [line["event"] for line in log_lines(dag_id, run_id, task_id)]


def test_a_demo_run_s_task_logs_are_what_the_ui_shows_for_its_tasks(airflow_db, tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    demo = _demo_module()
    home = demo.DemoHome(tmp_path / ".demo")
    for name, value in home.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_VAR_RETENTION_SUBJECT_SECRET", SECRET)
    home.reset(datetime.now(UTC).date())
    dag = DagBag(dag_folder=str(ROOT / "dags" / "retention_dags.py")).get_dag("retention_prospection")

    with demo.task_logs_for_the_ui():
        dag_run = dag.test(logical_date=datetime.now(UTC), run_conf={"mode": "preview"})

    assert dag_run.state == "success"
    events = _logged_events(dag.dag_id, dag_run.run_id, "plan")
    assert any(event.startswith("Plan for prospection") or " Plan for prospection " in event for event in events), (
        events
    )
    assert not any("Log file not found" in event for event in events)
    assert not any("@" in event for event in events), "a task log names no address"

"""The DPO's role with Airflow's simple auth manager, checked against the API server itself.

The DPO reads (DAGs, runs, their tasks and logs, Required Actions, the Retention view) and
changes nothing: ``dpo:viewer``. Who answers an approval is configuration:
``$RETENTION_APPROVERS`` names the users the question is assigned to (HITL ``assigned_users``),
and Airflow refuses an answer from anyone else - a user with the right to edit DAGs included.
docs/how-to/dpo-role.md gives the same for the FAB auth manager.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

DAG_ID = "retention_prospection"
USERS = {"admin": "admin", "dpo": "viewer", "approver": "user", "engineer": "user"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, airflow_db: None) -> Iterator[tuple]:
    """Airflow's API app with four users, the project's DAGs in its database (parsed with
    ``RETENTION_APPROVERS=approver``) and one run of ``retention_prospection`` the admin triggered."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    home = tmp_path_factory.mktemp("dpo-role")
    passwords = {user: f"{user}-password" for user in USERS}
    (home / "passwords.json").write_text(json.dumps(passwords))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:{r}" for u, r in USERS.items()))
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(home / "passwords.json"))
        patch.setenv("RETENTION_APPROVERS", "approver")
        approval = _sync_project_dags().get_task("approve_deletions")
        purge_cached_app()
        with TestClient(create_app("core")) as client:
            tokens = {user: _bearer(client, user, password) for user, password in passwords.items()}
            created = client.post(
                f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None}, headers=tokens["admin"]
            )
            assert created.status_code == 200, created.text
            run_id = created.json()["dag_run_id"]
            _ask_for_approval(run_id, approval)
            yield client, tokens, run_id
        purge_cached_app()


def _sync_project_dags():
    """Parse the DAG folder and write its DAGs to the metadata database, as the DAG processor
    does; the parsed ``retention_prospection``."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)
        if DAG_ID in bag.dags:
            return bag.dags[DAG_ID]
    raise AssertionError(f"{DAG_ID} is in no DAG bundle")


def _ask_for_approval(run_id: str, task) -> None:
    """The question ``approve_deletions`` records when its run passes the deletion limit: the
    parsed operator's subject, options and assigned users (the worker writes the same through
    the Execution API)."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    assert task.assigned_users == [{"id": "approver", "name": "approver"}]
    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run_id, TaskInstance.task_id == task.task_id
            )
        ).one()
        session.add(
            HITLDetail(
                ti_id=ti.id, options=list(task.options), subject=task.subject, body="", assignees=task.assigned_users
            )
        )


def _bearer(client, user: str, password: str) -> dict[str, str]:
    response = client.post("/auth/token", json={"username": user, "password": password})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _answer_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve_deletions/-1/hitlDetails"


def test_the_dpo_reads_dags_runs_tasks_logs_and_required_actions(api):
    client, tokens, run_id = api
    run = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
    for path in (
        "/api/v2/dags",
        f"/api/v2/dags/{DAG_ID}",
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        run,
        f"{run}/taskInstances",
        "/api/v2/dags/~/dagRuns/~/hitlDetails",
        "/api/v2/plugins",  # the Retention view's entry in the menu
    ):
        response = client.get(path, headers=tokens["dpo"])
        assert response.status_code == 200, (path, response.text)
    logs = client.get(f"{run}/taskInstances/plan/logs/1", headers=tokens["dpo"])
    assert logs.status_code != 403, logs.text  # allowed; the run has not started, so there is no log yet


def test_the_dpo_cannot_trigger_pause_clear_delete_or_answer(api):
    client, tokens, run_id = api
    run = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
    refused = [
        client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None}, headers=tokens["dpo"]),
        client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}, headers=tokens["dpo"]),
        client.post(f"{run}/clear", json={"dry_run": True}, headers=tokens["dpo"]),
        client.delete(run, headers=tokens["dpo"]),
        client.patch(_answer_path(run_id), json={"chosen_options": ["Approve"]}, headers=tokens["dpo"]),
        client.get("/api/v2/connections", headers=tokens["dpo"]),
        client.get("/api/v2/variables", headers=tokens["dpo"]),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]


def test_only_the_assigned_approver_answers_an_approval(api):
    client, tokens, run_id = api
    refused = client.patch(_answer_path(run_id), json={"chosen_options": ["Approve"]}, headers=tokens["engineer"])
    assert refused.status_code == 403 and "not a respondent" in refused.text
    admin = client.patch(_answer_path(run_id), json={"chosen_options": ["Approve"]}, headers=tokens["admin"])
    assert admin.status_code == 403  # assigned users are exactly who answers: an admin is not one of them
    answered = client.patch(_answer_path(run_id), json={"chosen_options": ["Approve"]}, headers=tokens["approver"])
    assert answered.status_code == 200, answered.text
    assert answered.json()["responded_by"] == {"id": "approver", "name": "approver"}


def test_approvers_are_read_from_the_environment_and_a_bad_entry_is_named_by_position():
    from include.retention_airflow.approval import ApproversConfigError, approvers

    assert approvers({}) is None  # unset: whoever may edit the DAG's HITL details answers
    assert approvers({"RETENTION_APPROVERS": " dpo, jeanne.dupont ,dpo"}) == [
        {"id": "dpo", "name": "dpo"},
        {"id": "jeanne.dupont", "name": "jeanne.dupont"},
    ]
    with pytest.raises(ApproversConfigError, match="RETENTION_APPROVERS: entry 2 is not a user id") as refused:
        approvers({"RETENTION_APPROVERS": "dpo,jeanne dupont"})
    assert "jeanne" not in str(refused.value)

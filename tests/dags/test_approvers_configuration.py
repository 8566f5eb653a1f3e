"""``$RETENTION_APPROVERS`` is configuration like the policy: a bad value never drops the approval
restriction silently. With several targets, each gets ``retention_config_error_<name>`` naming the
variable and the entry's position (its retention DAGs are not built); with the default target, the
retention DAG file fails its parse naming it. A good value builds the DAGs with the question
assigned to those users; unset, anyone with HITL rights answers."""

from __future__ import annotations

import os

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.retention.policy.load import load_policy

SHIPPED = "include/policy/retention_policy.yaml"
CATEGORY_DAGS = sorted(f"retention_{key}" for key in load_policy().categories)


def _parsed(monkeypatch: pytest.MonkeyPatch, **environ: str):
    """The project's DAG folder parsed with ``environ`` set."""
    from airflow.dag_processing.dagbag import DagBag

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def _assigned(dag) -> list[str] | None:
    users = dag.get_task("approve_deletions").assigned_users
    return None if users is None else [user["id"] for user in users]


def test_a_bad_approver_list_gives_each_target_its_error_dag_naming_the_variable(monkeypatch):
    bag = _parsed(monkeypatch, RETENTION_TARGETS=f"paris={SHIPPED},lyon={SHIPPED}", RETENTION_APPROVERS="dpo;bob")
    assert bag.import_errors == {}
    for name in ("paris", "lyon"):
        assert not [dag_id for dag_id in CATEGORY_DAGS if f"{dag_id}_{name}" in bag.dag_ids]
        task = bag.dags[f"retention_config_error_{name}"].get_task("report_error")
        with pytest.raises(AirflowFailException) as failed:
            task.python_callable()
        said = str(failed.value)
        assert "RETENTION_APPROVERS: entry 1 is not a user id" in said
        assert "dpo;bob" not in said  # the entry's position, never its value


def test_a_bad_approver_list_of_the_default_target_fails_the_retention_dag_file_naming_it(monkeypatch):
    bag = _parsed(monkeypatch, RETENTION_APPROVERS="dpo,bob smith")
    assert not set(CATEGORY_DAGS) & set(bag.dag_ids)
    errors = {os.path.basename(path): error for path, error in bag.import_errors.items()}
    assert list(errors) == ["retention_dags.py"]
    assert "RETENTION_APPROVERS: entry 2 is not a user id" in errors["retention_dags.py"]
    assert "bob" not in errors["retention_dags.py"]


def test_a_good_approver_list_builds_every_category_dag_asking_those_users(monkeypatch):
    bag = _parsed(monkeypatch, RETENTION_APPROVERS="dpo, jeanne.dupont")
    assert bag.import_errors == {}
    assert len(CATEGORY_DAGS) == 7 and set(CATEGORY_DAGS) <= set(bag.dag_ids)
    assert all(_assigned(bag.dags[dag_id]) == ["dpo", "jeanne.dupont"] for dag_id in CATEGORY_DAGS)


def test_no_approver_list_lets_anyone_with_hitl_rights_answer(monkeypatch):
    monkeypatch.delenv("RETENTION_APPROVERS", raising=False)
    bag = _parsed(monkeypatch, RETENTION_APPROVERS="")
    assert bag.import_errors == {}
    assert all(_assigned(bag.dags[dag_id]) is None for dag_id in CATEGORY_DAGS)

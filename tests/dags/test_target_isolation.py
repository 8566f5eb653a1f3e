"""One target's unusable configuration never takes another target's DAGs: with several targets,
the broken one gets ``retention_config_error_<name>`` (failing daily with what to fix) in place of
its DAGs, and the others keep all of theirs. The default target alone still fails the parse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from include.retention.policy.load import DEFAULT_POLICY_PATH, load_policy
from include.retention.policy.validate import RESERVED_CATEGORY_KEYS

SHIPPED = "include/policy/retention_policy.yaml"


def _parsed(monkeypatch: pytest.MonkeyPatch, **environ: str):
    """The project's DAG folder parsed with ``environ`` set."""
    from airflow.dag_processing.dagbag import DagBag

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def _paris_dag_ids() -> list[str]:
    bases = [f"retention_{key}" for key in load_policy().categories]
    bases += ["retention_audit_verify", "retention_dpo_report", "retention_rights_deadlines", "subject_request"]
    bases += ["legal_hold", "retention_reconsent", "reconsent_answer"]
    return sorted(f"{base}_paris" for base in bases)


def _the_error(bag, name: str) -> str:
    """The message the error DAG of target ``name`` fails with (its one task run here)."""
    dag = bag.dags[f"retention_config_error_{name}"]
    assert [t.task_id for t in dag.tasks] == ["report_error"]
    assert dag.is_paused_upon_creation is False and dag.timetable.expression == "0 6 * * *"
    assert dag.get_task("report_error").retries == 0
    assert f"target:{name}" in dag.tags
    with pytest.raises(AirflowFailException) as failed:
        dag.get_task("report_error").python_callable()
    return str(failed.value)


def test_a_broken_policy_of_lyon_leaves_every_dag_of_paris_and_gives_lyon_its_error_dag(monkeypatch, tmp_path):
    broken = tmp_path / "lyon.yaml"
    broken.write_text("version: 1\ncategories: {}\n", encoding="utf-8")
    bag = _parsed(monkeypatch, RETENTION_TARGETS=f"paris={SHIPPED},lyon={broken}")
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted([*_paris_dag_ids(), "retention_config_error_lyon"])
    said = _the_error(bag, "lyon")
    assert "target 'lyon'" in said and str(broken) in said and "categories" in said


def test_an_approval_alert_at_lyons_timeout_leaves_paris_and_names_the_variable(monkeypatch, tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["approval_timeout_hours"] = 4  # paris: the shipped 24
    lyon = tmp_path / "lyon.yaml"
    lyon.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    bag = _parsed(monkeypatch, RETENTION_TARGETS=f"paris={SHIPPED},lyon={lyon}", RETENTION_APPROVAL_ALERT_HOURS="6")
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted([*_paris_dag_ids(), "retention_config_error_lyon"])
    assert "RETENTION_APPROVAL_ALERT_HOURS (6) must be less than the policy's approval_timeout_hours (4)" in _the_error(
        bag, "lyon"
    )


def test_the_default_target_alone_still_fails_the_parse_of_every_dag_file(monkeypatch, tmp_path):
    broken = tmp_path / "policy.yaml"
    broken.write_text("version: 1\ncategories: {}\n", encoding="utf-8")
    bag = _parsed(monkeypatch, RETENTION_POLICY=str(broken))
    # subject_request reads the policy too since issue 20 (its form is in the policy's language); its
    # task could not run without the policy anyway
    assert bag.dag_ids == []
    dag_files = {p.name for p in Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).glob("*.py")}
    assert {Path(f).name for f in bag.import_errors} == dag_files - {"retention_config_error.py"}
    assert all(str(broken) in error for error in bag.import_errors.values())


def test_the_reserved_category_keys_are_the_other_retention_dags_of_the_project(dagbag):
    """The engine's list (policy/validate.py) names every DAG a category's retention_<key> could replace."""
    categories = {f"retention_{key}" for key in load_policy().categories}
    others = {
        i.removeprefix("retention_") for i in dagbag.dag_ids if i.startswith("retention_") and i not in categories
    }
    assert others == RESERVED_CATEGORY_KEYS

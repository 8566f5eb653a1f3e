"""Which targets a deployment serves (``$RETENTION_TARGETS``), what each one's name gives, and
the DAG folder built once per target - parsed here, without running anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from include.retention.policy.load import DEFAULT_POLICY_PATH, load_policy
from include.retention_airflow.targets import (
    DEFAULT_POOL_SLOTS,
    DEFAULT_SITE,
    PROJECT_ROOT,
    Site,
    TargetsError,
    pools,
    site_named,
    sites,
)


def _targets(spec: str) -> dict[str, str]:
    return {"RETENTION_TARGETS": spec}


def test_without_retention_targets_the_one_default_target_keeps_the_projects_names():
    for environ in ({}, _targets(""), _targets("  ")):
        assert sites(environ) == [DEFAULT_SITE]
    assert (DEFAULT_SITE.conn_id, DEFAULT_SITE.pool, DEFAULT_SITE.dag_id("legal_hold")) == (
        "retention_target",
        "retention_target",
        "legal_hold",
    )
    assert (DEFAULT_SITE.tags, DEFAULT_SITE.reports_folder) == ([], None)


def test_named_targets_get_their_connection_pool_suffixed_dag_ids_tag_and_folder_in_the_order_given():
    paris, lyon = sites(_targets(" paris = policies/paris.yaml , lyon=/etc/retention/lyon.yaml"))
    assert paris == Site("paris", PROJECT_ROOT / "policies/paris.yaml")  # relative: from the project root
    assert lyon == Site("lyon", Path("/etc/retention/lyon.yaml"))
    assert (lyon.conn_id, lyon.pool) == ("retention_target_lyon", "retention_target_lyon")
    assert lyon.dag_id("retention_prospection") == "retention_prospection_lyon"
    assert (lyon.tags, lyon.reports_folder) == (["target:lyon"], "lyon")


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("paris", "entry 'paris' is not name=policy_file"),
        ("paris=", "entry 'paris=' is not name=policy_file"),
        ("paris=a.yaml,", "entry '' is not name=policy_file"),
        ("=a.yaml", "target name '' must be"),
        ("Paris=a.yaml", "target name 'Paris' must be"),
        ("paris_nord=a.yaml", "target name 'paris_nord' must be"),
        ("9lyon=a.yaml", "target name '9lyon' must be"),
        ("a" * 21 + "=a.yaml", "must be a lower-case letter then letters or digits"),
        ("paris=a.yaml,lyon=b.yaml,paris=c.yaml", "target 'paris' is named twice"),
    ],
)
def test_a_bad_entry_a_bad_name_or_a_duplicate_is_refused_naming_it(spec, said):
    with pytest.raises(TargetsError, match="RETENTION_TARGETS") as refused:
        sites(_targets(spec))
    assert said in str(refused.value)


def test_a_target_not_served_is_a_key_error_and_a_served_one_is_found_by_name():
    environ = _targets("paris=a.yaml,lyon=b.yaml")
    assert site_named("lyon", environ).policy_path == PROJECT_ROOT / "b.yaml"
    assert site_named(None, {}) == DEFAULT_SITE
    with pytest.raises(KeyError, match="'marseille'"):
        site_named("marseille", environ)
    with pytest.raises(KeyError):
        site_named(None, environ)  # named targets replace the default one


def test_one_pool_per_target_large_enough_for_the_most_batch_workers_a_policy_allows():
    from include.retention.policy.model import RetentionPolicy

    assert set(pools(_targets("paris=a.yaml,lyon=b.yaml"))) == {"retention_target_paris", "retention_target_lyon"}
    created = pools({})["retention_target"]
    most = RetentionPolicy.model_fields["batch_workers"].metadata
    assert created["slots"] == DEFAULT_POOL_SLOTS >= max(m.le for m in most if hasattr(m, "le"))
    assert created["include_deferred"] is False


def _parsed(monkeypatch: pytest.MonkeyPatch, spec: str):
    """The project's DAG folder parsed with ``RETENTION_TARGETS=spec``."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("RETENTION_TARGETS", spec)
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def test_the_default_targets_destructive_tasks_take_its_pool_and_the_others_the_default_one(dagbag):
    """archive and purge: the policy's batch_workers slots; a request, a hold, an answer: one."""
    policy = load_policy()
    in_pools = {
        (dag_id, task.task_id): (task.pool, task.pool_slots)
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if task.pool != "default_pool"
    }
    destructive = {
        (f"retention_{key}", step): policy.batch_workers for key in policy.categories for step in ("archive", "purge")
    }
    destructive |= {("subject_request", "handle_request"): 1, ("legal_hold", "change_holds"): 1}
    destructive |= {("reconsent_answer", "record_answers"): 1}
    assert in_pools == {task: ("retention_target", slots) for task, slots in destructive.items()}


def test_with_two_targets_every_dag_exists_per_target_from_its_own_policy_and_pool(monkeypatch, tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["batch_workers"], data["categories"]["prospection"]["schedule"] = 5, "7 4 * * *"
    lyon_policy = tmp_path / "lyon.yaml"
    lyon_policy.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")

    bag = _parsed(monkeypatch, f"paris=include/policy/retention_policy.yaml,lyon={lyon_policy}")
    assert bag.import_errors == {}

    shipped = load_policy()
    bases = [f"retention_{key}" for key in shipped.categories]
    bases += ["retention_audit_verify", "retention_dpo_report", "retention_rights_deadlines", "subject_request"]
    bases += ["legal_hold", "retention_reconsent", "reconsent_answer"]
    assert sorted(bag.dag_ids) == sorted(f"{base}_{name}" for base in bases for name in ("paris", "lyon"))
    paris, lyon = bag.dags["retention_prospection_paris"], bag.dags["retention_prospection_lyon"]
    assert (paris.timetable.expression, lyon.timetable.expression) == (
        shipped.categories["prospection"].schedule,
        "7 4 * * *",
    )
    assert "target:lyon" in lyon.tags and "target:paris" not in lyon.tags
    assert (lyon.get_task("archive").pool, lyon.get_task("archive").pool_slots) == ("retention_target_lyon", 5)
    assert (paris.get_task("purge").pool, paris.get_task("purge").pool_slots) == (
        "retention_target_paris",
        shipped.batch_workers,
    )
    assert bag.dags["subject_request_lyon"].get_task("handle_request").pool == "retention_target_lyon"
    answer_doc = bag.dags["reconsent_answer_paris"].doc_md or ""
    assert "POST /api/v2/dags/reconsent_answer_paris/dagRuns" in answer_doc


def test_a_mistake_in_retention_targets_fails_the_parse_of_every_dag_file_naming_it(monkeypatch):
    bag = _parsed(monkeypatch, "paris_nord=a.yaml")
    assert bag.dag_ids == []
    assert {Path(f).name for f in bag.import_errors} == {
        p.name for p in Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).glob("*.py")
    }
    assert all("target name 'paris_nord'" in error for error in bag.import_errors.values())

"""The session's DagBag is shared: what a test's run writes into a DAG's params must not reach
the next test (a flake: ``dry_run``, now ``mode``, read False after the PostgreSQL end-to-end tests)."""

from __future__ import annotations

from airflow.sdk.definitions.param import process_params

DAG_ID = "retention_prospection"


def test_a_run_in_this_process_writes_its_conf_into_the_dags_params(dagbag):
    """What ``dag.test(run_conf=...)`` does when it runs ``approve_deletions`` here (Airflow's
    process_params): that task has no params of its own, so the conf is written into the DAG's."""
    dag = dagbag.dags[DAG_ID]
    process_params(dag, dag.get_task("approve_deletions"), {"mode": "execute"}, suppress_exception=False)
    assert dag.params["mode"] == "execute"
    process_params(dag, dag.get_task("plan"), {"as_of": "2026-01-01"}, suppress_exception=False)
    assert dag.get_task("plan").params["as_of"] == "2026-01-01"  # a task with params: its own copies


def test_the_next_test_sees_the_params_as_parsed(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert (dag.params["mode"], dag.get_task("plan").params["as_of"]) == ("preview", None)

"""Airflow fixtures: the DagBag (the metadata database fixture is in the root conftest)."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(scope="session")
def parsed_dagbag():
    """The DAG folder, parsed once per session (use ``dagbag``)."""
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture
def dagbag(parsed_dagbag):
    """The session's DagBag, every Param value of its DAGs and tasks put back after the test.

    ``dag.test(run_conf=...)`` runs the tasks in this process, and Airflow's ``process_params``
    writes the run's conf into the DAG's own Param objects (``ParamsDict.update`` sets their
    value): without this, a test that ran ``retention_prospection`` with ``mode: execute`` left
    that default to every later test of the session."""
    params = [
        (params_dict.get_param(name), params_dict.get_param(name).value)
        for dag in parsed_dagbag.dags.values()
        for params_dict in (dag.params, *(task.params for task in dag.tasks))
        for name in params_dict
    ]
    yield parsed_dagbag
    for param, value in params:
        param.value = value


@pytest.fixture
def seeded_postgres(postgres_server, airflow_db, monkeypatch, tmp_path):
    """The demo CRM seeded on a fresh PostgreSQL database, as the ``retention_target`` connection,
    with the shipped schedule minus its deletion limit (see ``policy_without_deletion_limit``)."""
    from dag_helpers import AS_OF, PER_PHASE, SUBJECT_SECRET, policy_without_deletion_limit

    from include.demo.seed import seed_demo
    from include.retention.database.target import connect
    from scripts.throwaway_postgres import fresh_postgres_database

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("RETENTION_POLICY", str(policy_without_deletion_limit(tmp_path)))
    monkeypatch.setenv("AIRFLOW_VAR_RETENTION_SUBJECT_SECRET", SUBJECT_SECRET)  # prospection's post-run check
    url = fresh_postgres_database(postgres_server)
    target = connect(url)
    with target.engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION pgcrypto")  # as include/sql/least_privilege_roles.sql does
    seed_demo(target.engine, "crm", AS_OF, per_phase=PER_PHASE)
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_TARGET", url.replace("postgresql+psycopg://", "postgresql://"))
    yield target
    target.dispose()


@pytest.fixture
def api_client(airflow_db):
    """Airflow's REST API in-process, on the tests' metadata database (to answer approvals)."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    purge_cached_app()
    with TestClient(create_app("core")) as client:
        yield client
    purge_cached_app()

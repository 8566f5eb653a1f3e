"""Which runs change data: the dry-run default of every Airflow run type (issue 14).

The task runtime hands ``context["dag_run"].run_type`` as the task SDK's ``DagRunType`` enum,
whose ``str()`` is ``'DagRunType.SCHEDULED'``: comparing that with ``"scheduled"`` made every
nightly run a dry run. These tests use the real enum members, never hand-written strings
(``test_scheduled_run.py`` runs the real scheduler).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.api.datamodels._generated import DagRun as SdkDagRun
from airflow.sdk.api.datamodels._generated import DagRunType as SdkDagRunType
from airflow.utils.types import DagRunType

from include.retention_airflow.context import DRY_RUN_DEFAULTS, resolve_dry_run

EXECUTES = {DagRunType.SCHEDULED, DagRunType.ASSET_TRIGGERED}
BOTH_ENUMS = [*DagRunType, *SdkDagRunType]


def _context(run_type, dry_run=None) -> dict:
    return {"params": {"dry_run": dry_run}, "dag_run": SimpleNamespace(run_type=run_type)}


def _runtime_dag_run(run_type: str) -> SdkDagRun:
    """The ``dag_run`` a task receives: the Execution API's JSON validated into the SDK model."""
    now = datetime.now(UTC).isoformat()
    return SdkDagRun.model_validate(
        {
            "dag_id": "retention_prospection",
            "run_id": f"{run_type}__x",
            "logical_date": now,
            "data_interval_start": now,
            "data_interval_end": now,
            "run_after": now,
            "start_date": now,
            "end_date": None,
            "run_type": run_type,
            "state": "running",
            "consumed_asset_events": [],
            "partition_key": None,
        }
    )


def test_every_run_type_of_airflow_has_a_decided_default():
    """A run type added by a later Airflow fails here, until someone decides what it does."""
    assert set(DRY_RUN_DEFAULTS) == {t.value for t in DagRunType} == {t.value for t in SdkDagRunType}


@pytest.mark.parametrize("run_type", BOTH_ENUMS, ids=lambda t: f"{type(t).__module__.split('.')[1]}-{t.value}")
def test_a_scheduled_or_asset_triggered_run_executes_and_any_run_started_by_someone_is_a_dry_run(run_type):
    assert resolve_dry_run(_context(run_type)) is (run_type.value not in {t.value for t in EXECUTES})


def test_the_scheduled_run_the_task_runtime_hands_over_executes():
    dag_run = _runtime_dag_run("scheduled")
    assert isinstance(dag_run.run_type, SdkDagRunType)
    assert str(dag_run.run_type) != "scheduled"  # the trap of issue 14
    assert resolve_dry_run({"params": {"dry_run": None}, "dag_run": dag_run}) is False
    assert resolve_dry_run({"params": {"dry_run": None}, "dag_run": _runtime_dag_run("manual")}) is True


@pytest.mark.parametrize("run_type", [DagRunType.SCHEDULED, "scheduled", SdkDagRunType.SCHEDULED])
def test_the_enum_and_its_value_mean_the_same(run_type):
    assert resolve_dry_run(_context(run_type)) is False


@pytest.mark.parametrize("run_type", BOTH_ENUMS, ids=lambda t: f"{type(t).__module__.split('.')[1]}-{t.value}")
def test_an_explicit_dry_run_param_wins_over_the_run_type(run_type):
    assert resolve_dry_run(_context(run_type, dry_run=True)) is True
    assert resolve_dry_run(_context(run_type, dry_run=False)) is False


@pytest.mark.parametrize("run_type", ["DagRunType.SCHEDULED", "Scheduled", "nightly", None, 3])
def test_an_unknown_run_type_is_a_dry_run_and_is_logged(run_type, caplog):
    with caplog.at_level(logging.WARNING, logger="include.retention_airflow.context"):
        assert resolve_dry_run(_context(run_type)) is True
    assert f"Unknown run type {run_type!r}" in caplog.text


def test_a_context_without_a_dag_run_is_a_dry_run():
    assert resolve_dry_run({"params": {}}) is True


def test_the_trigger_form_and_the_dag_page_state_the_rule(dagbag):
    dag = dagbag.dags["retention_prospection"]
    described = dag.params.get_param("dry_run").description
    assert "scheduled run" in described and "executes" in described
    assert "trigger here, a backfill or a run triggered by another DAG is a dry run" in described
    assert "To change data by hand, set false" in described
    assert "#### Dry run or not" in dag.doc_md

"""Which runs change data: the mode a trigger sends, else the default of every Airflow run type (issues 14, 20).

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

from include.retention.errors import RetentionError
from include.retention_airflow.context import DRY_RUN_DEFAULTS, resolve_dry_run

EXECUTES = {DagRunType.SCHEDULED, DagRunType.ASSET_TRIGGERED}
BOTH_ENUMS = [*DagRunType, *SdkDagRunType]


def _context(run_type, conf=None) -> dict:
    """A task's context: ``params.mode`` holds the form's default, as in every real run - the
    resolution must not read it (a scheduled run has it too, and executes)."""
    return {"params": {"mode": "preview"}, "dag_run": SimpleNamespace(run_type=run_type, conf=conf or {})}


def _runtime_dag_run(run_type: str, conf: dict | None = None) -> SdkDagRun:
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
            "conf": conf or {},
        }
    )


def test_every_run_type_of_airflow_has_a_decided_default():
    """A run type added by a later Airflow fails here, until someone decides what it does."""
    assert set(DRY_RUN_DEFAULTS) == {t.value for t in DagRunType} == {t.value for t in SdkDagRunType}


@pytest.mark.parametrize("run_type", BOTH_ENUMS, ids=lambda t: f"{type(t).__module__.split('.')[1]}-{t.value}")
def test_without_a_mode_a_scheduled_or_asset_triggered_run_executes_and_any_run_started_by_someone_previews(run_type):
    assert resolve_dry_run(_context(run_type)) is (run_type.value not in {t.value for t in EXECUTES})


def test_the_scheduled_run_the_task_runtime_hands_over_executes():
    dag_run = _runtime_dag_run("scheduled")
    assert isinstance(dag_run.run_type, SdkDagRunType)
    assert str(dag_run.run_type) != "scheduled"  # the trap of issue 14
    assert resolve_dry_run({"params": {"mode": "preview"}, "dag_run": dag_run}) is False
    assert resolve_dry_run({"params": {"mode": "preview"}, "dag_run": _runtime_dag_run("manual")}) is True


@pytest.mark.parametrize("run_type", [DagRunType.SCHEDULED, "scheduled", SdkDagRunType.SCHEDULED])
def test_the_enum_and_its_value_mean_the_same(run_type):
    assert resolve_dry_run(_context(run_type)) is False


@pytest.mark.parametrize("run_type", BOTH_ENUMS, ids=lambda t: f"{type(t).__module__.split('.')[1]}-{t.value}")
def test_the_mode_sent_in_the_conf_wins_over_the_run_type(run_type):
    assert resolve_dry_run(_context(run_type, {"mode": "preview"})) is True
    assert resolve_dry_run(_context(run_type, {"mode": "execute"})) is False


def _form_conf(dag, **changed) -> dict:
    """The conf Airflow 3.3's trigger form posts (``POST /api/v2/dags/{id}/dagRuns``): every
    param's value as the DAG details give it, then what the person changed (the UI's params
    store, ``setParamsDict``, serialises every field of the form into the conf)."""
    return {**dag.params.dump(), **changed}


@pytest.mark.parametrize("dag_id", ["retention_prospection", "retention_reconsent"])
def test_a_run_started_from_the_form_with_its_defaults_previews_and_execute_executes(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    form = _form_conf(dag)
    assert form["mode"] == "preview"
    assert resolve_dry_run({"params": form, "dag_run": _runtime_dag_run("manual", form)}) is True
    chosen = _form_conf(dag, mode="execute")
    assert resolve_dry_run({"params": chosen, "dag_run": _runtime_dag_run("manual", chosen)}) is False


def test_the_old_dry_run_key_fails_the_run_saying_what_replaced_it():
    for conf in ({"dry_run": False}, {"dry_run": True}, {"dry_run": None, "mode": "execute"}):
        with pytest.raises(RetentionError, match=r"'dry_run'.*became 'mode': preview .* or execute"):
            resolve_dry_run(_context(DagRunType.MANUAL, conf))


@pytest.mark.parametrize("mode", ["Execute", "yes", True, ""])
def test_a_mode_that_is_not_preview_or_execute_fails_naming_it(mode):
    with pytest.raises(RetentionError, match=f"mode {mode!r} is not one of preview, execute"):
        resolve_dry_run(_context(DagRunType.SCHEDULED, {"mode": mode}))


@pytest.mark.parametrize("run_type", ["DagRunType.SCHEDULED", "Scheduled", "nightly", None, 3])
def test_an_unknown_run_type_is_a_preview_and_is_logged(run_type, caplog):
    with caplog.at_level(logging.WARNING, logger="include.retention_airflow.context"):
        assert resolve_dry_run(_context(run_type)) is True
    assert f"Unknown run type {run_type!r}" in caplog.text


def test_a_context_without_a_dag_run_is_a_preview():
    assert resolve_dry_run({"params": {}}) is True


def test_the_trigger_form_says_preview_or_execute_in_the_policys_language(dagbag):
    dag = dagbag.dags["retention_prospection"]
    mode = dag.params.get_param("mode")
    assert mode.schema["enum"] == ["preview", "execute"]
    assert mode.schema["values_display"] == {"preview": "Aperçu (rien ne change)", "execute": "Exécuter"}
    assert mode.schema["title"] == "Mode"
    assert "exécute" in mode.description and "quoi que dise ce formulaire" in mode.description
    assert "#### Aperçu ou exécution" in dag.doc_md

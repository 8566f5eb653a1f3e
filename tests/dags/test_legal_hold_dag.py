"""The legal_hold DAG through Airflow on PostgreSQL: a hold added from the form keeps a due
prospect out of the nightly run, is counted on its certificate, and is lifted - each step audited."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dag_helpers import AS_OF
from sqlalchemy import MetaData, Table, select

from include.retention.database.store import audit_table, table_exists
from include.retention.records.audit import events

ROLES_SCRIPT = Path(__file__).resolve().parents[2] / "include" / "sql" / "least_privilege_roles.sql"
HOLD = {
    "action": "add",
    "reference": "RG-2026-0042",
    "scope": "rows",
    "table": "prospects",
    "reason": "Contentieux prud'homal",
    "requested_by": "juridique@example.fr",
}


@pytest.fixture(scope="module")
def bag():
    """A DagBag of this module's own: ``dag.test(run_conf=...)`` leaves its params on the DAG."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def _prospects(target, schema):
    t = Table("prospects", MetaData(), schema=schema, autoload_with=target.engine)
    with target.read() as conn:
        return set(conn.execute(select(t.c.prospect_id)).scalars())


def _run(bag, dag_id, conf):
    return bag.dags[dag_id].test(logical_date=datetime.now(UTC), run_conf=conf)


def _due_prospect(target):
    """The oldest prospect: due for the archive, and past its whole retention."""
    t = Table("prospects", MetaData(), schema="crm", autoload_with=target.engine)
    with target.read() as conn:
        return conn.execute(
            select(t.c.prospect_id)
            .where(t.c.last_inbound_contact_at.is_not(None))
            .order_by(t.c.last_inbound_contact_at)
            .limit(1)
        ).scalar_one()


def _as_pipeline_role(target, monkeypatch) -> None:
    """Apply the shipped roles script as the administrator, and connect Airflow as the pipeline."""
    from sqlalchemy.engine import make_url

    from include.retention.database.roles import PIPELINE_ROLE

    raw = target.engine.raw_connection()
    try:
        raw.cursor().execute(ROLES_SCRIPT.read_text() + f"ALTER ROLE {PIPELINE_ROLE} LOGIN;")
        raw.commit()
    finally:
        raw.close()
    url = make_url(target.engine.url).set(drivername="postgresql", username=PIPELINE_ROLE)
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_TARGET", url.render_as_string(hide_password=False))


@pytest.mark.parametrize("role", ["administrator", "least-privilege pipeline"])
def test_a_hold_from_the_form_keeps_a_due_prospect_through_the_nightly_run_until_lifted(
    bag, seeded_postgres, monkeypatch, role
):
    """Also connected as ``retention_pipeline`` under the shipped roles script: the archive
    tables come from the administrator's function, and the lift goes through its own."""
    target = seeded_postgres
    if role != "administrator":
        _as_pipeline_role(target, monkeypatch)
    held = _due_prospect(target)
    assert _run(bag, "legal_hold", {**HOLD, "keys": [held]}).state == "success"

    run = _run(bag, "retention_prospection", {"as_of": AS_OF.isoformat(), "mode": "execute"})
    assert run.state == "success"
    assert held in _prospects(target, "crm") and held not in _prospects(target, "archive")
    certificate = json.loads(next(tmp for tmp in _certificates(run.run_id)).read_text())
    assert next(t for t in certificate["tables"] if t["table"] == "prospects")["legal_hold"] == 1

    assert (
        _run(
            bag,
            "legal_hold",
            {
                "action": "lift",
                "reference": HOLD["reference"],
                "lift_reason": "Affaire close",
                "requested_by": "juridique@example.fr",
            },
        ).state
        == "success"
    )
    again = _run(bag, "retention_prospection", {"as_of": AS_OF.isoformat(), "mode": "execute"})
    assert again.state == "success" and held not in _prospects(target, "crm")
    with target.read() as conn:
        logged = events(conn, audit_table("archive", "retention_audit"), action="legal_hold")
    assert [e["details"]["outcome"] for e in logged] == ["added", "lifted"]
    assert all("prud'homal" not in str(e) and "juridique" not in str(e) for e in logged)


def _certificates(run_id):
    from include.retention.reports.certificate import paths

    json_path, _ = paths("retention_prospection", run_id)
    return [json_path]


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"keys": [999999]}, "name no row"),
        ({"scope": "category", "category": None, "table": None}, "category None is not in the policy"),
        ({"scope": "subject", "table": None, "email": "not an address"}, "e-mail address"),
    ],
)
def test_a_bad_hold_fails_the_task_naming_the_problem_and_records_nothing(bag, seeded_postgres, capfd, conf, message):
    run = _run(bag, "legal_hold", {**HOLD, "keys": [1], **conf})
    assert run.state == "failed"
    assert message in capfd.readouterr().out
    assert _run(bag, "legal_hold", {"action": "list"}).state == "success"
    trail = audit_table("archive", "retention_audit")
    with seeded_postgres.read() as conn:
        assert not table_exists(conn, trail) or events(conn, trail, action="legal_hold") == []


@pytest.mark.parametrize("reference", ["RG-2026-0042\n", "RG-2026-0042\nforged line"])
def test_a_reference_with_a_newline_is_refused_by_the_form(bag, reference):
    """JSON-schema patterns run on Python's re, whose "$" also matches before a final newline."""
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    declared = bag.dags["legal_hold"].params.get_param("reference")
    form = Param(None, **declared.schema)  # the form's own copy: a resolved value stays on the DAG's
    assert form.resolve("RG-2026-0042") == "RG-2026-0042"
    with pytest.raises(ParamValidationError, match="does not match"):
        form.resolve(reference)

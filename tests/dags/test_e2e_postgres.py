"""A whole DAG run through Airflow against a real PostgreSQL, on the seeded demo CRM.

The expected rows are worked out independently of the engine: each prospect's last
inbound contact is turned into a Paris calendar day in Python and aged with
``Period.add_to``; the edge-case prospects are also checked by their literal ids.

The shipped policy asks prospects for re-consent 30 days before their active period ends,
and a due prospect with an address waits for the ask until 30 days past that end. The
prospect on the boundary was asked 30 days ago (its ask is written in the register here), so
it leaves today; other prospects whose period ended within the window wait.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dag_helpers import AS_OF, NOTICE, record_prospect_asked
from sqlalchemy import MetaData, Table, select, text, update
from table_checksums import checksum

from include.demo.seed import PARIS
from include.retention.database.store import audit_table
from include.retention.dates.periods import Period
from include.retention.records.audit import GENESIS, event_hash, events, verify_chain
from include.retention.reports import certificate
from include.retention.rights.export import export_path

# Seed order (include/demo/seed.py): 3 phases x PER_PHASE, 2 missing dates, then the edges.
MISSING = [19, 20]
LEAP_2020, LEAP_2024, ON_BOUNDARY, DAY_AFTER_BOUNDARY = 21, 22, 23, 24


def _rows(target, schema, table, *columns):
    t = Table(table, MetaData(), schema=schema, autoload_with=target.engine)
    with target.read() as conn:
        return conn.execute(select(*(t.c[c] for c in columns)).order_by(t.c[columns[0]])).all()


def _expected_phases(target) -> dict[str, set[int]]:
    """Age each prospect in Python: the oracle the SQL engine is checked against. ``waiting``
    (also active): due, with an address, not asked, less than 30 days past the period's end."""
    phases: dict[str, set[int]] = {"active": set(), "waiting": set(), "archive": set(), "destroyed": set()}
    rows = _rows(target, "crm", "prospects", "prospect_id", "last_inbound_contact_at", "email")
    for prospect_id, contact, email in rows:
        if contact is None:
            phases["active"].add(prospect_id)
            continue
        end_active = Period(3).add_to(contact.astimezone(PARIS).date())
        if end_active > AS_OF:
            phases["active"].add(prospect_id)
        elif end_active + NOTICE > AS_OF and (email or "").strip(" ") and prospect_id != ON_BOUNDARY:
            phases["active"].add(prospect_id)
            phases["waiting"].add(prospect_id)
        elif Period(5).add_to(end_active) > AS_OF:
            phases["archive"].add(prospect_id)
        else:
            phases["destroyed"].add(prospect_id)
    return phases


def _run(dagbag, **conf):
    dag = dagbag.dags["retention_prospection"]
    return dag.test(logical_date=datetime.now(UTC), run_conf={"as_of": AS_OF.isoformat(), "mode": "execute", **conf})


def test_prospection_dag_moves_exactly_the_due_prospects_on_postgresql(dagbag, seeded_postgres):
    target = seeded_postgres
    record_prospect_asked(target, ON_BOUNDARY, AS_OF)
    expected = _expected_phases(target)
    owners = {iid: pid for iid, pid in _rows(target, "crm", "prospect_interactions", "interaction_id", "prospect_id")}
    assert all(expected[phase] for phase in ("active", "archive", "destroyed")), "the seed must fill every phase"

    dag_run = _run(dagbag)

    assert dag_run.state == "success"
    assert {pid for (pid,) in _rows(target, "crm", "prospects", "prospect_id")} == expected["active"]
    assert {pid for (pid,) in _rows(target, "archive", "prospects", "prospect_id")} == expected["archive"]
    archived_children = {iid for (iid,) in _rows(target, "archive", "prospect_interactions", "interaction_id")}
    assert archived_children == {iid for iid, pid in owners.items() if pid in expected["archive"]}
    active_children = {iid for (iid,) in _rows(target, "crm", "prospect_interactions", "interaction_id")}
    assert active_children == {iid for iid, pid in owners.items() if pid in expected["active"]}

    assert set(MISSING) | {LEAP_2024, DAY_AFTER_BOUNDARY} <= expected["active"]
    assert {LEAP_2020, ON_BOUNDARY} <= expected["archive"]
    until = dict(_rows(target, "archive", "prospects", "prospect_id", "retention_until"))
    assert until[LEAP_2020] == date(2028, 2, 28)
    assert until[ON_BOUNDARY] == date(2031, 11, 26)


def test_prospection_dag_audits_the_run_and_a_second_run_changes_nothing(dagbag, seeded_postgres):
    target = seeded_postgres
    record_prospect_asked(target, ON_BOUNDARY, AS_OF)
    expected = _expected_phases(target)
    first = _run(dagbag)
    second = _run(dagbag)
    assert (first.state, second.state) == ("success", "success")
    with target.read() as conn:
        summaries = events(conn, audit_table("archive", "retention_audit"), action="run_summary")
    assert [s["run_id"] for s in summaries] == [first.run_id, second.run_id]
    assert summaries[0]["details"]["archived"] == len(expected["archive"]) + len(expected["destroyed"])
    assert summaries[0]["details"]["deleted"] == len(expected["destroyed"])
    assert summaries[0]["details"]["missing_start"] == len(MISSING)
    assert summaries[0]["details"]["waiting_for_reconsent"] == len(expected["waiting"])
    assert (summaries[1]["details"]["archived"], summaries[1]["details"]["deleted"]) == (0, 0)
    assert {pid for (pid,) in _rows(target, "crm", "prospects", "prospect_id")} == expected["active"]
    json_path, html_path = certificate.paths("retention_prospection", first.run_id)
    issued = json.loads(json_path.read_text())
    prospects = next(t for t in issued["tables"] if t["table"] == "prospects")
    assert (prospects["archived"], prospects["deleted"], prospects["quarantined"]) == (
        len(expected["archive"]) + len(expected["destroyed"]),
        len(expected["destroyed"]),
        len(MISSING),
    )
    assert issued["completed"] is True and issued["last_hash"] == summaries[0]["event_hash"]
    assert html_path.exists()


def test_a_preview_through_airflow_changes_nothing(dagbag, seeded_postgres):
    target = seeded_postgres
    before = _rows(target, "crm", "prospects", "prospect_id")
    dag_run = _run(dagbag, mode="preview")
    assert dag_run.state == "success"
    assert _rows(target, "crm", "prospects", "prospect_id") == before
    with target.read() as conn:
        logged = events(conn, audit_table("archive", "retention_audit"))
    assert logged and all(e["dry_run"] for e in logged)
    assert {e["action"] for e in logged} == {"validation", "plan", "quality_finding", "run_summary"}


def test_a_failing_preflight_check_stops_the_dag_before_any_row_moves(dagbag, seeded_postgres):
    target = seeded_postgres
    prospects = Table("prospects", MetaData(), schema="crm", autoload_with=target.engine)
    with target.engine.begin() as conn:
        conn.execute(
            update(prospects)
            .where(prospects.c.prospect_id == 1)
            .values(last_inbound_contact_at=datetime(2031, 1, 1, tzinfo=PARIS))
        )
    before = checksum(target)
    dag_run = _run(dagbag)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "failed"
    assert states["preflight_checks"] == "failed"
    assert states["archive"] != "success" and states["purge"] != "success"
    assert checksum(target) == before
    with target.read() as conn:
        failed = [
            e
            for e in events(conn, audit_table("archive", "retention_audit"), action="validation")
            if not e["details"]["success"]
        ]
    assert [(e["table_name"], e["details"]["expectation"], e["row_count"]) for e in failed] == [
        ("prospects", "no_future_last_inbound_contact_at", 1)
    ]
    issued = json.loads(certificate.paths("retention_prospection", dag_run.run_id)[0].read_text())
    assert issued["completed"] is False


@pytest.mark.parametrize(
    "conf, message",
    [
        pytest.param({"batch_size": 0}, "less than the minimum", id="batch_size_zero"),
        pytest.param({"as_of": "26/11/2026"}, "is not a 'date'", id="as_of_not_iso"),
        pytest.param({"mode": "yes"}, "'yes' is not one of", id="mode_not_preview_or_execute"),
    ],
)
def test_a_bad_param_is_refused_before_the_run(dagbag, airflow_db, conf, message):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match=message):
        dagbag.dags["retention_prospection"].test(logical_date=datetime.now(UTC), run_conf=conf)


def test_the_audit_verification_dag_passes_then_names_a_tampered_event(dagbag, seeded_postgres):
    target = seeded_postgres
    assert _run(dagbag).state == "success"
    verify = dagbag.dags["retention_audit_verify"]
    assert verify.test(logical_date=datetime.now(UTC)).state == "success"
    audit = audit_table("archive", "retention_audit")
    with target.engine.begin() as conn:
        conn.execute(text('DROP TRIGGER "retention_audit_append_only" ON "archive"."retention_audit"'))
        conn.execute(update(audit).where(audit.c.event_id == 5).values(row_count=12345))
    dag_run = verify.test(logical_date=datetime.now(UTC))
    assert dag_run.state == "failed"


def test_the_audit_verification_dag_catches_a_log_rewritten_with_valid_hashes(dagbag, seeded_postgres):
    target = seeded_postgres
    assert _run(dagbag).state == "success"
    audit = audit_table("archive", "retention_audit")
    with target.engine.begin() as conn:  # alter event 5 and re-hash the whole chain, as an insider could
        conn.execute(text('DROP TRIGGER "retention_audit_append_only" ON "archive"."retention_audit"'))
        rows = [dict(r._mapping) for r in conn.execute(select(audit).order_by(audit.c.event_id))]
        conn.execute(audit.delete())
        previous = GENESIS
        for row in rows:
            row.update({"row_count": 12345} if row["event_id"] == 5 else {}, prev_hash=previous)
            row["event_hash"] = previous = event_hash(row)
            conn.execute(audit.insert().values(**row))
    with target.read() as conn:
        assert verify_chain(conn, audit).intact
    dag_run = dagbag.dags["retention_audit_verify"].test(logical_date=datetime.now(UTC))
    assert dag_run.state == "failed"


def test_the_dpo_report_dag_writes_the_report_for_a_chosen_period_in_english(dagbag, seeded_postgres, tmp_path):
    assert _run(dagbag).state == "success"
    report_dag = dagbag.dags["retention_dpo_report"]
    conf = {"period_start": "2026-11-01", "period_end": "2026-11-30", "language": "en"}
    dag_run = report_dag.test(logical_date=datetime.now(UTC), run_conf=conf)
    assert dag_run.state == "success"
    page = (tmp_path / "reports" / "dpo" / "retention-dpo-report_2026-11-01_2026-11-30.en.html").read_text()
    assert "Compliance today" in page and "Hash chain intact" in page and "<svg" in page


def test_the_monthly_dpo_report_covers_the_previous_month_in_french(seeded_postgres, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    # A DAG of its own: dag.test(run_conf=...) in another test leaves its params on the shared DagBag's DAG.
    bag = DagBag(dag_folder=str(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "retention_dpo_report.py"))
    dag_run = bag.dags["retention_dpo_report"].test(logical_date=datetime(2026, 12, 1, 5, tzinfo=UTC))
    assert dag_run.state == "success"
    assert (tmp_path / "reports" / "dpo" / "retention-dpo-report_2026-11-01_2026-11-30.fr.html").exists()


def test_a_dpo_report_with_an_unknown_language_is_refused(dagbag, airflow_db):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="'de' is not one of"):
        dagbag.dags["retention_dpo_report"].test(logical_date=datetime.now(UTC), run_conf={"language": "de"})


def _request(dagbag, **conf):
    base = {"request_type": "erasure", "reference": "DDP-E2E-1", "received": "2026-11-20", "identity": "verified"}
    return dagbag.dags["subject_request"].test(logical_date=datetime.now(UTC), run_conf={**base, **conf})


def _email_of_first(target, table, column):
    (email,) = _rows(target, "crm", table, column)[0]
    return email


def test_a_verified_erasure_request_through_airflow_erases_and_records_it(dagbag, seeded_postgres):
    target = seeded_postgres
    email = _email_of_first(target, "prospects", "email")
    before = len(_rows(target, "crm", "prospects", "prospect_id"))
    dag_run = _request(dagbag, email=f"  {email.upper()} ")
    assert dag_run.state == "success"
    assert len(_rows(target, "crm", "prospects", "prospect_id")) == before - 1
    register = Table("rights_requests", MetaData(), schema="crm", autoload_with=target.engine)
    with target.read() as conn:
        row = conn.execute(select(register).where(register.c.reference == "DDP-E2E-1")).one()._mapping
        logged = " ".join(str(e) for e in events(conn, audit_table("archive", "retention_audit")))
    assert row["status"] == "completed" and row["due_at"] == date(2026, 12, 20)
    assert email.lower() not in logged.lower()


def test_a_malformed_identifier_fails_the_request_before_anything_is_recorded(dagbag, seeded_postgres):
    before = checksum(seeded_postgres)
    dag_run = _request(dagbag, email="not an address")
    assert dag_run.state == "failed"
    assert checksum(seeded_postgres) == before


def test_an_overdue_request_fails_the_daily_deadline_check(dagbag, seeded_postgres):
    deadlines = dagbag.dags["retention_rights_deadlines"]
    assert deadlines.test(logical_date=datetime(2026, 11, 26, 6, tzinfo=UTC)).state == "success"
    pending = _request(dagbag, reference="DDP-LATE", received="2026-09-01", identity="pending", email="late@example.fr")
    # recorded, waiting for the identity check: the task ends skipped, which the run shows
    assert pending.state == "success"
    assert {ti.task_id: ti.state for ti in pending.get_task_instances()} == {"handle_request": "skipped"}
    assert deadlines.test(logical_date=datetime(2026, 11, 27, 6, tzinfo=UTC)).state == "failed"


def test_a_rectification_and_an_access_request_through_airflow(dagbag, seeded_postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_EXPORTS_DIR", str(tmp_path / "exports"))
    target = seeded_postgres
    email = _email_of_first(target, "prospects", "email")
    changed = _request(
        dagbag,
        request_type="rectification",
        reference="DDP-RECT",
        email=email,
        changes={"prospects": {"company": "Nouvelle Société"}},
    )
    assert changed.state == "success"
    prospects = Table("prospects", MetaData(), schema="crm", autoload_with=target.engine)
    with target.read() as conn:
        assert (
            conn.execute(select(prospects.c.company).where(prospects.c.email == email)).scalar_one()
            == "Nouvelle Société"
        )
    assert _request(dagbag, request_type="access", reference="DDP-ACCESS", email=email).state == "success"
    assert export_path("DDP-ACCESS", "access").exists()

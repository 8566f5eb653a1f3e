"""The register of data-subject requests, on SQLite and PostgreSQL: every request is recorded with
its deadline, a pending identity check stops there, a verified erasure is carried out and closed
in one transaction."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select, text

from crm_helpers import AS_OF, EMAIL, KEY, VISITOR, crm_table
from include.retention import audit
from include.retention.audit import RunContext
from include.retention.errors import RetentionError
from include.retention.policy import load_policy
from include.retention.requests import (
    RequestRecord,
    due_date,
    ensure_register,
    handle,
    open_deadlines,
)
from include.retention.subjects import Subject, subject_hash
from table_checksums import checksum

RECEIVED = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


def _handle(target, reference="DDP-2026-0900", identity_verified=True, request_type="erasure", **identifiers):
    request = RequestRecord(reference, request_type, RECEIVED.date(), identity_verified, requester_email=EMAIL)
    ctx = RunContext(f"manual__{reference}", "subject_request", AS_OF, "test")
    return handle(target, load_policy(), KEY, request, Subject.of(identifiers or {"email": EMAIL}), ctx, RECEIVED)


def _register_row(target, reference):
    register = crm_table(target, "rights_requests")
    with target.read() as conn:
        return conn.execute(select(register).where(register.c.reference == reference)).one()._mapping


@pytest.mark.parametrize("received, extended, due", [
    (date(2026, 11, 20), False, date(2026, 12, 20)),
    (date(2026, 1, 31), False, date(2026, 2, 28)),   # calendar month: the last day of February
    (date(2028, 1, 31), False, date(2028, 2, 29)),
    (date(2026, 1, 31), True, date(2026, 4, 30)),    # extended: three months from receipt
])
def test_a_request_is_due_one_month_after_receipt_three_when_extended(received, extended, due):
    assert due_date(received, extended=extended) == due


def test_a_verified_erasure_is_carried_out_and_closed_with_its_outcome_per_table(crm):
    handled = _handle(crm, email=EMAIL, visitor_id=VISITOR)
    row = _register_row(crm, "DDP-2026-0900")
    assert (handled.status, row["status"], row["due_at"]) == ("completed", "completed", date(2026, 12, 20))
    assert row["closed_at"] is not None and row["identity_verified"] is True
    outcome = json.loads(row["outcome"])
    tables = {(t["table"], t["archive"]): t for t in outcome["tables"]}
    assert tables[("prospects", False)]["erased"] == 1
    assert tables[("subscriptions", True)]["kept"] == 1
    assert tables[("subscriptions", True)]["kept_because"].startswith("legal obligation")


def test_a_request_whose_identity_is_not_verified_is_recorded_and_stops(crm):
    before = {k: v for k, v in checksum(crm).items() if "rights_requests" not in k}
    handled = _handle(crm, identity_verified=False)
    assert handled.status == "pending_identity"
    assert _register_row(crm, "DDP-2026-0900")["status"] == "pending_identity"
    assert {k: v for k, v in checksum(crm).items() if "rights_requests" not in k} == before  # nothing erased
    with crm.read() as conn:
        (event,) = audit.events(conn, audit.audit_table("archive", "retention_audit"), action="rights_request")
    assert event["subject_hash"] == subject_hash(KEY, "email", EMAIL)
    assert event["details"] == {"request_type": "erasure", "outcome": "pending_identity", "due": "2026-12-20"}


def test_the_same_reference_is_never_handled_twice(crm):
    _handle(crm)
    with pytest.raises(RetentionError, match="DDP-2026-0900.*already in the register"):
        _handle(crm)


def test_an_erasure_that_fails_leaves_the_request_recorded_and_open_and_the_data_whole(crm):
    with crm.engine.begin() as conn:
        if crm.is_sqlite:
            conn.execute(text("CREATE TRIGGER boom BEFORE DELETE ON suppliers BEGIN SELECT RAISE(ABORT, 'boom'); END"))
        else:
            conn.execute(text("CREATE FUNCTION crm.boom() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'boom'; END $$"))
            conn.execute(text("CREATE TRIGGER boom BEFORE DELETE ON crm.suppliers FOR EACH ROW EXECUTE FUNCTION crm.boom()"))
    before = {k: v for k, v in checksum(crm).items() if "rights_requests" not in k}
    with pytest.raises(Exception, match="boom"):
        _handle(crm)
    assert {k: v for k, v in checksum(crm).items() if "rights_requests" not in k} == before
    row = _register_row(crm, "DDP-2026-0900")
    assert (row["status"], row["closed_at"]) == ("in_progress", None)  # still open: its deadline still runs


def test_a_request_type_this_version_does_not_carry_out_is_recorded_and_refused_clearly(crm):
    with pytest.raises(RetentionError, match="'access' is not handled by this version.*recorded"):
        _handle(crm, request_type="access")
    assert _register_row(crm, "DDP-2026-0900")["status"] == "in_progress"


def test_an_unknown_request_type_is_refused_before_anything_is_recorded():
    with pytest.raises(RetentionError, match="request type 'forget-me'"):
        RequestRecord("DDP-1", "forget-me", date(2026, 11, 20), True)


def test_open_requests_overdue_or_due_within_7_days_are_listed_most_urgent_first(crm):
    _handle(crm, reference="DDP-PENDING", identity_verified=False)  # due 2026-12-20, open
    register = ensure_register(crm, load_policy())
    with crm.read() as conn:
        on_dec_14 = open_deadlines(conn, register, date(2026, 12, 14))
        on_dec_21 = open_deadlines(conn, register, date(2026, 12, 21))
        on_dec_1 = open_deadlines(conn, register, date(2026, 12, 1))
    assert [(d.reference, d.days_left) for d in on_dec_14 if d.reference == "DDP-PENDING"] == [("DDP-PENDING", 6)]
    assert [(d.reference, d.days_left) for d in on_dec_21 if d.reference == "DDP-PENDING"] == [("DDP-PENDING", -1)]
    assert "DDP-PENDING" not in [d.reference for d in on_dec_1]
    assert [d.due for d in on_dec_21] == sorted(d.due for d in on_dec_21)


def test_a_register_without_the_projects_columns_is_refused_naming_them(target):
    with target.engine.begin() as conn:
        if not target.is_sqlite:
            conn.execute(text("CREATE SCHEMA crm"))
        conn.execute(text(f"CREATE TABLE {'' if target.is_sqlite else 'crm.'}rights_requests "
                          "(request_id INTEGER PRIMARY KEY, reference VARCHAR(30))"))
    with pytest.raises(RetentionError, match="lacks column.*request_type"):
        ensure_register(target, load_policy())


def test_the_dpo_report_lists_open_requests_with_their_deadlines(crm):
    from include.retention import dpo_report

    _handle(crm, reference="DDP-PENDING", identity_verified=False)
    report = dpo_report.build(crm, load_policy(), date(2026, 12, 1), date(2026, 12, 31), date(2026, 12, 21))
    assert ("DDP-PENDING", date(2026, 12, 20), -1) in [(d.reference, d.due, d.days_left) for d in report.open_requests]
    page = dpo_report.render(report, "en")
    assert "DDP-PENDING" in page and "OVERDUE (-1)" in page

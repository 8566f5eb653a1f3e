"""A request recorded while its identity check was pending, on SQLite and PostgreSQL: triggered
again with the same reference, type, receipt date and person and the identity verified - as the
skip message says - it is carried out and closed, its deadline counted from receipt; about
another person it is refused naming the reference; triggered again still pending, it stays
pending, recorded once."""

from __future__ import annotations

from datetime import date

import pytest
from crm_helpers import EMAIL, PHONE, VISITOR, crm_table
from sqlalchemy import func, select
from test_requests import _handle, _register_row

from include.retention.database import store
from include.retention.errors import RetentionError
from include.retention.records import audit
from include.retention.rights.requests import open_deadlines

REFERENCE = "DDP-2026-0900"
TRAIL = store.audit_table("archive", "retention_audit")


def _rows_about(target, email):
    prospects = crm_table(target, "prospects")
    with target.read() as conn:
        return conn.execute(select(func.count()).select_from(prospects).where(prospects.c.email == email)).scalar()


def _overdue_on(target, day):
    with target.read() as conn:
        return [d.reference for d in open_deadlines(conn, crm_table(target, "rights_requests"), day) if d.days_left < 0]


def _request_events(target):
    with target.read() as conn:
        return audit.events(conn, TRAIL, action="rights_request")


def test_a_pending_erasure_triggered_again_verified_is_carried_out_and_its_deadline_closed(crm):
    pending = _handle(crm, identity_verified=False, email=EMAIL, visitor_id=VISITOR)
    assert _rows_about(crm, EMAIL) == 1
    assert REFERENCE in _overdue_on(crm, date(2027, 1, 5))  # would fail rights_deadlines every morning

    verified = _handle(crm, identity_verified=True, email=EMAIL, visitor_id=VISITOR)

    assert (verified.request_id, verified.status) == (pending.request_id, "completed")
    assert _rows_about(crm, EMAIL) == 0  # erased
    row = _register_row(crm, REFERENCE)
    assert (row["status"], row["identity_verified"], row["due_at"]) == ("completed", True, date(2026, 12, 20))
    assert row["closed_at"] is not None
    assert REFERENCE not in _overdue_on(crm, date(2027, 1, 5))
    received = sorted(
        (e["details"]["outcome"], e["details"].get("identity_verified", False))
        for e in _request_events(crm)
        if e["details"].get("request_id") == pending.request_id and e["details"]["outcome"] != "completed"
    )  # received pending, then its identity verified: one event per identifier each
    assert received == [("in_progress", True)] * 2 + [("pending_identity", False)] * 2


def test_a_pending_request_triggered_again_about_another_person_is_refused_naming_only_the_reference(crm):
    _handle(crm, identity_verified=False, email=EMAIL)
    with pytest.raises(RetentionError, match=f"{REFERENCE}.*not taken up again") as refused:
        _handle(crm, identity_verified=True, phone=PHONE)
    assert PHONE not in str(refused.value) and EMAIL not in str(refused.value)
    assert _register_row(crm, REFERENCE)["status"] == "pending_identity"
    assert _rows_about(crm, EMAIL) == 1


def test_a_pending_request_triggered_again_as_another_type_is_refused(crm):
    _handle(crm, identity_verified=False)
    with pytest.raises(RetentionError, match=f"{REFERENCE}.*same type and receipt date"):
        _handle(crm, identity_verified=True, request_type="access")
    assert _register_row(crm, REFERENCE)["status"] == "pending_identity"


def test_a_pending_request_triggered_again_still_pending_stays_pending_and_recorded_once(crm):
    first = _handle(crm, identity_verified=False)
    again = _handle(crm, identity_verified=False)
    assert (again.request_id, again.status) == (first.request_id, "pending_identity")
    register = crm_table(crm, "rights_requests")
    with crm.read() as conn:
        assert conn.execute(select(func.count()).where(register.c.reference == REFERENCE)).scalar() == 1
    mine = [e for e in _request_events(crm) if e["details"].get("request_id") == first.request_id]
    assert len(mine) == 1  # audited as received once
    assert _handle(crm, identity_verified=True).status == "completed"

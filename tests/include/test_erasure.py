"""Erasure on request, on the demo CRM, on SQLite and PostgreSQL: the person's rows go in every
category where nothing keeps them, legal obligations keep theirs, and a failure leaves nothing
half-erased."""

from __future__ import annotations

import pytest
from crm_helpers import AS_OF, EMAIL, EMAIL_COLUMNS, KEY, PHONE, VISITOR, make_supplier_deletes_fail
from crm_helpers import crm_table as _table
from sqlalchemy import select, update
from table_checksums import checksum

from include.retention.database import store
from include.retention.database.identity import Subject, normalised_sql, subject_hash
from include.retention.errors import RetentionError
from include.retention.policy.load import load_policy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.rights.erasure import erase

CTX = RunContext("manual__erasure-1", "subject_request", AS_OF, "test")


def _erase(target, **identifiers):
    return erase(target, load_policy(), Subject.of(identifiers), KEY, CTX)


def _outcomes(result):
    return {(t.table, t.archive): (t.found, t.erased) for t in result.tables}


def _left(target, name, column, archive=False):
    table = _table(target, name, archive)
    with target.read() as conn:
        return conn.execute(
            select(table.c[column]).where(normalised_sql("email", table.c[column]) == EMAIL.lower())
        ).all()


def test_erasure_deletes_the_person_everywhere_except_where_a_legal_obligation_keeps_it(crm):
    result = _erase(crm, email=EMAIL, visitor_id=VISITOR)
    outcomes = _outcomes(result)
    for name in ("web_form_submissions", "prospects", "customers", "suppliers"):
        assert outcomes[(name, False)] == (1, 1) and outcomes[(name, True)] == (1, 1), name
        assert _left(crm, name, EMAIL_COLUMNS[name]) == [] == _left(crm, name, EMAIL_COLUMNS[name], archive=True)
    assert outcomes[("tracking_cookies", False)] == (1, 1)
    assert outcomes[("tracking_events", False)][0] == outcomes[("tracking_events", False)][1] > 0
    assert outcomes[("prospect_interactions", False)][1] > 0  # children go with their parent
    kept = {(t.table, t.archive): t for t in result.tables if t.kept}
    assert set(kept) >= {
        ("subscriptions", False),
        ("subscriptions", True),
        ("rights_requests", False),
        ("rights_requests", True),
    }
    assert all(t.erased == 0 and t.kept_because.startswith("legal obligation") for t in kept.values())
    assert "Code de commerce L123-22" in kept[("subscriptions", True)].kept_because
    assert len(_left(crm, "subscriptions", "billing_email", archive=True)) == 1


def test_the_erasure_is_audited_under_keyed_hashes_only(crm):
    result = _erase(crm, email=EMAIL, visitor_id=VISITOR)
    trail = store.audit_table("archive", "retention_audit")
    with crm.read() as conn:
        assert audit.verify_chain(conn, trail).intact
        requests = audit.events(conn, trail, action="rights_request")
        erasures = audit.events(conn, trail, action="erase")
        everything = " ".join(str(e) for e in audit.events(conn, trail)).lower()
    assert {e["subject_hash"] for e in requests} == {
        subject_hash(KEY, "email", EMAIL),
        subject_hash(KEY, "visitor_id", VISITOR),
    }
    assert all(e["details"]["erased"] == result.erased for e in requests)
    assert sum(e["row_count"] for e in erasures) == result.erased
    assert "jeanne" not in everything and VISITOR not in everything


def test_an_unknown_person_gets_a_no_data_held_answer(crm):
    before = checksum(crm)
    result = _erase(crm, email="nobody@nowhere.example")
    assert result.no_data_held and result.erased == 0
    with crm.read() as conn:
        (event,) = audit.events(conn, store.audit_table("archive", "retention_audit"), action="rights_request")
    assert event["details"]["erased"] == 0 and event["details"]["tables"] == 0
    assert {k: v for k, v in checksum(crm).items() if "retention_audit" not in k} == {
        k: v for k, v in before.items() if "retention_audit" not in k
    }


def test_two_people_sharing_a_phone_number_only_the_right_one_is_erased(crm):
    prospects = _table(crm, "prospects")
    with crm.engine.begin() as conn:
        jeanne, other = (
            conn.execute(select(prospects.c.prospect_id).order_by(prospects.c.prospect_id).limit(2)).scalars().all()
        )
        conn.execute(update(prospects).where(prospects.c.prospect_id == jeanne).values(email=EMAIL, phone=PHONE))
        conn.execute(
            update(prospects)
            .where(prospects.c.prospect_id == other)
            .values(email="paul.martin@example.fr", phone="+33 6.12.34.56.78")
        )
    _erase(crm, email=EMAIL, phone="0612345678")
    with crm.read() as conn:
        left = (
            conn.execute(select(prospects.c.prospect_id).where(prospects.c.prospect_id.in_([jeanne, other])))
            .scalars()
            .all()
        )
    assert left == [other]


@pytest.mark.parametrize(
    "identifiers, message",
    [
        ({"email": "jeanne.martin"}, "not of the form name@domain.tld"),
        ({"phone": "06-12"}, "6 to 15 digits"),
        ({}, "no subject identifier given"),
    ],
)
def test_a_malformed_identifier_is_refused_before_anything_runs(crm, identifiers, message):
    before = checksum(crm)
    with pytest.raises(RetentionError, match=message):
        _erase(crm, **identifiers)
    assert checksum(crm) == before


def test_an_erasure_that_fails_halfway_leaves_nothing_erased(crm):
    """A trigger makes the suppliers' delete fail after other tables were already deleted from."""
    make_supplier_deletes_fail(crm)
    before = checksum(crm)
    with pytest.raises(Exception, match="boom"):
        _erase(crm, email=EMAIL, visitor_id=VISITOR)
    assert checksum(crm) == before  # the audit log included: no event for an erasure that did not happen

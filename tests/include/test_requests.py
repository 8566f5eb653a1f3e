"""The register of data-subject requests, on SQLite and PostgreSQL: every request is recorded with
its deadline, a pending identity check stops there, a verified erasure is carried out and closed
in one transaction."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from crm_helpers import AS_OF, EMAIL, KEY, VISITOR, crm_table, make_supplier_deletes_fail, make_writes_fail
from sqlalchemy import func, inspect, select, text
from table_checksums import checksum

from include.demo.seed import seed_demo
from include.retention.database import store
from include.retention.database.identity import Subject, normalised_sql, subject_hash
from include.retention.database.store import suppression_table
from include.retention.database.target import connect
from include.retention.errors import RetentionError
from include.retention.policy.load import load_policy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.records.suppression import suppress
from include.retention.rights.export import export_path
from include.retention.rights.requests import (
    RequestRecord,
    due_date,
    ensure_register,
    handle,
    open_deadlines,
)
from include.retention.schedule.context import StepContext
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.quality import QualityGateFailed

RECEIVED = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _handle(
    target,
    reference="DDP-2026-0900",
    identity_verified=True,
    request_type="erasure",
    changes=None,
    correct_start_date=False,
    **identifiers,
):
    request = RequestRecord(reference, request_type, RECEIVED.date(), identity_verified, requester_email=EMAIL)
    ctx = RunContext(f"manual__{reference}", "subject_request", AS_OF, "test")
    return handle(
        target,
        load_policy(),
        KEY,
        request,
        Subject.of(identifiers or {"email": EMAIL}),
        ctx,
        RECEIVED,
        changes,
        correct_start_date,
    )


def _register_row(target, reference):
    register = crm_table(target, "rights_requests")
    with target.read() as conn:
        return conn.execute(select(register).where(register.c.reference == reference)).one()._mapping


@pytest.mark.parametrize(
    "received, extended, due",
    [
        (date(2026, 11, 20), False, date(2026, 12, 20)),
        (date(2026, 1, 31), False, date(2026, 2, 28)),  # calendar month: the last day of February
        (date(2028, 1, 31), False, date(2028, 2, 29)),
        (date(2026, 1, 31), True, date(2026, 4, 30)),  # extended: three months from receipt
    ],
)
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
        (event,) = audit.events(conn, store.audit_table("archive", "retention_audit"), action="rights_request")
    assert event["subject_hash"] == subject_hash(KEY, "email", EMAIL)
    assert event["details"] == {
        "request_type": "erasure",
        "outcome": "pending_identity",
        "due": "2026-12-20",
        "request_id": handled.request_id,
    }  # a number: whom a resume must be about


def test_the_same_reference_is_never_handled_twice(crm):
    _handle(crm)
    with pytest.raises(RetentionError, match="DDP-2026-0900.*already in the register"):
        _handle(crm)


def test_an_erasure_that_fails_leaves_the_request_recorded_and_open_and_the_data_whole(crm):
    make_supplier_deletes_fail(crm)
    before = {k: v for k, v in checksum(crm).items() if "rights_requests" not in k}
    with pytest.raises(Exception, match="boom"):
        _handle(crm)
    assert {k: v for k, v in checksum(crm).items() if "rights_requests" not in k} == before
    row = _register_row(crm, "DDP-2026-0900")
    assert (row["status"], row["closed_at"]) == ("in_progress", None)  # still open: its deadline still runs


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
        conn.execute(
            text(
                f"CREATE TABLE {'' if target.is_sqlite else 'crm.'}rights_requests "
                "(request_id INTEGER PRIMARY KEY, reference VARCHAR(30))"
            )
        )
    with pytest.raises(RetentionError, match="lacks column.*request_type"):
        ensure_register(target, load_policy())


def test_the_dpo_report_lists_open_requests_with_their_deadlines(crm):
    from include.retention.reports import dpo_render, dpo_report

    _handle(crm, reference="DDP-PENDING", identity_verified=False)
    report = dpo_report.build(crm, load_policy(), date(2026, 12, 1), date(2026, 12, 31), date(2026, 12, 21))
    assert ("DDP-PENDING", date(2026, 12, 20), -1) in [(d.reference, d.due, d.days_left) for d in report.open_requests]
    page = dpo_render.render(report, "en")
    assert "DDP-PENDING" in page and "OVERDUE (-1)" in page


def test_a_withdrawn_consent_deletes_the_visitors_tracking_at_once_and_nothing_else(crm):
    cookies = crm_table(crm, "tracking_cookies")
    with crm.engine.begin() as conn:  # a tracker set yesterday: far from its 13 months
        conn.execute(
            cookies.update()
            .where(cookies.c.visitor_key == VISITOR)
            .values(first_set_at=datetime(2026, 11, 25, 10, tzinfo=UTC))
        )
    before = {k: v for k, v in checksum(crm).items() if "tracking" not in k and "rights_requests" not in k}
    handled = _handle(crm, request_type="consent_withdrawal", visitor_id=VISITOR)
    tables = {t["table"]: t for t in handled.outcome["tables"]}
    assert tables["tracking_cookies"]["erased"] == 1 and tables["tracking_events"]["erased"] > 0
    assert set(tables) <= {"tracking_cookies", "tracking_events", "tracking_consents"}
    with crm.read() as conn:
        assert conn.execute(select(cookies).where(cookies.c.visitor_key == VISITOR)).first() is None
    assert {k: v for k, v in checksum(crm).items() if "tracking" not in k and "rights_requests" not in k} == before


def test_an_opposition_deletes_the_prospection_data_and_suppresses_the_address_for_good(crm):
    handled = _handle(crm, request_type="opposition", email=EMAIL, phone="06 12 34 56 78")
    tables = {(t["table"], t["archive"]): t for t in handled.outcome["tables"]}
    assert tables[("prospects", False)]["erased"] == 1 and tables[("prospects", True)]["erased"] == 1
    # Prospection and web-form leads (both deleted on opposition); customers, billing: untouched
    assert {t for t, _ in tables} <= {"prospects", "prospect_interactions", "web_form_submissions"}
    assert handled.outcome["suppressed"] == 2  # the e-mail and the phone
    assert len(_left_rows(crm, "customers", "email")) == 1
    with crm.read() as conn:
        listed = set(conn.execute(select(suppression_table("archive").c.subject_hash)).scalars())
    assert listed == {subject_hash(KEY, "email", EMAIL), subject_hash(KEY, "phone", "0612345678")}


def test_an_import_that_would_re_add_a_suppressed_address_is_refused_before_writing(target, tmp_path):
    probe = connect(f"sqlite:///{tmp_path / 'probe.db'}")
    seed_demo(probe.engine, None, AS_OF)
    with probe.read() as conn:
        opposed = conn.execute(text("SELECT email FROM prospects ORDER BY prospect_id LIMIT 1")).scalar_one()
    probe.dispose()
    target.ensure_archive_schema()
    listed = suppression_table("archive")
    with target.engine.begin() as conn:
        suppress(conn, listed, Subject.of({"email": opposed.upper()}), KEY, AS_OF, "DDP-OPP-1")
    with pytest.raises(RetentionError, match="import refused: 1 email value"):
        seed_demo(target.engine, None if target.is_sqlite else "crm", AS_OF, suppression=(listed, KEY))
    with target.read() as conn:
        assert not inspect(conn).has_table("prospects", schema=None if target.is_sqlite else "crm")


def test_the_post_run_check_flags_an_active_prospect_who_opposed_prospection(crm):
    _handle(crm, request_type="opposition", email=EMAIL)
    prospects = crm_table(crm, "prospects")
    with crm.engine.begin() as conn:  # the address comes back by a path that bypassed the import guard
        next_id = conn.execute(select(func.max(prospects.c.prospect_id))).scalar_one() + 1
        conn.execute(
            prospects.insert().values(
                prospect_id=next_id,
                first_name="J",
                last_name="M",
                email=" jeanne.martin@example.fr",
                commercial_consent=False,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                last_inbound_contact_at=datetime(2026, 11, 1, tzinfo=UTC),
            )
        )
    policy = load_policy()
    ctx = RunContext("scheduled__post", "retention_prospection", AS_OF, policy.version)
    with pytest.raises(QualityGateFailed, match="no_suppressed_subjects on prospects: 1 row"):
        post_run_gate(StepContext.build(crm, policy, "prospection", ctx, KEY))
    with pytest.raises(RetentionError, match="needs the subject key"):
        post_run_gate(StepContext.build(crm, policy, "prospection", ctx))


def _left_rows(target, name, column):
    table = crm_table(target, name)
    with target.read() as conn:
        return conn.execute(
            select(table.c[column]).where(normalised_sql("email", table.c[column]) == EMAIL.lower())
        ).all()


def test_without_pgcrypto_the_suppression_check_says_what_to_install(crm):
    if crm.is_sqlite:
        pytest.skip("SQLite computes keyed hashes with a function the target registers")
    _handle(crm, request_type="opposition", email=EMAIL)  # the list now exists
    with crm.engine.begin() as conn:
        conn.exec_driver_sql("DROP EXTENSION pgcrypto")
    policy = load_policy()
    ctx = RunContext("scheduled__post", "retention_prospection", AS_OF, policy.version)
    with pytest.raises(RetentionError, match="needs PostgreSQL's pgcrypto extension: CREATE EXTENSION pgcrypto"):
        post_run_gate(StepContext.build(crm, policy, "prospection", ctx, KEY))


def _zip(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def test_an_access_request_exports_every_row_with_the_purposes_and_periods_of_each_category(crm, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_EXPORTS_DIR", str(tmp_path))
    handled = _handle(crm, request_type="access", email=EMAIL, visitor_id=VISITOR)
    path = export_path("DDP-2026-0900", "access")
    assert path.parent == tmp_path
    assert handled.outcome["export"] == str(path) and oct(path.stat().st_mode & 0o777) == "0o600"
    files = _zip(path)
    document = json.loads(files["subject.json"])
    facts = {c["category"]: c for c in document["categories"]}
    assert facts["prospection"]["legal_basis"].startswith("Intérêt légitime")
    assert (facts["prospection"]["active_period"], facts["prospection"]["archive_period"]) == ("P3Y", "P5Y")
    assert facts["subscription_billing"]["archive_period"] == "P10Y"
    assert {
        "web_forms",
        "prospection",
        "customer_relationship",
        "subscription_billing",
        "suppliers",
        "rights_requests",
        "navigation_tracking",
    } <= set(facts)
    (active,) = document["data"]["prospection"]["prospects"]["active"]
    assert active["email"] == EMAIL and "marketing_notes" in active  # access: everything held
    assert len(document["data"]["prospection"]["prospects"]["archive"]) == 1
    assert "prospection/prospects.active.csv" in files and EMAIL in files["prospection/prospects.active.csv"]
    assert handled.outcome["rows"]["prospection.prospects.active"] == 1
    with crm.read() as conn:
        done = [
            e
            for e in audit.events(conn, store.audit_table("archive", "retention_audit"), action="rights_request")
            if e["details"]["outcome"] == "completed"
        ]
    assert {e["subject_hash"] for e in done} == {
        subject_hash(KEY, "email", EMAIL),
        subject_hash(KEY, "visitor_id", VISITOR),
    }
    assert all(e["row_count"] == sum(handled.outcome["rows"].values()) for e in done)


def test_a_portability_export_holds_only_what_the_person_provided(crm, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_EXPORTS_DIR", str(tmp_path))
    _handle(crm, request_type="portability")
    document = json.loads(_zip(export_path("DDP-2026-0900", "portability"))["subject.json"])
    assert set(document["data"]) == {"web_forms", "prospection", "customer_relationship"}
    (row,) = document["data"]["prospection"]["prospects"]["active"]
    assert set(row) == {"first_name", "last_name", "email", "phone", "company"}
    assert all(set(sides) == {"active"} for tables in document["data"].values() for sides in tables.values())


def test_a_rectification_changes_the_persons_active_rows_after_checking_every_value(crm):
    handled = _handle(
        crm,
        request_type="rectification",
        changes={"prospects": {"last_name": "Martin-Durand"}, "customers": {"city": "Lyon"}},
    )
    assert {t["table"]: t["rows"] for t in handled.outcome["tables"]} == {"prospects": 1, "customers": 1}
    prospects = crm_table(crm, "prospects")
    with crm.read() as conn:
        names = conn.execute(select(prospects.c.last_name).where(prospects.c.email == EMAIL)).scalars().all()
        (event,) = audit.events(
            conn, store.audit_table("archive", "retention_audit"), action="rectify", table_name="prospects"
        )
    assert names == ["Martin-Durand"]
    assert event["details"] == {"columns": 1, "start_date_corrected": False}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"prospects": {"prospect_id": 7}}, "prospects.prospect_id: a key column cannot be rectified"),
        ({"prospects": {"last_inbound_contact_at": "2026-01-01T10:00:00+01:00"}}, "starts the retention clock"),
        ({"prospects": {"shoe_size": 42}}, "prospects.shoe_size: no such column"),
        ({"prospects": {"commercial_consent": "yes"}}, "commercial_consent: the value is not a valid boolean"),
        ({"prospects": {"first_name": "x" * 81}}, "first_name: at most 80 characters"),
        ({"tracking_events": {"page_url": "x"}}, "no active row in table 'tracking_events'"),
    ],
)
def test_a_bad_rectification_is_refused_naming_table_and_column_and_nothing_changes(crm, changes, message):
    before = {k: v for k, v in checksum(crm).items() if "rights_requests" not in k}
    with pytest.raises(RetentionError, match=message):
        _handle(crm, request_type="rectification", changes={"customers": {"city": "Lyon"}, **changes})
    assert {k: v for k, v in checksum(crm).items() if "rights_requests" not in k} == before


def test_a_start_date_correction_is_applied_when_flagged_and_audited_as_such(crm):
    _handle(
        crm,
        request_type="rectification",
        correct_start_date=True,
        changes={"prospects": {"last_inbound_contact_at": "2026-01-01T10:00:00+01:00"}},
    )
    with crm.read() as conn:
        (event,) = audit.events(conn, store.audit_table("archive", "retention_audit"), action="rectify")
    assert event["details"]["start_date_corrected"] is True


def test_a_request_about_an_unknown_person_records_no_data_held(crm, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_EXPORTS_DIR", str(tmp_path))
    _handle(crm, reference="DDP-UNKNOWN-E", email="nobody@nowhere.example")
    _handle(crm, reference="DDP-UNKNOWN-A", request_type="access", email="nobody@nowhere.example")
    for reference in ("DDP-UNKNOWN-E", "DDP-UNKNOWN-A"):
        row = _register_row(crm, reference)
        assert row["status"] == "completed" and json.loads(row["outcome"])["no_data_held"] is True


def test_a_rectification_that_fails_halfway_changes_nothing(crm):
    """Prospects are updated first; a trigger then makes the customers' update fail."""
    make_writes_fail(crm, "customers", "UPDATE")
    before = {k: v for k, v in checksum(crm).items() if "rights_requests" not in k}
    with pytest.raises(Exception, match="boom"):
        _handle(
            crm,
            request_type="rectification",
            changes={"prospects": {"last_name": "Martin-Durand"}, "customers": {"city": "Lyon"}},
        )
    assert {k: v for k, v in checksum(crm).items() if "rights_requests" not in k} == before
    assert _register_row(crm, "DDP-2026-0900")["status"] == "in_progress"  # recorded, still open


SECRET = "jeanne.secret"


@pytest.mark.parametrize(
    "field, fields, identifiers",
    [
        ("reference", {"reference": f"DDP-{SECRET}\x00"}, {}),
        ("reference", {"reference": "DDP-" + SECRET * 10}, {}),
        ("requester_email", {"requester_email": f"{SECRET}\x00@example.fr"}, {}),
        ("requester_email", {"requester_email": SECRET * 30 + "@example.fr"}, {}),
        ("extension_reason", {"extension_reason": f"complex {SECRET}\x00"}, {}),
        ("extension_reason", {"extension_reason": SECRET * 300}, {}),
        ("email", {}, {"email": f"{SECRET}\x00@example.fr"}),
        ("customer_number", {}, {"customer_number": f"C-{SECRET}\x00"}),
        ("visitor_id", {}, {"visitor_id": SECRET * 30}),
    ],
)
def test_a_nul_byte_or_an_over_long_value_in_a_request_field_is_refused_naming_the_field_before_any_sql(
    crm, field, fields, identifiers
):
    before = checksum(crm)
    form = {
        "reference": "DDP-2026-0901",
        "request_type": "erasure",
        "received": RECEIVED.date(),
        "identity_verified": True,
        "requester_email": EMAIL,
        **fields,
    }
    # An e-mail with a NUL byte inside is not of an e-mail's form: the identifier parser
    # (identifiers.py) refuses it first, naming what it is given as.
    named = {"email": r"^(email: |the e-mail address given is not of the form)"}.get(field, rf"^{field}: ")
    with pytest.raises(RetentionError, match=named) as refused:
        request = RequestRecord(**form)
        ctx = RunContext("manual__DDP-2026-0901", "subject_request", AS_OF, "test")
        handle(crm, load_policy(), KEY, request, Subject.of(identifiers or {"email": EMAIL}), ctx, RECEIVED)
    assert SECRET not in str(refused.value) and "\x00" not in str(refused.value)
    assert checksum(crm) == before  # nothing recorded, nothing audited

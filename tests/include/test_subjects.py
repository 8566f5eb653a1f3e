"""Pseudonymous subjects: the log says whom an event is about by a keyed hash, and the DPO
can answer "was person X erased?" - on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date

import pytest
from engine_helpers import AS_OF, club_policy, create_club, run_category
from sqlalchemy import literal, select

from include.retention.database import store
from include.retention.database.identity import (
    KEY_VARIABLE,
    SubjectKey,
    key_from_env,
    normalise,
    normalised_sql,
    subject_hash,
)
from include.retention.dates.periods import Period
from include.retention.dates.words import day_words
from include.retention.errors import RetentionError
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.rights.erased import was_erased
from include.retention.settings import KEY_ENV_VAR

KEY = SubjectKey("k" * 40, "test")


def test_email_matching_ignores_case_and_surrounding_whitespace():
    assert normalise("email", "  Alice.Martin@Example.FR \t") == "alice.martin@example.fr"
    assert subject_hash(KEY, "email", " ALICE.martin@example.fr") == subject_hash(
        KEY, "email", "alice.martin@example.fr"
    )


@pytest.mark.parametrize(
    "written", ["06 12 34 56 78", "06.12.34.56.78", "+33 6 12 34 56 78", "0033612345678", "(06) 12-34-56-78"]
)
def test_a_french_phone_number_has_one_normal_form_however_it_is_written(written):
    assert normalise("phone", written) == "+33612345678"


@pytest.mark.parametrize(
    "kind, value",
    [
        ("email", "not-an-address"),
        ("email", "a@b"),
        ("phone", "12"),
        ("phone", "06 12 AB 56 78"),
        ("customer_number", "   "),
    ],
)
def test_a_malformed_identifier_is_refused_without_echoing_it(kind, value):
    with pytest.raises(RetentionError) as error:
        normalise(kind, value)
    assert value.strip() == "" or value not in str(error.value)


def test_the_same_value_as_two_kinds_of_identifier_gives_two_hashes():
    assert subject_hash(KEY, "customer_number", "0612345678") != subject_hash(KEY, "phone", "0612345678")


def test_another_key_gives_another_hash_so_a_guess_cannot_be_tested_without_the_key():
    other = SubjectKey("z" * 40, "test")
    assert subject_hash(KEY, "email", "a@b.fr") != subject_hash(other, "email", "a@b.fr")


def test_the_key_never_shows_in_a_repr_or_a_log_line():
    key = SubjectKey("s3cr3t-" * 6, "test")
    assert "s3cr3t" not in repr(key) and "s3cr3t" not in f"{key}" and "s3cr3t" not in str([key])


def test_a_short_key_is_refused():
    with pytest.raises(RetentionError, match="shorter than 32"):
        SubjectKey("short", "test")


def test_a_missing_key_names_where_to_set_it():
    with pytest.raises(RetentionError) as error:
        key_from_env({})
    assert KEY_VARIABLE in str(error.value) and KEY_ENV_VAR in str(error.value)
    assert key_from_env({KEY_ENV_VAR: "x" * 32}).digest("a") == SubjectKey("x" * 32, "t").digest("a")


@pytest.mark.parametrize(
    "written",
    ["06 12 34 56 78", " +33 6.12.34.56.78 ", "0033612345678", "(06) 12-34-56-78", "+44 20 7946 0958", "612345678"],
)
def test_sql_normalises_phone_numbers_exactly_as_python_does(target, written):
    with target.read() as conn:
        assert conn.execute(select(normalised_sql("phone", literal(written)))).scalar_one() == normalise(
            "phone", written
        )


def test_sql_normalises_emails_exactly_as_python_does(target):
    with target.read() as conn:
        value = conn.execute(select(normalised_sql("email", literal("  Bob@Example.COM ")))).scalar_one()
    assert value == normalise("email", "  Bob@Example.COM ")


def test_the_audit_log_refuses_a_raw_identifier_as_subject(target):
    create_club(target)
    run_category(target, club_policy())
    table = store.audit_table("archive", "retention_audit")
    ctx = RunContext("manual", "subject_request", AS_OF, "club-1")
    with pytest.raises(TypeError, match="keyed hash"), target.engine.begin() as conn:
        audit.record(
            conn,
            table,
            ctx,
            category="members",
            action="rights_request",
            row_count=0,
            subject_hash="member8@example.fr",
        )


@pytest.fixture
def club_after_a_run(target):
    """Member 4 destroyed (8 years), member 5 in the archive, member 8 active."""
    create_club(target)
    run_category(target, club_policy())
    return target


def test_a_destroyed_member_is_reported_as_no_longer_held(club_after_a_run):
    answer = was_erased(club_after_a_run, club_policy(), KEY, "email", "  MEMBER4@Example.FR ")
    assert answer.verdict == "none_held"
    assert (answer.active_rows, answer.archived_rows) == (0, 0)
    assert answer.subject_hash == subject_hash(KEY, "email", "member4@example.fr")


def test_an_archived_member_is_reported_archived_with_its_children(club_after_a_run):
    answer = was_erased(club_after_a_run, club_policy(), KEY, "email", "member5@example.fr")
    assert answer.verdict == "archived"
    assert {(p.table, p.active, p.archived) for p in answer.presence} == {
        ("members", 0, 1),
        ("member_events", 0, 2),
        ("member_event_files", 0, 2),
    }


def test_an_active_member_is_reported_active(club_after_a_run):
    answer = was_erased(club_after_a_run, club_policy(), KEY, "email", "member8@example.fr")
    assert answer.verdict == "active"
    assert {(p.table, p.active, p.archived) for p in answer.presence} == {
        ("members", 1, 0),
        ("member_events", 2, 0),
        ("member_event_files", 2, 0),
    }


def test_the_answer_lists_the_events_logged_under_the_persons_hash_only(club_after_a_run):
    table = store.audit_table("archive", "retention_audit")
    ctx = RunContext("manual", "subject_request", AS_OF, "club-1")
    with club_after_a_run.engine.begin() as conn:
        for email in ("member4@example.fr", "member8@example.fr"):
            audit.record(
                conn,
                table,
                ctx,
                category="members",
                action="rights_request",
                row_count=5,
                subject_hash=subject_hash(KEY, "email", email),
            )
    answer = was_erased(club_after_a_run, club_policy(), KEY, "email", "Member4@example.fr")
    assert [(e["action"], e["row_count"]) for e in answer.events] == [("rights_request", 5)]
    with club_after_a_run.read() as conn:
        assert audit.verify_chain(conn, table).intact
        logged = " ".join(str(e) for e in audit.events(conn, table))
    assert "member4@example.fr" not in logged and "member8" not in logged


def test_a_kind_of_identifier_no_table_declares_finds_nothing(club_after_a_run):
    answer = was_erased(club_after_a_run, club_policy(), KEY, "phone", "0612345678")
    assert answer.presence == [] and answer.verdict == "none_held"


def test_an_optional_key_is_none_only_when_none_is_configured(monkeypatch):
    from include.retention.database.identity import configured_key
    from include.retention.settings import KEY_ENV_VAR

    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    assert configured_key(None) is None
    monkeypatch.setenv(KEY_ENV_VAR, "too-short")
    with pytest.raises(RetentionError, match="shorter than"):
        configured_key(None)
    assert configured_key("v" * 40) is not None


# -- "Was X erased?" per kind of record, on the demo CRM (crm_helpers: Jeanne is in one active and
# one archived row of every table that holds an e-mail, the register included) ------------------


def _erase(target, email, reference="DDP-LOOKUP-1"):
    from datetime import datetime

    from crm_helpers import AS_OF as CRM_DAY

    from include.retention.database.identity import Subject
    from include.retention.policy.load import load_policy
    from include.retention.rights.requests import RequestRecord, handle

    request = RequestRecord(reference, "erasure", CRM_DAY, True, requester_email=email)
    ctx = RunContext(f"manual__{reference}", "subject_request", CRM_DAY, "test")
    return handle(target, load_policy(), CRM_KEY, request, Subject.of({"email": email}), ctx, datetime.now(UTC))


def _ask(target, email):
    from include.retention.policy.load import load_policy

    return was_erased(target, load_policy(), CRM_KEY, "email", email)


def _register_until(target, reference):
    """The register entry's end of life: closed (company's day) + P0D active + P5Y archive."""

    from crm_helpers import crm_table

    from include.retention.dates.periods import Period
    from include.retention.policy.load import load_policy

    register = crm_table(target, "rights_requests")
    with target.read() as conn:
        closed = conn.execute(select(register.c.closed_at).where(register.c.reference == reference)).scalar_one()
    closed = closed if closed.tzinfo else closed.replace(tzinfo=UTC)
    return Period(years=5).add_to(closed.astimezone(load_policy().zone).date())


def _one_table_prospect(target, archive: bool) -> str:
    """A prospect's e-mail held in one side of one table only (not Jeanne's, not the register's)."""
    from crm_helpers import EMAIL, EMAIL_COLUMNS, crm_table

    prospects = crm_table(target, "prospects", archive)
    others = [
        crm_table(target, name, side)
        for name in EMAIL_COLUMNS
        for side in (False, True)
        if (name, side) != ("prospects", archive)
    ]
    with target.read() as conn:
        taken = {
            str(e).strip().lower()
            for t in others
            for e in conn.execute(select(t.c[EMAIL_COLUMNS[t.name]])).scalars()
            if e
        }
        candidates = sorted(str(e) for e in conn.execute(select(prospects.c.email)).scalars() if e)
    return next(e for e in candidates if e.strip().lower() not in taken and e.strip().lower() != EMAIL.lower())


from crm_helpers import KEY as CRM_KEY  # noqa: E402


def test_an_erased_person_reads_erased_on_the_day_and_the_request_record_kept_as_evidence_until_its_horizon(crm):
    email = _one_table_prospect(crm, archive=False)
    _erase(crm, email)
    answer = _ask(crm, email)
    until = _register_until(crm, "DDP-LOOKUP-1")
    assert answer.verdict == "erased" and (answer.active_rows, answer.archived_rows, answer.evidence_rows) == (0, 0, 1)
    assert until == Period(years=5).add_to(answer.erased_on)  # closed and erased the same day
    assert answer.sentence() == (
        f"Erased on {day_words(answer.erased_on, 'en')}; the request record is kept as evidence until "
        f"{day_words(until, 'en')}."
    )
    (evidence,) = answer.presence
    assert (evidence.table, evidence.kind, evidence.active) == ("rights_requests", "request_evidence", 1)


def test_a_person_still_active_reads_still_in_the_active_base_and_their_request_records_are_not_their_data(crm):
    from crm_helpers import EMAIL

    answer = _ask(crm, EMAIL)
    assert answer.verdict == "active" and answer.erased_on is None
    assert answer.evidence_rows == 2  # the register's active and archived entries about Jeanne
    assert answer.active_rows == sum(p.active for p in answer.presence if p.table != "rights_requests")
    assert answer.sentence().startswith(f"Still in the active base: {answer.active_rows} row(s) of the person's data")
    assert "the 2 request records are kept as evidence" in answer.sentence()


def test_a_person_only_in_the_archive_reads_kept_there_until_the_end_of_life_of_their_rows(crm):
    from crm_helpers import crm_table

    from include.retention.database.identity import normalised_sql

    email = _one_table_prospect(crm, archive=True)
    answer = _ask(crm, email)
    archive = crm_table(crm, "prospects", archive=True)
    with crm.read() as conn:
        until = conn.execute(
            select(archive.c.retention_until).where(normalised_sql("email", archive.c.email) == email.strip().lower())
        ).scalar_one()
    until = until if isinstance(until, date) else date.fromisoformat(until)
    assert answer.verdict == "archived" and (answer.active_rows, answer.evidence_rows) == (0, 0)
    assert answer.sentence().startswith("Only in the restricted archive")
    assert f"Commercial prospection ({answer.archived_rows} row(s), archive, kept until {day_words(until, 'en')})" in (
        answer.sentence()
    )


def test_an_erased_person_whose_invoices_a_legal_obligation_keeps_reads_erased_except_those_with_until_when(crm):
    from crm_helpers import EMAIL

    _erase(crm, EMAIL)
    answer = _ask(crm, EMAIL)
    kept = {(p.table, p.kind) for p in answer.presence if p.kind != "request_evidence"}
    assert answer.verdict == "erased_except_kept"
    assert kept == {("subscriptions", "kept_by_obligation"), ("invoices", "kept_by_obligation")}
    sentence = answer.sentence()
    assert sentence.startswith(
        f"Erased on {day_words(answer.erased_on, 'en')}, except what a legal obligation keeps: Subscription billing ("
    )
    assert "active and archive, kept until" in sentence  # an archived subscription has a date
    assert "the 3 request records are kept as evidence" in sentence  # Jeanne's two, and this one


def test_an_unknown_person_reads_that_nothing_is_held_and_nothing_logged(crm):
    answer = _ask(crm, "nobody-ever@example.org")
    assert (answer.verdict, answer.presence, answer.events, answer.erased_on) == ("none_held", [], [], None)
    assert answer.sentence().startswith("No data about this person is held, active or archived, and no event")


def test_a_lookup_logs_nothing_about_the_person(crm, caplog):
    from crm_helpers import EMAIL

    with caplog.at_level("DEBUG"):
        _erase(crm, EMAIL)
        answer = _ask(crm, EMAIL)
    assert EMAIL.lower() not in caplog.text.lower() and EMAIL.lower() not in answer.sentence().lower()


@pytest.mark.parametrize(
    "until, waiting, said",
    [
        (date(2031, 12, 1), 0, "until 1 December 2031"),
        (None, 2, "until 5 years after the closure of the request"),
        (date(2031, 12, 1), 1, "until 1 December 2031, and 1 row(s) until 5 years after the closure of the request"),
        (date(2026, 11, 30), 0, "past their end of life (30 November 2026): the next run destroys them"),
        (date(2026, 12, 1), 0, "past their end of life (1 December 2026): the next run destroys them"),
    ],
)
def test_until_when_rows_are_kept_is_said_from_their_horizon(until, waiting, said):
    from include.retention.policy.model import Label
    from include.retention.rights.erased import Horizon

    after = Label(fr="5 ans après la clôture de la demande", en="5 years after the closure of the request")
    assert Horizon(until, waiting, after, date(2026, 12, 1)).text() == said


# -- "Was X erased?" on the ERP schema (test_real_schemas): invoices of Billing are archived with
# the partners they point at (archived_with) and keep them in the archive while they stay ------

ERP_NIGHT_1 = date(2026, 11, 26)
INVOICE_82_UNTIL = date(2029, 3, 31)  # invoiced 2019-03-31, P0D + P10Y: keeps customer 8 until then
UNTIL_82 = day_words(INVOICE_82_UNTIL, "en")  # as the answer says it


def _erp_policy():
    import copy

    from test_real_schemas import ERP_POLICY

    from include.retention.policy.load import parse_policy

    data = copy.deepcopy(ERP_POLICY)
    for category in data["categories"].values():
        category["deletion_limit"] = {"rows": 100000, "fraction": 1.0}
    for key in ("prospection", "customer_relationship"):
        data["categories"][key]["tables"][0]["subject_identifiers"] = {"email": ["email"]}
    return parse_policy(data)


@pytest.fixture
def erp_after_night_1(target):
    """Customer 8 archived (its own end of life 2024-12-31) with invoice 82 (2 lines, until
    2029-03-31); invoice 81, past its horizon, destroyed. Customer 7 active with invoice 71."""
    from test_real_schemas import create_erp

    create_erp(target)
    run_category(
        target, _erp_policy(), ERP_NIGHT_1, category="customer_relationship", run_id="night-1", subject_key=KEY
    )
    return target


def _by_table(answer):
    return {
        (p.category, p.table, p.kind): (p.active, p.archived, p.horizon.until if p.horizon else None)
        for p in answer.presence
    }


def test_a_customer_kept_in_the_archive_by_its_invoice_reads_kept_for_billing_until_the_invoice_horizon(
    erp_after_night_1,
):
    answer = was_erased(erp_after_night_1, _erp_policy(), KEY, "email", "P8@example.fr")
    assert _by_table(answer) == {
        ("customer_relationship", "partners", "kept_by_obligation"): (0, 1, INVOICE_82_UNTIL),
        ("customer_relationship", "contracts", "kept_by_obligation"): (0, 2, INVOICE_82_UNTIL),
        ("customer_relationship", "contract_lines", "kept_by_obligation"): (0, 3, INVOICE_82_UNTIL),
        ("billing", "invoices", "retained_dependant"): (0, 1, INVOICE_82_UNTIL),
        ("billing", "invoice_lines", "retained_dependant"): (0, 2, INVOICE_82_UNTIL),
    }
    assert {p.kept_for for p in answer.presence if p.category == "customer_relationship"} == {"billing"}
    assert (answer.verdict, answer.archived_rows) == ("archived", 9)
    sentence = answer.sentence()
    assert "31 December 2024" not in sentence and "past their end of life" not in sentence
    assert (
        f"Customers (6 row(s), archive, kept until {UNTIL_82}, needed by records Billing keeps "
        "for its legal obligation)"
    ) in sentence
    assert f"Billing (3 row(s), archive, records attached to theirs, kept until {UNTIL_82})" in sentence


def test_an_erased_customer_whose_invoice_is_kept_reads_erased_except_the_invoice_and_the_customer_it_keeps(
    erp_after_night_1,
):
    from include.retention.database.identity import Subject
    from include.retention.rights.erasure import erase

    policy = _erp_policy()
    ctx = RunContext("manual__erase-8", "retention_rights_request", ERP_NIGHT_1, policy.version)
    outcome = erase(erp_after_night_1, policy, Subject.of({"email": "p8@example.fr"}), KEY, ctx)
    assert (outcome.erased, outcome.kept) == (0, 6)
    answer = was_erased(erp_after_night_1, policy, KEY, "email", "p8@example.fr")
    assert answer.verdict == "erased_except_kept"
    assert answer.sentence() == (
        f"Erased on {day_words(answer.erased_on, 'en')}, except what a legal obligation keeps: Customers (6 row(s), archive, kept "
        f"until {UNTIL_82}, needed by records Billing keeps for its legal obligation), Billing (3 row(s), "
        f"archive, records attached to theirs, kept until {UNTIL_82})."
    )


def test_an_active_customers_invoice_is_listed_with_its_own_horizon_and_the_customer_stays_the_persons_data(
    erp_after_night_1,
):
    answer = was_erased(erp_after_night_1, _erp_policy(), KEY, "email", "p7@example.fr")
    found = _by_table(answer)
    assert found[("billing", "invoices", "retained_dependant")] == (1, 0, date(2034, 5, 2))  # 2024-05-02 + P10Y
    assert found[("customer_relationship", "partners", "personal_data")][:2] == (1, 0)
    assert answer.verdict == "active" and answer.active_rows == sum(p.active for p in answer.presence)


def test_an_invoice_past_its_horizon_keeps_nothing_and_reads_destroyed_by_the_next_run(erp_after_night_1):
    from sqlalchemy import update

    from include.retention.database.reflect import reflect_category

    policy = _erp_policy()
    with erp_after_night_1.engine.begin() as conn:
        (invoices,) = reflect_category(
            conn,
            policy,
            policy.categories["billing"],
            erp_after_night_1.source_schema,
            erp_after_night_1.archive_schema,
        )
        conn.execute(
            update(invoices.archive)
            .where(invoices.archive.c.invoice_id == 82)
            .values(retention_until=date(2026, 11, 30))
        )
    answer = was_erased(erp_after_night_1, policy, KEY, "email", "p8@example.fr")
    found = _by_table(answer)
    assert found[("customer_relationship", "partners", "personal_data")] == (0, 1, date(2024, 12, 31))
    assert found[("billing", "invoices", "retained_dependant")] == (0, 1, date(2026, 11, 30))
    assert not [p for p in answer.presence if p.kind == "kept_by_obligation"]
    assert (
        "Billing (3 row(s), archive, records attached to theirs, kept past their end of life (30 November 2026)"
        in answer.sentence()
    )


def test_a_customer_kept_only_by_a_held_invoice_past_its_horizon_reads_kept_until_the_hold_is_lifted(erp_after_night_1):
    """A legal hold on the invoice keeps it, and so its customer, past their dates: the answer
    must not say the next run destroys them."""
    from datetime import datetime

    from sqlalchemy import update

    from include.retention.database.reflect import reflect_category
    from include.retention.records.holds import NewHold, add_hold

    policy = _erp_policy()
    with erp_after_night_1.engine.begin() as conn:
        (invoices,) = reflect_category(
            conn,
            policy,
            policy.categories["billing"],
            erp_after_night_1.source_schema,
            erp_after_night_1.archive_schema,
        )
        conn.execute(
            update(invoices.archive)
            .where(invoices.archive.c.invoice_id == 82)
            .values(retention_until=date(2026, 11, 30))
        )
    today = datetime.now(policy.zone).date()
    add_hold(
        erp_after_night_1,
        policy,
        NewHold("LIT-82", "rows", "dispute on invoice F-82", "legal", category="billing", table="invoices", keys=[82]),
        KEY,
        RunContext("manual__hold", "legal_hold", today, policy.version),
        today,
    )
    answer = was_erased(erp_after_night_1, policy, KEY, "email", "p8@example.fr")
    (partners,) = [p for p in answer.presence if p.table == "partners"]
    assert (partners.kind, partners.kept_for, partners.archived) == ("kept_by_obligation", "billing", 1)
    assert "past their end of life" not in partners.horizon.text()
    assert partners.horizon.text() == "until a legal hold on the records that need them is lifted"

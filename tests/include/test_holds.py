"""Legal holds on both backends: a held row is never archived, deleted or anonymised - by the
schedule or by an erasure request - and adding, lifting and expiring a hold are audited."""

from __future__ import annotations

from datetime import UTC, date

import pytest
from crm_helpers import KEY
from engine_helpers import AS_OF, audit_events, club_policy, create_club, ids, run_category
from sqlalchemy import text

from include.retention.database.identity import Subject
from include.retention.database.store import audit_table, table_exists
from include.retention.errors import RetentionError
from include.retention.records.audit import RunContext, events, verify_chain
from include.retention.records.holds import NewHold, add_hold, check_reference, lift_hold, list_holds
from include.retention.reports import certificate, dpo_render, dpo_report
from include.retention.rights.erasure import erase
from include.retention.schedule.context import StepContext
from include.retention.schedule.postflight import post_run_gate

HOLD_CTX = RunContext("manual__hold-1", "legal_hold", AS_OF, "club-1")
TODAY = AS_OF


def _hold(target, policy=None, *, today=TODAY, **fields):
    values = {
        "reference": "RG-2026-001",
        "scope": "rows",
        "reason": "Litige prud'homal en cours",
        "created_by": "dpo@example.fr",
        "table": "members",
        "keys": [1],
    }
    values.update(fields)
    return add_hold(target, policy or club_policy(), NewHold(**values), KEY, HOLD_CTX, today)


@pytest.fixture
def club(target):
    create_club(target)
    if not target.is_sqlite:  # keyed hashes in SQL (subject holds) use pgcrypto there
        with target.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
    return target


def test_a_held_member_due_for_the_archive_stays_active_and_the_plan_counts_it(club):
    _hold(club, keys=[1])
    result = run_category(club, club_policy())
    members = result.plan.tables[0]
    assert members.legal_hold_due == 1 and members.due_for_archive == 4  # 3, 4, 5, 7 move; 1 is held
    assert 1 in ids(club, "members") and 1 not in ids(club, "members", archive=True)
    assert ids(club, "member_events", archive=True) == [31, 32, 51, 52, 71, 72]  # 4 was destroyed


def test_a_held_member_past_its_whole_retention_is_neither_archived_nor_destroyed(club):
    _hold(club, keys=[4])
    result = run_category(club, club_policy())
    assert 4 in ids(club, "members") and result.purged["deleted"].get("members", 0) == 0


def test_a_held_archive_row_at_end_of_life_is_not_destroyed_and_the_checks_accept_it(club):
    policy = club_policy()
    run_category(club, policy)  # member 5 is archived, retained until 27 November 2026
    _hold(club, keys=[5])
    later = date(2026, 11, 27)
    result = run_category(club, policy, later, run_id="run-2")
    assert 5 in ids(club, "members", archive=True)
    assert result.plan.tables[0].legal_hold_end_of_life == 1
    step = StepContext.build(club, policy, "members", RunContext("run-2", "retention_members", later, policy.version))
    assert all(r.success for r in post_run_gate(step))


def test_a_hold_on_a_child_row_keeps_its_whole_tree(club):
    _hold(club, table="member_event_files", keys=[301])
    run_category(club, club_policy())
    assert 3 in ids(club, "members") and {31, 32} <= set(ids(club, "member_events"))
    assert {301, 302} <= set(ids(club, "member_event_files"))


def test_a_category_hold_stops_every_move_and_every_deletion(club):
    _hold(club, scope="category", category="members", table=None, keys=[])
    result = run_category(club, club_policy())
    assert result.archived == {} and result.purged == {"deleted": {}}
    assert result.plan.tables[0].legal_hold_due == 5


def test_a_subject_hold_keeps_the_person_found_by_keyed_hash(club):
    _hold(club, scope="subject", table=None, keys=[], subject=Subject.of({"email": " Member7@Example.fr"}))
    run_category(club, club_policy(), subject_key=KEY)
    assert 7 in ids(club, "members") and 3 not in ids(club, "members")


def test_a_subject_hold_without_the_key_fails_the_run_before_anything_moves(club):
    _hold(club, scope="subject", table=None, keys=[], subject=Subject.of({"email": "member7@example.fr"}))
    with pytest.raises(RetentionError, match="retention_subject_secret"):
        run_category(club, club_policy())
    assert 7 in ids(club, "members") and 3 in ids(club, "members")


def test_an_expired_hold_protects_nothing_and_its_expiry_is_audited_once(club):
    _hold(club, keys=[1], today=date(2020, 1, 1), expires_on=date(2021, 1, 1))
    run_category(club, club_policy())
    run_category(club, club_policy(), run_id="run-2")
    assert 1 in ids(club, "members", archive=True)
    outcomes = [e["details"]["outcome"] for e in audit_events(club, club_policy(), action="legal_hold")]
    assert outcomes == ["added", "expired"]
    with club.read() as conn:
        assert [h.status for h in list_holds(conn, "archive", TODAY)] == ["expired"]


def test_lifting_a_hold_is_audited_and_the_rows_follow_the_schedule_again(club):
    policy = club_policy()
    _hold(club, keys=[1])
    lifted = lift_hold(club, policy, "RG-2026-001", "legal@example.fr", "Affaire close", HOLD_CTX, TODAY)
    assert lifted.status == "lifted"
    run_category(club, policy)
    assert 1 in ids(club, "members", archive=True)
    events = audit_events(club, policy, action="legal_hold")
    assert [e["details"]["outcome"] for e in events] == ["added", "lifted"]
    assert all("Litige" not in str(e) and "Affaire" not in str(e) for e in events)  # the reason stays out
    with club.read() as conn:
        assert verify_chain(conn, audit_table("archive", policy.audit_table)).intact


def test_a_hold_cannot_be_lifted_twice(club):
    policy = club_policy()
    _hold(club, keys=[1])
    lift_hold(club, policy, "RG-2026-001", "legal@example.fr", "Affaire close", HOLD_CTX, TODAY)
    with pytest.raises(RetentionError, match="already lifted"):
        lift_hold(club, policy, "RG-2026-001", "legal@example.fr", "again", HOLD_CTX, TODAY)


def test_an_erasure_keeps_the_rows_under_a_hold_and_says_why(club):
    policy = club_policy()
    _hold(club, scope="subject", table=None, keys=[], subject=Subject.of({"email": "member1@example.fr"}))
    result = erase(club, policy, Subject.of({"email": "member1@example.fr"}), KEY, HOLD_CTX)
    members = next(t for t in result.tables if t.table == "members" and not t.archive)
    assert members.erased == 0 and members.kept == 1 and members.kept_because.startswith("legal hold")
    assert 1 in ids(club, "members") and {11, 12} <= set(ids(club, "member_events"))


def test_a_subject_hold_is_audited_under_the_keyed_hash_only(club):
    subject = Subject.of({"email": "member1@example.fr"})
    _hold(club, scope="subject", table=None, keys=[], subject=subject)
    events = audit_events(club, club_policy(), action="legal_hold")
    assert [e["subject_hash"] for e in events] == subject.hashes(KEY)
    assert all("member1" not in str(e) for e in events)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"keys": [1, 999]}, r"1 key\(s\) of .*members name no row, active or archived: 999"),
        ({"table": "payroll"}, r"table 'payroll' is not in the policy"),
        ({"scope": "category", "category": "staff", "table": None}, r"category 'staff' is not in the policy"),
        ({"reference": "RG'; DROP TABLE members; --"}, r"reference .* letters, digits"),
        ({"keys": []}, r"lists the primary keys"),
        ({"keys": [[1, 2]]}, r"does not fit the primary key"),
        ({"expires_on": TODAY}, r"expires_on 2026-11-26 is not after today"),
        ({"reason": "  "}, r"give the reason"),
        ({"scope": "everything"}, r"scope 'everything' is unknown"),
    ],
)
def test_a_bad_hold_is_refused_naming_the_problem_and_nothing_is_recorded(club, fields, message):
    with pytest.raises(RetentionError, match=message):
        _hold(club, **fields)
    with club.read() as conn:
        assert list_holds(conn, "archive", TODAY) == []


@pytest.mark.parametrize(
    "reference",
    [
        "RG-2026-001\n",
        "RG-2026\n-001",
        "RG-2026-001\r",
        "Jeanne\tMartin",
        "RG-2026-001\x00",
        "RG-2026-001\u2028",
        "RG-2026-001\x1b[2K",
    ],
)
def test_a_hold_reference_with_a_newline_or_control_character_is_refused_naming_the_field_not_the_value(
    club, reference
):
    """A reference goes to the audit log and the task log: a line break there forges a line."""
    with pytest.raises(
        RetentionError, match="legal hold reference: contains a newline or another control character"
    ) as refused:
        _hold(club, reference=reference)
    assert reference.split()[0].strip("\x00\x1b") not in str(refused.value)
    with pytest.raises(RetentionError, match="legal hold reference: contains a newline"):
        lift_hold(club, club_policy(), reference, "dpo@example.fr", "closed", HOLD_CTX, TODAY)
    trail = audit_table("archive", club_policy().audit_table)
    with club.read() as conn:
        assert list_holds(conn, "archive", TODAY) == []
        assert not table_exists(conn, trail) or events(conn, trail, action="legal_hold") == []


def test_a_refused_reference_is_not_repeated_in_the_error():
    with pytest.raises(RetentionError) as refused:
        check_reference("Jeanne Martin, née Durand")
    assert "Jeanne" not in str(refused.value) and "25 characters" in str(refused.value)


def test_a_reference_is_used_once(club):
    _hold(club, keys=[1])
    with pytest.raises(RetentionError, match="already exists"):
        _hold(club, keys=[2])


def test_the_certificate_and_the_dpo_report_count_the_rows_a_hold_keeps(club):
    policy = club_policy()
    _hold(club, keys=[1])
    run_category(club, policy)
    with club.read() as conn:
        issued = certificate.build(conn, audit_table("archive", policy.audit_table), policy, "run-1")
    assert next(t for t in issued.tables if t.table == "members").legal_hold == 1
    report = dpo_report.build(club, policy, date(2026, 11, 1), date(2026, 11, 30), TODAY)
    members = report.compliance[0]
    assert (members.legal_hold, members.overdue, members.compliant) == (1, 0, True)
    page = dpo_render.render(report, "en")
    assert "RG-2026-001" in page and "in force" in page
    assert "Litige" not in page and "dpo@example.fr" not in page  # reason and requester stay in the register


def test_a_hold_expiring_today_protects_nothing_today_and_its_instants_are_kept_in_utc(club, monkeypatch):
    """In force until the day before ``expires_on``; its own timestamps (created, expiry
    recorded) read back as the aware UTC instants they were stamped at, on both backends."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from include.retention.database.store import hold_tables
    from include.retention.dates import instants

    created = datetime(2026, 11, 26, 0, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 25 November, 23:30 UTC
    monkeypatch.setattr(instants, "utc_now", lambda: created)
    _hold(club, keys=[1], today=TODAY - timedelta(days=1), expires_on=TODAY)
    with club.read() as conn:
        assert [h.status for h in list_holds(conn, "archive", TODAY - timedelta(days=1))] == ["in_force"]
        assert [h.status for h in list_holds(conn, "archive", TODAY)] == ["expired"]
        assert list_holds(conn, "archive", TODAY, in_force_only=True) == []
    expired_at = created + timedelta(minutes=5)
    monkeypatch.setattr(instants, "utc_now", lambda: expired_at)
    run_category(club, club_policy())  # as of TODAY: the day the hold expires
    assert 1 in ids(club, "members", archive=True)
    holds = hold_tables("archive").holds
    with club.read() as conn:
        row = conn.execute(select(holds)).one()
        if club.is_sqlite:
            assert (
                conn.execute(text("SELECT created_at FROM archive.retention_legal_holds")).scalar_one()
                == "2026-11-25 23:30:00.000000+00:00"
            )
    assert (row.created_at, row.expiry_recorded_at, row.lifted_at) == (created, expired_at, None)
    assert row.created_at.tzinfo == row.expiry_recorded_at.tzinfo == UTC


def test_a_hold_created_at_00_30_in_paris_is_shown_created_that_day(club, monkeypatch):
    """Created at 23:30 UTC on 30 November, i.e. 00:30 on 1 December in Paris: the DPO report's
    register says 1 December, the company's day, not the UTC one."""
    from datetime import datetime
    from html import unescape

    from include.retention.dates import instants

    monkeypatch.setattr(instants, "utc_now", lambda: datetime(2026, 11, 30, 23, 30, tzinfo=UTC))
    _hold(club, reference="RG-MIDNIGHT")
    report = dpo_report.build(club, club_policy(), date(2026, 11, 1), date(2026, 11, 30), TODAY)
    page = unescape(dpo_render.render(report))
    row = page[page.index("RG-MIDNIGHT") :]
    assert "1er décembre 2026" in row[: row.index("</tr>")] and "30 novembre 2026" not in row[: row.index("</tr>")]


def test_a_row_hold_on_a_shared_table_finds_a_row_in_the_second_categorys_archive(target):
    """Partners are shared by prospects and customers, each with its own archive: partner 8,
    archived as a customer, can be held by its key (it was refused as 'no row')."""
    from engine_helpers import archive_rows
    from test_real_schemas import create_erp, erp_policy

    from include.retention.policy.load import parse_policy

    create_erp(target)
    policy = parse_policy(erp_policy(), source="erp.yaml")
    run_category(target, policy, category="customer_relationship", run_id="customers-1")
    assert 8 in [r["partner_id"] for r in archive_rows(target, "customer_partners")]
    held = add_hold(
        target,
        policy,
        NewHold(reference="LIT-P8", scope="rows", reason="litige", created_by="juriste", table="partners", keys=[8]),
        KEY,
        HOLD_CTX,
        TODAY,
    )
    assert held.items == 1
    with pytest.raises(RetentionError, match="1 key.s. of .*partners name no row, active or archived: 999"):
        _hold(target, policy, reference="LIT-P999", table="partners", keys=[999])

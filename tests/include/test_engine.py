"""The engine on a schema it has never seen, on SQLite and on a real PostgreSQL."""

import copy
from datetime import date

import pytest
from engine_helpers import (
    CLUB_POLICY,
    CONTACTS,
    PARIS,
    archive_rows,
    audit_events,
    club_policy,
    count,
    create_club,
    ids,
    run_category,
    total_rows,
)
from sqlalchemy import MetaData, Table, insert, select

from include.retention.errors import PolicyError


def test_member_contacted_3_years_ago_moves_to_archive_with_its_children(target):
    create_club(target)
    run_category(target, club_policy())
    assert ids(target, "members") == [2, 6, 8]
    assert ids(target, "members", archive=True) == [1, 3, 5, 7]
    assert ids(target, "member_events", archive=True) == [11, 12, 31, 32, 51, 52, 71, 72]
    assert ids(target, "member_event_files", archive=True) == [101, 102, 301, 302, 501, 502, 701, 702]
    assert ids(target, "member_events") == [21, 22, 61, 62, 81, 82]


@pytest.mark.parametrize(
    "member, stays_active",
    [
        pytest.param(1, False, id="exactly_on_the_day"),
        pytest.param(2, True, id="one_day_short"),
        pytest.param(3, False, id="one_day_past"),
    ],
)
def test_active_period_boundaries(target, member, stays_active):
    create_club(target)
    run_category(target, club_policy())
    assert (member in ids(target, "members")) is stays_active


def test_archived_row_keeps_only_the_archive_columns_and_the_retention_facts(target):
    create_club(target)
    run_category(target, club_policy(), run_id="run-42")
    row = next(r for r in archive_rows(target, "members") if r["member_id"] == 1)
    assert set(row) == {
        "member_id",
        "email",
        "full_name",
        "postcode",
        "spend",
        "joined_on",
        "retention_start",
        "retention_until",
        "archived_at",
        "policy_version",
        "run_id",
        "anonymized",
    }
    assert row["retention_start"] == date(2023, 11, 26)
    assert row["retention_until"] == date(2031, 11, 26)
    assert (row["policy_version"], row["run_id"], row["anonymized"]) == ("club-1", "run-42", False)
    event = archive_rows(target, "member_events")[0]
    assert "detail" not in event and event["retention_until"] == date(2031, 11, 26)


def test_leap_day_start_is_kept_until_28_february(target):
    create_club(target)
    run_category(target, club_policy())
    row = next(r for r in archive_rows(target, "members") if r["member_id"] == 7)
    assert row["retention_until"] == date(2028, 2, 28)


def test_a_late_run_does_not_extend_retention(target):
    """Archived two years late, the row is still kept until start + 3 + 5 years."""
    create_club(target)
    run_category(target, club_policy(), as_of=date(2028, 11, 26))
    row = next(r for r in archive_rows(target, "members") if r["member_id"] == 1)
    assert row["retention_until"] == date(2031, 11, 26)


def test_row_past_archive_period_is_destroyed_with_its_children(target):
    create_club(target)
    result = run_category(target, club_policy())
    assert 4 not in ids(target, "members") + ids(target, "members", archive=True)
    assert 41 not in ids(target, "member_events") + ids(target, "member_events", archive=True)
    assert result.purged == {"deleted": {"member_event_files": 2, "member_events": 2, "members": 1}}


def test_archive_rows_are_destroyed_on_their_retention_until(target):
    create_club(target)
    run_category(target, club_policy())
    run_category(target, club_policy(), as_of=date(2026, 11, 27), run_id="run-2")
    assert 5 not in ids(target, "members", archive=True)
    run_category(target, club_policy(), as_of=date(2028, 2, 27), run_id="run-3")
    assert 7 in ids(target, "members", archive=True)
    run_category(target, club_policy(), as_of=date(2028, 2, 28), run_id="run-4")
    assert 7 not in ids(target, "members", archive=True)
    assert 701 not in ids(target, "member_event_files", archive=True)


def test_second_run_for_the_same_date_changes_nothing(target):
    create_club(target)
    run_category(target, club_policy())
    before = {
        t: (ids(target, t), ids(target, t, archive=True)) for t in ("members", "member_events", "member_event_files")
    }
    again = run_category(target, club_policy(), run_id="run-2")
    after = {t: (ids(target, t), ids(target, t, archive=True)) for t in before}
    assert after == before
    assert again.archived == {} and again.purged == {"deleted": {}}


def test_missing_start_date_is_a_reported_defect_never_moved(target):
    create_club(target)
    result = run_category(target, club_policy())
    assert 6 in ids(target, "members")
    (plan,) = result.plan.tables
    assert (plan.missing_start, plan.missing_start_means) == (1, "defect")
    findings = audit_events(target, club_policy(), action="quality_finding")
    assert [(e["table_name"], e["row_count"]) for e in findings] == [("members", 1)]
    assert result.summary["missing_start"] == 1


def test_missing_start_meaning_ongoing_stays_active_without_a_finding(target):
    create_club(target)
    policy = club_policy(
        tables=[{**_members_table(), "start_event": {"column": "last_contact_at", "when_missing": "ongoing"}}]
    )
    run_category(target, policy)
    assert 6 in ids(target, "members")
    assert audit_events(target, policy, action="quality_finding") == []


def test_plan_counts_what_is_due_without_changing_anything(target):
    create_club(target)
    result = run_category(target, club_policy(), dry_run=True)
    (plan,) = result.plan.tables
    assert (plan.active_rows, plan.due_for_archive, plan.due_for_end_of_life) == (8, 5, 1)
    assert plan.children == {"member_events": 10, "member_event_files": 10}
    assert plan.last_due_start == date(2023, 11, 26)
    assert ids(target, "members") == sorted(CONTACTS)
    assert result.archived == {} and result.purged == {"deleted": {}}
    assert all(e["dry_run"] for e in audit_events(target, club_policy()))


def test_category_without_archive_deletes_due_rows_directly(target):
    create_club(target)
    policy = club_policy(archive_period=None, archive_purpose=None)
    result = run_category(target, policy)
    assert ids(target, "members") == [2, 6, 8]
    assert result.purged["deleted"]["members"] == 5
    assert ids(target, "member_events") == [21, 22, 61, 62, 81, 82]


def test_anonymisation_generalises_the_archive_and_removes_identifiers(target):
    create_club(target)
    rules = {
        "email": "null",
        "full_name": "null",
        "postcode": {"prefix": 2},
        "spend": {"round": 100},
        "joined_on": "year",
    }
    table = _members_table()
    table["anonymize"] = rules
    table["children"][0]["anonymize"] = {"happened_at": "month"}
    table["children"][0]["children"][0]["anonymize"] = {"file_name": "null"}
    policy = club_policy(end_action="anonymize", tables=[table])
    result = run_category(target, policy)
    assert result.purged == {"anonymized": {"member_event_files": 2, "member_events": 2, "members": 1}}
    row = next(r for r in archive_rows(target, "members") if r["member_id"] == 4)
    assert (row["email"], row["full_name"], row["postcode"], float(row["spend"])) == (None, None, "75", 1200.0)
    assert row["joined_on"] == date(2015, 1, 1)
    assert (row["retention_start"], row["retention_until"], row["archived_at"], row["run_id"]) == (None,) * 4
    assert row["anonymized"] is True
    happened = next(r for r in archive_rows(target, "member_events") if r["event_id"] == 41)["happened_at"]
    happened = happened.astimezone(PARIS) if happened.tzinfo else happened  # SQLite keeps Paris wall time
    assert (happened.year, happened.month, happened.day, happened.hour) == (2015, 6, 1, 0)
    second = run_category(target, policy, run_id="run-2")
    assert second.purged == {"anonymized": {}}


def test_batches_are_bounded_and_each_writes_its_own_audit_events(target):
    create_club(target)
    run_category(target, club_policy(), batch_size=2)
    archive_events = [e for e in audit_events(target, club_policy(), action="archive") if e["table_name"] == "members"]
    assert [e["row_count"] for e in archive_events] == [2, 2, 1]


def test_a_failing_batch_rolls_back_whole_and_earlier_batches_stay_complete(target):
    """A stray archive copy of member 5 makes the second batch fail on its primary key."""
    create_club(target)
    run_category(target, club_policy(), as_of=date(2000, 1, 1))  # creates the archive tables, moves nothing
    archive_members = Table("members", MetaData(), schema="archive", autoload_with=target.engine)
    with target.engine.begin() as conn:
        conn.execute(insert(archive_members).values(member_id=5, anonymized=False, retention_until=date(2099, 1, 1)))
    before = {t: total_rows(target, t) for t in ("members", "member_events", "member_event_files")}
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        run_category(target, club_policy(), batch_size=2, run_id="run-broken")
    assert ids(target, "members", archive=True) == [1, 3, 5]  # batch 1 (members 1, 3) done; 5 is the stray copy
    assert ids(target, "members") == [2, 4, 5, 6, 7, 8]  # batch 2 (4, 5) rolled back, batch 3 never ran
    assert {t: total_rows(target, t) for t in before} == before
    moved = [e for e in audit_events(target, club_policy(), run_id="run-broken") if e["action"] == "archive"]
    assert sum(e["row_count"] for e in moved if e["table_name"] == "members") == 2


def test_audit_events_hold_counts_not_personal_data(target):
    tables = create_club(target)
    run_category(target, club_policy())
    with target.read() as conn:
        personal = conn.execute(select(tables["members"].c.email, tables["members"].c.full_name)).all()
    text_of_log = repr(audit_events(target, club_policy()))
    assert "example.fr" not in text_of_log and "Numéro" not in text_of_log
    assert personal  # the active base still has people in it, so the check above means something


def test_policy_naming_a_missing_column_fails_before_any_sql(target):
    create_club(target)
    table = _members_table()
    table["archive_columns"] = ["email", "phone"]
    with pytest.raises(PolicyError, match=r"tables\[0\]\.archive_columns: column 'phone' not in table"):
        run_category(target, club_policy(tables=[table]))
    assert count(target, "members") == len(CONTACTS)


def _members_table() -> dict:
    return copy.deepcopy(CLUB_POLICY["categories"]["members"]["tables"][0])

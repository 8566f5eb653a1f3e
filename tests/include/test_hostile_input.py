"""Hostile and careless input, one test per case: each gets a clear error naming the file, key,
table, column or value - or a documented safe behaviour - and no row is ever lost.

Policy files are checked on load; the database cases run on SQLite and PostgreSQL, and
compare every table before and after (``checksum``) where the answer is a refusal.
"""

from __future__ import annotations

import copy
from datetime import date, datetime

import pytest
import yaml
from crm_helpers import KEY
from engine_helpers import (
    AS_OF,
    CLUB_POLICY,
    PARIS,
    archive_rows,
    club_policy,
    create_club,
    ids,
    run_category,
    schema_metadata,
)
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select, text
from table_checksums import checksum

from include.retention.database.identity import Subject
from include.retention.errors import PolicyError, RetentionError
from include.retention.policy.load import load_policy, parse_policy
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.rights.erasure import erase
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.plan import plan_category
from include.retention.schedule.purge import purge_category
from include.retention.schedule.quality import QualityGateFailed, pre_archive_gate


def _write(tmp_path, data, name="club.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def _club(**changes):
    data = copy.deepcopy(CLUB_POLICY)
    data["categories"]["members"].update(changes)
    return data


def _members_table(data):
    return data["categories"]["members"]["tables"][0]


def _step(target, policy=None, run_id="hostile-run"):
    policy = policy or club_policy()
    return StepContext.build(target, policy, "members", RunContext(run_id, "retention_members", AS_OF, policy.version))


@pytest.fixture
def club(target):
    create_club(target)
    return target


# --- Policy files ---------------------------------------------------------------------------


def test_malformed_yaml_names_the_file_and_the_line(tmp_path):
    path = _write(tmp_path, "version: club-1\ncategories:\n  members: {label: [unclosed\n")
    with pytest.raises(PolicyError, match=r"(?s)club\.yaml.*not valid YAML.*line 3"):
        load_policy(path)


def test_a_yaml_list_instead_of_a_mapping_names_the_file(tmp_path):
    with pytest.raises(PolicyError, match=r"club\.yaml"):
        load_policy(_write(tmp_path, "- version: 1\n- categories: {}\n"))


def test_an_unknown_top_level_key_is_named(tmp_path):
    data = _club()
    data["retention_perod"] = "P3Y"
    with pytest.raises(PolicyError, match=r"(?s)club\.yaml.*retention_perod.*not permitted"):
        load_policy(_write(tmp_path, data))


def test_a_misspelt_table_key_is_named_with_its_path(tmp_path):
    data = _club()
    _members_table(data)["archive_colums"] = ["email"]
    with pytest.raises(PolicyError, match=r"categories\.members\.tables\[0\]\.archive_colums"):
        load_policy(_write(tmp_path, data))


@pytest.mark.parametrize("period", ["P-1Y", "3 years", "P3Y-2M", "", "PT12H"])
def test_a_bad_period_is_named_with_its_key_and_value(tmp_path, period):
    with pytest.raises(PolicyError, match=r"categories\.members\.active_period"):
        load_policy(_write(tmp_path, _club(active_period=period)))


def test_a_zero_active_period_counted_from_a_contact_is_refused(tmp_path):
    """P0D is for periods counted from an end event (a contract's end: archive at once); from
    a contact date it would empty the active base."""
    with pytest.raises(PolicyError, match=r"(?s)categories\.members\.active_period: P0D is only allowed"):
        load_policy(_write(tmp_path, _club(active_period="P0D")))


@pytest.mark.parametrize(
    "where, bad",
    [
        ("table", "members; DROP TABLE members"),
        ("archive_columns", ['email" --']),
        ("primary_key", "member_id) OR (1=1"),
    ],
)
def test_an_identifier_carrying_sql_is_refused_before_any_sql_runs(tmp_path, where, bad):
    data = _club()
    _members_table(data)[where] = bad
    with pytest.raises(PolicyError, match=rf"categories\.members\.tables\[0\]\.{where}"):
        load_policy(_write(tmp_path, data))


def test_a_schema_name_carrying_sql_is_refused(tmp_path):
    data = _club()
    data["source_schema"] = "club; DROP SCHEMA club CASCADE"
    with pytest.raises(PolicyError, match=r"source_schema"):
        load_policy(_write(tmp_path, data))


@pytest.mark.parametrize("size", [0, -5, 10**9, "lots"])
def test_a_batch_size_of_zero_or_huge_in_the_policy_is_refused(tmp_path, size):
    with pytest.raises(PolicyError, match=r"categories\.members\.batch_size"):
        load_policy(_write(tmp_path, _club(batch_size=size)))


def test_a_deletion_limit_fraction_above_one_is_refused(tmp_path):
    with pytest.raises(PolicyError, match=r"categories\.members\.deletion_limit\.fraction"):
        load_policy(_write(tmp_path, _club(deletion_limit={"fraction": 1.5})))


# --- The live database ----------------------------------------------------------------------


def _refused(target, action, error, match):
    before = checksum(target)
    with pytest.raises(error, match=match):
        action()
    assert checksum(target) == before


def test_a_missing_table_is_named_and_nothing_moves(club):
    data = _club()
    _members_table(data)["children"][0]["table"] = "member_evnts"
    _refused(
        club,
        lambda: run_category(club, parse_policy(data, "club.yaml")),
        PolicyError,
        r"(?s)club\.yaml.*children\[0\]\.table.*member_evnts does not exist",
    )


def test_a_missing_column_is_named_with_the_columns_there_are(club):
    data = _club()
    _members_table(data)["archive_columns"] = ["email", "fax"]
    _refused(
        club,
        lambda: run_category(club, parse_policy(data, "club.yaml")),
        PolicyError,
        r"(?s)archive_columns.*column 'fax' not in table .*members; columns are: member_id, email",
    )


def test_a_start_column_that_is_not_a_date_is_named_with_its_type(club):
    data = _club()
    _members_table(data)["start_event"]["column"] = "email"
    _refused(
        club,
        lambda: run_category(club, parse_policy(data, "club.yaml")),
        PolicyError,
        r"(?s)start_event\.column.*'email' of .*members is VARCHAR.*not a date or timestamp; "
        r"date columns are: joined_on, last_contact_at",
    )


def test_naive_timestamps_need_a_time_zone_sqlite_cannot_convert(club):
    data = _club()
    data["naive_timezone"] = "UTC"
    if club.is_sqlite:
        _refused(
            club,
            lambda: run_category(club, parse_policy(data, "club.yaml")),
            PolicyError,
            r"naive_timezone.*SQLite cannot convert between time zones.*'UTC'",
        )
        return
    # PostgreSQL: a naive timestamp is read in naive_timezone; 23:30 UTC on 26 Nov 2023 is already
    # 27 November in Paris, so that visit is not due on 26 November 2026 - one an hour earlier is.
    md, _ = schema_metadata(club, "club")
    visits = Table("visits", md, Column("visit_id", Integer, primary_key=True), Column("seen_at", DateTime))
    visits.create(club.engine)
    with club.engine.begin() as conn:
        conn.execute(
            insert(visits),
            [
                {"visit_id": 1, "seen_at": datetime(2023, 11, 26, 22, 30)},
                {"visit_id": 2, "seen_at": datetime(2023, 11, 26, 23, 30)},
            ],
        )
    data["categories"]["members"]["tables"].append(
        {
            "table": "visits",
            "primary_key": "visit_id",
            "start_event": {"column": "seen_at", "when_missing": "defect"},
            "archive_columns": ["seen_at"],
        }
    )
    run_category(club, parse_policy(data, "club.yaml"))
    assert ids(club, "visits", archive=True) == [1] and ids(club, "visits") == [2]


def test_dates_stored_as_unreadable_text_in_sqlite_stop_the_run(club):
    if not club.is_sqlite:
        with pytest.raises(Exception, match="invalid input syntax|DatetimeFormat"), club.engine.begin() as conn:
            conn.execute(text("UPDATE club.members SET last_contact_at = '26/11/2019 10h' WHERE member_id = 2"))
        return  # PostgreSQL's types refuse the text itself
    with club.engine.begin() as conn:
        conn.execute(text("UPDATE members SET last_contact_at = '26/11/2019 10:00' WHERE member_id = 2"))
    with pytest.raises(QualityGateFailed, match=r"readable_dates_last_contact_at on members: 1 row"):
        pre_archive_gate(_step(club))
    assert ids(club, "members") == list(range(1, 9))  # (the text cannot even be read back as a date)


def test_null_start_dates_are_quarantined_and_listed_never_moved(club):
    result = run_category(club, club_policy())
    members = result.plan.tables[0]
    assert (members.missing_start, members.missing_start_sample) == (1, [6])
    assert 6 in ids(club, "members")


def test_a_future_start_date_stops_the_run_before_any_row_moves(club):
    with club.engine.begin() as conn:
        table = "members" if club.is_sqlite else "club.members"
        conn.execute(
            text(f"UPDATE {table} SET last_contact_at = :d WHERE member_id = 8"),
            {"d": datetime(2031, 1, 1, 10, tzinfo=PARIS)},
        )
    _refused(club, lambda: pre_archive_gate(_step(club)), QualityGateFailed, r"no_future_last_contact_at on members")


def _plain_tables(target, with_duplicate=False, with_orphan=False):
    """Two tables without any key constraint: what a careless legacy schema looks like."""
    md, _ = schema_metadata(target, "club")
    people = Table("people", md, Column("person_id", Integer), Column("seen_at", DateTime(timezone=True)))
    notes = Table("notes", md, Column("note_id", Integer), Column("person_id", Integer), Column("body", String(50)))
    md.create_all(target.engine)
    old = datetime(2020, 1, 1, 10, tzinfo=PARIS)
    with target.engine.begin() as conn:
        conn.execute(
            insert(people),
            [{"person_id": 1, "seen_at": old}, {"person_id": 2, "seen_at": old}]
            + ([{"person_id": 2, "seen_at": old}] if with_duplicate else []),
        )
        conn.execute(
            insert(notes),
            [{"note_id": 10, "person_id": 1, "body": "n"}]
            + ([{"note_id": 99, "person_id": 404, "body": "orphan"}] if with_orphan else []),
        )
    return parse_policy(
        {
            "version": "plain-1",
            "source_schema": "club",
            "categories": {
                "members": {
                    "label": {"fr": "P", "en": "P"},
                    "legal_basis": "Contrat",
                    "archive_purpose": "Preuve",
                    "schedule": "0 1 * * *",
                    "active_period": "P3Y",
                    "archive_period": "P5Y",
                    "end_action": "delete",
                    "deletion_limit": {"fraction": 1.0},
                    "tables": [
                        {
                            "table": "people",
                            "primary_key": "person_id",
                            "start_event": {"column": "seen_at", "when_missing": "defect"},
                            "archive_columns": ["seen_at"],
                            "children": [
                                {
                                    "table": "notes",
                                    "primary_key": "note_id",
                                    "foreign_key": "person_id",
                                    "archive_columns": ["body"],
                                }
                            ],
                        }
                    ],
                }
            },
        },
        "plain.yaml",
    )


def test_duplicate_primary_keys_stop_the_run_before_any_row_moves(target):
    policy = _plain_tables(target, with_duplicate=True)
    _refused(
        target,
        lambda: pre_archive_gate(_step(target, policy)),
        QualityGateFailed,
        r"expect_column_values_to_be_unique:person_id on people: 2 row",
    )


def test_a_child_row_pointing_at_no_parent_stays_where_it_is(target):
    """Documented safe behaviour: a child moves only with its parent, so an orphan is never
    moved or destroyed by the schedule; it stays in the active table for a person to fix."""
    policy = _plain_tables(target, with_orphan=True)
    run_category(target, policy)
    assert _values(target, "notes", "note_id") == [99] and _values(target, "notes", "note_id", archive=True) == [10]
    assert _values(target, "people", "person_id", archive=True) == [1, 2]


def _values(target, name, column, archive=False):
    table = Table(
        name,
        MetaData(),
        schema="archive" if archive else (None if target.is_sqlite else "club"),
        autoload_with=target.engine,
    )
    with target.read() as conn:
        return sorted(conn.execute(select(table.c[column])).scalars())


def test_rows_archived_under_an_earlier_policy_version_keep_their_dates(club):
    """Documented: a new version applies to rows it archives; rows already archived keep the
    retention_until their version stamped (the DPO report shows both versions)."""
    run_category(club, club_policy())
    before = {r["member_id"]: (r["retention_until"], r["policy_version"]) for r in archive_rows(club, "members")}
    data = _club(archive_period="P1Y")
    data["version"] = "club-2"
    run_category(club, parse_policy(data, "club.yaml"), run_id="run-2")
    after = {r["member_id"]: (r["retention_until"], r["policy_version"]) for r in archive_rows(club, "members")}
    assert all(after[m] == before[m] for m in after if m in before)
    assert {v for _, v in after.values()} == {"club-1"}


def test_a_policy_changed_between_the_plan_and_the_archive_of_one_run_is_refused(club):
    plan_category(_step(club))
    data = _club()
    data["version"] = "club-2"
    changed = _step(club, parse_policy(data, "club.yaml"))
    _refused(
        club,
        lambda: archive_category(changed),
        RetentionError,
        r"policy changed during run hostile-run: planned under version 'club-1', now 'club-2'",
    )


def test_an_archive_table_that_no_longer_matches_the_policy_is_refused(club):
    run_category(club, club_policy())
    data = _club()
    _members_table(data)["archive_columns"].append("notes")
    data["version"] = "club-2"
    _refused(
        club,
        lambda: run_category(club, parse_policy(data, "club.yaml"), run_id="run-2"),
        PolicyError,
        r"archive\.members.*lacks column\(s\) notes.*ALTER TABLE",
    )


@pytest.mark.parametrize("size", [0, -1, 10**9])
def test_a_batch_size_of_zero_or_huge_given_to_a_step_is_refused(club, size):
    approved = {"members:active": 10, "members:archive": 10}
    _refused(
        club,
        lambda: archive_category(_step(club), size, approved),
        RetentionError,
        rf"batch_size {size} for category members: give a whole number from 1 to 1,000,000",
    )
    _refused(club, lambda: purge_category(_step(club), size, approved), RetentionError, r"batch_size")


def test_an_identifier_carrying_sql_in_a_request_is_only_ever_a_bound_value(club):
    if not club.is_sqlite:
        with club.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
    before = checksum(club)
    result = erase(
        club,
        club_policy(),
        Subject.of({"email": "x'OR'1'='1@y.fr"}),
        KEY,
        RunContext("manual__r", "subject_request", AS_OF, "club-1"),
    )
    assert result.no_data_held and checksum(club) == before


@pytest.mark.parametrize("identifier", ["' OR 1=1 --", "member1@example.fr; DELETE FROM members", ""])
def test_a_malformed_identifier_is_refused_before_anything_is_written(identifier):
    with pytest.raises(RetentionError, match="e-mail address|empty"):
        Subject.of({"email": identifier})


def test_a_legal_hold_key_carrying_sql_names_no_row_and_is_refused(club):
    new = NewHold("RG-1", "rows", "Litige", "dpo", table="members", keys=["1 OR 1=1"])
    _refused(
        club,
        lambda: add_hold(club, club_policy(), new, KEY, RunContext("m", "legal_hold", AS_OF, "club-1"), AS_OF),
        RetentionError,
        r"key\(s\) of .*members name no row.*1 OR 1=1",
    )


def test_a_deletion_past_the_limit_without_approval_is_refused_before_the_first_batch(club):
    _refused(
        club,
        lambda: run_category(club, club_policy(), approve=False),
        RetentionError,
        r"5 of 8 rows of members \(62\.5%\) would leave the active base; the limit is 100000 rows and 20%: "
        r"this needs an approval",
    )


def test_an_approval_for_fewer_rows_than_are_due_is_refused(club):
    step = _step(club)
    plan_category(step)
    _refused(
        club, lambda: archive_category(step, approved={"members:active": 2}), RetentionError, r"only 2 were approved"
    )


def test_an_as_of_date_in_the_future_cannot_end_a_legal_hold_early(club):
    add_hold(
        club,
        club_policy(),
        NewHold("RG-2", "rows", "Litige", "dpo", table="members", keys=[1], expires_on=date(2027, 1, 1)),
        KEY,
        RunContext("m", "legal_hold", AS_OF, "club-1"),
        AS_OF,
    )
    run_category(club, club_policy(), date(2027, 6, 1))
    assert 1 in ids(club, "members")


# --- File names derived from a reference or a run id (issue 15, item 8) -----------------------


def _access_request(crm, reference: str, email: str):
    from crm_helpers import AS_OF as CRM_AS_OF

    from include.retention.rights.requests import RequestRecord, handle

    received = datetime(2026, 11, 20, 9, tzinfo=PARIS)
    request = RequestRecord(reference, "access", received.date(), True, requester_email=email)
    ctx = RunContext(f"manual__{len(reference)}", "subject_request", CRM_AS_OF, "test")
    return handle(crm, load_policy(), KEY, request, Subject.of({"email": email}), ctx, received, None, False)


def _exported_emails(path) -> tuple[str, set[str]]:
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("subject.json"))
    emails = {
        row["email"].strip().lower()
        for tables in document["data"].values()
        for sides in tables.values()
        for rows in sides.values()
        for row in rows
        if row.get("email")
    }
    return document["request"]["reference"], emails


def test_access_requests_whose_references_read_alike_never_share_an_export(crm, tmp_path, monkeypatch):
    """``DDP/2026/0042`` and ``DDP:2026:0042`` both read ``DDP_2026_0042``: each person's
    register entry must point to a file holding their own data, not the other's."""
    from crm_helpers import EMAIL, crm_table

    monkeypatch.setenv("RETENTION_EXPORTS_DIR", str(tmp_path))
    prospects = crm_table(crm, "prospects")
    with crm.read() as conn:
        other = conn.execute(
            select(prospects.c.email)
            .where(prospects.c.email.is_not(None))
            .order_by(prospects.c.prospect_id.desc())
            .limit(1)
        ).scalar_one()
    jeanne = _access_request(crm, "DDP/2026/0042", EMAIL)
    someone_else = _access_request(crm, "DDP:2026:0042", other)

    assert jeanne.outcome["export"] != someone_else.outcome["export"]
    assert _exported_emails(jeanne.outcome["export"]) == ("DDP/2026/0042", {EMAIL.lower()})
    assert _exported_emails(someone_else.outcome["export"]) == ("DDP:2026:0042", {other.strip().lower()})


def test_a_very_long_reference_gets_a_bounded_export_name_of_its_own(crm, tmp_path, monkeypatch):
    """The register holds references of up to 64 characters; the export itself takes any
    length (Airflow run ids reach 250) and still writes a name a file system accepts."""
    from crm_helpers import EMAIL

    from include.retention.rights.export import export_subject

    monkeypatch.setenv("RETENTION_EXPORTS_DIR", str(tmp_path / "exports"))
    long_reference = "DDP-" + "x" * 400
    with crm.read() as conn:
        path, counts = export_subject(conn, crm, load_policy(), Subject.of({"email": EMAIL}), long_reference, "access")
        twin, _ = export_subject(
            conn, crm, load_policy(), Subject.of({"email": EMAIL}), long_reference[:-1] + "y", "access"
        )
    assert path.parent == tmp_path / "exports" and len(path.name.encode()) <= 100 and path.name.startswith("DDP-xxx")
    assert counts and _exported_emails(path) == (long_reference, {EMAIL.lower()})
    assert twin != path and _exported_emails(path)[0] == long_reference  # the twin did not overwrite it
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == sorted(
        [path.name, twin.name]
    )  # no partial file left


@pytest.mark.parametrize(
    "text",
    [
        "DDP/2026/0042",
        "DDP:2026:0042",
        "DDP_2026_0042",
        "../../etc/passwd",
        "manual__2026-11-26T10:00:00+00:00",
        "manual__2026-11-26T10_00_00_00_00",
        "é" * 300,
        "..",
        "",
    ],
)
def test_a_name_made_from_a_reference_or_run_id_is_one_bounded_file_name_part(text):
    from include.retention.files import unique_name

    name = unique_name(text)
    assert "/" not in name and not name.startswith(".") and 17 <= len(name.encode()) <= 81
    others = {
        "DDP/2026/0042",
        "DDP:2026:0042",
        "DDP_2026_0042",
        "manual__2026-11-26T10:00:00+00:00",
        "manual__2026-11-26T10_00_00_00_00",
    } - {text}
    assert name not in {unique_name(o) for o in others}

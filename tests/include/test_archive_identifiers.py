"""An archived row stays findable by every identifier its table's policy declares
(``subject_identifiers``), even one its ``archive_columns`` do not list: a legal hold or an
erasure given by phone alone must reach the person's archived rows, and "was X erased?" must
count them. On SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from crm_helpers import KEY, crm_table
from engine_helpers import CLUB_POLICY, archive_rows, club_policy, create_club, run_category
from sqlalchemy import Column, Integer, MetaData, Table, select, update

from include.retention.database.archive_tables import archive_layout
from include.retention.database.identity import Subject
from include.retention.database.reflect import Side
from include.retention.database.store import hold_tables
from include.retention.errors import PolicyError, RetentionError
from include.retention.policy.load import load_policy
from include.retention.records.audit import RunContext
from include.retention.records.held_rows import HoldsInForce
from include.retention.records.holds import NewHold, add_hold
from include.retention.reports.describe import category_doc
from include.retention.rights.erased import was_erased
from include.retention.rights.erasure import erase
from include.retention.schedule.context import StepContext, open_step

# A phone written the way a CRM user types it; the request gives it another way.
STORED_PHONE, ASKED_PHONE = "+33 7.99.88.77.66", "07 99 88 77 66"
ARCHIVED_ON, END_OF_LIFE = date(2026, 11, 26), date(2031, 1, 10)


def _archive_a_prospect_with_a_phone(crm) -> int:
    """One prospect with a phone no one else has, last contacted on 4 January 2021: the
    prospection run of 26 November 2026 archives it (3 years active), and its end of life,
    4 January 2024 plus 5 years in the archive, is before ``END_OF_LIFE``."""
    prospects = crm_table(crm, "prospects")
    with crm.engine.begin() as conn:
        prospect = conn.execute(select(prospects.c.prospect_id).order_by(prospects.c.prospect_id)).scalars().first()
        conn.execute(
            update(prospects)
            .where(prospects.c.prospect_id == prospect)
            .values(phone=STORED_PHONE, email="lone.prospect@example.fr", last_inbound_contact_at=date(2021, 1, 4))
        )
    run_category(crm, load_policy(), ARCHIVED_ON, category="prospection", run_id="r-archive", subject_key=KEY)
    assert _archived(crm, prospect), "the fixture must put the prospect in the archive"
    return prospect


def _archived(target, prospect: int) -> bool:
    archive = crm_table(target, "prospects", archive=True)
    with target.read() as conn:
        return conn.execute(select(archive.c.prospect_id).where(archive.c.prospect_id == prospect)).first() is not None


def test_the_archive_layout_keeps_every_identifier_the_policy_declares():
    policy = load_policy()
    for category in policy.categories.values():
        for node in (n for table in category.tables for n in table.walk()):
            kept = archive_layout(node).kept
            for kind, columns in node.subject_identifiers.items():
                assert set(columns) <= set(kept), f"{node.table}: {kind} identifier not kept in the archive"
    prospects = next(t for t in policy.categories["prospection"].tables if t.table == "prospects")
    assert "phone" not in prospects.archive_columns  # the case the layout must add


def test_an_archived_prospect_held_by_phone_alone_outlives_its_end_of_life(crm):
    policy = load_policy()
    prospect = _archive_a_prospect_with_a_phone(crm)
    ctx = RunContext("manual__hold-phone", "legal_hold", date(2026, 11, 27), policy.version)
    add_hold(
        crm,
        policy,
        NewHold(
            reference="LIT-PHONE",
            scope="subject",
            reason="litige",
            created_by="juriste",
            subject=Subject.of({"phone": ASKED_PHONE}),
        ),
        KEY,
        ctx,
        date(2026, 11, 27),
    )
    run_category(crm, policy, END_OF_LIFE, category="prospection", run_id="r-eol", subject_key=KEY)
    assert _archived(crm, prospect)


def test_without_the_hold_the_same_archived_prospect_is_destroyed_at_end_of_life(crm):
    """The control of the test above: its prospect is really at end of life on that day."""
    prospect = _archive_a_prospect_with_a_phone(crm)
    run_category(crm, load_policy(), END_OF_LIFE, category="prospection", run_id="r-eol", subject_key=KEY)
    assert not _archived(crm, prospect)


def test_a_phone_only_erasure_erases_the_archived_prospect_and_says_so(crm):
    policy = load_policy()
    prospect = _archive_a_prospect_with_a_phone(crm)
    before = was_erased(crm, policy, KEY, "phone", ASKED_PHONE)
    assert before.archived_rows >= 1 and before.verdict != "erased"
    result = erase(
        crm,
        policy,
        Subject.of({"phone": ASKED_PHONE}),
        KEY,
        RunContext("manual__erase-phone", "subject_request", date(2026, 11, 27), policy.version),
    )
    assert not result.no_data_held
    assert not _archived(crm, prospect)
    after = was_erased(crm, policy, KEY, "phone", ASKED_PHONE)
    assert (after.active_rows, after.archived_rows, after.verdict) == (0, 0, "erased")


def _club_table_archiving_no_email() -> dict:
    """The members table with its e-mail declared as an identifier but not archived."""
    table = copy.deepcopy(CLUB_POLICY["categories"]["members"]["tables"][0])
    table["archive_columns"] = ["full_name", "postcode", "spend", "joined_on"]
    return table


def test_an_identifier_kept_only_for_rights_requests_is_blanked_by_anonymisation(target):
    create_club(target)
    table = _club_table_archiving_no_email()
    table["anonymize"] = {"full_name": "null", "postcode": {"prefix": 2}, "spend": {"round": 100}, "joined_on": "year"}
    table["children"][0]["anonymize"] = {"happened_at": "month"}
    table["children"][0]["children"][0]["anonymize"] = {"file_name": "null"}
    run_category(target, club_policy(end_action="anonymize", tables=[table]))
    rows = {r["member_id"]: r for r in archive_rows(target, "members")}
    assert rows[4]["anonymized"] is True and rows[4]["email"] is None  # past 8 years: anonymised
    assert rows[5]["email"] == "member5@example.fr"  # archived, kept: still findable by its e-mail


def test_an_old_archive_table_without_an_identifier_column_is_refused_naming_it_and_why(target):
    create_club(target)
    policy = club_policy(tables=[_club_table_archiving_no_email()])
    run_category(target, policy, as_of=date(2000, 1, 1))  # creates the archive tables, moves nothing
    with target.engine.begin() as conn:  # the table an earlier engine made: no e-mail column
        conn.exec_driver_sql("DROP TABLE archive.members")
        conn.exec_driver_sql(
            "CREATE TABLE archive.members (member_id INTEGER PRIMARY KEY, full_name VARCHAR(100), "
            "postcode VARCHAR(10), spend NUMERIC(10, 2), joined_on DATE, retention_start DATE, "
            "retention_until DATE, archived_at TIMESTAMP, policy_version VARCHAR(64), run_id VARCHAR(250), "
            "anonymized BOOLEAN NOT NULL)"
        )
    why = r"archive\.members.*lacks column\(s\) email;.*email is a subject identifier of members"
    with pytest.raises(PolicyError, match=why):
        run_category(target, policy, run_id="run-2")


def test_a_hold_meeting_a_table_without_a_declared_identifier_column_fails_instead_of_skipping_it(target):
    create_club(target)
    policy = club_policy()
    step = StepContext.build(
        target, policy, "members", RunContext("r", "retention_members", date(2026, 11, 26), policy.version), KEY
    )
    (root,) = open_step(step, create_archive=False)
    root.archive = Table("members", MetaData(), Column("member_id", Integer, primary_key=True), schema="archive")
    holds = HoldsInForce(hold_tables("archive"), date(2026, 11, 26), subjects=True, key=KEY, dialect=target.dialect)
    with pytest.raises(RetentionError, match=r"archive\.members has no column email.*subject_identifiers"):
        holds.held(root, Side.ARCHIVE, "members")


def test_the_schedule_in_words_lists_the_identifiers_kept_for_rights_requests():
    doc = category_doc(load_policy(), load_policy().categories["prospection"], "en")
    line = next(line for line in doc.splitlines() if line.startswith("- `prospects`"))
    assert "archived columns: first_name, last_name, email, company" in line
    assert "kept to find the person on a rights request or legal hold: phone" in line

"""Batches side by side on PostgreSQL (``batch_workers``): the same rows move, once each, and a
failing batch rolls back alone while the others commit whole."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest
from engine_helpers import CLUB_POLICY, audit_events, create_club, ids, run_category
from sqlalchemy import text

from include.retention.database.store import audit_table
from include.retention.database.target import connect
from include.retention.policy.load import parse_policy
from include.retention.records.audit import verify_chain
from scripts.throwaway_postgres import fresh_postgres_database

# 300 members, one contact every ten days back from 2026: about two thirds are due.
CONTACTS = {m: date(2026, 11, 1) - timedelta(days=10 * m) for m in range(1, 301)}
DUE = {m for m, day in CONTACTS.items() if day <= date(2023, 11, 26)}
TABLES = ("members", "member_events", "member_event_files")


@pytest.fixture
def pg(postgres_server: str):
    target = connect(fresh_postgres_database(postgres_server), "archive")
    yield target
    target.dispose()


def policy(workers: int):
    data = copy.deepcopy(CLUB_POLICY)
    data["batch_workers"] = workers
    data["categories"]["members"]["archive_period"] = "P50Y"  # nothing reaches its end of life here
    return parse_policy(data, source="club.yaml")


def children_of(members: set[int]) -> dict[str, set[int]]:
    return {
        "members": members,
        "member_events": {m * 10 + k for m in members for k in (1, 2)},
        "member_event_files": {m * 100 + k for m in members for k in (1, 2)},
    }


def test_four_workers_archive_every_due_row_exactly_once(pg):
    create_club(pg, CONTACTS)
    result = run_category(pg, policy(4), batch_size=7)
    for table, archived in children_of(DUE).items():
        assert set(ids(pg, table, archive=True)) == archived
        assert set(ids(pg, table)) == children_of(set(CONTACTS) - DUE)[table]
    events = audit_events(pg, policy(4), action="archive")
    assert len([e for e in events if e["table_name"] == "members"]) == -(-len(DUE) // 7)  # one event a batch
    for table in TABLES:
        assert sum(e["row_count"] for e in events if e["table_name"] == table) == result.archived[table]
    with pg.read() as conn:  # batches committing side by side still chain their events one after another
        assert verify_chain(conn, audit_table("archive", policy(4).audit_table)).intact


def test_a_batch_that_fails_beside_others_rolls_back_alone_and_the_walk_stops(pg):
    create_club(pg, CONTACTS)
    failing = sorted(DUE)[len(DUE) // 2]
    with pg.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION club.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN IF OLD.member_id = {failing} THEN RAISE EXCEPTION 'boom'; END IF; "
                "RETURN OLD; END $$"
            )
        )
        conn.execute(
            text("CREATE TRIGGER refuse BEFORE DELETE ON club.members FOR EACH ROW EXECUTE FUNCTION club.refuse()")
        )
    with pytest.raises(Exception, match="boom"):
        run_category(pg, policy(3), batch_size=7)
    archived = set(ids(pg, "members", archive=True))
    assert failing not in archived and archived < DUE  # the failing batch and those after it stayed
    assert archived  # the batches before it, and beside it, committed whole
    moved = children_of(archived)
    stayed = children_of(set(CONTACTS) - archived)
    events = audit_events(pg, policy(3), action="archive")
    for table in TABLES:  # every row in exactly one place, children with their parent, all audited
        assert set(ids(pg, table, archive=True)) == moved[table]
        assert set(ids(pg, table)) == stayed[table]
        assert sum(e["row_count"] for e in events if e["table_name"] == table) == len(moved[table])

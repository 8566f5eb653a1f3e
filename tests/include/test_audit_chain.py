"""The audit trail is append-only in the database and tamper-evident by its hash chain,
on SQLite and on PostgreSQL. Tampering tests first drop the triggers, as someone with
DDL rights could; the chain must still name the first event that does not hold."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DatabaseError

from engine_helpers import club_policy, create_club, run_category
from include.retention import certificate
from include.retention.audit import GENESIS, audit_table, check_anchors, event_hash, verify_chain


@pytest.fixture
def logged(target):
    """A target whose audit log holds two runs' events."""
    create_club(target)
    run_category(target, club_policy())
    run_category(target, club_policy(), run_id="run-2")
    return target


AUDIT = audit_table("archive", "retention_audit")


def _table():
    return AUDIT


def _verify(target):
    with target.read() as conn:
        return verify_chain(conn, _table())


def _drop_triggers(target):
    with target.engine.begin() as conn:
        if target.is_sqlite:
            conn.execute(text('DROP TRIGGER "archive"."retention_audit_no_update"'))
            conn.execute(text('DROP TRIGGER "archive"."retention_audit_no_delete"'))
        else:
            conn.execute(text('DROP TRIGGER "retention_audit_append_only" ON "archive"."retention_audit"'))


def test_an_untouched_log_verifies(logged):
    report = _verify(logged)
    assert report.intact and report.events > 10


def test_the_database_refuses_to_update_an_event(logged):
    with pytest.raises(DatabaseError, match="append-only"), logged.engine.begin() as conn:
        conn.execute(update(_table()).where(_table().c.event_id == 2).values(row_count=0))


def test_the_database_refuses_to_delete_an_event(logged):
    with pytest.raises(DatabaseError, match="append-only"), logged.engine.begin() as conn:
        conn.execute(delete(_table()).where(_table().c.event_id == 2))
    assert _verify(logged).intact


def test_an_altered_event_is_named(logged):
    _drop_triggers(logged)
    with logged.engine.begin() as conn:
        conn.execute(update(_table()).where(_table().c.event_id == 3).values(row_count=999))
    report = _verify(logged)
    assert (report.broken_at, report.reason) == (3, "its content no longer matches its hash")


def test_a_removed_event_is_named(logged):
    _drop_triggers(logged)
    with logged.engine.begin() as conn:
        conn.execute(delete(_table()).where(_table().c.event_id == 4))
    report = _verify(logged)
    assert report.broken_at == 4 and "missing" in report.reason


def test_reordered_events_are_named(logged):
    _drop_triggers(logged)
    table = _table()
    with logged.engine.begin() as conn:
        rows = {r.event_id: dict(r._mapping) for r in conn.execute(select(table).where(table.c.event_id.in_([2, 3])))}
        for source, destination in ((2, 3), (3, 2)):
            moved = {k: v for k, v in rows[source].items() if k != "event_id"}
            conn.execute(update(table).where(table.c.event_id == destination).values(**moved))
    assert _verify(logged).broken_at == 2


def test_a_forged_event_inserted_in_the_middle_is_named(logged):
    """The forger renumbers the later events and hashes the forgery correctly: the next link breaks."""
    _drop_triggers(logged)
    table = _table()
    with logged.engine.begin() as conn:
        last = conn.execute(select(table.c.event_id).order_by(table.c.event_id.desc()).limit(1)).scalar_one()
        for event_id in range(last, 4, -1):
            conn.execute(update(table).where(table.c.event_id == event_id).values(event_id=event_id + 1))
        before = dict(conn.execute(select(table).where(table.c.event_id == 4)).one()._mapping)
        forged = {**before, "event_id": 5, "action": "delete", "row_count": 0, "prev_hash": before["event_hash"]}
        forged["event_hash"] = event_hash(forged)
        conn.execute(insert(table).values(**forged))
    report = _verify(logged)
    assert (report.broken_at, report.reason) == (6, "does not link to the event before it")


def test_the_first_event_links_to_the_genesis_hash(logged):
    with logged.read() as conn:
        first = conn.execute(select(_table()).order_by(_table().c.event_id).limit(1)).one()
    assert first.prev_hash == GENESIS and first.event_id == 1


def _rewrite_whole_chain(target, event_id: int, **changes) -> None:
    """The attack the chain alone cannot see: change one event, then re-hash every event."""
    _drop_triggers(target)
    table = _table()
    with target.engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.event_id))]
        conn.execute(delete(table))
        previous = GENESIS
        for row in rows:
            row.update(changes if row["event_id"] == event_id else {})
            row["prev_hash"] = previous
            row["event_hash"] = previous = event_hash(row)
            conn.execute(insert(table).values(**row))


def test_a_log_rewritten_from_the_start_is_caught_by_the_certificates_hashes(logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    for run_id in ("run-1", "run-2"):
        with logged.read() as conn:
            certificate.write(certificate.build(conn, _table(), club_policy(), run_id))
    with logged.read() as conn:
        assert check_anchors(conn, _table(), certificate.anchors()) == []
    _rewrite_whole_chain(logged, 3, row_count=12345)
    assert _verify(logged).intact  # consistent again: the chain alone is fooled
    with logged.read() as conn:
        mismatches = check_anchors(conn, _table(), certificate.anchors())
    assert mismatches and all("has another hash in the log" in m for m in mismatches)
    assert "run-1.certificate.json" in mismatches[0]

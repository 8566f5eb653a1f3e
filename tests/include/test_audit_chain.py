"""The audit trail is append-only in the database and tamper-evident by its hash chain,
on SQLite and on PostgreSQL. Tampering tests first drop the triggers, as someone with
DDL rights could; the chain must still name the first event that does not hold."""

from __future__ import annotations

from datetime import UTC

import pytest
from engine_helpers import club_policy, create_club, run_category
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DatabaseError

from include.retention.database.store import audit_table
from include.retention.records.audit import GENESIS, check_anchors, event_hash, verify_chain
from include.retention.reports import certificate


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
        assert check_anchors(conn, _table(), certificate.anchors().hashes) == []
    _rewrite_whole_chain(logged, 3, row_count=12345)
    assert _verify(logged).intact  # consistent again: the chain alone is fooled
    with logged.read() as conn:
        mismatches = check_anchors(conn, _table(), certificate.anchors().hashes)
    assert mismatches and all("has another hash in the log" in m for m in mismatches)
    assert " named in run-1~" in mismatches[0]


def _certify(target, *run_ids):
    for run_id in run_ids:
        with target.read() as conn:
            certificate.write(certificate.build(conn, _table(), club_policy(), run_id))


def _status(target, directory=None):
    with target.read() as conn:
        return certificate.chain_status(conn, _table(), directory)


def test_a_log_that_agrees_with_its_certificates_is_intact(logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1", "run-2")
    status = _status(logged)
    assert status.intact and status.certificates == 2 and status.events == _verify(logged).events
    assert status.sentence().startswith("intact:")


def test_a_log_rewritten_consistently_is_not_intact_though_its_chain_verifies(logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1", "run-2")
    _rewrite_whole_chain(logged, 3, row_count=12345)
    status = _status(logged)
    assert status.chain_holds and not status.intact
    assert status.sentence().startswith("REWRITTEN") and " named in run-1~" in status.sentence()


def test_a_broken_chain_is_not_intact_and_names_the_event(logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _drop_triggers(logged)
    with logged.engine.begin() as conn:
        conn.execute(update(_table()).where(_table().c.event_id == 3).values(row_count=999))
    status = _status(logged)
    assert (status.intact, status.broken_at) == (False, 3) and "event 3" in status.sentence()


def test_a_recreated_log_is_not_compared_with_the_certificates_of_another_log(tmp_path, monkeypatch):
    """Two SQLite targets share one reports folder: each log is compared with its own
    certificates only, though their DAG, run ids and event ids are the same."""
    from include.retention.database.target import connect

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    first, second = (connect(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    try:
        for target, run_id in ((first, "run-a"), (second, "run-b")):
            create_club(target)
            run_category(target, club_policy(), run_id=run_id)
            _certify(target, run_id)
        one, other = _status(first), _status(second)
    finally:
        first.dispose()
        second.dispose()
    assert one.intact and other.intact
    assert (one.certificates, one.other_logs) == (1, 1) and (other.certificates, other.other_logs) == (1, 1)
    assert one.audit_log.endswith("a.db archive.retention_audit") and one.audit_log != other.audit_log


def test_a_certificate_of_another_log_is_never_overwritten(tmp_path, monkeypatch):
    from include.retention.database.target import connect
    from include.retention.errors import RetentionError

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    first, second = (connect(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    try:
        for target in (first, second):
            create_club(target)
            run_category(target, club_policy(), run_id="scheduled__same")
        _certify(first, "scheduled__same")
        with pytest.raises(RetentionError, match="another audit log .*a.db"):
            _certify(second, "scheduled__same")
        _certify(first, "scheduled__same")  # the same log may issue its certificate again
    finally:
        first.dispose()
        second.dispose()


def test_the_certificate_names_its_log_without_credentials(logged):
    with logged.read() as conn:
        named = certificate.build(conn, _table(), club_policy(), "run-1").audit_log
    assert named.endswith(" archive.retention_audit")
    url = logged.engine.url
    if url.password:
        assert url.password not in named and f"{url.username}@" not in named
        assert named.startswith(f"postgresql://{url.host}:{url.port or 5432}/{url.database} ")


# -- recorded_at across the change of column type (include/retention/dates/instants.py) ----------


def _legacy_events(target) -> list[dict]:
    """Two events as the version before ``UtcDateTime`` wrote them: ``DateTime(timezone=True)``,
    which on SQLite keeps UTC text without its offset. Their hashes are computed here, from the
    canonical form the chain has always used, not by the code under test."""
    import hashlib
    import json
    from datetime import date, datetime

    from sqlalchemy import Boolean, Column, Date, DateTime, Integer, MetaData, String, Table, Text

    from include.retention.database.store import ensure_audit_table

    legacy = Table(
        "retention_audit",
        MetaData(),
        Column("event_id", Integer, primary_key=True),
        Column("recorded_at", DateTime(timezone=True)),
        *(Column(n, String) for n in ("run_id", "dag_id", "category", "table_name", "action", "policy_version")),
        Column("row_count", Integer),
        Column("as_of", Date),
        Column("dry_run", Boolean),
        Column("details", Text),
        Column("subject_hash", String),
        Column("prev_hash", String),
        Column("event_hash", String),
        schema="archive",
    )
    moments = [
        datetime(2026, 11, 30, 23, 30, 0, 123456, tzinfo=UTC),  # 1 December in Paris
        datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
    ]  # no fraction of a second
    events, previous = [], GENESIS
    for event_id, moment in enumerate(moments, start=1):
        event = {
            "event_id": event_id,
            "recorded_at": moment,
            "run_id": "legacy-run",
            "dag_id": "retention_members",
            "category": "members",
            "table_name": "members",
            "action": "archive",
            "row_count": 3,
            "policy_version": "club-0",
            "as_of": date(2026, 12, 1),
            "dry_run": False,
            "details": '{"batches":1}',
            "subject_hash": None,
            "prev_hash": previous,
        }
        serialised = json.dumps(
            [
                event_id,
                moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "legacy-run",
                "retention_members",
                "members",
                "members",
                "archive",
                3,
                "club-0",
                "2026-12-01",
                False,
                '{"batches":1}',
                None,
                previous,
            ],
            separators=(",", ":"),
            ensure_ascii=True,
        )
        event["event_hash"] = previous = hashlib.sha256(serialised.encode()).hexdigest()
        events.append(event)
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        ensure_audit_table(conn, _table())
        conn.execute(insert(legacy), events)
    return events


def test_a_log_written_before_recorded_at_kept_its_zone_still_verifies_and_grows(target):
    legacy = _legacy_events(target)
    if target.is_sqlite:  # the old representation really is what is stored: UTC text, no offset
        with target.read() as conn:
            stored = conn.execute(text("SELECT recorded_at FROM archive.retention_audit ORDER BY event_id")).scalars()
            assert list(stored) == ["2026-11-30 23:30:00.123456", "2026-12-01 02:00:00.000000"]
    assert _verify(target).intact and _verify(target).events == 2
    with target.read() as conn:
        read = [dict(r._mapping) for r in conn.execute(select(_table()).order_by(_table().c.event_id))]
    assert [r["recorded_at"] for r in read] == [e["recorded_at"] for e in legacy]
    assert [event_hash(r) for r in read] == [e["event_hash"] for e in legacy]
    create_club(target)
    run_category(target, club_policy())  # the new version appends to the same chain
    report = _verify(target)
    assert report.intact and report.events > 2


def test_a_dropped_log_whose_certificates_remain_is_not_intact(logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1")
    with logged.engine.begin() as conn:
        _table().drop(conn)
    status = _status(logged)
    assert not status.intact and status.events == 0
    assert status.sentence().startswith(
        "REMOVED: the audit log is missing, though 1 run certificate(s) and 0 daily anchor(s) name it"
    )


def test_a_dropped_log_fails_the_daily_verification(logged, tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    daily = _daily_verification(monkeypatch, logged)
    _certify(logged, "run-1")
    with logged.engine.begin() as conn:
        conn.execute(text('DROP TABLE "archive"."retention_audit"'))
    with pytest.raises(AirflowFailException, match="the audit log is missing, though 1 run certificate"):
        daily()


def test_an_emptied_log_whose_certificates_remain_is_not_intact_and_fails_the_daily_verification(
    logged, tmp_path, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    daily = _daily_verification(monkeypatch, logged)
    _certify(logged, "run-1", "run-2")
    _drop_triggers(logged)
    with logged.engine.begin() as conn:
        conn.execute(delete(_table()))
    status = _status(logged)
    assert (status.intact, status.events) == (False, 0) and status.to_dict()["intact"] is False
    assert status.sentence().startswith(
        "EMPTIED: the audit log is empty, though 2 run certificate(s) and 0 daily anchor(s) name it"
    )
    with pytest.raises(AirflowFailException, match="the audit log is empty, though 2 run certificate"):
        daily()


def test_a_log_not_written_yet_with_no_certificate_is_intact(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    status = _status(target)
    assert status.intact and (status.events, status.certificates) == (0, 0)


def test_an_unreadable_certificate_is_named(logged, tmp_path, monkeypatch):
    from include.retention.errors import RetentionError

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    (tmp_path / "retention_members").mkdir()
    (tmp_path / "retention_members" / "broken.certificate.json").write_text("{not json")
    with pytest.raises(RetentionError, match="broken.certificate.json is not a run certificate"):
        _status(logged)


# -- certificates that name another log: an identity spelt differently must not read "intact" ------


def _rename_log_in_certificates(directory, rename):
    import json

    for path in directory.glob("*/*.certificate.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        data["audit_log"] = rename(data["audit_log"])
        path.write_text(json.dumps(data), encoding="utf-8")


def test_a_log_whose_certificates_all_name_another_log_is_not_verified_and_not_intact(logged, tmp_path, monkeypatch):
    """The same log reached by another name (a mount path, a host alias): its certificates are
    set aside, none is compared, and the log must not read as verified against them."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1", "run-2")
    other = "postgresql://db-alias.example.org:5432/elsewhere archive.retention_audit"
    _rename_log_in_certificates(tmp_path, lambda _: other)
    status = _status(logged)
    assert status.chain_holds and (status.certificates, status.other_logs) == (0, 2)
    assert not status.intact and status.to_dict()["intact"] is False
    assert status.sentence().startswith(
        f"NOT VERIFIED against its anchors: 2 certificate(s) or anchor(s) in {tmp_path} name another log ({other})"
    )


def test_a_log_with_its_own_certificates_beside_another_logs_is_intact_and_says_what_was_left_aside(
    tmp_path, monkeypatch
):
    """Several targets may share one reports folder by design: the others' certificates are
    mentioned, not held against this log."""
    from include.retention.database.target import connect

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    first, second = (connect(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    try:
        for target, run_id in ((first, "run-a"), (second, "run-b")):
            create_club(target)
            run_category(target, club_policy(), run_id=run_id)
            _certify(target, run_id)
        one = _status(first)
    finally:
        first.dispose()
        second.dispose()
    assert one.intact and (one.certificates, one.other_logs) == (1, 1)
    assert one.sentence().startswith("intact: ")
    assert (
        "hashes of 1 run certificate(s) and 0 daily anchor(s) matched; 1 certificate(s) or anchor(s) of "
        "another log left aside ("
    ) in one.sentence()
    assert "b.db archive.retention_audit" in one.sentence()


def test_an_sqlite_log_reached_through_a_symbolic_link_is_the_same_log(tmp_path, monkeypatch):
    from include.retention.database.target import connect

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    direct, linked = (
        connect(f"sqlite:///{tmp_path / 'real' / 't.db'}"),
        connect(f"sqlite:///{tmp_path / 'link' / 't.db'}"),
    )
    try:
        create_club(direct)
        run_category(direct, club_policy())
        _certify(linked, "run-1")  # the certificate written by a component that reaches it by the link
        status = _status(direct)
    finally:
        direct.dispose()
        linked.dispose()
    assert status.intact and (status.certificates, status.other_logs) == (1, 0)


@pytest.mark.parametrize(
    "written",
    [
        "postgresql://DB.Example.ORG:5432/retention archive.retention_audit",
        "postgresql://db.example.org/retention archive.retention_audit",
        "postgresql://db.example.org:5432/retention archive.retention_audit",
    ],
)
def test_a_postgresql_log_named_with_another_host_case_or_without_its_default_port_is_the_same_log(tmp_path, written):
    import json
    from types import SimpleNamespace

    from sqlalchemy.engine import make_url

    conn = SimpleNamespace(
        engine=SimpleNamespace(url=make_url("postgresql://retention:s3cret@DB.example.org/retention"))
    )
    identity = certificate.log_identity(conn, _table())
    assert identity == "postgresql://db.example.org:5432/retention archive.retention_audit"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x.certificate.json").write_text(
        json.dumps(
            {"first_event": 1, "first_hash": "a" * 64, "last_event": 2, "last_hash": "b" * 64, "audit_log": written}
        )
    )
    found = certificate.anchors(tmp_path, identity)
    assert (found.certificates, found.other_logs) == (1, 0)


@pytest.mark.parametrize(
    "lang, said",
    [("en", "NOT VERIFIED against the run certificates"), ("fr", "NON VÉRIFIÉ par les certificats d'exécution")],
)
def test_the_dpo_report_says_a_log_whose_certificates_name_another_log_was_not_verified(lang, said):
    from html import unescape

    from include.retention.reports import dpo_render

    status = certificate.ChainStatus(
        "sqlite:////data/t.db archive.retention_audit",
        12,
        other_logs=2,
        other_log="sqlite:////mnt/t.db archive.retention_audit",
        reports="/reports",
    )
    paragraph = unescape(dpo_render._chain_paragraph(status, lang))
    assert "class='ko'" in paragraph and said in paragraph
    assert "2" in paragraph and "sqlite:////mnt/t.db archive.retention_audit" in paragraph


def _daily_verification(monkeypatch, target):
    """retention_audit_verify's task as the scheduler runs it - the DAG file's own callable -
    on this target (its policy and connection swapped in), with the default reports folder."""
    import importlib.util
    from contextlib import contextmanager
    from pathlib import Path

    from include.retention_airflow import evidence_tasks
    from include.retention_airflow.targets import Site

    @contextmanager
    def this_target(policy, conn_id):
        yield target

    monkeypatch.setattr(Site, "policy", lambda site: club_policy())
    monkeypatch.setattr(evidence_tasks, "open_target", this_target)
    dag_file = Path(__file__).resolve().parents[2] / "dags" / "retention_audit_verify.py"
    spec = importlib.util.spec_from_file_location("retention_audit_verify_under_test", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.retention_audit_verify.get_task("verify_chain").python_callable


def test_the_daily_verification_fails_on_a_log_whose_certificates_all_name_another_log(logged, tmp_path, monkeypatch):
    """The verdict is chain_status's, and a log verified against no certificate must not pass."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    daily = _daily_verification(monkeypatch, logged)
    _certify(logged, "run-1", "run-2")
    assert daily()["intact"] is True
    _rename_log_in_certificates(tmp_path, lambda named: named.replace("archive.", "/mnt/alias archive.", 1))
    for path in (tmp_path / "audit_anchors").glob("*.anchor.json"):  # the anchor of the first day as well
        path.unlink()
    with pytest.raises(AirflowFailException, match=r"NOT VERIFIED against its anchors: 2 certificate\(s\) or anchor"):
        daily()


# -- daily anchors: events no run certificate covers (erasures, requests, holds) ------------------


def _log_erasure(target, row_count: int = 1) -> int:
    """An erasure's event, as subject_request writes it (no category run, no certificate)."""
    from engine_helpers import AS_OF

    from include.retention.records.audit import RunContext, record

    ctx = RunContext(run_id="manual__erasure", dag_id="subject_request", as_of=AS_OF, policy_version="club-1")
    with target.engine.begin() as conn:
        record(conn, _table(), ctx, category="members", action="erase", row_count=row_count, subject_hash="ab" * 32)
        return conn.execute(select(_table().c.event_id).order_by(_table().c.event_id.desc()).limit(1)).scalar_one()


def _anchor_files(directory):
    return sorted((directory / "audit_anchors").glob("*.anchor.json"))


def test_the_daily_verification_anchors_the_head_it_verified_beside_the_certificates(logged, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    daily = _daily_verification(monkeypatch, logged)
    _certify(logged, "run-1", "run-2")
    last = _log_erasure(logged)
    verdict = daily()
    (anchor,) = _anchor_files(tmp_path)
    written = json.loads(anchor.read_text(encoding="utf-8"))
    with logged.read() as conn:
        head = conn.execute(select(_table().c.event_hash).where(_table().c.event_id == last)).scalar_one()
    assert (written["last_event"], written["last_hash"], written["events"]) == (last, head, last)
    assert written["audit_log"] == verdict["audit_log"] and verdict["anchor"] == str(anchor)
    assert "example" not in anchor.read_text()  # hashes and counts only
    status = _status(logged)
    assert status.intact and (status.certificates, status.daily_anchors, status.anchored_to) == (2, 1, last)


def test_an_erasure_event_removed_after_the_last_certificate_is_caught_by_the_daily_anchor(
    logged, tmp_path, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    daily = _daily_verification(monkeypatch, logged)
    _certify(logged, "run-1", "run-2")
    last = _log_erasure(logged)
    daily()
    _drop_triggers(logged)
    with logged.engine.begin() as conn:  # the tail no certificate names: the chain still holds without it
        conn.execute(delete(_table()).where(_table().c.event_id == last))
    assert _verify(logged).intact
    status = _status(logged)
    assert not status.intact and status.sentence().startswith("REWRITTEN")
    assert f"event {last} named in {_anchor_files(tmp_path)[0].name} is missing from the log" in status.mismatches
    with pytest.raises(AirflowFailException, match=f"event {last} named in .*anchor.json is missing"):
        daily()
    assert len(_anchor_files(tmp_path)) == 1  # a log that fails is never anchored


def test_an_erasure_event_edited_and_rehashed_after_the_last_certificate_is_caught_by_the_daily_anchor(
    logged, tmp_path, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    daily = _daily_verification(monkeypatch, logged)
    _certify(logged, "run-1", "run-2")
    last = _log_erasure(logged)
    daily()
    _rewrite_whole_chain(logged, last, row_count=0)  # "nothing was erased", hashes recomputed
    assert _verify(logged).intact
    status = _status(logged)
    assert not status.intact
    assert status.mismatches == (
        f"event {last} named in {_anchor_files(tmp_path)[0].name} has another hash in the log",
    )
    with pytest.raises(AirflowFailException, match="has another hash in the log"):
        daily()


def test_a_log_of_erasures_only_is_pinned_by_its_daily_anchors(target, tmp_path, monkeypatch):
    """No category run ever certified it: the daily anchors alone catch a log emptied or rewritten."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    daily = _daily_verification(monkeypatch, target)
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        from include.retention.database.store import ensure_audit_table

        ensure_audit_table(conn, _table())
    _log_erasure(target)
    daily()
    _log_erasure(target)
    daily()
    status = _status(target)
    assert status.intact and (status.certificates, status.daily_anchors, status.anchored_to) == (0, 2, 2)
    _rewrite_whole_chain(target, 1, row_count=7)
    assert _status(target).sentence().startswith("REWRITTEN") and len(_status(target).mismatches) == 2
    with target.engine.begin() as conn:
        conn.execute(delete(_table()))
    assert (
        _status(target)
        .sentence()
        .startswith("EMPTIED: the audit log is empty, though 0 run certificate(s) and 2 daily anchor(s) name it")
    )


def test_events_after_the_last_anchor_are_named_as_not_anchored_yet(logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1", "run-2")
    with logged.read() as conn:
        certified = certificate.build(conn, _table(), club_policy(), "run-2").last_event
    last = _log_erasure(logged)
    status = _status(logged)
    assert status.intact and status.anchored_to == certified < last
    assert f"event(s) after #{certified} not anchored yet" in status.sentence()


def test_anchors_of_another_log_in_the_same_folder_are_left_aside(tmp_path, monkeypatch):
    from include.retention.database.target import connect

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    first, second = (connect(f"sqlite:///{tmp_path / name}") for name in ("a.db", "b.db"))
    try:
        for one, run_id in ((first, "run-a"), (second, "run-b")):
            create_club(one)
            run_category(one, club_policy(), run_id=run_id)
            _certify(one, run_id)
            _daily_verification(monkeypatch, one)()
        status = _status(first)
    finally:
        first.dispose()
        second.dispose()
    assert len(_anchor_files(tmp_path / "reports")) == 2
    assert status.intact and (status.certificates, status.daily_anchors, status.other_logs) == (1, 1, 2)


def test_a_log_whose_only_anchors_name_another_log_is_not_verified(target, tmp_path, monkeypatch):
    """A log of erasures only (no run, so no certificate to expect): its daily anchor alone pins it."""
    import json

    from include.retention.database.store import ensure_audit_table

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        ensure_audit_table(conn, _table())
    _log_erasure(target)
    _daily_verification(monkeypatch, target)()
    (anchor,) = _anchor_files(tmp_path)
    anchor.write_text(json.dumps({**json.loads(anchor.read_text()), "audit_log": "sqlite:////elsewhere.db x.y"}))
    status = _status(target)
    assert status.unverified and not status.intact and status.other_log == "sqlite:////elsewhere.db x.y"


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        '{"audit_log": "x", "last_event": "1", "last_hash": "ab"}',
        '{"audit_log": "x", "last_event": 0, "last_hash": "' + "a" * 64 + '"}',
    ],
)
def test_an_unreadable_anchor_is_named(logged, tmp_path, monkeypatch, content):
    from include.retention.errors import RetentionError

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    (tmp_path / "audit_anchors").mkdir()
    (tmp_path / "audit_anchors" / "broken.anchor.json").write_text(content)
    with pytest.raises(RetentionError, match="broken.anchor.json is not an audit anchor that can be read"):
        _status(logged)


def test_anchors_written_at_the_same_instant_for_two_logs_or_twice_never_overwrite_each_other(tmp_path):
    from datetime import datetime

    from include.retention.records import anchors

    now = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    paths = [
        anchors.write("sqlite:////a.db archive.retention_audit", 5, "a" * 64, tmp_path, now),
        anchors.write("sqlite:////b.db archive.retention_audit", 5, "b" * 64, tmp_path, now),
        anchors.write("sqlite:////a.db archive.retention_audit", 5, "a" * 64, tmp_path, now),
    ]
    assert len(set(paths)) == 3 and len(_anchor_files(tmp_path)) == 3
    assert all(len(p.name) < 100 for p in paths)


def test_the_dpo_report_says_what_the_daily_verification_says_after_a_tail_rewrite(logged, tmp_path, monkeypatch):
    """The report, like the Retention view, reads chain_status: the daily anchors count there too."""
    from test_dpo_report import _report

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1", "run-2")
    last = _log_erasure(logged)
    _daily_verification(monkeypatch, logged)()
    assert _report(logged).chain.intact
    _rewrite_whole_chain(logged, last, row_count=0)
    chain = _report(logged).chain
    assert chain.chain_holds and not chain.intact and chain.mismatches == _status(logged).mismatches


def test_years_of_anchors_are_compared_whatever_their_number(logged):
    """Ten years of nightly certificates for seven categories and daily anchors name more
    events than one statement may bind (SQLite 32,766, PostgreSQL 65,535 parameters)."""
    with logged.read() as conn:
        head = conn.execute(
            select(_table().c.event_id, _table().c.event_hash).order_by(_table().c.event_id.desc()).limit(1)
        ).one()
        many = [(event_id, "f" * 64, "old.certificate.json") for event_id in range(head.event_id + 1, 70_001)]
        mismatches = check_anchors(conn, _table(), [(head.event_id, head.event_hash, "x.anchor.json"), *many])
    assert (
        len(mismatches) == len(many)
        and mismatches[0] == f"event {head.event_id + 1} named in old.certificate.json is missing from the log"
    )


# -- fail-closed: a verdict reached by comparing nothing is not "intact" -------------------------


def test_a_log_with_events_and_no_reports_folder_is_not_verified(logged, tmp_path):
    status = _status(logged, tmp_path / "not-mounted")
    assert not status.intact and status.unverified and status.reports_missing
    assert status.sentence().startswith("NOT VERIFIED") and "not-mounted" in status.sentence()


def test_the_daily_verification_fails_and_creates_no_reports_folder_when_it_is_missing(logged, tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "not-mounted"))
    daily = _daily_verification(monkeypatch, logged)
    with pytest.raises(AirflowFailException, match="NOT VERIFIED"):
        daily()
    assert not (tmp_path / "not-mounted").exists()


def test_an_anchor_is_never_written_where_the_reports_folder_is_missing(tmp_path):
    from include.retention.errors import RetentionError
    from include.retention.records import anchors

    with pytest.raises(RetentionError, match="reports folder .*missing"):
        anchors.write("sqlite:////t.db archive.retention_audit", 3, "a" * 64, tmp_path / "not-mounted")
    assert not (tmp_path / "not-mounted").exists()


def test_an_audit_anchors_folder_replaced_by_a_file_is_named(logged, tmp_path, monkeypatch):
    from include.retention.errors import RetentionError

    (tmp_path / "audit_anchors").write_text("x")
    with pytest.raises(RetentionError, match="audit_anchors is not a folder"):
        _status(logged, tmp_path)


@pytest.mark.parametrize("create", [False, True], ids=["no log table", "empty log table"])
def test_an_empty_or_missing_log_beside_only_another_logs_anchors_is_not_verified(tmp_path, monkeypatch, create):
    """The connection pointed at another database: every certificate and anchor names the old
    log; the new one, with no event, must not read as verified."""
    from include.retention.database.store import ensure_audit_table
    from include.retention.database.target import connect

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    real, other = (connect(f"sqlite:///{tmp_path / name}") for name in ("real.db", "other.db"))
    try:
        create_club(real)
        run_category(real, club_policy())
        _certify(real, "run-1")
        create_club(other) if create else None
        if create:
            with other.engine.begin() as conn:
                ensure_audit_table(conn, _table())
        status = _status(other)
        assert status.events == 0 and status.unverified and not status.intact
        assert status.sentence().startswith("NOT VERIFIED")
    finally:
        real.dispose()
        other.dispose()


def test_a_run_whose_certificate_was_deleted_is_named_as_missing(logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1", "run-2")
    assert _status(logged).intact
    for path in (tmp_path / "retention_members").glob("run-2~*"):
        path.unlink()
    status = _status(logged)
    assert not status.intact and status.missing_certificates == ("run-2 (retention_members)",)
    assert status.sentence().startswith("CERTIFICATES MISSING: run run-2 (retention_members)")


def test_a_dry_run_and_a_run_whose_certificate_failure_was_recorded_need_no_certificate(logged, tmp_path, monkeypatch):
    from engine_helpers import AS_OF

    from include.retention.records.audit import RunContext, record

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1")
    run_category(logged, club_policy(), run_id="dry", dry_run=True)
    ctx = RunContext("run-2", "retention_members", AS_OF, "club-1")
    with logged.engine.begin() as conn:  # what tasks.summary records when the certificate cannot be written
        record(
            conn,
            _table(),
            ctx,
            category="members",
            action="validation",
            row_count=0,
            details={
                "suite": "certificate",
                "expectation": "deletion_certificate_written",
                "success": False,
                "blocking": True,
            },
        )
    status = _status(logged)
    assert status.intact and status.missing_certificates == ()


@pytest.mark.parametrize(
    "field, value",
    [
        ("first_event", None),
        ("last_event", "3"),
        ("last_event", 0),
        ("first_hash", None),
        ("last_hash", "ab"),
        ("first_event", True),
    ],
)
def test_a_certificate_with_a_null_or_malformed_event_id_or_hash_is_named_not_a_crash(
    logged, tmp_path, monkeypatch, field, value
):
    import json

    from include.retention.errors import RetentionError

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    _certify(logged, "run-1")
    (path,) = (tmp_path / "retention_members").glob("*.certificate.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    with pytest.raises(RetentionError, match=f"{path.name} is not a run certificate that can be read"):
        _status(logged)

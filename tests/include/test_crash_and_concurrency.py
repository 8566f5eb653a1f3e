"""Crash-safety and concurrency, on PostgreSQL and SQLite.

A real run in a process of its own is killed with SIGKILL in the middle of a batch of
``archive``, and of ``purge``, then run again. Rows are never lost, duplicated or orphaned,
the audit log holds no event of the batch that died, and the chain still verifies.
Two runs of one category cannot interleave, and the application's own writes wait at most
about one batch while a run works (the figure is measured and written out).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from engine_helpers import AS_OF, club_policy, create_club, run_category
from sqlalchemy import MetaData, Table, func, select, update

from include.retention.database.store import audit_table
from include.retention.database.target import connect
from include.retention.files import reports_dir
from include.retention.records.audit import RunContext, events, verify_chain
from include.retention.records.locks import CategoryBusy, category_step, release_lease, take_lease
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts
from include.retention.schedule.plan import plan_category

CRASH_RUN = Path(__file__).with_name("crash_run.py")
MEMBERS = 1500
# One member every three days from 2014: 2014-2018 end of life, 2018-2023 archive, the rest active.
CONTACTS = {m: date(2014, 1, 1) + timedelta(days=3 * m) for m in range(1, MEMBERS + 1)}


@pytest.fixture
def big_club(target):
    create_club(target, CONTACTS)
    return target


def _table(target, name, archive=False):
    schema = "archive" if archive else (None if target.is_sqlite else "club")
    return Table(name, MetaData(), schema=schema, autoload_with=target.engine)


def _pairs(target, name, key, parent=None, archive=False):
    table = _table(target, name, archive)
    columns = [table.c[key]] + ([table.c[parent]] if parent else [])
    with target.read() as conn:
        return conn.execute(select(*columns)).all()


def _state(target):
    """Every key, active and archived, with the parent key of each child row."""
    archived = _exists(target, "members")
    return {
        side: {
            "members": [r[0] for r in _pairs(target, "members", "member_id", archive=side == "archive")],
            "events": _pairs(target, "member_events", "event_id", "member_id", archive=side == "archive"),
            "files": _pairs(target, "member_event_files", "file_id", "event_id", archive=side == "archive"),
        }
        if side == "active" or archived
        else {"members": [], "events": [], "files": []}
        for side in ("active", "archive")
    }


def _exists(target, name):
    from sqlalchemy import inspect

    with target.read() as conn:
        return inspect(conn).has_table(name, schema="archive")


def _deleted_by_audit(target, table):
    with target.read() as conn:
        return sum(
            e["row_count"]
            for e in events(conn, audit_table("archive", "retention_audit"), action="delete", table_name=table)
        )


def _assert_whole(target, original):
    """Nothing lost, nothing twice, no orphan; what is gone is exactly what the log says was deleted."""
    state = _state(target)
    for name, key_count in (("members", MEMBERS), ("events", 2 * MEMBERS), ("files", 2 * MEMBERS)):
        active = [r if name == "members" else r[0] for r in state["active"][name]]
        archived = [r if name == "members" else r[0] for r in state["archive"][name]]
        assert len(set(active)) == len(active) and len(set(archived)) == len(archived), f"{name}: a key twice"
        assert not set(active) & set(archived), f"{name}: a row both active and archived"
        table = {"members": "members", "events": "member_events", "files": "member_event_files"}[name]
        assert len(active) + len(archived) + _deleted_by_audit(target, table) == key_count, f"{name}: rows lost"
        assert set(active) | set(archived) <= original[name]
    for side in ("active", "archive"):
        members = set(state[side]["members"])
        event_ids = {e for e, _ in state[side]["events"]}
        assert all(m in members for _, m in state[side]["events"]), f"{side}: an event without its member"
        assert all(e in event_ids for _, e in state[side]["files"]), f"{side}: a file without its event"
    trail = audit_table("archive", "retention_audit")
    with target.read() as conn:
        assert verify_chain(conn, trail).intact
        moved = sum(e["row_count"] for e in events(conn, trail, action="archive", table_name="members"))
    # Every archived member was archived by a logged batch: the batch that died left no event.
    assert moved == len(state["archive"]["members"]) + _deleted_by_audit(target, "members")


def _original(target):
    state = _state(target)
    return {
        "members": set(state["active"]["members"]),
        "events": {e for e, _ in state["active"]["events"]},
        "files": {f for f, _ in state["active"]["files"]},
    }


def _kill_in_the_middle(target, url, step, tmp_path, batch=5):
    """Start the run in another process, wait until it is inside a batch of ``step``, SIGKILL it."""
    marker = tmp_path / f"in-{step}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, str(CRASH_RUN), url, step, str(batch), str(marker)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(
                f"the run ended before batch {batch} of {step}: {child.stderr.read().decode()[-2000:]}"
            )
        assert time.monotonic() < deadline, f"the run never reached batch {batch} of {step}"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stderr.close()


@pytest.mark.parametrize("step", ["archive", "purge"])
def test_a_run_killed_in_the_middle_of_a_batch_loses_duplicates_and_orphans_nothing(
    big_club, target_url, tmp_path, step
):
    original = _original(big_club)
    _kill_in_the_middle(big_club, target_url, step, tmp_path)
    if step == "purge":
        assert _deleted_by_audit(big_club, "members") > 0, "killed after some purge batches had committed"
    _assert_whole(big_club, original)

    rerun = run_category(connect(target_url), club_policy(), batch_size=50, run_id="rerun")
    _assert_whole(big_club, original)
    left = rerun.plan.tables[0]
    assert (left.due_for_archive if step == "archive" else left.due_for_end_of_life) > 0, "work was left to redo"
    after = run_category(big_club, club_policy(), run_id="check", dry_run=True).plan.tables[0]
    assert (after.due_for_archive, after.due_for_end_of_life) == (0, 0), "the rerun finished the work"


def _ctx(run_id):
    return RunContext(run_id, "retention_members", AS_OF, "club-1")


def test_a_second_run_of_a_category_waits_until_the_first_has_finished(big_club):
    take_lease(big_club, "members", "run-a", "retention_members")
    with (
        pytest.raises(CategoryBusy, match="being enforced by run 'run-a'"),
        category_step(big_club, "members", "run-b", "retention_members"),
    ):
        pass
    with category_step(big_club, "members", "run-a", "retention_members"):  # the holder's next step goes on
        pass
    release_lease(big_club, "members", "run-a")
    with category_step(big_club, "members", "run-b", "retention_members"):
        pass


def test_a_step_and_its_zombie_twin_never_run_at_once_on_postgresql(big_club):
    if big_club.is_sqlite:
        pytest.skip("SQLite's write lock already serialises every batch: no step lock is needed there")
    with (
        category_step(big_club, "members", "run-a", "retention_members"),
        pytest.raises(CategoryBusy, match="running in another process"),
        category_step(
            connect(big_club.engine.url.render_as_string(hide_password=False)),
            "members",
            "run-a",
            "retention_members",
        ),
    ):
        pass


def test_the_applications_writes_wait_no_longer_than_about_one_batch(big_club, target_url, caplog):
    """The application keeps writing to the members table while a run archives it: its writes
    wait for at most the batch that holds their row (or the database), never for the run."""
    policy = club_policy()
    step = StepContext.build(big_club, policy, "members", _ctx("busy-run"))
    approved = approved_counts(plan_category(step))
    application = connect(target_url)
    members = _table(application, "members")
    waits: list[float] = []
    done = threading.Event()

    def write_continuously():
        member = 1
        while not done.is_set():
            started = time.perf_counter()
            with application.engine.begin() as conn:  # a due member: its row may be in the running batch
                conn.execute(update(members).where(members.c.member_id == member).values(notes="called back"))
            waits.append(time.perf_counter() - started)
            member = member % MEMBERS + 7
            time.sleep(0.005)  # an application writes often, not back to back

    writer = threading.Thread(target=write_continuously, daemon=True)
    with caplog.at_level(logging.DEBUG, logger="include.retention.schedule.archive"):  # a line per batch
        writer.start()
        archive_category(step, batch_size=100, approved=approved)
        done.set()
        writer.join(timeout=60)
    batches = [r.args[2] for r in caplog.records if r.msg.startswith("Archived batch")]
    figures = {
        "backend": big_club.dialect,
        "batches": len(batches),
        "batch_rows": 100,
        "longest_batch_s": round(max(batches), 4),
        "writes": len(waits),
        "longest_write_wait_s": round(max(waits), 4),
        "median_write_wait_s": round(sorted(waits)[len(waits) // 2], 4),
    }
    out = reports_dir() / "concurrency" / f"writer-wait-{big_club.dialect}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"\nconcurrent writer during archive: {figures}")
    assert len(batches) > 5 and len(waits) > 5
    # Relative to the same run's own batches (no absolute time): one batch, plus the writer's own
    # statement and, on SQLite, the busy handler's polling step (100 ms).
    assert max(waits) <= max(batches) + 0.25, figures
    with application.read() as conn:
        assert conn.execute(select(func.count()).select_from(members)).scalar_one() > 0
    application.dispose()

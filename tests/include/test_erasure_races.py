"""An erasure, or the application, racing a nightly batch - on a real PostgreSQL server, with two
real sessions: a batch paused inside its transaction (just before it moves its parent rows) in
one thread, the erasure or the application's insert in another.

* An erasure that meets a running batch waits for it (bounded: a clear error past the wait),
  then finds the person's rows wherever the batch put them and erases them, with an honest
  outcome.
* A child inserted by the application while its parent's batch runs, through a link the
  policy declares but the database does not (no foreign key), moves with its parent: the
  batch leaves no orphan.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest
from crm_helpers import KEY
from engine_helpers import AS_OF, club_policy, create_club
from sqlalchemy import MetaData, Table, event, insert, inspect, select, text

from include.retention.database.identity import Subject
from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.errors import RetentionError
from include.retention.records.audit import RunContext, events
from include.retention.rights.erasure import erase
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts
from include.retention.schedule.plan import plan_category

# Inside the batch's transaction, after its children moved, before its parent rows move.
MOVING_MEMBERS = re.compile(r"^(WITH \w+ AS\s*\(\s*)?DELETE FROM club\.members\b")
MEMBER = 1  # due for archive on AS_OF (engine_helpers.CONTACTS)
EMAIL = f"member{MEMBER}@example.fr"


@pytest.fixture
def club(target):
    if target.is_sqlite:
        pytest.skip("SQLite has one writer: BEGIN IMMEDIATE serialises a batch and any other write whole")
    create_club(target)
    return target


class PausedBatch:
    """The members' archive step in a thread of its own, stopped inside its first batch until
    ``release()``; its own engine, so its transaction is a session of its own."""

    def __init__(self, url: str) -> None:
        self.target = connect(url)
        self.paused, self._go = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.archived: dict[str, int] = {}
        event.listen(self.target.engine, "before_cursor_execute", self._pause)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _pause(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if MOVING_MEMBERS.match(statement.strip()) and not self.paused.is_set():
            self.paused.set()
            self._go.wait(120)

    def _run(self) -> None:
        try:
            policy = club_policy()
            step = StepContext.build(
                self.target,
                policy,
                "members",
                RunContext("scheduled__race", "retention_members", AS_OF, policy.version),
            )
            self.archived = archive_category(step, batch_size=100, approved=approved_counts(plan_category(step)))
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.error = exc

    def start(self) -> PausedBatch:
        self.thread.start()
        assert self.paused.wait(120), f"the batch never reached its parent rows: {self.error!r}"
        return self

    def release(self) -> None:
        self._go.set()
        self.thread.join(120)
        assert not self.thread.is_alive()
        self.target.dispose()
        if self.error is not None:
            raise self.error


class InThread:
    """``work()`` in a thread of its own; its result or its error once joined."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        try:
            self.result = work()
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.error = exc

    def join(self) -> object:
        self.thread.join(120)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def _wait_until_blocked_or_done(target: Target, work: InThread) -> None:
    """Until ``work`` has finished, or a session of this database waits for a lock (the batch's)."""
    deadline = time.monotonic() + 60
    while work.thread.is_alive():
        with target.read() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
        if waiting:
            return
        assert time.monotonic() < deadline, "neither blocked nor finished"
        time.sleep(0.02)


def _table(target: Target, name: str, archive: bool = False) -> Table:
    return Table(name, MetaData(), schema="archive" if archive else "club", autoload_with=target.engine)


def _keys(target: Target, name: str, column: str, archive: bool = False) -> list[tuple[int, int]]:
    table = _table(target, name, archive)
    key = list(table.primary_key.columns)[0]
    with target.read() as conn:
        return sorted(conn.execute(select(key, table.c[column])).all())


def _erase(url: str, **kwargs) -> object:
    other = connect(url)
    try:
        return erase(
            other,
            club_policy(),
            Subject.of({"email": EMAIL}),
            KEY,
            RunContext("manual__erase-race", "subject_request", AS_OF, "club-1"),
            **kwargs,
        )
    finally:
        other.dispose()


def test_an_erasure_meeting_a_running_batch_waits_for_it_then_erases_the_rows_where_the_batch_put_them(
    club, target_url
):
    batch = PausedBatch(target_url).start()
    erasure = InThread(lambda: _erase(target_url))
    _wait_until_blocked_or_done(club, erasure)
    batch.release()
    result = erasure.join()

    assert batch.archived["members"] > 0
    members = {(t.table, t.archive): (t.found, t.erased, t.kept_because) for t in result.tables}
    assert members[("members", True)] == (1, 1, None), members  # found in the archive, where the batch put it
    assert ("members", False) not in members  # no longer active: not reported as found there
    assert result.kept == 0 and result.erased == 5  # the member, its 2 events and their 2 files
    assert MEMBER not in [m for m, _ in _keys(club, "members", "email")]
    assert MEMBER not in [m for m, _ in _keys(club, "members", "email", archive=True)]
    assert [e for e, m in _keys(club, "member_events", "member_id", archive=True) if m == MEMBER] == []
    with club.read() as conn:
        erased = events(conn, audit_table("archive", "retention_audit"), action="erase", table_name="members")
    assert [(e["row_count"], e["details"]["kept"]) for e in erased] == [(1, 0)]


def test_an_erasure_that_waits_too_long_for_a_batch_fails_clearly_and_erases_nothing(club, target_url):
    batch = PausedBatch(target_url).start()
    try:
        with pytest.raises(
            RetentionError,
            match=r"waited 0\.5 s for a running retention batch.*nothing was "
            r"erased.*again",
        ) as failed:
            _erase(target_url, batch_wait=0.5)
        assert EMAIL not in str(failed.value)
    finally:
        batch.release()
    assert MEMBER in [m for m, _ in _keys(club, "members", "email", archive=True)]  # the batch's work stands
    with club.read() as conn:
        assert events(conn, audit_table("archive", "retention_audit"), action="erase") == []


def _drop_foreign_keys(target: Target) -> None:
    """The links stay declared in the policy only, as in a schema whose application keeps them."""
    with target.engine.begin() as conn:
        for name in ("member_events", "member_event_files"):
            for fk in inspect(conn).get_foreign_keys(name, schema="club"):
                conn.execute(text(f'ALTER TABLE club.{name} DROP CONSTRAINT "{fk["name"]}"'))


def test_a_child_inserted_while_its_parents_batch_runs_moves_with_its_parent_and_leaves_no_orphan(club, target_url):
    _drop_foreign_keys(club)
    moved_event = MEMBER * 10 + 1  # moved by the batch before the pause
    batch = PausedBatch(target_url).start()
    application = connect(target_url)
    events_table, files_table = _table(application, "member_events"), _table(application, "member_event_files")

    def insert_children() -> None:
        with application.engine.begin() as conn:  # a new event of the member, a new file of a moved event
            conn.execute(insert(events_table).values(event_id=9001, member_id=MEMBER, detail="late"))
            conn.execute(insert(files_table).values(file_id=90001, event_id=9001, file_name="late.pdf"))
            conn.execute(insert(files_table).values(file_id=90002, event_id=moved_event, file_name="late2.pdf"))

    app = InThread(insert_children)
    _wait_until_blocked_or_done(club, app)
    batch.release()
    app.join()
    application.dispose()

    active_members = {m for m, _ in _keys(club, "members", "email")}
    active_events = _keys(club, "member_events", "member_id")
    active_files = _keys(club, "member_event_files", "event_id")
    assert [(e, m) for e, m in active_events if m not in active_members] == [], "an event without its member"
    assert [(f, e) for f, e in active_files if e not in {e for e, _ in active_events}] == [], "a file without its event"
    assert (9001, MEMBER) in _keys(club, "member_events", "member_id", archive=True)
    assert {(90001, 9001), (90002, moved_event)} <= set(_keys(club, "member_event_files", "event_id", archive=True))
    with club.read() as conn:
        logged = sum(
            e["row_count"]
            for e in events(
                conn, audit_table("archive", "retention_audit"), action="archive", table_name="member_events"
            )
        )
    assert logged == len(_keys(club, "member_events", "member_id", archive=True))


def test_a_child_the_application_commits_while_an_erasure_runs_is_erased_with_its_parent_and_counted(club, target_url):
    """Links declared in the policy only: between the erasure's deletion of the member's events
    and of the member, the application commits a new event of the member (with a file) and a
    new file of an event already erased. None is left behind pointing at nothing, and the
    outcome and the audit count them."""
    _drop_foreign_keys(club)
    application = connect(target_url)
    events_table, files_table = _table(application, "member_events"), _table(application, "member_event_files")
    erased_event = MEMBER * 10 + 1
    eraser, inserted = connect(target_url), []

    @event.listens_for(eraser.engine, "before_cursor_execute")
    def _insert_children(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if MOVING_MEMBERS.match(statement.strip()) and not inserted:
            inserted.append(statement)
            with application.engine.begin() as app:  # another session, committed before the member goes
                app.execute(insert(events_table).values(event_id=9001, member_id=MEMBER, detail="late"))
                app.execute(insert(files_table).values(file_id=90001, event_id=9001, file_name="late.pdf"))
                app.execute(insert(files_table).values(file_id=90002, event_id=erased_event, file_name="late2.pdf"))

    policy = club_policy()
    try:
        result = erase(
            eraser,
            policy,
            Subject.of({"email": EMAIL}),
            KEY,
            RunContext("manual__erase-late", "subject_request", AS_OF, policy.version),
        )
    finally:
        eraser.dispose()
        application.dispose()
    assert inserted, "the erasure never deleted the member"
    members = {m for m, _ in _keys(club, "members", "email")}
    active_events = _keys(club, "member_events", "member_id")
    assert MEMBER not in members
    assert [e for e, m in active_events if m == MEMBER] == [], "an event of the erased member is left"
    assert [
        f for f, e in _keys(club, "member_event_files", "event_id") if e not in {e for e, _ in active_events}
    ] == [], "a file without its event"
    by_table = {(t.table, t.archive): (t.found, t.erased) for t in result.tables}
    assert by_table[("member_events", False)] == (3, 3)  # its 2 events and the late one
    assert by_table[("member_event_files", False)] == (4, 4)  # 2 files and the 2 late ones
    assert result.kept == 0
    with club.read() as conn:
        logged = events(conn, audit_table("archive", "retention_audit"), action="erase")
    assert sum(e["row_count"] for e in logged) == result.erased == 8


def test_a_row_both_held_and_needed_explains_one_kept_row_not_two(target, target_url):
    """Customer 8 is archived with invoices billing keeps, and under a hold on its row: kept,
    for both reasons. A second archived row of the same person, neither held nor needed,
    disappears (the application deleted it) between the erasure's counts and its deletions:
    nothing explains it, so the erasure must roll back - not report it kept under the hold
    because the one kept row was counted once as held and once as needed."""
    if target.is_sqlite:
        pytest.skip("SQLite has one writer: nothing deletes a row under the erasure")
    from engine_helpers import run_category
    from test_real_schemas import _erp_with_identifiers, create_erp

    from include.retention.policy.load import parse_policy
    from include.retention.records.holds import NewHold, add_hold

    create_erp(target)
    policy = parse_policy(_erp_with_identifiers())
    run_category(target, policy, category="customer_relationship")  # customer 8 archived with its invoices
    ctx = RunContext("manual__erp", "subject_request", AS_OF, policy.version)
    add_hold(
        target,
        policy,
        NewHold(reference="LIT-P8", scope="rows", reason="litige", created_by="juriste", table="partners", keys=[8]),
        KEY,
        ctx,
        AS_OF,
    )
    archived = _table(target, "customer_partners", archive=True)
    with target.engine.begin() as conn:  # a second archived row about the same person
        row = dict(conn.execute(select(archived).where(archived.c.partner_id == 8)).one()._mapping)
        conn.execute(insert(archived).values({**row, "partner_id": 9008}))
    application, eraser, vanished = connect(target_url), connect(target_url), []

    @event.listens_for(eraser.engine, "before_cursor_execute")
    def _application_deletes_it(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.strip().startswith("DELETE FROM") and not vanished:
            vanished.append(statement)
            with application.engine.begin() as app:
                app.execute(archived.delete().where(archived.c.partner_id == 9008))

    try:
        with pytest.raises(
            RetentionError,
            match=r"erasure of partners \(archive\): 2 row\(s\) found, 0 deleted, "
            "and no hold or kept row",
        ):
            erase(eraser, policy, Subject.of({"email": "P8@example.fr"}), KEY, ctx)
    finally:
        eraser.dispose()
        application.dispose()
    assert vanished, "the erasure deleted nothing"
    assert 8 in [k for k, _ in _keys(target, "customer_partners", "partner_id", archive=True)]

"""A worker killed (SIGKILL) at each step of an erasure request, on SQLite and PostgreSQL: the
same request, run again with the same reference, finishes the job exactly once - the person's
rows erased, one ``erase`` event per table, one completed ``rights_request`` event per
identifier, the register closed ``completed`` - or, if the dead worker had already committed,
is refused as completed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from crm_helpers import AS_OF, EMAIL, EMAIL_COLUMNS, KEY, PHONE, crm_table
from sqlalchemy import select

from include.retention.database import store
from include.retention.database.identity import Subject, normalised_sql, subject_hash
from include.retention.database.target import connect
from include.retention.errors import RetentionError
from include.retention.policy.load import load_policy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.rights.requests import handle

sys.path.insert(0, str(Path(__file__).parent))
from request_crash import RECEIVED, REFERENCE, request  # noqa: E402

SCRIPT = Path(__file__).with_name("request_crash.py")
STEPS = ["recording", "before_erasing", "mid_erasure", "closing", "completed"]


def _kill_at(url: str, step: str, tmp_path: Path) -> None:
    marker = tmp_path / f"at-{step}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, str(SCRIPT), url, step, str(marker)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"the request ended before step {step}: {child.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"the request never reached step {step}"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stderr.close()


def _retry(target):
    policy = load_policy()
    ctx = RunContext(f"manual__{REFERENCE}__retry", "subject_request", AS_OF, policy.version)
    return handle(target, policy, KEY, request(), Subject.of({"email": EMAIL}), ctx, RECEIVED)


def _jeanne_left(target) -> list:
    left = []
    for name in ("prospects", "customers", "suppliers", "web_form_submissions"):
        for archive in (False, True):
            table = crm_table(target, name, archive)
            column = table.c[EMAIL_COLUMNS[name]]
            with target.read() as conn:
                left += conn.execute(select(column).where(normalised_sql("email", column) == EMAIL.lower())).all()
    return left


@pytest.mark.parametrize("step", STEPS)
def test_an_erasure_request_killed_at_any_step_is_finished_once_by_running_it_again(crm, tmp_path, step):
    url = crm.engine.url.render_as_string(hide_password=False)
    _kill_at(url, step, tmp_path)
    if step == "completed":
        with pytest.raises(RetentionError, match=f"{REFERENCE}.*already in the register.*status completed"):
            _retry(crm)
    else:
        assert _retry(crm).status == "completed"

    register = crm_table(crm, "rights_requests")
    with crm.read() as conn:
        (row,) = conn.execute(select(register).where(register.c.reference == REFERENCE)).all()
        trail = store.audit_table("archive", "retention_audit")
        assert audit.verify_chain(conn, trail).intact
        requests = audit.events(conn, trail, action="rights_request")
        erasures = audit.events(conn, trail, action="erase")
    assert (row.status, row.closed_at is not None) == ("completed", True)
    outcome = json.loads(row.outcome)
    assert outcome["erased"] > 0 and _jeanne_left(crm) == []
    jeanne = subject_hash(KEY, "email", EMAIL)
    by_outcome = [e["details"]["outcome"] for e in requests if e["subject_hash"] == jeanne]
    assert sorted(by_outcome) == ["completed", "in_progress"]  # recorded once, completed once
    assert len(erasures) == len(outcome["tables"])  # one erase event per table side, not two
    assert sum(e["row_count"] for e in erasures) == outcome["erased"]


def test_two_live_workers_on_the_same_request_carry_it_out_once(crm):
    """A retry started while the first worker is still alive, mid-handling (PostgreSQL, two
    sessions): it waits for the first, then is refused as carried out - no second erasure."""
    if crm.is_sqlite:
        pytest.skip("SQLite's write lock makes the second worker wait at its first write: nothing to race")
    from request_crash import STEPS as KILL_POINTS
    from sqlalchemy import event
    from test_erasure_races import InThread, _wait_until_blocked_or_done

    url = crm.engine.url.render_as_string(hide_password=False)
    first_target, second_target = connect(url), connect(url)
    closing, go = KILL_POINTS["closing"][0], threading.Event()
    paused = threading.Event()

    @event.listens_for(first_target.engine, "before_cursor_execute")
    def _pause(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if closing.match(statement.strip()) and not paused.is_set():
            paused.set()
            go.wait(120)

    first = InThread(lambda: _retry(first_target))
    assert paused.wait(120), "the first worker never reached the closing of the request"
    second = InThread(lambda: _retry(second_target))
    _wait_until_blocked_or_done(crm, second)
    go.set()
    assert first.join().status == "completed"
    with pytest.raises(RetentionError, match=f"{REFERENCE}.*status completed.*another worker carried it out"):
        second.join()
    first_target.dispose()
    second_target.dispose()
    with crm.read() as conn:
        trail = store.audit_table("archive", "retention_audit")
        requests = audit.events(conn, trail, action="rights_request")
        erasures = audit.events(conn, trail, action="erase")
    assert sorted(
        e["details"]["outcome"] for e in requests if e["subject_hash"] == subject_hash(KEY, "email", EMAIL)
    ) == ["completed", "in_progress"]
    assert erasures and len({(e["table_name"], e["details"]["archive"]) for e in erasures}) == len(erasures)


def _someone_else(target) -> str:
    """The e-mail of a prospect who is not Jeanne."""
    table = crm_table(target, "prospects")
    with target.read() as conn:
        return conn.execute(
            select(table.c.email).where(
                table.c.email.is_not(None), normalised_sql("email", table.c.email) != EMAIL.lower()
            )
        ).first()[0]


def _rows_of(target, email: str) -> int:
    return len([row for row in _everyone_left(target) if row == email.strip().lower()])


def _everyone_left(target) -> list[str]:
    left = []
    for name in ("prospects", "customers", "suppliers", "web_form_submissions"):
        for archive in (False, True):
            table = crm_table(target, name, archive)
            column = table.c[EMAIL_COLUMNS[name]]
            with target.read() as conn:
                left += [v.strip().lower() for v in conn.execute(select(column).where(column.is_not(None))).scalars()]
    return left


@pytest.mark.parametrize("given", ["someone_else", "jeanne_and_someone_else", "jeanne_and_her_phone"])
def test_a_request_run_again_about_another_person_than_the_one_recorded_is_refused_and_erases_nothing(
    crm, tmp_path, given
):
    """The reference names Jeanne's request: run again with someone else's identifiers, or with
    more than she gave, it would erase (or export) another person's data under her entry."""
    url = crm.engine.url.render_as_string(hide_password=False)
    _kill_at(url, "before_erasing", tmp_path)  # recorded about Jeanne (her e-mail), nothing handled
    other = _someone_else(crm)
    identifiers = {
        "someone_else": {"email": other},
        "jeanne_and_someone_else": {"email": [EMAIL, other]},
        "jeanne_and_her_phone": {"email": EMAIL, "phone": PHONE},
    }[given]
    before = (_rows_of(crm, EMAIL), _rows_of(crm, other))
    policy = load_policy()
    ctx = RunContext(f"manual__{REFERENCE}__retry", "subject_request", AS_OF, policy.version)
    with pytest.raises(RetentionError, match=f"{REFERENCE}.*may not be the person it was recorded about") as refused:
        handle(crm, policy, KEY, request(), Subject.of(identifiers), ctx, RECEIVED)
    assert other not in str(refused.value) and EMAIL not in str(refused.value) and PHONE not in str(refused.value)
    assert (_rows_of(crm, EMAIL), _rows_of(crm, other)) == before and before[0] > 0 and before[1] > 0
    register = crm_table(crm, "rights_requests")
    with crm.read() as conn:
        assert (
            conn.execute(select(register.c.status).where(register.c.reference == REFERENCE)).scalar_one()
            == "in_progress"
        )
    assert _retry(crm).status == "completed"  # the same person: resumed
    assert _rows_of(crm, EMAIL) == 0 and _rows_of(crm, other) == before[1]

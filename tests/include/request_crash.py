"""An erasure request handled in a process of its own, that stops at a chosen step and waits
there to be killed: the victim of the request crash tests.

    python request_crash.py URL STEP MARKER

handles the erasure request ``DDP-CRASH-1`` about Jeanne (crm_helpers.EMAIL) on the demo CRM at
URL, as the ``subject_request`` task does. At STEP it writes MARKER and sleeps, so that the
test can SIGKILL it exactly there:

* ``recording``: the request's register row is written, its transaction not committed;
* ``before_erasing``: the request is recorded; the handling transaction is about to delete;
* ``mid_erasure``: some of the person's rows are deleted, the transaction not committed;
* ``closing``: everything is erased and audited, the register row marked completed, not
  committed;
* ``completed``: the handling has committed (the worker dies before reporting).
"""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]

from crm_helpers import AS_OF, EMAIL, KEY  # noqa: E402
from sqlalchemy import event  # noqa: E402

from include.retention.database.identity import Subject  # noqa: E402
from include.retention.database.target import connect  # noqa: E402
from include.retention.policy.load import load_policy  # noqa: E402
from include.retention.records.audit import RunContext  # noqa: E402
from include.retention.rights.requests import RequestRecord, handle  # noqa: E402

REFERENCE = "DDP-CRASH-1"
RECEIVED = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
# step -> (statement about to run, its occurrence)
STEPS = {
    "recording": (re.compile(r"^INSERT INTO \S*retention_audit\b"), 1),
    "before_erasing": (re.compile(r"^DELETE FROM "), 1),
    "mid_erasure": (re.compile(r"^DELETE FROM "), 3),
    "closing": (re.compile(r"^UPDATE \S*rights_requests SET .*\boutcome\b", re.S), 1),
}


def request() -> RequestRecord:
    return RequestRecord(REFERENCE, "erasure", RECEIVED.date(), True, requester_email=EMAIL)


def main(url: str, step: str, marker: str) -> None:
    target = connect(url)
    seen = 0

    def stop_here() -> None:
        Path(marker).write_text(step)
        time.sleep(600)  # any open transaction stays open until the test kills this process

    @event.listens_for(target.engine, "before_cursor_execute")
    def _stop(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        nonlocal seen
        if step in STEPS and STEPS[step][0].match(statement.strip()):
            seen += 1
            if seen == STEPS[step][1]:
                stop_here()

    policy = load_policy()
    ctx = RunContext(f"manual__{REFERENCE}", "subject_request", AS_OF, policy.version)
    handle(target, policy, KEY, request(), Subject.of({"email": EMAIL}), ctx, RECEIVED)
    if step == "completed":
        stop_here()
    raise SystemExit(f"the request ended without reaching step {step}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])

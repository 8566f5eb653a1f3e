"""A retention run in a process of its own, that stops in the middle of a batch and waits there
to be killed: the crash tests' victim.

    python crash_run.py URL STEP N MARKER

runs the club category (plan, archive, purge, summary, as the DAG does) on the database at
URL. At the N-th batch of STEP (``archive`` or ``purge``) - after the batch's rows were
copied or some deleted, before its transaction commits - it writes MARKER and sleeps, so
that the test can SIGKILL it at exactly that point.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent), str(HERE)]

from engine_helpers import club_policy, run_category  # noqa: E402
from sqlalchemy import event  # noqa: E402

from include.retention.database.target import connect  # noqa: E402

# The statement that deletes a batch's members: from the active table during ``archive``, from
# the archive during ``purge`` (both come after the batch's first writes, before its commit).
# On PostgreSQL the DELETE is inside the statement that moves or counts the rows
# (``WITH moved AS (DELETE ... RETURNING ...)``).
_IN_CTE = r"^(WITH \w+ AS\s*\(\s*)?"
STATEMENTS = {
    "archive": re.compile(_IN_CTE + r"DELETE FROM (club\.)?members\b"),
    "purge": re.compile(_IN_CTE + r'DELETE FROM "?archive"?\.members\b'),
}
BATCH_SIZE = 50


def main(url: str, step: str, n: int, marker: str) -> None:
    target = connect(url)
    seen = 0

    @event.listens_for(target.engine, "before_cursor_execute")
    def _stop_in_the_middle(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        nonlocal seen
        if STATEMENTS[step].match(statement.strip()):
            seen += 1
            if seen == n:
                Path(marker).write_text(step)
                time.sleep(600)  # the transaction stays open until the test kills this process

    run_category(target, club_policy(), batch_size=BATCH_SIZE, run_id="crashing-run")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])

"""How far a long walk has got, in the task log at a bounded rate.

Archive and purge walk a large table in batches for minutes. A line per batch floods the
log on a fast database (thousands of lines) and still does not say how far along the walk
is, nor when it will end. ``Progress`` says it: one line when the walk starts (the rows
due), then at most one every ``LOG_EVERY_SECONDS`` (rows done of the rows due, the share,
the rate so far and the time left at that rate), and one when it is over. Its lines name
the table and count rows: never what a row holds.

The clock is injected so that a test can move time on without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Seconds between two progress lines of one walk (the first and last lines are always written).
LOG_EVERY_SECONDS = 30.0

Clock = Callable[[], float]


class Progress:
    """The progress of one walk: ``action`` (``Archive``...) of ``table``, ``due`` rows.

    ``every``: seconds between two lines (``LOG_EVERY_SECONDS`` when not given, read when the
    walk starts); ``clock``: seconds on a monotonic scale."""

    def __init__(
        self,
        log: logging.Logger,
        action: str,
        table: str,
        due: int,
        *,
        every: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.log, self.action, self.table, self.due = log, action, table, due
        self.every = LOG_EVERY_SECONDS if every is None else every
        self.clock = clock
        self.done = 0
        self.started = self.last_line = clock()
        log.info("%s of %s: %s rows due", action, table, f"{due:,}")

    def advance(self, rows: int) -> None:
        """``rows`` more are done; a line if the last one is ``every`` seconds old."""
        self.done += rows
        now = self.clock()
        if now - self.last_line >= self.every:
            self.last_line = now
            self.log.info("%s", progress_line(self.action, self.table, self.done, self.due, now - self.started))

    def finish(self, per_table: dict[str, int]) -> None:
        """The last line: rows done of the rows due, the time it took, and the rows each table
        gave up (a parent's children move or go with it)."""
        seconds = self.clock() - self.started
        self.log.info(
            "%s of %s done: %s in %s (%s); rows per table: %s",
            self.action,
            self.table,
            done_words(self.done, self.due, share=False),
            duration_words(seconds),
            rate_words(self.done, seconds),
            per_table or "none",
        )


def progress_line(action: str, table: str, done: int, due: int, seconds: float) -> str:
    """``Archive of prospects: 12,000 of 50,000 rows (24%), 1,200 rows/s, about 32 s left``."""
    return (
        f"{action} of {table}: {done_words(done, due, share=True)}, {rate_words(done, seconds)}, "
        f"{time_left_words(done, due, seconds)}"
    )


def done_words(done: int, due: int, *, share: bool) -> str:
    """``12,000 of 50,000 rows (24%)``; past the rows due (more fell due while the walk ran):
    ``12 rows (10 were due when it started)`` - never more than all of them."""
    if done > due:
        return f"{done:,} rows ({due:,} were due when it started)"
    counted = f"{done:,} of {due:,} rows"
    if not share:
        return counted
    return f"{counted} ({100 if due == done else done * 100 // due}%)"


def rate_words(done: int, seconds: float) -> str:
    """``1,200 rows/s``; below a row a second, per minute (``18 rows/min``, ``< 1 row/min``):
    a slow walk is never said to stand still."""
    if seconds <= 0:
        return "rate not measured yet"
    per_second = done / seconds
    if done == 0 or per_second >= 1:
        return f"{per_second:,.0f} {_rows(per_second)}/s"
    per_minute = per_second * 60
    return f"{per_minute:,.0f} {_rows(per_minute)}/min" if per_minute >= 1 else "< 1 row/min"


def _rows(rate: float) -> str:
    return "row" if round(rate) == 1 else "rows"


def time_left_words(done: int, due: int, seconds: float) -> str:
    """The time the rows left take at the rate so far (unknown before the first row is done)."""
    if done >= due:
        return "nothing left of what was due"
    if done == 0 or seconds <= 0:
        return "time left unknown yet"
    return f"about {duration_words((due - done) * seconds / done)} left"


def duration_words(seconds: float) -> str:
    """``0.4 s``, ``45 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"

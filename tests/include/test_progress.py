"""Long archive and purge walks say how far they have got, at a bounded rate: rows done of
the rows due, the share, the rate and the time left, then a last line when they are done
(schedule/progress.py). The clock is a fake one: nothing here sleeps."""

from __future__ import annotations

import logging

import pytest
from engine_helpers import CONTACTS, club_policy, create_club, run_category

from include.retention.schedule import progress
from include.retention.schedule.progress import Progress, duration_words, progress_line

log = logging.getLogger("test_progress")


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_a_walk_of_a_thousand_batches_logs_a_line_per_interval_not_per_batch(caplog):
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger=log.name):
        walk = Progress(log, "Archive", "prospects", 10_000, every=30, clock=clock)
        for _ in range(1000):  # a batch of 10 rows every second, for 1000 s
            clock.now += 1
            walk.advance(10)
        walk.finish({"prospects": 10_000})
    written = lines(caplog)
    assert written[0] == "Archive of prospects: 10,000 rows due"
    assert len(written) == 1 + 1000 // 30 + 1  # the first line, one per 30 s, the last
    assert all(", about " in line or "nothing left" in line for line in written[1:-1])


def test_a_walk_shorter_than_the_interval_logs_its_first_and_last_lines_only(caplog):
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger=log.name):
        walk = Progress(log, "Deletion", "page_views", 50, every=30, clock=clock)
        for _ in range(5):
            clock.now += 0.5
            walk.advance(10)
        walk.finish({"page_views": 50})
    assert lines(caplog) == [
        "Deletion of page_views: 50 rows due",
        "Deletion of page_views done: 50 of 50 rows in 2.5 s (20 rows/s); rows per table: {'page_views': 50}",
    ]


def test_the_figures_are_rows_done_of_due_the_share_the_rate_and_the_time_left_at_that_rate(caplog):
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger=log.name):
        walk = Progress(log, "Archive", "prospects", 50_000, every=30, clock=clock)
        clock.now += 30
        walk.advance(12_000)  # 400 rows/s: the 38,000 left take 95 s
        clock.now += 10
        walk.advance(4_000)  # no line: the last is 10 s old
        clock.now += 110
        walk.advance(34_000)
        walk.finish({"prospects": 50_000, "interactions": 120_000})
    assert lines(caplog) == [
        "Archive of prospects: 50,000 rows due",
        "Archive of prospects: 12,000 of 50,000 rows (24%), 400 rows/s, about 1 min 35 s left",
        "Archive of prospects: 50,000 of 50,000 rows (100%), 333 rows/s, nothing left of what was due",
        "Archive of prospects done: 50,000 of 50,000 rows in 2 min 30 s (333 rows/s); "
        "rows per table: {'prospects': 50000, 'interactions': 120000}",
    ]


def test_before_the_first_row_the_time_left_is_unknown_and_the_last_line_says_done_with_what_was_due():
    assert progress_line("Archive", "t", 0, 100, 40) == (
        "Archive of t: 0 of 100 rows (0%), 0 rows/s, time left unknown yet"
    )
    assert progress_line("Archive", "t", 5, 100, 0) == (
        "Archive of t: 5 of 100 rows (5%), rate not measured yet, time left unknown yet"
    )
    assert [duration_words(s) for s in (0.42, 45, 185, 7620)] == ["0.4 s", "45 s", "3 min 05 s", "2 h 07 min"]


def test_a_real_run_logs_its_archive_and_purge_progress_with_counts_and_table_names_only(target, caplog, monkeypatch):
    """The club: five members due for the archive (one of them also past its archive period,
    destroyed by the same run's purge), one batch of two members at a time."""
    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)  # a line after every batch
    create_club(target)
    with caplog.at_level(logging.INFO, logger="include.retention.schedule"):
        run_category(target, club_policy(), batch_size=2)
    written = [r.getMessage() for r in caplog.records if r.name.startswith("include.retention.schedule")]
    archive = [line for line in written if line.startswith("Archive of members")]
    assert len(archive) == 5, archive
    assert archive[0] == "Archive of members: 5 rows due"
    assert [line.split(", ")[0] for line in archive[1:4]] == [
        "Archive of members: 2 of 5 rows (40%)",
        "Archive of members: 4 of 5 rows (80%)",
        "Archive of members: 5 of 5 rows (100%)",
    ]
    assert archive[-1].startswith("Archive of members done: 5 of 5 rows in ")
    assert "{'member_event_files': 10, 'member_events': 10, 'members': 5}" in archive[-1]
    deletion = [line for line in written if line.startswith("Deletion of members")]
    assert deletion[0] == "Deletion of members: 1 rows due"
    assert deletion[-1].startswith("Deletion of members done: 1 of 1 rows")
    text = "\n".join(written)
    assert not any(f"member{m}@" in text or f"Numéro{m}" in text for m in CONTACTS)

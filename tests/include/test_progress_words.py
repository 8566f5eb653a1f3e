"""The progress lines say a slow rate and a grown count as they are (issue 20, review R1):
a walk doing less than a row a second is not "0 rows/s", and rows done past the rows due
(more fell due during the walk) are not "12 of 10 rows (100%)"."""

from __future__ import annotations

import logging

import pytest

from include.retention.schedule.progress import Progress, progress_line, rate_words


@pytest.mark.parametrize(
    ("done", "seconds", "said"),
    [
        (0, 40, "0 rows/s"),
        (1, 1, "1 row/s"),
        (2_400, 2, "1,200 rows/s"),
        (3, 10, "18 rows/min"),  # 0.3 row a second
        (1, 60, "1 row/min"),
        (1, 600, "< 1 row/min"),
        (5, 0, "rate not measured yet"),
    ],
)
def test_a_rate_below_a_row_a_second_is_said_per_minute_never_zero(done, seconds, said):
    assert rate_words(done, seconds) == said


def test_rows_done_past_the_rows_due_say_the_count_grew_not_more_than_all():
    assert progress_line("Deletion", "page_views", 12, 10, 6) == (
        "Deletion of page_views: 12 rows (10 were due when it started), 2 rows/s, nothing left of what was due"
    )
    assert progress_line("Deletion", "page_views", 10, 10, 5) == (
        "Deletion of page_views: 10 of 10 rows (100%), 2 rows/s, nothing left of what was due"
    )


def test_the_last_line_of_a_grown_walk_says_so_too(caplog):
    log = logging.getLogger("test_progress_words")
    seconds = iter([0.0, 60.0, 120.0])
    with caplog.at_level(logging.INFO, logger=log.name):
        walk = Progress(log, "Archive", "visits", 1_000, clock=lambda: next(seconds))
        walk.advance(1_500)
        walk.finish({"visits": 1_500})
    assert caplog.records[-1].getMessage() == (
        "Archive of visits done: 1,500 rows (1,000 were due when it started) in 2 min 00 s (12 rows/s); "
        "rows per table: {'visits': 1500}"
    )

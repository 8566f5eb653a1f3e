"""The hour the clocks repeat when they go back (25 October 2026 in Paris: 02:00-02:59 comes
twice) names its offset, so that two instants never read alike; every other time reads as
before (issue 20, review R1)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from include.retention.dates.words import moment_words, short_moment_words

PARIS = ZoneInfo("Europe/Paris")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "instant, french, english, cell",
    [
        # Summer time still (UTC+2): the first 02:30.
        (
            "2026-10-25T00:30",
            "25 octobre 2026 à 02:30 UTC+2 (heure de Paris)",
            "25 October 2026 at 02:30 UTC+2 (Paris time)",
            "25/10/2026 02:30 UTC+2",
        ),
        # An hour later, back on winter time (UTC+1): the second 02:30.
        (
            "2026-10-25T01:30",
            "25 octobre 2026 à 02:30 UTC+1 (heure de Paris)",
            "25 October 2026 at 02:30 UTC+1 (Paris time)",
            "25/10/2026 02:30 UTC+1",
        ),
        # Outside the repeated hour, the time alone says which instant it is.
        (
            "2026-10-25T02:30",
            "25 octobre 2026 à 03:30 (heure de Paris)",
            "25 October 2026 at 03:30 (Paris time)",
            "25/10/2026 03:30",
        ),
        ("2026-10-24T23:59", "25 octobre 2026 à 01:59 (heure de Paris)", "25 October 2026 at 01:59 (Paris time)", None),
        # Spring forward skips an hour: no time is repeated, no offset said.
        ("2026-03-29T01:00", "29 mars 2026 à 03:00 (heure de Paris)", "29 March 2026 at 03:00 (Paris time)", None),
    ],
)
def test_only_the_repeated_hour_names_its_offset(instant, french, english, cell):
    assert moment_words(utc(instant), "fr", PARIS) == french
    assert moment_words(utc(instant), "en", PARIS) == english
    if cell is not None:
        assert short_moment_words(utc(instant), "fr", PARIS) == cell


def test_two_instants_of_the_repeated_hour_never_read_alike():
    first, second = utc("2026-10-25T00:30"), utc("2026-10-25T01:30")
    assert moment_words(first, "fr", PARIS) != moment_words(second, "fr", PARIS)
    assert short_moment_words(first, "en", PARIS) != short_moment_words(second, "en", PARIS)


def test_a_zone_off_the_whole_hour_says_its_minutes():
    # Lord Howe (UTC+10:30 / +11) goes back half an hour on 5 April 2026, at 15:00 UTC.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert moment_words(utc("2026-04-04T14:45"), "en", lord_howe).split(" (")[0] == "5 April 2026 at 01:45 UTC+11"
    assert moment_words(utc("2026-04-04T15:15"), "en", lord_howe).split(" (")[0] == "5 April 2026 at 01:45 UTC+10:30"

"""Instants and dates in words, as the DPO reads them: on the policy's clocks (Europe/Paris),
with the zone named, never in UTC; month names from CLDR."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from include.retention.dates.words import (
    bar_label,
    day_words,
    during_words,
    moment_words,
    period_words,
    short_moment_words,
    zone_words,
)
from include.retention.errors import RetentionError

PARIS = ZoneInfo("Europe/Paris")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "instant, french, english",
    [
        # Winter (UTC+1): late on 30 November in UTC is already 1 December in Paris.
        (
            "2026-11-30T23:12",
            "1er décembre 2026 à 00:12 (heure de Paris)",
            "1 December 2026 at 00:12 (Paris time)",
        ),
        # Summer (UTC+2).
        ("2026-07-01T22:30", "2 juillet 2026 à 00:30 (heure de Paris)", "2 July 2026 at 00:30 (Paris time)"),
        # 29 March 2026: at 01:00 UTC the clocks go from 02:00 to 03:00.
        ("2026-03-29T00:59", "29 mars 2026 à 01:59 (heure de Paris)", "29 March 2026 at 01:59 (Paris time)"),
        ("2026-03-29T01:00", "29 mars 2026 à 03:00 (heure de Paris)", "29 March 2026 at 03:00 (Paris time)"),
        # 25 October 2026: at 01:00 UTC the clocks go back from 03:00 to 02:00 - the hour they
        # repeat names its offset (test_date_words_repeated_hour.py).
        (
            "2026-10-25T00:59",
            "25 octobre 2026 à 02:59 UTC+2 (heure de Paris)",
            "25 October 2026 at 02:59 UTC+2 (Paris time)",
        ),
        (
            "2026-10-25T01:00",
            "25 octobre 2026 à 02:00 UTC+1 (heure de Paris)",
            "25 October 2026 at 02:00 UTC+1 (Paris time)",
        ),
    ],
)
def test_an_instant_reads_on_the_clocks_of_paris_with_the_zone_named(instant, french, english):
    assert moment_words(utc(instant), "fr", PARIS) == french
    assert moment_words(utc(instant), "en", PARIS) == english


def test_the_same_instant_given_with_another_offset_reads_the_same():
    new_york = datetime(2026, 11, 30, 18, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert moment_words(new_york, "fr", PARIS) == "1er décembre 2026 à 00:12 (heure de Paris)"


def test_a_naive_datetime_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="naive datetime 2026-11-30T23:12:00 refused"):
        moment_words(datetime(2026, 11, 30, 23, 12), "fr", PARIS)
    with pytest.raises(ValueError, match="naive"):
        short_moment_words(datetime(2026, 11, 30, 23, 12), "en", PARIS)


def test_a_table_cell_says_the_instant_briefly_in_paris_time():
    assert short_moment_words(utc("2026-11-30T23:12"), "fr", PARIS) == "01/12/2026 00:12"
    assert short_moment_words(utc("2026-11-30T23:12"), "en", PARIS) == "1 Dec 2026 00:12"
    assert short_moment_words(utc("2026-07-01T22:30"), "fr", PARIS) == "02/07/2026 00:30"


def test_the_zone_is_named_by_its_city_in_the_readers_language():
    assert zone_words(PARIS, "fr") == "heure de Paris"
    assert zone_words(PARIS, "en") == "Paris time"
    assert zone_words(ZoneInfo("Europe/Amsterdam"), "fr") == "heure d'Amsterdam"
    assert moment_words(utc("2026-11-30T23:12"), "fr", ZoneInfo("America/New_York")) == (
        "30 novembre 2026 à 18:12 (heure de New York)"
    )


def test_the_first_of_the_month_is_the_1er_in_french_only():
    assert day_words(date(2026, 12, 1), "fr") == "1er décembre 2026"
    assert day_words(date(2026, 12, 2), "fr") == "2 décembre 2026"
    assert day_words(date(2026, 12, 1), "en") == "1 December 2026"
    assert moment_words(utc("2026-07-31T22:00"), "fr", PARIS) == "1er août 2026 à 00:00 (heure de Paris)"


def test_a_one_day_period_is_that_day_not_from_it_to_itself():
    day = date(2026, 12, 1)
    assert period_words(day, day, "fr") == "le 1er décembre 2026"
    assert period_words(day, day, "en") == "1 December 2026"
    assert during_words(day, day, "fr") == "du 1er décembre 2026"
    assert during_words(day, day, "en") == "of 1 December 2026"


def test_month_names_come_in_the_readers_language_with_french_elision():
    assert during_words(date(2026, 4, 1), date(2026, 4, 30), "fr") == "d'avril 2026"
    assert during_words(date(2026, 11, 1), date(2026, 11, 30), "fr") == "de novembre 2026"
    assert bar_label(date(2026, 2, 1), date(2026, 2, 28), "fr") == ("févr.", "2026")
    assert bar_label(date(2026, 12, 1), date(2026, 12, 15), "en") == ("1-15 Dec", "2026")


def test_a_language_we_do_not_write_in_is_refused():
    with pytest.raises(RetentionError, match="language 'de' is not one we write in"):
        moment_words(utc("2026-11-30T23:12"), "de", PARIS)
    with pytest.raises(RetentionError, match="language 'de'"):
        day_words(date(2026, 12, 1), "de")

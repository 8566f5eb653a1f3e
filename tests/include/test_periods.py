"""Calendar periods as the charter counts them."""

from datetime import date

import pytest

from include.retention.dates.periods import Period


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("P3Y", Period(3), id="years"),
        pytest.param("P13M", Period(0, 13), id="months"),
        pytest.param("P1Y6M", Period(1, 6), id="years_and_months"),
        pytest.param("P30D", Period(0, 0, 30), id="days"),
        pytest.param("P2W", Period(0, 0, 14), id="weeks_as_days"),
        pytest.param("P0D", Period(), id="zero"),
    ],
)
def test_iso_8601_calendar_periods_are_parsed(text, expected):
    assert Period.parse(text) == expected


@pytest.mark.parametrize("text", ["3Y", "P", "PT12H", "P1.5Y", "P-1Y", "", "P3Y2", "three years"])
def test_anything_but_a_calendar_period_is_refused(text):
    with pytest.raises(ValueError, match="ISO-8601 calendar period"):
        Period.parse(text)


def test_29_february_plus_whole_years_lands_on_28_february_in_a_common_year():
    assert Period(1).add_to(date(2020, 2, 29)) == date(2021, 2, 28)
    assert Period(3).add_to(date(2020, 2, 29)) == date(2023, 2, 28)


def test_29_february_plus_four_years_stays_on_29_february():
    assert Period(4).add_to(date(2020, 2, 29)) == date(2024, 2, 29)


def test_month_end_is_clamped_like_a_person_counts():
    assert Period(0, 1).add_to(date(2026, 1, 31)) == date(2026, 2, 28)
    assert Period(0, 13).add_to(date(2024, 1, 31)) == date(2025, 2, 28)


def test_archive_period_is_added_after_the_active_period():
    """29 Feb 2020 + 3 years = 28 Feb 2023; + 5 years = 28 Feb 2028, not 29 Feb 2028."""
    end_active = Period(3).add_to(date(2020, 2, 29))
    assert Period(5).add_to(end_active) == date(2028, 2, 28)


@pytest.mark.parametrize(
    "start, due",
    [
        pytest.param(date(2023, 11, 26), True, id="exactly_on_the_day"),
        pytest.param(date(2023, 11, 25), True, id="one_day_past"),
        pytest.param(date(2023, 11, 27), False, id="one_day_short"),
    ],
)
def test_a_record_is_past_its_period_when_start_plus_period_is_on_or_before_as_of(start, due):
    as_of = date(2026, 11, 26)
    assert (Period(3).add_to(start) <= as_of) is due
    assert (start <= Period(3).last_due_start(as_of)) is due


def test_last_due_start_includes_29_february_when_its_anniversary_is_28_february():
    assert Period(1).last_due_start(date(2021, 2, 28)) == date(2020, 2, 29)
    assert Period(1).last_due_start(date(2021, 2, 27)) == date(2020, 2, 27)


@pytest.mark.parametrize("period", ["P3Y", "P13M", "P5Y", "P10Y", "P1M", "P45D", "P0D", "P1Y1M1D"])
def test_last_due_start_agrees_with_add_to_every_day_of_four_years(period):
    p = Period.parse(period)
    day = date(2023, 1, 1)
    for offset in range(0, 4 * 366, 3):
        as_of = date.fromordinal(day.toordinal() + offset)
        horizon = p.last_due_start(as_of)
        assert p.add_to(horizon) <= as_of
        assert p.add_to(date.fromordinal(horizon.toordinal() + 1)) > as_of


def test_periods_read_in_words_for_the_dag_docs():
    assert Period.parse("P13M").in_words() == "13 months"
    assert Period.parse("P1Y").in_words("fr") == "1 an"
    assert str(Period.parse("P1Y6M")) == "P1Y6M"

"""The oracle's own rules, checked against the spec's worked examples (so that a
disagreement with the engine points at the engine, not at a slip in the oracle), and its
calendar cross-checked with the project's ``Period.add_to`` and with dateutil."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given
from hypothesis import strategies as st

from include.retention.dates.periods import Period
from oracle.model import (
    ACTIVE,
    ARCHIVE,
    DESTROYED,
    Holds,
    Oracle,
    Place,
    add_period,
    evaluate,
    last_due_start,
    local_day,
)
from oracle.world import PARIS, PolicyKnobs, build_policy


@pytest.mark.parametrize(
    "start, years, expected",
    [
        (date(2020, 2, 29), 3, date(2023, 2, 28)),  # spec: 29 Feb + whole years -> 28 Feb
        (date(2020, 2, 29), 4, date(2024, 2, 29)),  # README: plus 4 years it stays 29 February
        (date(2020, 2, 29), 8, date(2028, 2, 29)),
        (date(2023, 11, 26), 3, date(2026, 11, 26)),
    ],
)
def test_whole_years_land_on_28_february_in_a_non_leap_year(start, years, expected):
    assert add_period(start, years=years) == expected


def test_the_archive_follows_the_active_period_each_added_in_turn():
    # README: 29 Feb 2020 + 3 years + 5 years = 28 Feb 2028 (not 29 Feb 2028).
    assert add_period(add_period(date(2020, 2, 29), years=3), years=5) == date(2028, 2, 28)


def test_months_are_clamped_to_the_end_of_the_month_before_days_are_added():
    assert add_period(date(2025, 1, 31), months=1) == date(2025, 2, 28)
    assert add_period(date(2025, 1, 31), months=1, days=1) == date(2025, 3, 1)


def test_a_prospect_contacted_3_years_ago_is_due_on_the_day_not_the_day_after():
    assert last_due_start(date(2026, 11, 26), Period(years=3)) == date(2023, 11, 26)


@given(st.dates(date(1990, 1, 1), date(2060, 12, 31)), st.integers(0, 15), st.integers(0, 30), st.integers(0, 40))
def test_calendar_agrees_with_dateutil_and_with_the_project_period(start, years, months, days):
    mine = add_period(start, years, months, days)
    assert mine == start + relativedelta(years=years, months=months) + timedelta(days=days)
    assert mine == Period(years, months, days).add_to(start)


@pytest.mark.parametrize(
    "value, day",
    [
        ("2024-06-16", date(2024, 6, 16)),
        ("2024-06-16 00:00:00", date(2024, 6, 16)),
        ("2024-06-16 23:59:59.999999", date(2024, 6, 16)),
        ("2024-06-16T00:00:00.000", date(2024, 6, 16)),
        ("2024-06-15T22:30:00Z", date(2024, 6, 16)),  # 00:30 in Paris (summer time)
        ("2024-12-15T23:30:00Z", date(2024, 12, 16)),  # 00:30 in Paris (winter time)
        ("2024-06-16T00:30:00+02:00", date(2024, 6, 16)),
        (datetime(2026, 11, 26, 23, 30, tzinfo=UTC), date(2026, 11, 27)),  # README example
        (datetime(2026, 11, 26, 23, 30), date(2026, 11, 26)),  # naive: Paris wall clock
        (date(2026, 11, 26), date(2026, 11, 26)),
    ],
)
def test_a_stored_value_counts_as_its_day_in_paris(value, day):
    assert local_day(value, PARIS) == day


@pytest.mark.parametrize(
    "cond, row, result",
    [
        ({"column": "r", "equals": 0}, {"r": None}, None),
        ({"not": {"column": "r", "equals": 0}}, {"r": None}, None),  # NULL: not matching either way
        ({"not": {"any": [{"column": "r", "equals": 0}, {"column": "r", "is_null": True}]}}, {"r": None}, False),
        ({"not": {"any": [{"column": "r", "equals": 0}, {"column": "r", "is_null": True}]}}, {"r": 2}, True),
        ({"all": [{"column": "r", "in": [1, 2]}, {"column": "s", "is_not_null": True}]}, {"r": 1, "s": None}, False),
    ],
)
def test_conditions_use_three_valued_logic(cond, row, result):
    assert evaluate(cond, row) is result


def _erp_rows(**overrides):
    rows = {
        "partners": [],
        "interactions": [],
        "interaction_files": [],
        "contracts": [],
        "contract_lines": [],
        "invoices": [],
        "invoice_lines": [],
        "requests": [],
        "visits": [],
        "visit_hits": [],
    }
    rows.update(overrides)
    return rows


def test_a_customer_past_its_whole_horizon_is_released_by_its_invoices_in_the_same_night():
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(
        partners=[
            {"partner_id": 1, "name": "x", "email": "x", "is_prospect": False, "customer_rank": 1, "created_at": None}
        ],
        contracts=[{"contract_id": 10, "partner_id": 1}],
        contract_lines=[{"line_id": 100, "contract_id": 10, "end_date": date(2010, 1, 1)}],
        invoices=[
            {"invoice_id": 10, "partner_id": 1, "number": "F", "invoice_date": date(2012, 1, 1)},
            {"invoice_id": 11, "partner_id": 1, "number": "F", "invoice_date": date(2020, 1, 1)},
        ],
    )
    oracle = Oracle(policy, rows)
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["invoices"][(10,)] == Place(DESTROYED)
    assert state["invoices"][(11,)] == Place(ARCHIVE, "invoices", date(2020, 1, 1), date(2030, 1, 1))
    assert state["partners"][(1,)] == Place(ARCHIVE, "customer_partners", date(2010, 1, 1), date(2018, 1, 1))
    later = oracle.run(state, date(2030, 1, 1))
    assert later["invoices"][(11,)] == Place(DESTROYED) and later["partners"][(1,)] == Place(DESTROYED)


def test_a_customer_with_an_open_contract_line_stays_active_and_keeps_its_invoices():
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(
        partners=[
            {
                "partner_id": 1,
                "name": "x",
                "email": "x",
                "is_prospect": True,
                "customer_rank": 1,
                "created_at": datetime(2001, 1, 1),
            }
        ],
        contracts=[{"contract_id": 10, "partner_id": 1}],
        contract_lines=[
            {"line_id": 100, "contract_id": 10, "end_date": date(2010, 1, 1)},
            {"line_id": 101, "contract_id": 10, "end_date": None},
        ],
        invoices=[{"invoice_id": 10, "partner_id": 1, "number": "F", "invoice_date": date(2001, 1, 1)}],
    )
    oracle = Oracle(policy, rows)
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["partners"][(1,)] == Place(ACTIVE) and state["invoices"][(10,)] == Place(ACTIVE)


def test_precedence_decides_which_category_governs_a_prospect_who_bought():
    rows = _erp_rows(
        partners=[
            {
                "partner_id": 1,
                "name": "x",
                "email": "x",
                "is_prospect": True,
                "customer_rank": 1,
                "created_at": datetime(2001, 1, 1),
            }
        ]
    )
    customers_first = Oracle(build_policy(PolicyKnobs(customers_first=True)), rows)
    prospects_first = Oracle(build_policy(PolicyKnobs(customers_first=False)), rows)
    day = date(2026, 11, 26)
    # As a customer it has no contract line: a defect, it stays. As a prospect it is long past.
    assert customers_first.run(customers_first.initial_state(), day)["partners"][(1,)] == Place(ACTIVE)
    assert prospects_first.run(prospects_first.initial_state(), day)["partners"][(1,)] == Place(DESTROYED)


def test_a_held_invoice_keeps_its_customer_where_it_is():
    """A held row never moves; an invoice held in the active base cannot point at a customer
    that left it, so the hold keeps the customer too (as a held child keeps its parent)."""
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(
        partners=[
            {"partner_id": 1, "name": "x", "email": "x", "is_prospect": False, "customer_rank": 1, "created_at": None}
        ],
        contracts=[{"contract_id": 10, "partner_id": 1}],
        contract_lines=[{"line_id": 100, "contract_id": 10, "end_date": date(2010, 1, 1)}],
        invoices=[{"invoice_id": 10, "partner_id": 1, "number": "F", "invoice_date": date(2012, 1, 1)}],
    )
    oracle = Oracle(policy, rows, Holds(rows={"invoices": frozenset({(10,)})}))
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["partners"][(1,)] == Place(ACTIVE) and state["invoices"][(10,)] == Place(ACTIVE)


def test_a_hold_added_later_keeps_an_archived_row_past_its_horizon():
    policy = build_policy(PolicyKnobs())
    rows = _erp_rows(
        partners=[
            {
                "partner_id": 1,
                "name": "x",
                "email": "x",
                "is_prospect": True,
                "customer_rank": 0,
                "created_at": datetime(2020, 1, 1),
            }
        ]
    )
    oracle = Oracle(policy, rows)
    state = oracle.run(oracle.initial_state(), date(2026, 11, 26))
    assert state["partners"][(1,)] == Place(ARCHIVE, "prospect_partners", date(2020, 1, 1), date(2028, 1, 1))
    oracle.holds = oracle.holds.union(Holds(rows={"partners": frozenset({(1,)})}).existing(state))
    assert oracle.run(state, date(2029, 11, 26))["partners"][(1,)] == state["partners"][(1,)]


# --- issue 16: per-row line ends, filtered path steps, dependants released on their parent's event

FIRST_NON_NULL = PolicyKnobs(line_end="first_non_null")
ON_PARENT_EVENT = PolicyKnobs(line_end="first_non_null", invoices_leave="on_parent_event")


def _customer(pid=1, **overrides):
    return {
        "partner_id": pid,
        "name": "x",
        "email": "x",
        "is_prospect": False,
        "customer_rank": 1,
        "created_at": None,
        **overrides,
    }


def _lines(*ends, contract_id=10):
    """Contract lines as ``(planned end, closing date)`` pairs."""
    return [
        {"line_id": contract_id * 10 + n, "contract_id": contract_id, "end_date": planned, "closed_on": closed}
        for n, (planned, closed) in enumerate(ends)
    ]


def _invoices(*days, partner_id=1):
    return [
        {"invoice_id": 10 + n, "partner_id": partner_id, "number": "F", "invoice_date": day}
        for n, day in enumerate(days)
    ]


def _customer_rows(lines, invoices=(), status="signed", **overrides):
    return _erp_rows(
        partners=[_customer()],
        contracts=[{"contract_id": 10, "partner_id": 1, "status": status}],
        contract_lines=list(lines),
        invoices=list(invoices),
        **overrides,
    )


def _night(knobs, rows, day, holds=Holds()):
    oracle = Oracle(build_policy(knobs), rows, holds)
    return oracle.run(oracle.initial_state(), day)


def test_a_line_closed_early_ends_on_its_closing_date_and_the_relationship_on_the_latest_line_end():
    """Line 100 was planned until 2030 but closed on 2022-01-10; line 101 only has a planned
    end, 2021-03-15. The relationship ended on 2022-01-10: neither the latest planned end
    (2030) nor 'latest planned end of open lines, else latest closing' (2021-03-15)."""
    rows = _customer_rows(_lines((date(2030, 1, 1), date(2022, 1, 10)), (date(2021, 3, 15), None)))
    assert _night(FIRST_NON_NULL, rows, date(2025, 1, 9))["partners"][(1,)] == Place(ACTIVE)
    assert _night(FIRST_NON_NULL, rows, date(2025, 1, 10))["partners"][(1,)] == Place(
        ARCHIVE, "customer_partners", date(2022, 1, 10), date(2030, 1, 10)
    )
    # With one column (the planned end), the same customer stays active until 2033.
    assert _night(PolicyKnobs(), rows, date(2025, 1, 10))["partners"][(1,)] == Place(ACTIVE)


def test_a_line_closed_after_its_planned_end_ends_on_its_closing_date():
    rows = _customer_rows(_lines((date(2020, 1, 1), date(2021, 5, 5))))
    assert _night(FIRST_NON_NULL, rows, date(2024, 5, 4))["partners"][(1,)] == Place(ACTIVE)
    assert _night(FIRST_NON_NULL, rows, date(2024, 5, 5))["partners"][(1,)].retention_start == date(2021, 5, 5)


def test_a_line_with_neither_date_is_open_ended_and_keeps_the_customer_active():
    open_ended = _customer_rows(_lines((date(2015, 1, 1), date(2015, 1, 1)), (None, None)))
    closed_without_planned_end = _customer_rows(_lines((date(2015, 1, 1), None), (None, date(2016, 2, 29))))
    assert _night(FIRST_NON_NULL, open_ended, date(2026, 11, 26))["partners"][(1,)] == Place(ACTIVE)
    # Closed on 29 February 2016: + 3 years is 28 February 2019, + 5 more is 28 February 2024.
    assert _night(FIRST_NON_NULL, closed_without_planned_end, date(2019, 2, 28))["partners"][(1,)] == Place(
        ARCHIVE, "customer_partners", date(2016, 2, 29), date(2024, 2, 28)
    )
    assert _night(FIRST_NON_NULL, closed_without_planned_end, date(2019, 2, 27))["partners"][(1,)] == Place(ACTIVE)


def test_a_filter_on_a_path_step_keeps_only_that_steps_rows():
    """Only signed contracts count: a draft contract's open line keeps nobody active and its
    later end is not the relationship's end; a contract whose status is NULL does not match
    the filter either (as in SQL)."""
    knobs = PolicyKnobs(line_end="first_non_null", signed_only=True)
    rows = _erp_rows(
        partners=[_customer()],
        contracts=[
            {"contract_id": 10, "partner_id": 1, "status": "signed"},
            {"contract_id": 11, "partner_id": 1, "status": "draft"},
            {"contract_id": 12, "partner_id": 1, "status": None},
        ],
        contract_lines=_lines((date(2020, 6, 1), None))
        + _lines((None, None), contract_id=11)
        + _lines((date(2023, 1, 1), None), contract_id=12),
    )
    assert _night(knobs, rows, date(2023, 6, 1))["partners"][(1,)] == Place(
        ARCHIVE, "customer_partners", date(2020, 6, 1), date(2028, 6, 1)
    )
    # Without the filter the draft's open line keeps the customer active.
    assert _night(FIRST_NON_NULL, rows, date(2023, 6, 1))["partners"][(1,)] == Place(ACTIVE)


def test_invoices_leave_the_active_base_when_the_relationship_ends_with_their_own_dates():
    """The relationship ended on 2025-06-30 (a line closed early). On that day the invoices
    leave the active base (P0D from the parent's end), each dated from its own date; the
    customer stays active for its 3 years. The day before, they stay. With the default
    (with_parent) they wait for the customer."""
    rows = _customer_rows(
        _lines((date(2027, 1, 1), date(2025, 6, 30))), _invoices(date(2024, 2, 29), date(2025, 6, 30))
    )
    before = _night(ON_PARENT_EVENT, rows, date(2025, 6, 29))
    assert before["invoices"][(10,)] == before["invoices"][(11,)] == Place(ACTIVE)
    state = _night(ON_PARENT_EVENT, rows, date(2025, 6, 30))
    assert state["invoices"][(10,)] == Place(ARCHIVE, "invoices", date(2024, 2, 29), date(2034, 2, 28))
    assert state["invoices"][(11,)] == Place(ARCHIVE, "invoices", date(2025, 6, 30), date(2035, 6, 30))
    assert state["partners"][(1,)] == Place(ACTIVE)
    assert _night(FIRST_NON_NULL, rows, date(2025, 6, 30))["invoices"][(10,)] == Place(ACTIVE)


def test_an_invoice_leaves_on_its_parents_event_plus_its_own_active_period_not_its_own_date():
    knobs = PolicyKnobs(line_end="first_non_null", invoices_leave="on_parent_event", billing_active="P1M")
    rows = _customer_rows(_lines((date(2025, 1, 31), None)), _invoices(date(2026, 1, 1)))
    # 31 January + 1 month = 28 February, though the invoice's own date + 1 month is later.
    assert _night(knobs, rows, date(2025, 2, 27))["invoices"][(10,)] == Place(ACTIVE)
    assert _night(knobs, rows, date(2025, 2, 28))["invoices"][(10,)] == Place(
        ARCHIVE, "invoices", date(2026, 1, 1), date(2036, 2, 1)
    )


def test_an_invoice_past_its_own_horizon_when_the_relationship_ends_is_destroyed_that_night():
    rows = _customer_rows(_lines((None, date(2025, 6, 30))), _invoices(date(2015, 6, 30), date(2015, 7, 1)))
    state = _night(ON_PARENT_EVENT, rows, date(2025, 6, 30))
    assert state["invoices"][(10,)] == Place(DESTROYED)
    assert state["invoices"][(11,)] == Place(ARCHIVE, "invoices", date(2015, 7, 1), date(2025, 7, 1))
    assert state["partners"][(1,)] == Place(ACTIVE)


def test_invoices_of_an_ongoing_or_undated_relationship_stay_active():
    open_ended = _customer_rows(_lines((date(2015, 1, 1), None), (None, None)), _invoices(date(2010, 1, 1)))
    no_line = _customer_rows([], _invoices(date(2010, 1, 1)))
    assert _night(ON_PARENT_EVENT, open_ended, date(2026, 11, 26))["invoices"][(10,)] == Place(ACTIVE)
    assert _night(ON_PARENT_EVENT, no_line, date(2026, 11, 26))["invoices"][(10,)] == Place(ACTIVE)


def test_a_hold_on_the_customer_or_on_the_invoice_keeps_the_invoice_active():
    rows = _customer_rows(_lines((None, date(2025, 6, 30))), _invoices(date(2024, 1, 1), date(2024, 2, 1)))
    on_customer = _night(ON_PARENT_EVENT, rows, date(2026, 1, 1), Holds(rows={"partners": frozenset({(1,)})}))
    assert on_customer["invoices"][(10,)] == on_customer["invoices"][(11,)] == Place(ACTIVE)
    on_invoice = _night(ON_PARENT_EVENT, rows, date(2026, 1, 1), Holds(rows={"invoices": frozenset({(10,)})}))
    assert on_invoice["invoices"][(10,)] == Place(ACTIVE)
    assert on_invoice["invoices"][(11,)] == Place(ARCHIVE, "invoices", date(2024, 2, 1), date(2034, 2, 1))


@pytest.mark.parametrize("knobs", [ON_PARENT_EVENT, PolicyKnobs()], ids=["on_parent_event", "with_parent"])
def test_an_invoice_without_a_customer_follows_its_own_clock(knobs):
    """A counter sale (no customer: nothing in the active base to wait for), in either mode."""
    rows = _erp_rows(invoices=_invoices(date(2026, 11, 26), date(2026, 11, 27), partner_id=None))
    state = _night(knobs, rows, date(2026, 11, 26))
    assert state["invoices"][(10,)] == Place(ARCHIVE, "invoices", date(2026, 11, 26), date(2036, 11, 26))
    assert state["invoices"][(11,)] == Place(ACTIVE)


def test_a_customer_stays_in_the_archive_while_an_invoice_that_left_before_it_is_retained():
    """Invoices leave on 2020-03-01 (the end); the customer on 2023-03-01, until 2028-03-01;
    the invoice of 2019-05-01 is kept until 2029-05-01, and the customer with it. An undated
    invoice leaves too, undated, and keeps the customer after that."""
    rows = _customer_rows(_lines((date(2020, 3, 1), None)), _invoices(date(2019, 5, 1), None))
    oracle = Oracle(build_policy(ON_PARENT_EVENT), rows)
    state = oracle.run(oracle.initial_state(), date(2020, 3, 1))
    assert state["invoices"][(10,)] == Place(ARCHIVE, "invoices", date(2019, 5, 1), date(2029, 5, 1))
    assert state["invoices"][(11,)] == Place(ARCHIVE, "invoices", None, None)
    assert state["partners"][(1,)] == Place(ACTIVE)
    state = oracle.run(state, date(2028, 3, 1))
    assert state["partners"][(1,)] == Place(ARCHIVE, "customer_partners", date(2020, 3, 1), date(2028, 3, 1))
    state = oracle.run(state, date(2029, 5, 1))
    assert state["invoices"][(10,)] == Place(DESTROYED)
    assert state["partners"][(1,)] == Place(ARCHIVE, "customer_partners", date(2020, 3, 1), date(2028, 3, 1))


def test_the_parents_clock_is_the_one_of_the_category_that_governs_it():
    """A prospect (not a customer) with an invoice: its category is prospection, whose start
    is its last inbound contact (else its creation): the invoice leaves on that day."""
    rows = _erp_rows(
        partners=[_customer(is_prospect=True, customer_rank=0, created_at=datetime(2024, 3, 1, 9, 0))],
        invoices=_invoices(date(2024, 2, 1)),
    )
    assert _night(ON_PARENT_EVENT, rows, date(2024, 2, 29))["invoices"][(10,)] == Place(ACTIVE)
    assert _night(ON_PARENT_EVENT, rows, date(2024, 3, 1))["invoices"][(10,)] == Place(
        ARCHIVE, "invoices", date(2024, 2, 1), date(2034, 2, 1)
    )
    # A partner no category governs never ends a relationship: no clock will release its
    # invoices, so they follow their own - one past its 10 years is destroyed that night,
    # a recent one is archived with its own dates.
    nobody = _erp_rows(
        partners=[_customer(is_prospect=False, customer_rank=0)], invoices=_invoices(date(2001, 1, 1), date(2026, 1, 1))
    )
    night = _night(ON_PARENT_EVENT, nobody, date(2026, 11, 26))["invoices"]
    assert night[(10,)] == Place(DESTROYED)
    assert night[(11,)] == Place(ARCHIVE, "invoices", date(2026, 1, 1), date(2036, 1, 1))

"""Counter-examples the oracle's property tests found, kept as plain tests with their rows.

Each runs one or two nights through the engine on both backends and checks both the spec's
expected places (written out here) and the oracle's, row by row, then that a second night
for the same date changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from oracle.harness import Targets, check_world
from oracle.model import ACTIVE, ARCHIVE, DESTROYED, Holds, Oracle, Place
from oracle.strategies import World
from oracle.world import CATEGORIES, PolicyKnobs, Stamp, build_policy, stored_rows

PARTNER = {"name": "Partenaire", "email": "p@example.fr", "created_at": None}


@pytest.fixture
def targets(target_url: str, tmp_path: Path) -> Targets:
    return Targets(target_url, tmp_path)


def world(nights: list[tuple[date, tuple[str, ...]]], knobs: PolicyKnobs = PolicyKnobs(), **tables: Any) -> World:
    rows: dict[str, list[dict[str, Any]]] = {
        t: []
        for t in (
            "partners",
            "interactions",
            "interaction_files",
            "contracts",
            "contract_lines",
            "invoices",
            "invoice_lines",
            "requests",
            "visits",
            "visit_hits",
        )
    }
    rows.update(tables)
    return World(knobs, build_policy(knobs), nights, rows, Holds())


def expected_after(w: World, sqlite: bool) -> dict[str, dict]:
    oracle = Oracle(w.policy, stored_rows(w.rows, sqlite))
    state = oracle.initial_state()
    for day, _ in w.nights:
        state = oracle.run(state, day)
    return state


def customer_with_invoices(invoice_days: list[date], contract_end: date) -> dict[str, list[dict[str, Any]]]:
    """Customer 1 whose last contract line ended on ``contract_end``, with one invoice per day."""
    return {
        "partners": [{**PARTNER, "partner_id": 1, "is_prospect": False, "customer_rank": 1}],
        "contracts": [{"contract_id": 10, "partner_id": 1}],
        "contract_lines": [{"line_id": 100, "contract_id": 10, "end_date": contract_end}],
        "invoices": [
            {"invoice_id": 10 + n, "partner_id": 1, "number": f"F-{n}", "invoice_date": day}
            for n, day in enumerate(invoice_days)
        ],
        "invoice_lines": [{"line_id": 100 + n, "invoice_id": 10 + n, "amount": 100} for n in range(len(invoice_days))],
    }


BILLING_FIRST = ("billing", "customer_relationship", "prospection", "rights_requests", "navigation_tracking")
CUSTOMERS_FIRST = ("customer_relationship", "billing", "prospection", "rights_requests", "navigation_tracking")


# One order per backend in ``make test`` (billing first on SQLite, customers first on PostgreSQL),
# both on both in ``make test-deep``: the convergence tests run the ERP's invoice past its horizon
# in both orders on PostgreSQL in ``make test`` too (tests/include/test_convergence.py).
@pytest.mark.parametrize(
    ("target_url", "order"),
    [
        pytest.param("sqlite", BILLING_FIRST, id="sqlite-billing_first"),
        pytest.param("sqlite", CUSTOMERS_FIRST, id="sqlite-customers_first", marks=pytest.mark.deep),
        pytest.param("postgresql", BILLING_FIRST, id="postgresql-billing_first", marks=pytest.mark.deep),
        pytest.param("postgresql", CUSTOMERS_FIRST, id="postgresql-customers_first"),
    ],
    indirect=["target_url"],
)
def test_a_retained_invoice_past_its_own_horizon_is_destroyed_with_its_customer_in_one_night(targets, order):
    """Found by the property test (shrunk by hand): customer 1's contract ended on
    2016-03-01 (P3Y + P5Y: past its whole horizon on 2026-12-31); its invoice of 2016-03-01
    is kept 10 years, until 2026-03-01, also past. One night must destroy both, in either
    order of the categories (the spec: "a row already past its whole horizon is destroyed
    in the same run, whatever the order in which categories run")."""
    w = world([(date(2026, 12, 31), order)], **customer_with_invoices([date(2016, 3, 1)], date(2016, 3, 1)))
    expected = expected_after(w, sqlite=False)
    assert expected["invoices"][(10,)] == Place(DESTROYED)
    assert expected["partners"][(1,)] == Place(DESTROYED)
    check_world(targets, w)


def test_a_customer_is_kept_in_the_archive_while_one_of_its_invoices_is_retained(targets):
    """The other invoice of the same customer, of 2020-02-29, is kept until 2030-02-28:
    the customer stays archived until then, and both go the night they are both past."""
    w = world(
        [(date(2026, 12, 31), CUSTOMERS_FIRST), (date(2030, 2, 28), BILLING_FIRST)],
        **customer_with_invoices([date(2016, 3, 1), date(2020, 2, 29)], date(2016, 3, 1)),
    )
    first = Oracle(w.policy, stored_rows(w.rows, False))
    state = first.run(first.initial_state(), date(2026, 12, 31))
    assert state["invoices"][(11,)] == Place(ARCHIVE, "invoices", date(2020, 2, 29), date(2030, 2, 28))
    assert state["partners"][(1,)] == Place(ARCHIVE, "customer_partners", date(2016, 3, 1), date(2024, 3, 1))
    assert expected_after(w, sqlite=False)["partners"][(1,)] == Place(DESTROYED)
    check_world(targets, w)


def test_a_row_stamped_at_midnight_on_the_first_day_not_due_stays_active(targets):
    """Prospects with no inbound contact, created on 2023-11-27 at 00:00 in Paris, are due on
    2026-11-27, not on 2026-11-26, whatever text form SQLite holds the time in (date only,
    space, fractional seconds, 'T'); a request closed at 00:00 on 2026-11-27 in Paris,
    stored in UTC with a 'Z' or with its offset, is not closed on the 26th either (P0D)."""
    forms = ["date", "space", "space_micro", "t", "t_millis"]
    midnight = datetime(2023, 11, 27, 0, 0)
    w = world(
        [(date(2026, 11, 26), CATEGORIES)],
        partners=[
            {**PARTNER, "partner_id": n, "is_prospect": True, "customer_rank": 0, "created_at": Stamp(midnight, form)}
            for n, form in enumerate(forms, start=1)
        ],
        requests=[
            {"request_id": n, "kind": "erasure", "closed_at": Stamp(datetime(2026, 11, 27), form)}
            for n, form in enumerate(["z", "offset", "space"], start=1)
        ],
    )
    expected = expected_after(w, sqlite=True)
    assert all(place == Place(ACTIVE) for place in expected["partners"].values())
    assert all(place == Place(ACTIVE) for place in expected["requests"].values())
    check_world(targets, w)


def test_an_invoice_without_a_date_goes_to_the_archive_with_its_customer_and_the_run_passes(targets):
    """Customer 1 past its whole horizon on 2026-12-31; invoice 10 (2016-03-01) past its own;
    invoice 11 has no date (a defect). Rows: invoice 10 and its line destroyed; invoice 11
    leaves the active base with its customer, undated, and keeps it in the archive (it cannot
    be aged, so it is never destroyed silently). The post-run gate passes and reports the
    undated archive row on every run (a non-blocking check), until a person dates it."""
    rows = customer_with_invoices([date(2016, 3, 1), date(2020, 1, 1)], date(2016, 3, 1))
    rows["invoices"][1]["invoice_date"] = None
    w = world([(date(2026, 12, 31), CATEGORIES)], **rows)
    expected = expected_after(w, sqlite=False)
    assert expected["invoices"][(10,)] == Place(DESTROYED)
    assert expected["invoices"][(11,)] == Place(ARCHIVE, "invoices", None, None)
    assert expected["partners"][(1,)] == Place(ARCHIVE, "customer_partners", date(2016, 3, 1), date(2024, 3, 1))
    check_world(targets, w)


def counter_sales_beside_a_held_prospect() -> dict[str, list[dict[str, Any]]]:
    """Prospect 9 (under a legal hold) with one invoice; invoices 1 and 2 are counter sales
    (no customer: ``partner_id`` NULL). Invoice 1 (2017-03-01) is past its whole horizon on
    2027-04-01 (+ P1M + P10Y); invoice 2 (2026-01-01) is past its active period only."""
    return {
        "partners": [
            {**PARTNER, "partner_id": 9, "is_prospect": True, "customer_rank": 0, "created_at": datetime(2026, 3, 1)}
        ],
        "invoices": [
            {"invoice_id": 1, "partner_id": None, "number": "C-1", "invoice_date": date(2017, 3, 1)},
            {"invoice_id": 2, "partner_id": None, "number": "C-2", "invoice_date": date(2026, 1, 1)},
            {"invoice_id": 90, "partner_id": 9, "number": "F-90", "invoice_date": date(2026, 1, 1)},
        ],
    }


@pytest.mark.parametrize("leaves_active", ["on_parent_event", "with_parent"])
def test_a_hold_on_one_customer_does_not_keep_invoices_that_have_no_customer(targets, leaves_active):
    """The spec: records under a hold are not destroyed; a counter sale is about nobody the
    hold names. Expected on 2027-04-01: invoice 1 destroyed (past its horizon), invoice 2 in
    the archive until 2036-02-01, invoice 90 (its prospect is held) active."""
    knobs = PolicyKnobs(billing_active="P1M", invoices_leave=leaves_active)
    w = world([(date(2027, 4, 1), CATEGORIES)], knobs, **counter_sales_beside_a_held_prospect())
    w.holds = Holds(rows={"partners": frozenset({(9,)})})
    oracle = Oracle(w.policy, stored_rows(w.rows, False), w.holds)
    state = oracle.run(oracle.initial_state(), date(2027, 4, 1))
    assert state["invoices"][(1,)] == Place(DESTROYED)
    assert state["invoices"][(2,)] == Place(ARCHIVE, "invoices", date(2026, 1, 1), date(2036, 2, 1))
    assert state["invoices"][(90,)] == Place(ACTIVE)
    check_world(targets, w)

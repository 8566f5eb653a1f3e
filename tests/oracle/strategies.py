"""Hypothesis strategies: a policy, run dates, and rows whose dates sit on the boundaries.

Dates are aimed at each horizon that matters (the active period and the whole horizon, on
each run date, and for contract lines the day their customer's invoices leave): the last due day, the day before and the day after; plus 29 February and
its neighbours, the days Paris changes clocks, and anything in a 15-year backlog. Times
of day are midnight, a microsecond after, noon, 23:59 and a microsecond before midnight
(wall clock); for columns with a time zone, half an hour either side of Paris midnight and
02:30 on the day the clocks go forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from hypothesis import strategies as st

from include.retention.dates.periods import Period
from include.retention.policy.model import RetentionPolicy
from oracle.model import Holds, add_period, last_due_start
from oracle.world import CATEGORIES, TEXT_FORMS, PolicyKnobs, Stamp, build_policy

RUN_DAYS = [
    date(2026, 11, 26),
    date(2027, 2, 28),
    date(2027, 3, 1),
    date(2028, 2, 29),
    date(2028, 2, 28),
    date(2026, 3, 29),
    date(2026, 3, 30),
    date(2026, 10, 25),
    date(2026, 10, 26),
    date(2026, 12, 31),
]
LEAP_DAYS = [date(y, 2, 29) for y in (2012, 2016, 2020, 2024)]
DST_DAYS = [
    date(2019, 3, 31),
    date(2019, 10, 27),
    date(2021, 3, 28),
    date(2021, 10, 31),
    date(2023, 3, 26),
    date(2023, 10, 29),
    date(2024, 3, 31),
    date(2024, 10, 27),
    date(2025, 3, 30),
    date(2025, 10, 26),
]
NAIVE_TIMES = [time(0, 0), time(0, 0, 0, 1), time(12, 0), time(23, 59), time(23, 59, 59, 999999)]
AWARE_TIMES = NAIVE_TIMES + [time(0, 30), time(23, 30), time(2, 30)]


@dataclass
class World:
    """One example: the policy, its knobs, the run dates, each night's category order, the
    rows (as Python values; ``Stamp`` for timestamps) and the legal holds."""

    knobs: PolicyKnobs
    policy: RetentionPolicy = field(repr=False)
    nights: list[tuple[date, tuple[str, ...]]]
    rows: dict[str, list[dict[str, Any]]]
    holds: Holds = field(default_factory=Holds)
    # Added after the first night (a litigation starts between two runs): holds on rows
    # that may already be in the archive.
    later_holds: Holds = field(default_factory=Holds)

    def keys(self) -> dict[str, list[Any]]:
        from oracle.world import PRIMARY_KEYS

        return {t: [r[PRIMARY_KEYS[t]] for r in rows] for t, rows in self.rows.items()}


def knobs() -> st.SearchStrategy[PolicyKnobs]:
    return st.builds(
        PolicyKnobs,
        prospect_active=st.sampled_from(["P3Y", "P13M", "P1Y6M", "P30D"]),
        prospect_archive=st.sampled_from(["P5Y", "P2Y", "P1M"]),
        customer_active=st.sampled_from(["P3Y", "P1Y"]),
        customer_archive=st.sampled_from(["P5Y", "P2Y"]),
        customer_end=st.sampled_from(["delete", "anonymize"]),
        billing_archive=st.sampled_from(["P10Y", "P6Y"]),
        requests_end=st.sampled_from(["delete", "anonymize"]),
        tracking_active=st.sampled_from(["P13M", "P6M"]),
        tracking_clock=st.sampled_from(["column", "earliest"]),
        customers_first=st.booleans(),
        line_end=st.sampled_from(["end_date", "first_non_null", "first_non_null"]),
        signed_only=st.booleans(),
        billing_active=st.sampled_from(["P0D", "P0D", "P1M", "P4Y"]),
        invoices_leave=st.sampled_from(["with_parent", "on_parent_event"]),
    )


@st.composite
def contract_line(
    draw: Any, run_days: list[date], horizons: list[tuple[Period, ...]]
) -> tuple[date | None, date | None]:
    """``(planned end, closing date)``: a line with only a planned end (expired or not), one
    closed early (before a planned end that may be years away), one closed after its planned
    end, one closed with no planned end, or an open-ended one (neither date)."""
    kind = draw(
        st.sampled_from(["planned", "planned", "closed_early", "closed_early", "closed_late", "closed_only", "open"])
    )
    if kind == "open":
        return None, None
    day = draw(day_near(run_days, horizons))
    if kind == "planned":
        return day, None
    if kind == "closed_only":
        return None, day
    gap = timedelta(days=draw(st.sampled_from([1, 30, 365, 3 * 365 + 1])))
    return (day + gap, day) if kind == "closed_early" else (day - gap, day)


@st.composite
def day_near(draw: Any, run_days: list[date], horizons: list[tuple[Period, ...]]) -> date:
    """A day on, just before or just after a horizon, or from the leap/DST lists or the backlog."""
    kind = draw(st.sampled_from(["boundary", "boundary", "boundary", "leap", "dst", "backlog"]))
    if kind == "boundary":
        anchor = last_due_start(draw(st.sampled_from(run_days)), *draw(st.sampled_from(horizons)))
        return anchor + timedelta(days=draw(st.sampled_from([-1, 0, 1])))
    if kind == "leap":
        return draw(st.sampled_from(LEAP_DAYS)) + timedelta(days=draw(st.sampled_from([-1, 0, 1])))
    if kind == "dst":
        return draw(st.sampled_from(DST_DAYS)) + timedelta(days=draw(st.sampled_from([-1, 0])))
    return run_days[0] - timedelta(days=draw(st.integers(0, 15 * 366)))


@st.composite
def stamp(
    draw: Any, run_days: list[date], horizons: list[tuple[Period, ...]], aware: bool, nullable: bool = True
) -> Stamp | None:
    if nullable and draw(st.integers(0, 5)) == 0:
        return None
    day = draw(day_near(run_days, horizons))
    moment = draw(st.sampled_from(AWARE_TIMES if aware else NAIVE_TIMES))
    return Stamp(datetime.combine(day, moment), draw(st.sampled_from(TEXT_FORMS)))


@st.composite
def legal_holds(draw: Any, rows: dict[str, list[dict[str, Any]]]) -> Holds:
    """Usually none; else a few partners, an interaction (a child), an invoice (a retained
    dependant), or a whole category (a parent's category included)."""
    if draw(st.integers(0, 2)) != 0:
        return Holds()

    def some(table: str, key: str, most: int) -> frozenset:
        keys = [r[key] for r in rows[table]]
        return frozenset((k,) for k in draw(st.sets(st.sampled_from(keys), max_size=most))) if keys else frozenset()

    # A hold on a parent's category (customers, prospects) keeps its invoices where they are too.
    categories = draw(
        st.sets(
            st.sampled_from(
                ["rights_requests", "navigation_tracking", "billing", "billing", "customer_relationship", "prospection"]
            ),
            max_size=1,
        )
    )
    return Holds(
        frozenset(categories),
        {
            "partners": some("partners", "partner_id", 2),
            "interactions": some("interactions", "interaction_id", 1),
            "invoices": some("invoices", "invoice_id", 1),
        },
    )


@st.composite
def worlds(
    draw: Any,
    gap: bool | None = None,
    holds: bool = True,
    nightly_for: int = 0,
    dateless_invoices: bool = True,
    **fixed_knobs: Any,
) -> World:
    """``dateless_invoices``: some invoices have no date (a defect: they leave the active base
    with their customer, undated, and keep it in the archive). ``gap``: a second night 3 years
    after the first (None: either). ``nightly_for``: that many more nights after the first,
    each 1 day, 1 month, 1 year or 3 years after the last. ``fixed_knobs``: ``PolicyKnobs``
    fields given instead of drawn (``invoices_leave="on_parent_event"``)."""
    k = replace(draw(knobs()), **fixed_knobs)
    policy = build_policy(k)
    c = policy.categories
    first = draw(st.sampled_from(RUN_DAYS))
    with_gap = (draw(st.booleans()) if gap is None else gap) or nightly_for > 0
    run_days = [first] + ([add_period(first, years=3)] if with_gap and not nightly_for else [])
    for _ in range(nightly_for):
        run_days.append(
            add_period(run_days[-1], **draw(st.sampled_from([{"days": 1}, {"months": 1}, {"years": 1}, {"years": 3}])))
        )
    nights = [(day, tuple(draw(st.permutations(CATEGORIES)))) for day in run_days]

    def horizons(category: str) -> list[tuple[Period, ...]]:
        cat = c[category]
        return [(cat.active_period,), (cat.active_period, cat.archive_or_zero)]

    prospect_h, customer_h, billing_h = horizons("prospection"), horizons("customer_relationship"), horizons("billing")
    # A relationship's end also matters where its invoices leave (end + billing's active period).
    line_h = customer_h + [(c["billing"].active_period,)]
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
    for pid in range(1, draw(st.integers(0, 10)) + 1):
        rows["partners"].append(
            {
                "partner_id": pid,
                "name": f"Partenaire {pid}",
                "email": f"p{pid}@example.fr",
                "is_prospect": draw(st.sampled_from([True, True, False, None])),
                "customer_rank": draw(st.sampled_from([0, None, 1, 3])),
                "created_at": draw(stamp(run_days, prospect_h, aware=False)),
            }
        )
        for n in range(draw(st.integers(0, 2))):
            iid = pid * 10 + n
            rows["interactions"].append(
                {
                    "interaction_id": iid,
                    "partner_id": pid,
                    "occurred_at": draw(stamp(run_days, prospect_h, aware=False)),
                    "direction": draw(st.sampled_from(["inbound", "inbound", "outbound", None])),
                }
            )
            for f in range(draw(st.integers(0, 1))):
                rows["interaction_files"].append(
                    {"file_id": iid * 10 + f, "interaction_id": iid, "file_name": f"scan-{iid}-{f}.pdf"}
                )
        for n in range(draw(st.integers(0, 2))):
            cid = pid * 10 + n
            rows["contracts"].append(
                {
                    "contract_id": cid,
                    "partner_id": pid,
                    "status": draw(st.sampled_from(["signed", "signed", "draft", None])),
                }
            )
            for line in range(draw(st.integers(1, 2))):
                planned, closed = draw(contract_line(run_days, line_h))
                rows["contract_lines"].append(
                    {"line_id": cid * 10 + line, "contract_id": cid, "end_date": planned, "closed_on": closed}
                )
        for n in range(draw(st.integers(0, 2))):
            inv = pid * 10 + n
            day = (
                None
                if dateless_invoices and draw(st.integers(0, 9)) == 0
                else draw(day_near(run_days, draw(st.sampled_from([billing_h, customer_h, prospect_h]))))
            )
            rows["invoices"].append({"invoice_id": inv, "partner_id": pid, "number": f"F-{inv}", "invoice_date": day})
            for line in range(draw(st.integers(0, 1))):
                rows["invoice_lines"].append({"line_id": inv * 10 + line, "invoice_id": inv, "amount": 100})
    # Counter sales: invoices with no customer. Nothing in the active base to wait for: in
    # either mode they follow their own clock.
    for inv in range(1, draw(st.integers(0, 2)) + 1):
        rows["invoices"].append(
            {
                "invoice_id": inv,
                "partner_id": None,
                "number": f"C-{inv}",
                "invoice_date": draw(day_near(run_days, billing_h)),
            }
        )
    for rid in range(1, draw(st.integers(0, 5)) + 1):
        rows["requests"].append(
            {
                "request_id": rid,
                "kind": "erasure",
                "closed_at": draw(stamp(run_days, horizons("rights_requests"), aware=True)),
            }
        )
    for vid in range(1, draw(st.integers(0, 5)) + 1):
        rows["visits"].append(
            {
                "visit_id": vid,
                "visitor": f"v{vid}",
                "first_set_at": draw(stamp(run_days, horizons("navigation_tracking"), aware=True)),
            }
        )
        for n in range(draw(st.integers(0, 2))):
            rows["visit_hits"].append(
                {
                    "hit_id": vid * 10 + n,
                    "visit_id": vid,
                    "seen_at": draw(stamp(run_days, horizons("navigation_tracking"), aware=True)),
                }
            )
    chosen_holds = draw(legal_holds(rows)) if holds else Holds()
    later = draw(legal_holds(rows)) if holds and with_gap else Holds()
    return World(k, policy, nights, rows, chosen_holds, later)


__all__ = ["World", "legal_holds", "worlds"]

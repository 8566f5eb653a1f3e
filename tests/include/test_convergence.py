"""One run of every category reaches the schedule, whatever the order of the categories.

For every policy the project ships - the demo's, the ERP schema's, the Odoo and the Dolibarr
examples - every category runs once for day D, through the steps the DAG tasks call (pre-archive gate,
plan, approval, archive, purge, post-run gate, summary), in each order of a retained
dependant's category and its parents' categories. Then every seeded row must be where the
schedule says it is on D, and a second run of everything for D must change nothing.

Where a row must be is computed here, in plain Python, from the seed and the schedule
(``expected_places``) - never from the engine's SQL:

* a root row whose active period has not ended (no start, a start still running, or an
  open related row) stays active with its children and its dependants; so does a row a
  legal hold protects, and a parent whose dependant a hold protects (the hold keeps both);
* otherwise it leaves the active base with its children and its retained dependants;
  each dependant is destroyed if its own horizon (its start + its category's active and
  archive periods) is reached, else kept in its category's archive; the parent is
  destroyed if its own horizon is reached and no dependant is kept, else archived;
* a category without an archive period destroys what is due;
* a due row of the table a category asks for re-consent (``reconsent``), with an address,
  stays active with its tree until ``notice_days`` past the end of its active period: no
  campaign runs here, so nobody is asked and nothing settles the promise sooner;
* with ``leaves_active: on_parent_event`` (``released``), a dependant of a root that stays
  active leaves all the same once the root's start event plus the dependant's active period
  has passed (unless the root is held, ongoing or undated, or the dependant is held), to its
  archive or, past its own horizon, destroyed. The ERP schema runs that way too, with four
  more customers whose relationship ended (``ERP_RELEASED_EXTRA``).

The backlog holds, for each policy: dependants already past their own horizon, dependants
still retained, parents held by them, parents released in the same run, and legal holds.

Each run of a whole policy takes tens of seconds to minutes, so ``make test`` tries one order
per test and backend, and ``make test-deep`` every order on both (``backend_orders``): the ERP's
dependant first on one backend and last on the other, swapped between its two tests, so that
each backend sees both, after one night and after an earlier one; the Odoo crons' own order
on both; the demo in policy order on SQLite, reversed on PostgreSQL. Only ``make test-deep``
runs the Odoo policy after an earlier night (the ERP's cases check every row after an earlier
night on both backends, and tests/include/test_odoo_example.py runs the Odoo policy on later
nights on both) and Dolibarr in any order (its crons' order on both is the run of
tests/include/test_dolibarr_example.py, which checks every row and a second run as here; other
orders on each backend are the ERP's, the Odoo's and the demo's cases). The Dolibarr rows'
places are not computed here but written by hand (``dolibarr_world.EXPECTED``): per-line
contract ends, draft contracts left out by a path filter and overlapping scopes are outside
this model.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dolibarr_world import EXPECTED as DOLIBARR_EXPECTED
from dolibarr_world import actual_states, dolibarr_policy, expected_state
from dolibarr_world import seed as dolibarr_seed
from engine_helpers import run_whole
from sqlalchemy import MetaData, Table, insert, inspect, null, select
from table_checksums import checksum
from test_odoo_example import LEADS as ODOO_LEADS
from test_odoo_example import MESSAGES as ODOO_MESSAGES
from test_odoo_example import MOVES, create_odoo, odoo_policy
from test_odoo_example import ORDERS as ODOO_ORDERS
from test_odoo_example import PARTNERS as ODOO_PARTNERS
from test_real_schemas import ERP_POLICY, INVOICES, PARTNERS, create_erp

from include.retention.database.identity import SubjectKey
from include.retention.database.store import audit_table
from include.retention.dates.periods import Period
from include.retention.policy.load import load_policy, parse_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext, events
from include.retention.records.holds import NewHold, add_hold

PARIS = ZoneInfo("Europe/Paris")
AS_OF = date(2026, 11, 26)
EARLIER = date(2024, 6, 3)  # an earlier night, for the runs that start from a partly archived base
KEY = SubjectKey("k" * 40, "test")
BOOKKEEPING = {"plan", "validation", "quality_finding", "run_summary"}
ACTIVE, GONE = "active", None


# --- The schedule, in plain Python ------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """One category: its periods and the archive table of each of its source tables."""

    active: Period
    archive: Period | None
    archive_tables: dict[str, str]
    # The re-consent promise (a ``reconsent`` block): the table whose rows are asked, and its
    # notice_days. No campaign runs in these tests, so nobody is asked.
    asked: tuple[str, int] | None = None

    def due(self, start: date, as_of: date) -> bool:
        return self.active.add_to(start) <= as_of

    def waits(self, row: Row, as_of: date) -> bool:
        """A due row of the asked table with an address waits for the ask, until notice_days
        past the end of its active period (nobody is asked here: nothing settles it sooner)."""
        if self.asked is None or row.table != self.asked[0] or not row.addressed or row.start is None:
            return False
        return as_of < self.active.add_to(row.start) + timedelta(days=self.asked[1])

    def horizon_reached(self, start: date, as_of: date) -> bool:
        return self.archive is None or self.archive.add_to(self.active.add_to(start)) <= as_of


@dataclass
class Row:
    """A seeded row and what the schedule needs to know about it."""

    table: str
    key: int
    category: str | None = None  # None: governed by no category (or a child: follows its parent)
    start: date | None = None  # None: no start (ongoing or a defect): never due
    ongoing: bool = False  # kept active by an open related row
    held: bool = False  # a legal hold protects it
    addressed: bool = True  # has an address to ask for re-consent (not NULL, not blank)
    children: list[Row] = field(default_factory=list)
    dependants: list[Row] = field(default_factory=list)

    def tree(self) -> list[Row]:
        return [self] + [n for c in self.children for n in c.tree()]


Place = tuple[str, str] | None  # ("active", table), ("archive", archive table), or None: destroyed


def expected_places(
    roots: list[Row], schedules: dict[str, Schedule], as_of: date, free: list[Row] = (), released: bool = False
) -> dict[tuple[str, int], Place]:
    """Where every row must be on ``as_of`` after one run of every category (see the module
    docstring). ``free``: rows outside any governed tree (they stay active). ``released``: the
    dependants leave the active base on their parent's start event (``leaves_active:
    on_parent_event``) - see ``_released_dependants``."""
    places: dict[tuple[str, int], Place] = {}

    def put(row: Row, place: Place) -> None:
        for node in row.tree():
            archive_place = (
                None if place is None else ((ACTIVE, "") if place[0] == ACTIVE else ("archive", place[1][node.table]))
            )
            places[(node.table, node.key)] = archive_place

    for row in free:
        put(row, (ACTIVE, ""))
    for root in roots:
        everything = [root, *root.dependants]
        schedule = schedules.get(root.category or "")
        due = (
            schedule is not None
            and root.start is not None
            and not root.ongoing
            and schedule.due(root.start, as_of)
            and not schedule.waits(root, as_of)
        )
        if not due or root.held or any(d.held for d in root.dependants):
            for row in everything:
                put(row, (ACTIVE, ""))
            if released:
                for dep, place in _released_dependants(root, schedule, schedules, as_of):
                    put(dep, place)
            continue
        kept_dependant = False
        for dep in root.dependants:
            dep_schedule = schedules[dep.category]
            if dep_schedule.horizon_reached(dep.start, as_of):
                put(dep, GONE)
            else:
                kept_dependant = True
                put(dep, ("archive", dep_schedule.archive_tables))
        if schedule.horizon_reached(root.start, as_of) and not kept_dependant:
            put(root, GONE)
        else:
            put(root, ("archive", schedule.archive_tables))
    return places


def _released_dependants(
    root: Row, schedule: Schedule | None, schedules: dict[str, Schedule], as_of: date
) -> list[tuple[Row, Place]]:
    """Dependants of a root that stays active, which leave all the same on its start event
    (the end of the relationship) plus their own active period: unless the root is held,
    ongoing or has no start, or they are held themselves. Their horizon is their own (an
    undated one cannot be aged: it stays in the archive)."""
    if schedule is None or root.held or root.ongoing or root.start is None:
        return []
    out: list[tuple[Row, Place]] = []
    for dep in root.dependants:
        dep_schedule = schedules[dep.category]
        if dep.held or not dep_schedule.due(root.start, as_of):
            continue
        gone = dep.start is not None and dep_schedule.horizon_reached(dep.start, as_of)
        out.append((dep, GONE if gone else ("archive", dep_schedule.archive_tables)))
    return out


# --- Where the rows are -----------------------------------------------------------------


def actual_places(
    target, source_schema: str, wanted: dict[tuple[str, int], Place], archive_tables: dict[str, set[str]]
) -> dict[tuple[str, int], Place | list[Place]]:
    """Where each wanted row is now: its active table, one archive table, nowhere - or a
    list, if it is in more than one place (which must never happen)."""
    found: dict[tuple[str, int], list[Place]] = {k: [] for k in wanted}
    schema = None if target.is_sqlite else source_schema
    with target.read() as conn:
        inspector = inspect(conn)
        for table in {t for t, _ in wanted}:
            places = [(ACTIVE, table, schema)] + [("archive", a, "archive") for a in sorted(archive_tables[table])]
            for side, name, owner in places:
                if not inspector.has_table(name, schema=owner):
                    continue
                reflected = Table(name, MetaData(), schema=owner, autoload_with=conn)
                (pk,) = reflected.primary_key.columns
                for key in conn.execute(select(pk)).scalars():
                    if (table, key) in found:
                        found[(table, key)].append((side, "" if side == ACTIVE else name))
    return {k: (v[0] if len(v) == 1 else (v if v else None)) for k, v in found.items()}


def assert_places(
    target, source_schema: str, expected: dict[tuple[str, int], Place], schedules: dict[str, Schedule]
) -> None:
    archive_tables: dict[str, set[str]] = {}
    for schedule in schedules.values():
        for source, archive in schedule.archive_tables.items():
            archive_tables.setdefault(source, set()).add(archive)
    for table, _ in expected:
        archive_tables.setdefault(table, set())
    actual = actual_places(target, source_schema, expected, archive_tables)
    wrong = {k: {"expected": expected[k], "actual": actual[k]} for k in expected if actual[k] != expected[k]}
    assert not wrong, f"{len(wrong)} row(s) not where the schedule says: {wrong}"


def run_everything(target, policy: RetentionPolicy, order: tuple[str, ...], as_of: date, label: str) -> list[str]:
    run_ids = []
    for key in order:
        run_id = f"{label}-{key}"
        run_whole(target, policy, key, as_of, run_id, KEY)
        run_ids.append(run_id)
    return run_ids


def assert_second_run_changes_nothing(target, policy: RetentionPolicy, order: tuple[str, ...]) -> None:
    before = checksum(target)
    run_ids = run_everything(target, policy, order, AS_OF, "again")
    assert checksum(target) == before
    trail = audit_table("archive", policy.audit_table)
    with target.read() as conn:
        logged = [e for run_id in run_ids for e in events(conn, trail, run_id=run_id)]
    assert {e["action"] for e in logged} <= BOOKKEEPING, sorted({e["action"] for e in logged} - BOOKKEEPING)
    assert [(e["table_name"], e["row_count"]) for e in logged if e["action"] == "plan" and e["row_count"]] == []


def orders_around(dependant: str, parents: list[str], others: list[str]) -> list[tuple[str, ...]]:
    """The dependant's category before every parent, after every parent, and between them:
    every relative order of the dependant and each of its parents."""
    out = [(dependant, *parents, *others), (*parents, dependant, *others)]
    if len(parents) > 1:
        out.append((parents[0], dependant, *parents[1:], *others))
    return out


def hold_rows(target, policy: RetentionPolicy, table: str, keys: list[int], reference: str) -> None:
    ctx = RunContext("manual__hold", "legal_hold", AS_OF, policy.version)
    add_hold(
        target,
        policy,
        NewHold(
            reference=reference, scope="rows", reason="litige en cours", created_by="juriste", table=table, keys=keys
        ),
        KEY,
        ctx,
        date.today(),
    )


def _id(order: tuple[str, ...]) -> str:
    return ">".join(order)


BACKENDS = ("sqlite", "postgresql")


def backend_orders(orders: list[Any], quick: dict[str, int | None], name: Callable[[Any], str] = _id) -> list[Any]:
    """Parameters (backend, order) for ``target_url`` (indirect) and ``order``, with the ids the
    backend fixture gives (``sqlite-<order>``). ``quick[backend]`` is the index of the order
    ``make test`` runs there (None: none); every other order is the same behaviour tried again,
    slowly, so it is marked ``deep`` (``make test-deep``)."""
    return [
        pytest.param(
            backend, order, id=f"{backend}-{name(order)}", marks=() if quick[backend] == n else pytest.mark.deep
        )
        for backend in BACKENDS
        for n, order in enumerate(orders)
    ]


# --- The ERP schema (tests/include/test_real_schemas.py) ------------------------------------

ERP_SCHEDULES = {
    "prospection": Schedule(
        Period(3), Period(5), {"partners": "prospect_partners", "interactions": "prospect_interactions"}
    ),
    "customer_relationship": Schedule(
        Period(3),
        Period(5),
        {
            "partners": "customer_partners",
            "interactions": "customer_interactions",
            "contracts": "contracts",
            "contract_lines": "contract_lines",
        },
    ),
    "billing": Schedule(Period(), Period(10), {"invoices": "invoices", "invoice_lines": "invoice_lines"}),
}
# The backlog this file adds to the ERP seed: partner_id: (is_prospect, is_customer, created, contract line ends)
ERP_EXTRA_PARTNERS = {
    11: (False, True, date(2008, 1, 1), [date(2017, 1, 31)]),  # expired 2025: its only invoice too
    12: (False, True, date(2008, 1, 1), [date(2016, 1, 1)]),  # expired, but a hold keeps its old invoice
    13: (False, True, date(2008, 1, 1), [date(2015, 5, 5)]),  # expired, held itself
    14: (False, True, date(2008, 1, 1), [date(2019, 9, 9)]),  # archived now; one invoice past, one within
}
# invoice_id: (partner_id, invoice date, number of lines)
ERP_EXTRA_INVOICES = {
    41: (4, date(2014, 1, 1), 1),  # a prospect archived now, with an invoice past its horizon
    111: (11, date(2015, 5, 5), 2),  # past its horizon: gone, and its customer with it
    121: (12, date(2014, 2, 2), 1),  # past its horizon, but held: it and customer 12 stay
    131: (13, date(2014, 3, 3), 1),  # its customer is held: stays with it
    141: (14, date(2016, 1, 1), 1),  # past its horizon (2026-01-01): gone
    142: (14, date(2019, 9, 9), 1),  # retained until 2029-09-09: keeps customer 14 in the archive
}
ERP_CATEGORIES = list(ERP_POLICY["categories"])


def _erp_seed(target) -> None:
    create_erp(target)
    md = MetaData(schema=None if target.is_sqlite else "erp")
    tables = {
        name: Table(name, md, autoload_with=target.engine)
        for name in ("partners", "contracts", "contract_lines", "invoices", "invoice_lines")
    }
    with target.engine.begin() as conn:
        for pid, (prospect, customer, created, ends) in ERP_EXTRA_PARTNERS.items():
            conn.execute(
                insert(tables["partners"]).values(
                    partner_id=pid,
                    name=f"Partenaire {pid}",
                    email=f"p{pid}@example.fr",
                    is_prospect=prospect,
                    is_customer=customer,
                    created_at=datetime(created.year, created.month, created.day, 9, tzinfo=PARIS),
                )
            )
            conn.execute(insert(tables["contracts"]).values(contract_id=pid * 10, partner_id=pid))
            for k, end in enumerate(ends):
                conn.execute(
                    insert(tables["contract_lines"]).values(line_id=pid * 100 + k, contract_id=pid * 10, end_date=end)
                )
        for invoice_id, (pid, day, lines) in ERP_EXTRA_INVOICES.items():
            conn.execute(
                insert(tables["invoices"]).values(
                    invoice_id=invoice_id, partner_id=pid, number=f"F-{invoice_id}", invoice_date=day
                )
            )
            for k in range(lines):
                conn.execute(
                    insert(tables["invoice_lines"]).values(
                        line_id=invoice_id * 10 + k, invoice_id=invoice_id, amount=100
                    )
                )


def _erp_rows() -> tuple[list[Row], list[Row]]:
    """The ERP seed as the schedule sees it: each partner's category, clock and tree."""
    partners = {
        pid: (p, c, created, contacts, contracts) for pid, (p, c, created, contacts, contracts) in PARTNERS.items()
    }
    for pid, (p, c, created, ends) in ERP_EXTRA_PARTNERS.items():
        partners[pid] = (p, c, created, [], [ends])
    invoices = {**INVOICES, **ERP_EXTRA_INVOICES}
    held_invoices, held_partners = {121}, {13}
    roots, free = [], []
    for pid, (prospect, customer, created, contacts, contracts) in partners.items():
        interactions = [Row("interactions", pid * 10 + k) for k in range(len(contacts))]
        contract_rows = (
            [
                Row(
                    "contracts",
                    pid * 10 + c,
                    children=[Row("contract_lines", pid * 100 + c * 10 + k) for k in range(len(ends))],
                )
                for c, ends in enumerate(contracts)
            ]
            if pid not in ERP_EXTRA_PARTNERS
            else [
                Row("contracts", pid * 10, children=[Row("contract_lines", pid * 100 + k) for k in range(len(ends))])
                for ends in contracts
            ]
        )
        dependants = [
            Row(
                "invoices",
                iid,
                "billing",
                day,
                held=iid in held_invoices,
                children=[Row("invoice_lines", iid * 10 + k) for k in range(lines)],
            )
            for iid, (owner, day, lines) in invoices.items()
            if owner == pid
        ]
        if customer:
            ends = [e for lines in contracts for e in lines]
            start = max((e for e in ends if e is not None), default=None)
            roots.append(
                Row(
                    "partners",
                    pid,
                    "customer_relationship",
                    start,
                    ongoing=None in ends,
                    held=pid in held_partners,
                    children=interactions + contract_rows,
                    dependants=dependants,
                )
            )
        elif prospect:
            inbound = [day for day, direction in contacts if direction == "inbound"]
            roots.append(
                Row(
                    "partners",
                    pid,
                    "prospection",
                    max(inbound, default=created),
                    children=interactions + contract_rows,
                    dependants=dependants,
                )
            )
        else:
            free += [Row("partners", pid, children=interactions + contract_rows), *dependants]
    return roots, free


@pytest.fixture
def erp(target):
    _erp_seed(target)
    policy = parse_policy(ERP_POLICY)
    hold_rows(target, policy, "invoices", [121], "LIT-121")
    hold_rows(target, policy, "partners", [13], "LIT-13")
    return target, policy


ERP_ORDERS = orders_around("billing", ["prospection", "customer_relationship"], [])  # billing first, last, between


@pytest.mark.parametrize(
    ("target_url", "order"), backend_orders(ERP_ORDERS, {"sqlite": 0, "postgresql": 1}), indirect=["target_url"]
)
def test_erp_one_run_of_every_category_reaches_the_schedule_in_any_order(erp, order):
    target, policy = erp
    run_everything(target, policy, order, AS_OF, "first")
    roots, free = _erp_rows()
    assert_places(target, "erp", expected_places(roots, ERP_SCHEDULES, AS_OF, free), ERP_SCHEDULES)
    assert_second_run_changes_nothing(target, policy, order)


@pytest.mark.parametrize(
    ("target_url", "order"), backend_orders(ERP_ORDERS[:2], {"sqlite": 1, "postgresql": 0}), indirect=["target_url"]
)
def test_erp_after_an_earlier_night_one_run_reaches_the_schedule_in_any_order(erp, order):
    """Dependants archived on an earlier night reach their horizon since: one run destroys them
    and releases the parents they kept."""
    target, policy = erp
    run_everything(target, policy, order, EARLIER, "earlier")
    run_everything(target, policy, order, AS_OF, "first")
    roots, free = _erp_rows()
    assert_places(target, "erp", expected_places(roots, ERP_SCHEDULES, AS_OF, free), ERP_SCHEDULES)
    assert_second_run_changes_nothing(target, policy, order)


def _erp_released_policy() -> RetentionPolicy:
    data = copy.deepcopy(ERP_POLICY)
    data["categories"]["billing"]["tables"][0]["archived_with"]["leaves_active"] = "on_parent_event"
    return parse_policy(data)


# Customers whose relationship ended but who stay active, for the released invoices:
# partner_id: (contract line end, {invoice_id: invoice date})
ERP_RELEASED_EXTRA = {
    15: (date(2026, 1, 10), {151: date(2016, 6, 30), 152: date(2020, 1, 1)}),  # 151 past its horizon: gone
    16: (date(2026, 11, 26), {161: date(2025, 1, 15)}),  # ended today: released
    17: (date(2026, 11, 27), {171: date(2025, 1, 15)}),  # ends tomorrow: stays
    18: (date(2023, 6, 30), {181: date(2024, 1, 1)}),  # customer archived now too
}


def _erp_released_extra(target) -> list[Row]:
    """Add ``ERP_RELEASED_EXTRA`` to the seeded ERP; return their rows as the schedule sees them."""
    md = MetaData(schema=None if target.is_sqlite else "erp")
    tables = {
        name: Table(name, md, autoload_with=target.engine)
        for name in ("partners", "contracts", "contract_lines", "invoices", "invoice_lines")
    }
    roots = []
    with target.engine.begin() as conn:
        for pid, (end, invoices) in ERP_RELEASED_EXTRA.items():
            conn.execute(
                insert(tables["partners"]).values(
                    partner_id=pid,
                    name=f"Partenaire {pid}",
                    email=f"p{pid}@example.fr",
                    is_prospect=False,
                    is_customer=True,
                    created_at=datetime(2010, 1, 1, 9, tzinfo=PARIS),
                )
            )
            conn.execute(insert(tables["contracts"]).values(contract_id=pid * 10, partner_id=pid))
            conn.execute(insert(tables["contract_lines"]).values(line_id=pid * 100, contract_id=pid * 10, end_date=end))
            for invoice_id, day in invoices.items():
                conn.execute(
                    insert(tables["invoices"]).values(
                        invoice_id=invoice_id, partner_id=pid, number=f"F-{invoice_id}", invoice_date=day
                    )
                )
                conn.execute(
                    insert(tables["invoice_lines"]).values(line_id=invoice_id * 10, invoice_id=invoice_id, amount=100)
                )
            roots.append(
                Row(
                    "partners",
                    pid,
                    "customer_relationship",
                    end,
                    children=[Row("contracts", pid * 10, children=[Row("contract_lines", pid * 100)])],
                    dependants=[
                        Row("invoices", iid, "billing", day, children=[Row("invoice_lines", iid * 10)])
                        for iid, day in invoices.items()
                    ],
                )
            )
    return roots


@pytest.mark.parametrize(
    ("target_url", "order"), backend_orders(ERP_ORDERS, {"sqlite": 1, "postgresql": 0}), indirect=["target_url"]
)
def test_erp_invoices_released_when_the_relationship_ends_reach_the_schedule_in_any_order(erp, order):
    """The same backlog with ``leaves_active: on_parent_event``, and customers still active
    whose relationship has ended: their invoices leave, on their own horizon."""
    target, _ = erp
    extra = _erp_released_extra(target)
    policy = _erp_released_policy()
    run_everything(target, policy, order, AS_OF, "first")
    roots, free = _erp_rows()
    expected = expected_places(roots + extra, ERP_SCHEDULES, AS_OF, free, released=True)
    assert expected != expected_places(roots + extra, ERP_SCHEDULES, AS_OF, free)  # the release is exercised
    assert_places(target, "erp", expected, ERP_SCHEDULES)
    assert_second_run_changes_nothing(target, policy, order)


# --- The Odoo example (examples/odoo) ---------------------------------------------------------


def _odoo_schedule(prefix: str) -> Schedule:
    return Schedule(
        Period(3),
        Period(5),
        {
            "res_partner": f"{prefix}_partner",
            "mail_message": f"{prefix}_mail_message",
            "crm_lead": f"{prefix}_crm_lead",
            "sale_order": f"{prefix}_sale_order",
        },
    )


ODOO_SCHEDULES = {
    "prospection": _odoo_schedule("prospect"),
    "customer_relationship": _odoo_schedule("customer"),
    "suppliers": _odoo_schedule("supplier"),
    "accounting": Schedule(
        Period(), Period(10), {"account_move": "account_move", "account_move_line": "account_move_line"}
    ),
}
# The backlog this file adds to the Odoo seed: partner id: (customer_rank, supplier_rank, create_date)
ODOO_EXTRA_PARTNERS = {
    10: (0, 1, date(2010, 1, 1)),  # supplier, last bill 2015-03-03: it and its bill are past their horizon
    11: (1, 0, date(2010, 1, 1)),  # customer, last posted invoice 2014-04-04: all past their horizon
    12: (1, 0, date(2010, 1, 1)),  # customer past its horizon, but a hold keeps its invoice
    13: (1, 0, date(2010, 1, 1)),  # customer archived now: one invoice past, one retained
}
ODOO_EXTRA_MOVES = {
    1001: (10, "in_invoice", "posted", date(2015, 3, 3), 1),
    1101: (11, "out_invoice", "posted", date(2014, 4, 4), 2),
    1102: (11, "out_invoice", "draft", date(2013, 1, 1), 1),  # a draft: not the clock, but archived with it
    1201: (12, "out_invoice", "posted", date(2015, 6, 6), 1),  # held
    1301: (13, "out_invoice", "posted", date(2016, 2, 2), 1),  # past its horizon (2026-02-02)
    1302: (13, "out_invoice", "posted", date(2022, 9, 9), 1),  # the customer's clock; kept until 2032
}
ODOO_CATEGORIES = ["prospection", "customer_relationship", "accounting", "suppliers"]  # the crons' order


def _odoo_seed(target) -> None:
    create_odoo(target)
    md = MetaData(schema=None if target.is_sqlite else "public")
    partner, move, line = (
        Table(n, md, autoload_with=target.engine) for n in ("res_partner", "account_move", "account_move_line")
    )
    with target.engine.begin() as conn:
        for pid, (customer, supplier, created) in ODOO_EXTRA_PARTNERS.items():
            conn.execute(
                insert(partner).values(
                    id=pid,
                    name=f"Partenaire {pid}",
                    email=f"contact{pid}@example.fr",
                    customer_rank=customer,
                    supplier_rank=supplier,
                    partner_share=True,
                    is_company=False,
                    create_date=datetime.combine(created, datetime.min.time()),
                )
            )
        for mid, (pid, kind, state, day, lines) in ODOO_EXTRA_MOVES.items():
            conn.execute(
                insert(move).values(
                    id=mid,
                    name=f"INV/{mid}",
                    partner_id=pid,
                    move_type=kind,
                    state=state,
                    invoice_date=day,
                    date=day,
                    amount_total=120,
                )
            )
            for k in range(lines):
                conn.execute(
                    insert(line).values(
                        id=mid * 10 + k, move_id=mid, partner_id=pid, name="Licence", price_subtotal=100
                    )
                )


def _last_posted(moves: dict[int, tuple], kinds: tuple[str, ...]) -> date | None:
    """The date of a partner's last posted move of these kinds: the start of its customer or supplier clock."""
    return max((day for _, kind, state, day, _ in moves.values() if kind in kinds and state == "posted"), default=None)


def _odoo_rows() -> tuple[list[Row], list[Row]]:
    partners = {pid: (c, s, share, created) for pid, (c, s, share, created) in ODOO_PARTNERS.items()}
    partners.update({pid: (c, s, True, created) for pid, (c, s, created) in ODOO_EXTRA_PARTNERS.items()})
    moves = {**MOVES, **ODOO_EXTRA_MOVES}
    held_moves = {1201}
    roots, free = [], []
    for pid, (customer, supplier, share, created) in partners.items():
        children = (
            [Row("mail_message", m) for m, (author, _, _) in ODOO_MESSAGES.items() if author == pid]
            + [Row("crm_lead", lid) for lid, owner in ODOO_LEADS.items() if owner == pid]
            + [Row("sale_order", oid) for oid, (owner, *_) in ODOO_ORDERS.items() if owner == pid]
        )
        mine = {mid: m for mid, m in moves.items() if m[0] == pid}
        dependants = [
            Row(
                "account_move",
                mid,
                "accounting",
                day,
                held=mid in held_moves,
                children=[Row("account_move_line", mid * 10 + k) for k in range(lines)],
            )
            for mid, (_, _, _, day, lines) in mine.items()
        ]

        if customer:
            running = any(
                owner == pid and sub in ("3_progress", "4_paused") and end is None
                for owner, _, _, sub, end in ODOO_ORDERS.values()
            )
            roots.append(
                Row(
                    "res_partner",
                    pid,
                    "customer_relationship",
                    _last_posted(mine, ("out_invoice", "out_refund")),
                    ongoing=running,
                    children=children,
                    dependants=dependants,
                )
            )
        elif supplier:
            roots.append(
                Row(
                    "res_partner",
                    pid,
                    "suppliers",
                    _last_posted(mine, ("in_invoice", "in_refund")),
                    children=children,
                    dependants=dependants,
                )
            )
        elif share:
            wrote = [
                when.date()
                for author, kind, when in ODOO_MESSAGES.values()
                if author == pid and kind in ("email", "comment")
            ]
            roots.append(
                Row(
                    "res_partner",
                    pid,
                    "prospection",
                    max(wrote, default=created),
                    children=children,
                    dependants=dependants,
                )
            )
        else:
            free += [Row("res_partner", pid, children=children), *dependants]
    free += [
        Row("account_move", mid, children=[Row("account_move_line", mid * 10 + k) for k in range(m[4])])
        for mid, m in moves.items()
        if m[0] is None
    ]
    return roots, free


@pytest.fixture
def odoo(target):
    _odoo_seed(target)
    policy = odoo_policy(target.is_sqlite)
    hold_rows(target, policy, "account_move", [1201], "LIT-1201")
    return target, policy


ODOO_ORDERS_TO_TRY = [tuple(ODOO_CATEGORIES)] + orders_around(  # the crons' order; accounting first, last, between
    "accounting", ["customer_relationship", "suppliers", "prospection"], []
)


@pytest.mark.parametrize(
    ("target_url", "order"), backend_orders(ODOO_ORDERS_TO_TRY, {"sqlite": 0, "postgresql": 0}), indirect=["target_url"]
)
def test_odoo_one_run_of_every_category_reaches_the_schedule_in_any_order(odoo, order):
    target, policy = odoo
    run_everything(target, policy, order, AS_OF, "first")
    roots, free = _odoo_rows()
    assert_places(target, "public", expected_places(roots, ODOO_SCHEDULES, AS_OF, free), ODOO_SCHEDULES)
    assert_second_run_changes_nothing(target, policy, order)


@pytest.mark.parametrize(
    ("target_url", "order"),
    backend_orders(ODOO_ORDERS_TO_TRY[1:3], {"sqlite": None, "postgresql": None}),
    indirect=["target_url"],
)
def test_odoo_after_an_earlier_night_one_run_reaches_the_schedule_in_any_order(odoo, order):
    target, policy = odoo
    run_everything(target, policy, order, EARLIER, "earlier")
    run_everything(target, policy, order, AS_OF, "first")
    roots, free = _odoo_rows()
    assert_places(target, "public", expected_places(roots, ODOO_SCHEDULES, AS_OF, free), ODOO_SCHEDULES)
    assert_second_run_changes_nothing(target, policy, order)


# --- The demo policy and seed (include/policy, include/demo) ----------------------------------

DEMO_TREES = {  # category: (root table, its clock column, {child table: foreign key})
    "web_forms": ("web_form_submissions", "last_inbound_contact_at", {}),
    "navigation_tracking": (
        "tracking_cookies",
        "first_set_at",
        {"tracking_events": "cookie_id", "tracking_consents": "cookie_id"},
    ),
    "prospection": ("prospects", "last_inbound_contact_at", {"prospect_interactions": "prospect_id"}),
    "customer_relationship": ("customers", "relationship_ended_at", {"customer_contracts": "customer_id"}),
    "subscription_billing": ("subscriptions", "ended_at", {"invoices": "subscription_id"}),
    "suppliers": ("suppliers", "relationship_ended_at", {"supplier_contracts": "supplier_id"}),
    "rights_requests": ("rights_requests", "closed_at", {}),
}


def _paris_day(value: Any) -> date | None:
    """The day a stored start falls on in Paris (naive timestamps are Paris wall-clock time)."""
    if value is None or type(value) is date:
        return value
    return (value.astimezone(PARIS) if value.tzinfo else value).date()


def _demo_rows(target, policy: RetentionPolicy) -> list[Row]:
    schema = None if target.is_sqlite else "crm"
    roots = []
    with target.read() as conn:
        for key, (table, column, children) in DEMO_TREES.items():
            root = Table(table, MetaData(), schema=schema, autoload_with=conn)
            (pk,) = root.primary_key.columns
            child_rows: dict[int, list[Row]] = {}
            for child, fk in children.items():
                reflected = Table(child, MetaData(), schema=schema, autoload_with=conn)
                (child_pk,) = reflected.primary_key.columns
                for child_key, parent in conn.execute(select(child_pk, reflected.c[fk])):
                    child_rows.setdefault(parent, []).append(Row(child, child_key))
            reconsent = policy.categories[key].reconsent
            address = root.c[reconsent.address_column] if reconsent else null()
            for row_key, start, email in conn.execute(select(pk, root.c[column], address)):
                # What SQL's trim sees as blank: spaces only.
                addressed = email is not None and email.strip(" ") != ""
                roots.append(
                    Row(
                        table,
                        row_key,
                        key,
                        _paris_day(start),
                        children=child_rows.get(row_key, []),
                        addressed=addressed,
                    )
                )
    return roots


def _demo_schedules(policy: RetentionPolicy) -> dict[str, Schedule]:
    out = {}
    for key, category in policy.categories.items():
        tables = {n.table: n.archive_name for t in category.tables for n in t.walk()}
        asked = (category.asked_table, category.reconsent.notice_days) if category.reconsent else None
        out[key] = Schedule(
            category.active_period, category.archive_period if category.has_archive else None, tables, asked
        )
    return out


@pytest.fixture
def demo(target):
    from include.demo.seed import seed_demo

    if not target.is_sqlite:  # the prospection gate compares keyed hashes in SQL
        with target.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    seed_demo(target.engine, None if target.is_sqlite else "crm", AS_OF)
    return target, load_policy()


@pytest.mark.parametrize(
    ("target_url", "reverse"),
    backend_orders(
        [False, True], {"sqlite": 0, "postgresql": 1}, lambda reverse: "reversed" if reverse else "policy_order"
    ),
    indirect=["target_url"],
)
def test_demo_one_run_of_every_category_reaches_the_schedule_in_any_order(demo, reverse):
    target, policy = demo
    order = tuple(reversed(policy.categories)) if reverse else tuple(policy.categories)
    roots = _demo_rows(target, policy)
    schedules = _demo_schedules(policy)
    run_everything(target, policy, order, AS_OF, "first")
    assert_places(target, "crm", expected_places(roots, schedules, AS_OF), schedules)
    assert_second_run_changes_nothing(target, policy, order)


# --- The model itself ---------------------------------------------------------------------------


def test_the_model_keeps_a_row_waiting_for_reconsent_at_most_the_notice_window():
    schedules = {"c": Schedule(Period(3), Period(5), {"p": "ap"}, asked=("p", 30))}
    ended = date(2023, 11, 26)  # its active period ends on AS_OF

    def place(start: date, addressed: bool = True) -> Place:
        return expected_places([Row("p", 1, "c", start, addressed=addressed)], schedules, AS_OF)[("p", 1)]

    assert place(ended) == (ACTIVE, "")
    assert place(ended - timedelta(days=29)) == (ACTIVE, "")
    assert place(ended - timedelta(days=30)) == ("archive", "ap")
    assert place(ended, addressed=False) == ("archive", "ap")


def test_the_model_destroys_a_dependant_past_its_horizon_and_releases_its_parent():
    schedules = {"c": Schedule(Period(3), Period(5), {"p": "ap"}), "b": Schedule(Period(), Period(10), {"i": "ai"})}
    parent = Row("p", 1, "c", date(2010, 1, 1), dependants=[Row("i", 1, "b", date(2009, 1, 1))])
    assert expected_places([parent], schedules, AS_OF) == {("p", 1): None, ("i", 1): None}
    parent.dependants.append(Row("i", 2, "b", date(2020, 1, 1)))
    assert expected_places([parent], schedules, AS_OF) == {
        ("p", 1): ("archive", "ap"),
        ("i", 1): None,
        ("i", 2): ("archive", "ai"),
    }
    parent.dependants[1].held = True
    assert set(expected_places([parent], schedules, AS_OF).values()) == {("active", "")}


def test_the_model_releases_dependants_when_their_parents_relationship_ends():
    schedules = {"c": Schedule(Period(3), Period(5), {"p": "ap"}), "b": Schedule(Period(), Period(10), {"i": "ai"})}
    dependants = [
        Row("i", 1, "b", date(2016, 1, 1)),
        Row("i", 2, "b", date(2020, 1, 1)),
        Row("i", 3, "b", None),
        Row("i", 4, "b", date(2020, 1, 1), held=True),
    ]
    parent = Row("p", 1, "c", AS_OF, dependants=dependants)  # ended today: still active 3 years
    assert expected_places([parent], schedules, AS_OF, released=True) == {
        ("p", 1): ("active", ""),
        ("i", 1): None,
        ("i", 2): ("archive", "ai"),
        ("i", 3): ("archive", "ai"),
        ("i", 4): ("active", ""),
    }
    assert set(expected_places([parent], schedules, AS_OF).values()) == {("active", "")}  # with_parent
    for still in (
        Row("p", 1, "c", AS_OF + timedelta(days=1), dependants=dependants),
        Row("p", 1, "c", AS_OF, ongoing=True, dependants=dependants),
        Row("p", 1, "c", AS_OF, held=True, dependants=dependants),
    ):
        assert set(expected_places([still], schedules, AS_OF, released=True).values()) == {("active", "")}


# --- The Dolibarr example (examples/dolibarr) -------------------------------------------------
# Where every row must be is written by hand in dolibarr_world.EXPECTED (per-line ends and
# path filters are outside this file's model); each order must reach it.

DOLIBARR_ORDERS = list(itertools.permutations(("prospection", "customer_relationship", "billing")))


@pytest.mark.parametrize(
    ("target_url", "order"),
    backend_orders(DOLIBARR_ORDERS, {"sqlite": None, "postgresql": None}),
    indirect=["target_url"],
)
def test_dolibarr_one_run_of_every_category_reaches_the_schedule_in_any_order(target, order):
    dolibarr_seed(target)
    policy = dolibarr_policy()
    run_everything(target, policy, order, AS_OF, "first")
    states = actual_states(target)
    wrong = {
        k: {"expected": expected_state(k), "actual": states[k]}
        for k in DOLIBARR_EXPECTED
        if states[k] != expected_state(k)
    }
    assert not wrong, f"{len(wrong)} row(s) not where the schedule says: {wrong}"
    assert_second_run_changes_nothing(target, policy, order)

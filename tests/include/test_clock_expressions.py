"""Per-row expressions in clocks (``first_non_null``) and per-hop filters on paths (``where``
on a path step), on purpose-built data, on SQLite and on the real PostgreSQL.

The schema is an ERP's contracts in miniature (Dolibarr's names): a customer
(``customers``) has contracts (``contracts.fk_soc``) whose lines (``contract_lines``) end
on their closing date when they were closed (``date_cloture``), else on their planned end
(``date_fin_validite``). The relationship ends at the *latest* per-line end over all lines
of all contracts; a line with neither date is open-ended and keeps the customer active.
Notes (``notes``) are polymorphic: ``elementtype`` + ``fk_element`` point at a customer or
at a contract, and the same id may be both.

The run date is 26 November 2026 and the active period three years: a customer whose
relationship ended on 26 November 2023 or before moves to the archive.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from engine_helpers import PARIS, archive_rows, ids, run_category, schema_metadata
from sqlalchemy import Column, Date, DateTime, Integer, String, Table, insert, text

from include.retention.database.target import Target, connect
from include.retention.errors import PolicyError
from include.retention.policy.load import parse_policy

CONTRACT_LINES = [
    {"table": "contracts", "foreign_key": "fk_soc"},
    {"table": "contract_lines", "foreign_key": "fk_contrat"},
]
LINE_END = ["date_cloture", "date_fin_validite"]

POLICY: dict[str, Any] = {
    "version": "erp-expr-1",
    "source_schema": "erp",
    "categories": {
        "customers": {
            "label": {"fr": "Clients", "en": "Customers"},
            "legal_basis": "Contrat",
            "archive_purpose": "Probatoire",
            "schedule": "0 3 * * *",
            "active_period": "P3Y",
            "archive_period": "P5Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "customers",
                    "primary_key": "rowid",
                    "start_event": {
                        "when_missing": "defect",
                        "latest": {
                            "first_non_null": LINE_END,
                            "planned": ["date_fin_validite"],
                            "path": CONTRACT_LINES,
                        },
                        "ongoing_if_open": {"first_non_null": LINE_END, "path": CONTRACT_LINES},
                    },
                    "archive_columns": ["nom"],
                }
            ],
        },
    },
}

# customer -> contracts -> lines (date_cloture, date_fin_validite)
CUSTOMERS: dict[int, list[list[tuple[date | None, date | None]]]] = {
    # One line closed early (before its planned end in 2025), another with only a planned
    # end: the per-line ends are 2023-06-30 and 2023-11-26, the latest exactly 3 years ago.
    1: [[(date(2023, 6, 30), date(2025, 12, 31))], [(None, date(2023, 11, 26))]],
    # Closed one day short of three years (planned for 2030): stays active.
    2: [[(date(2023, 11, 27), date(2030, 1, 1))]],
    # A line planned to end one day past three years, another closed long ago but planned
    # for later: per-line ends 2023-11-25 and 2020-01-01.
    3: [[(None, date(2023, 11, 25)), (date(2020, 1, 1), date(2023, 12, 31))]],
    # A line closed long ago and a line with neither date: open-ended, the customer is ongoing.
    4: [[(date(2020, 1, 1), None)], [(None, None)]],
    # No contract at all: no start, a defect.
    5: [],
    # A line closed one day short, but with a planned end long past: closing wins.
    6: [[(date(2023, 11, 27), date(2021, 1, 1))]],
}

# Polymorphic notes: note id -> (elementtype, fk_element); revisions: note id -> revision days.
NOTES = {1: ("societe", 7), 2: ("contrat", 7), 3: ("societe", 8), 4: ("contrat", 8)}
REVISIONS = {1: [date(2022, 5, 1)], 2: [date(2026, 3, 1)], 3: [date(2025, 1, 1)], 4: [date(2019, 1, 1)]}

AS_OF = date(2026, 11, 26)


def policy_data(**start_event: Any) -> dict[str, Any]:
    data = copy.deepcopy(POLICY)
    if start_event:
        data["categories"]["customers"]["tables"][0]["start_event"] = start_event
    return data


def table_of(data: dict[str, Any]) -> dict[str, Any]:
    return data["categories"]["customers"]["tables"][0]


def create_erp(target: Any, line_type: Any = Date, with_lines: bool = True) -> None:
    md, _ = schema_metadata(target, "erp")
    Table("customers", md, Column("rowid", Integer, primary_key=True), Column("nom", String(50)))
    Table("contracts", md, Column("rowid", Integer, primary_key=True), Column("fk_soc", Integer))
    Table(
        "contract_lines",
        md,
        Column("rowid", Integer, primary_key=True),
        Column("fk_contrat", Integer),
        Column("date_cloture", line_type),
        Column("date_fin_validite", line_type),
        Column("date_ouverture", DateTime(timezone=True)),
        Column("description", String(50)),
    )
    Table(
        "notes",
        md,
        Column("rowid", Integer, primary_key=True),
        Column("elementtype", String(20)),
        Column("fk_element", Integer),
    )
    Table(
        "note_revisions",
        md,
        Column("rowid", Integer, primary_key=True),
        Column("fk_note", Integer),
        Column("revised_on", Date),
    )
    md.create_all(target.engine)
    tables = md.tables
    prefix = "" if target.is_sqlite else "erp."
    customers = [{"rowid": c, "nom": f"Client {c}"} for c in [*CUSTOMERS, 7, 8]]
    contracts, lines = [], []
    for customer, contract_list in CUSTOMERS.items():
        for c, contract_lines in enumerate(contract_list):
            contract_id = customer * 10 + c
            contracts.append({"rowid": contract_id, "fk_soc": customer})
            if with_lines:
                lines += [
                    {
                        "rowid": contract_id * 10 + k,
                        "fk_contrat": contract_id,
                        "date_cloture": closed,
                        "date_fin_validite": planned,
                        "description": "ligne",
                        "date_ouverture": datetime(2015, 1, 1, 9, tzinfo=PARIS),
                    }
                    for k, (closed, planned) in enumerate(contract_lines)
                ]
    notes = [{"rowid": n, "elementtype": kind, "fk_element": element} for n, (kind, element) in NOTES.items()]
    revisions = [
        {"rowid": n * 10 + k, "fk_note": n, "revised_on": day}
        for n, days in REVISIONS.items()
        for k, day in enumerate(days)
    ]
    with target.engine.begin() as conn:
        for name, rows in (
            ("customers", customers),
            ("contracts", contracts),
            ("contract_lines", lines),
            ("notes", notes),
            ("note_revisions", revisions),
        ):
            if rows:
                conn.execute(insert(tables[prefix + name]), rows)


@pytest.fixture
def erp(target):
    create_erp(target)
    return target


@pytest.fixture
def sqlite_target(tmp_path) -> Target:
    t = connect(f"sqlite:///{tmp_path / 'target.db'}", "archive")
    yield t
    t.dispose()


def run(target: Any, data: dict[str, Any]) -> Any:
    return run_category(target, parse_policy(data), AS_OF, category="customers")


def archived(target: Any) -> dict[int, dict[str, Any]]:
    return {r["rowid"]: r for r in archive_rows(target, "customers")}


def active(target: Any) -> list[int]:
    return ids(target, "customers", schema="erp")


# The per-row expression ------------------------------------------------------------------


def test_relationship_ends_at_latest_line_end_closed_early_or_planned(erp):
    """Customer 1: a line closed early (2023-06-30, planned for 2025) and a line with only a
    planned end (2023-11-26): the relationship ended on 2023-11-26, the latest per-line end
    - not on the latest planned end (2025), nor on the latest closing (2023-06-30)."""
    run(erp, policy_data())
    rows = archived(erp)
    assert rows[1]["retention_start"] == date(2023, 11, 26)
    assert rows[1]["retention_until"] == date(2031, 11, 26)


@pytest.mark.parametrize(
    "customer, moved",
    [
        pytest.param(1, True, id="exactly_3_years_ago"),
        pytest.param(2, False, id="one_day_short"),
        pytest.param(3, True, id="one_day_past"),
    ],
)
def test_the_relationship_end_is_due_on_the_boundary_day(erp, customer, moved):
    run(erp, policy_data())
    assert (customer in archived(erp)) is moved
    assert (customer in active(erp)) is not moved


def test_a_line_closed_after_a_planned_end_long_past_ends_on_its_closing_date(erp):
    """Customer 6 planned to stop in 2021 but closed one day short of three years ago: the
    closing date is the line's end, so the customer stays active."""
    run(erp, policy_data())
    assert 6 in active(erp)


def test_a_line_closed_early_does_not_hide_a_later_planned_end_elsewhere(erp):
    """Customer 3: the line closed in 2020 was planned until 2023-12-31; that planned end is
    not its end (it was closed), so the latest per-line end is 2023-11-25 and it moves."""
    run(erp, policy_data())
    assert archived(erp)[3]["retention_start"] == date(2023, 11, 25)


def test_a_line_with_neither_date_keeps_the_customer_ongoing(erp):
    result = run(erp, policy_data())
    assert 4 in active(erp)
    (plan,) = result.plan.tables
    assert plan.held_open == 1  # customer 4
    # customers 5, 7 and 8: no contract at all, no start - a defect, reported
    assert (plan.missing_start, plan.missing_start_means) == (3, "defect")


def test_without_the_open_line_rule_the_latest_closed_line_dates_the_customer(erp):
    """``ongoing_if_open`` is what keeps customer 4: without it, its line closed in 2020 is
    the latest end (NULL lines are skipped by the aggregate) and it moves."""
    data = policy_data(when_missing="defect", latest={"first_non_null": LINE_END, "path": CONTRACT_LINES})
    run(erp, data)
    assert archived(erp)[4]["retention_start"] == date(2020, 1, 1)


def test_earliest_over_an_expression_is_the_earliest_per_line_end(erp):
    data = policy_data(when_missing="defect", earliest={"first_non_null": LINE_END, "path": CONTRACT_LINES})
    run(erp, data)
    rows = archived(erp)
    assert rows[1]["retention_start"] == date(2023, 6, 30)
    assert rows[3]["retention_start"] == date(2020, 1, 1)
    assert rows[4]["retention_start"] == date(2020, 1, 1)  # no open-line rule: the undated line is skipped
    assert 2 in active(erp) and 6 in active(erp)


def test_an_expression_inside_first_of_falls_back_when_no_line_has_a_date(erp):
    """``first_of`` over two expressions: the first wins where a line has a date (customer 1
    still ends on 2023-11-26, not on its 2025 planned end); a customer with no line at all
    (5, 7, 8) has no start in either, and stays, a defect."""
    data = policy_data(
        when_missing="defect",
        first_of=[
            {"latest": {"first_non_null": LINE_END, "path": CONTRACT_LINES}},
            {"latest": {"first_non_null": ["date_fin_validite", "date_cloture"], "path": CONTRACT_LINES}},
        ],
    )
    result = run(erp, data)
    rows = archived(erp)
    assert rows[1]["retention_start"] == date(2023, 11, 26)
    assert 2 in active(erp) and 5 in active(erp)
    (plan,) = result.plan.tables
    assert plan.missing_start == 3


def test_the_order_of_the_columns_is_the_order_of_preference(erp):
    """Planned end first: customer 1's early-closed line now ends in 2025, and it stays."""
    data = policy_data(
        when_missing="defect", latest={"first_non_null": ["date_fin_validite", "date_cloture"], "path": CONTRACT_LINES}
    )
    run(erp, data)
    assert 1 in active(erp)


def test_a_second_run_changes_nothing(erp):
    run(erp, policy_data())
    first = (active(erp), sorted(archived(erp)))
    run_category(erp, parse_policy(policy_data()), AS_OF, category="customers", run_id="run-2")
    assert (active(erp), sorted(archived(erp))) == first == ([2, 4, 5, 6, 7, 8], [1, 3])


# Per-hop filters: polymorphic links --------------------------------------------------------

NOTE_REVISIONS = [
    {"table": "notes", "foreign_key": "fk_element", "where": {"column": "elementtype", "equals": "societe"}},
    {"table": "note_revisions", "foreign_key": "fk_note"},
]


def test_polymorphic_filter_on_an_intermediate_hop_ignores_rows_of_another_type_with_the_same_id(erp):
    """Customer 7's own note was last revised on 2022-05-01; contract 7's note (same id,
    type ``contrat``) in 2026 must not restart its clock. Customer 8's own note (2025) keeps
    it, whatever contract 8's old note says."""
    data = policy_data(when_missing="defect", latest={"column": "revised_on", "path": NOTE_REVISIONS})
    run(erp, data)
    assert archived(erp)[7]["retention_start"] == date(2022, 5, 1)
    assert 8 in active(erp)


def test_without_the_hop_filter_a_note_of_another_type_with_the_same_id_restarts_the_clock(erp):
    """What the filter prevents: unfiltered, contract 7's note (revised in 2026) is taken for
    customer 7's, and customer 7 stays active."""
    path = [{"table": "notes", "foreign_key": "fk_element"}, {"table": "note_revisions", "foreign_key": "fk_note"}]
    run(erp, policy_data(when_missing="defect", latest={"column": "revised_on", "path": path}))
    assert 7 in active(erp)


def test_a_polymorphic_filter_keeps_a_row_ongoing_only_through_rows_of_its_type(erp):
    """``ongoing_if_open`` through a filtered hop: customer 4's open line is reached through
    contracts of its own; a filter no contract matches leaves no open line."""
    data = policy_data()
    table_of(data)["start_event"]["ongoing_if_open"]["path"] = [
        {"table": "contracts", "foreign_key": "fk_soc", "where": {"column": "rowid", "in": [999]}},
        {"table": "contract_lines", "foreign_key": "fk_contrat"},
    ]
    run(erp, data)
    assert 4 in archived(erp)


# Text-stored dates on SQLite ---------------------------------------------------------------


def test_text_stored_line_ends_are_read_by_their_paris_day(sqlite_target):
    """An application writes its dates as text: a closing at 23:30 UTC on 26 November 2023 is
    the 27th in Paris (customer 1: one day short, stays, though its other line ended on the
    20th); a planned end written as a naive timestamp on the 26th is the latest of customer
    2's lines (the other closed on the 25th, written as a bare date): due; a zoned closing
    at 22:59:59 UTC is still the 26th in Paris (customer 3: due)."""
    create_erp(sqlite_target, line_type=DateTime, with_lines=False)
    with sqlite_target.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contract_lines (rowid, fk_contrat, date_cloture, date_fin_validite) VALUES "
                "(100, 10, '2023-11-26T23:30:00Z', '2020-01-01 00:00:00'), "
                "(110, 11, NULL, '2023-11-20'), "
                "(200, 20, NULL, '2023-11-26 18:00:00'), "
                "(201, 20, '2023-11-25', '2030-01-01T00:00:00'), "
                "(300, 30, '2023-11-26T22:59:59Z', '2030-01-01')"
            )
        )
    run(sqlite_target, policy_data())
    rows = archived(sqlite_target)
    assert sorted(rows) == [2, 3]
    assert rows[2]["retention_start"] == date(2023, 11, 26)
    assert rows[3]["retention_start"] == date(2023, 11, 26)


@pytest.mark.parametrize(
    "rule, customer_moves, start",
    [
        pytest.param("latest", False, None, id="latest"),
        pytest.param("earliest", True, date(2023, 11, 26), id="earliest"),
    ],
)
def test_text_stored_line_ends_in_different_offsets_are_compared_by_their_paris_day(
    sqlite_target, rule, customer_moves, start
):
    """SQLite compares text as text: '2023-11-27T00:10:00+02:00' (the 26th, 23:10 in Paris)
    sorts after '2023-11-26T23:30:00Z' (the 27th, 00:30 in Paris). The latest line end is
    the 27th - customer 1 is one day short and stays; the earliest is the 26th - due."""
    create_erp(sqlite_target, line_type=DateTime, with_lines=False)
    with sqlite_target.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contract_lines (rowid, fk_contrat, date_cloture, date_fin_validite) VALUES "
                "(100, 10, '2023-11-26T23:30:00Z', NULL), (101, 10, '2023-11-27T00:10:00+02:00', NULL)"
            )
        )
    run(sqlite_target, policy_data(when_missing="defect", **{rule: {"column": "date_cloture", "path": CONTRACT_LINES}}))
    assert (1 in active(sqlite_target)) is not customer_moves
    if customer_moves:
        assert archived(sqlite_target)[1]["retention_start"] == start
        assert archived(sqlite_target)[1]["retention_until"] == date(2031, 11, 26)


def test_text_stored_expression_ends_in_different_offsets_are_compared_by_their_paris_day(sqlite_target):
    """The same over a ``first_non_null`` expression: the line closed at 00:10+02:00 on the
    27th (the 26th in Paris) is not later than the planned end at 23:30Z on the 26th (the 27th)."""
    create_erp(sqlite_target, line_type=DateTime, with_lines=False)
    with sqlite_target.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contract_lines (rowid, fk_contrat, date_cloture, date_fin_validite) VALUES "
                "(100, 10, NULL, '2023-11-26T23:30:00Z'), (101, 10, '2023-11-27T00:10:00+02:00', NULL)"
            )
        )
    run(sqlite_target, policy_data())
    assert 1 in active(sqlite_target)


def test_an_unreadable_fallback_date_stops_the_gate_on_sqlite(sqlite_target):
    from include.retention.records.audit import RunContext
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.quality import QualityGateFailed, pre_archive_gate

    create_erp(sqlite_target)
    with sqlite_target.engine.begin() as conn:
        conn.execute(text("UPDATE contract_lines SET date_fin_validite = '31/12/2023' WHERE rowid = 100"))
    policy = parse_policy(policy_data())
    ctx = RunContext(run_id="gate", dag_id="retention_customers", as_of=AS_OF, policy_version=policy.version)
    with pytest.raises(QualityGateFailed, match=r"readable_dates_date_fin_validite on contract_lines: 1 row"):
        pre_archive_gate(
            StepContext.build(sqlite_target, policy, "customers", ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS)
        )


def test_an_open_line_end_stored_as_empty_text_stops_the_gate_on_sqlite(sqlite_target):
    """A column read only by ``ongoing_if_open`` must hold readable dates too: a closing
    date stored as '' is neither NULL (open: the customer stays) nor a date, so the line
    would silently count as closed. NULL stays open and passes."""
    from include.retention.schedule.quality import QualityGateFailed

    create_erp(sqlite_target, line_type=DateTime, with_lines=False)
    with sqlite_target.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contract_lines (rowid, fk_contrat, date_cloture, date_fin_validite) VALUES "
                "(100, 10, '2020-01-01', '2020-01-01'), (101, 10, '', '2020-06-01'), "
                "(200, 20, NULL, '2020-06-01')"
            )
        )
    data = policy_data(
        when_missing="defect",
        latest={"column": "date_fin_validite", "path": CONTRACT_LINES},
        ongoing_if_open={"column": "date_cloture", "path": CONTRACT_LINES},
    )
    with pytest.raises(
        QualityGateFailed,
        match=r"readable_dates_date_cloture on contract_lines: 1 row\(s\), "
        r"e\.g\. rowid=101",
    ):
        _gate(sqlite_target, data)


def test_a_planned_end_next_year_does_not_stop_the_gate(erp):
    """A planned end is scheduled ahead by nature: the line has not ended, the customer is
    simply not due. Only the gate's future-date check on events that happened must not
    see it as a wrong clock."""
    from include.retention.records.audit import RunContext
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.quality import pre_archive_gate

    policy = parse_policy(policy_data())
    ctx = RunContext(run_id="gate", dag_id="retention_customers", as_of=AS_OF, policy_version=policy.version)
    pre_archive_gate(StepContext.build(erp, policy, "customers", ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS))
    run(erp, policy_data())
    assert 2 in active(erp)  # its line is planned for 2030


def _gate(target: Any, data: dict[str, Any]) -> Any:
    from include.retention.records.audit import RunContext
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.quality import pre_archive_gate

    policy = parse_policy(data)
    ctx = RunContext(run_id="gate", dag_id="retention_customers", as_of=AS_OF, policy_version=policy.version)
    return pre_archive_gate(
        StepContext.build(target, policy, "customers", ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS)
    )


def _set_line(target: Any, column: str, day: date, rowid: int = 100) -> None:
    table = "contract_lines" if target.is_sqlite else "erp.contract_lines"
    with target.engine.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET {column} = :day WHERE rowid = :rowid"), {"day": day, "rowid": rowid})


def test_a_closing_date_typed_two_centuries_ahead_stops_the_gate(erp):
    """Only the planned end may lie ahead: a closing date is an event that happened, and
    2205 for 2025 would keep customer 1 active (and, released by its clock, its invoices)
    until 2208 with no one told."""
    from include.retention.schedule.quality import QualityGateFailed

    _set_line(erp, "date_cloture", date(2205, 6, 30))
    with pytest.raises(
        QualityGateFailed, match=r"no_future_date_cloture on contract_lines: 1 row\(s\), e\.g\. rowid=100"
    ):
        _gate(erp, policy_data())
    assert active(erp) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_planned_end_beyond_the_longest_period_stops_the_gate(erp):
    """A planned end may lie ahead, but not beyond a hundred years (the longest period a
    policy may state): 2205 is a typo, and the customer would never fall due."""
    from include.retention.schedule.quality import QualityGateFailed

    _set_line(erp, "date_fin_validite", date(2205, 12, 31))
    with pytest.raises(
        QualityGateFailed, match=r"no_far_future_date_fin_validite on contract_lines: 1 row\(s\), e\.g\. rowid=100"
    ):
        _gate(erp, policy_data())


def test_a_planned_end_just_within_a_hundred_years_passes_the_gate(erp):
    _set_line(erp, "date_fin_validite", date(2126, 11, 26))
    _gate(erp, policy_data())


def test_a_plain_source_reading_a_planned_column_keeps_its_future_check(erp):
    """``planned`` belongs to the source that declares it: a fallback reading the same column
    as a plain event still refuses customer 2's 2030 date as a wrong clock."""
    from include.retention.schedule.quality import QualityGateFailed

    data = policy_data(
        when_missing="defect",
        first_of=[
            {"latest": {"first_non_null": LINE_END, "planned": ["date_fin_validite"], "path": CONTRACT_LINES}},
            {"latest": {"column": "date_fin_validite", "path": CONTRACT_LINES}},
        ],
    )
    with pytest.raises(QualityGateFailed, match=r"no_future_date_fin_validite on contract_lines: 1 row"):
        _gate(erp, data)


def test_an_expression_without_planned_columns_checks_every_column_for_the_future(erp):
    """Nothing is planned unless the policy says so: customer 2's line planned for 2030
    stops the gate when ``planned`` is not given."""
    from include.retention.schedule.quality import QualityGateFailed

    data = policy_data()
    del table_of(data)["start_event"]["latest"]["planned"]
    with pytest.raises(QualityGateFailed, match=r"no_future_date_fin_validite on contract_lines: 1 row"):
        _gate(erp, data)


@pytest.mark.parametrize("rule", ["latest", "earliest", "ongoing_if_open"])
def test_a_planned_column_the_source_does_not_read_is_refused_at_load(rule):
    event: dict[str, Any] = {"when_missing": "defect", "latest": {"first_non_null": LINE_END, "path": CONTRACT_LINES}}
    if rule == "earliest":
        event["earliest"] = event.pop("latest")
    if rule == "ongoing_if_open":
        event["ongoing_if_open"] = {"first_non_null": LINE_END, "path": CONTRACT_LINES}
    event[rule]["planned"] = ["date_fin_validite", "date_resiliation"]
    with pytest.raises(PolicyError, match=rf"start_event\.{rule}\.planned\[1\]") as info:
        parse_policy(policy_data(**event))
    assert "'date_resiliation' is not one of this source's columns (date_cloture, date_fin_validite)" in str(info.value)


# Refusals ----------------------------------------------------------------------------------

Mutate = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutate:
    """Set ``value`` at a dotted path under the table's ``start_event`` (``[i]`` for lists)."""

    def mutate(event: dict[str, Any]) -> None:
        node: Any = event
        parts = path.replace("[", ".").replace("]", "").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


FIRST_OF_EVENT = {
    "when_missing": "defect",
    "first_of": [
        {"latest": {"first_non_null": LINE_END, "path": CONTRACT_LINES}},
        {"latest": {"column": "revised_on", "path": NOTE_REVISIONS}},
    ],
}


@pytest.mark.parametrize(
    "event, mutate, key_path, message",
    [
        pytest.param(
            None,
            _set("latest.first_non_null", ["date_cloture", "date_resiliation"]),
            r"start_event\.latest\.first_non_null\[1\]",
            "'date_resiliation' not in table",
            id="unknown_column",
        ),
        pytest.param(
            None,
            _set("latest.first_non_null", ["date_cloture", "date_ouverture"]),
            r"start_event\.latest\.first_non_null:",
            "an expression over columns of different types",
            id="date_and_timestamp",
        ),
        pytest.param(
            None,
            _set("latest.first_non_null", ["date_cloture", "description"]),
            r"start_event\.latest\.first_non_null\[1\]",
            "not a date or timestamp",
            id="column_of_text",
        ),
        pytest.param(
            None,
            _set("ongoing_if_open.first_non_null", ["date_fin_validite", "date_resiliation"]),
            r"start_event\.ongoing_if_open\.first_non_null\[1\]",
            "'date_resiliation' not in table",
            id="unknown_column_in_open_rule",
        ),
        pytest.param(
            None,
            _set("ongoing_if_open.first_non_null", ["date_cloture", "date_ouverture"]),
            r"start_event\.ongoing_if_open\.first_non_null:",
            "an expression over columns of different types",
            id="different_types_in_open_rule",
        ),
        pytest.param(
            FIRST_OF_EVENT,
            _set("first_of[0].latest.first_non_null", ["date_cloture", "description"]),
            r"start_event\.first_of\[0\]\.latest\.first_non_null\[1\]",
            "not a date or timestamp",
            id="column_of_text_inside_first_of",
        ),
        pytest.param(
            None,
            _set("latest.path[0].where", {"column": "elementtype", "equals": "contrat"}),
            r"start_event\.latest\.path\[0\]\.where",
            "'elementtype' not in table",
            id="unknown_hop_filter_column",
        ),
        pytest.param(
            None,
            _set("ongoing_if_open.path[1].where", {"column": "statut", "equals": 4}),
            r"start_event\.ongoing_if_open\.path\[1\]\.where",
            "'statut' not in table",
            id="unknown_hop_filter_column_in_open_rule",
        ),
    ],
)
def test_a_clock_expression_that_cannot_be_evaluated_is_refused_before_any_sql(erp, event, mutate, key_path, message):
    data = policy_data(**copy.deepcopy(event)) if event else policy_data()
    table_of(data)["start_event"].get("latest", {}).pop("planned", None)  # may name a replaced column
    mutate(table_of(data)["start_event"])
    with pytest.raises(PolicyError, match=key_path) as info:
        run(erp, data)
    assert message in str(info.value)
    assert active(erp) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_an_expression_of_dates_and_a_timestamp_fallback_are_refused_as_fallbacks_of_different_types(erp):
    data = policy_data(
        when_missing="defect",
        first_of=[
            {"latest": {"first_non_null": LINE_END, "path": CONTRACT_LINES}},
            {"latest": {"column": "date_ouverture", "path": CONTRACT_LINES}},
        ],
    )
    with pytest.raises(PolicyError, match=r"start_event\.first_of: fallbacks must all be dates or all be timestamps"):
        run(erp, data)


@pytest.mark.parametrize("rule", ["latest", "earliest", "ongoing_if_open"])
@pytest.mark.parametrize(
    "change, key_path, message",
    [
        pytest.param(
            {"column": "date_cloture"},
            r"start_event\.{rule}:",
            "give exactly one of column, first_non_null",
            id="column_and_expression",
        ),
        pytest.param(
            {"first_non_null": ["date_cloture"]}, r"start_event\.{rule}\.first_non_null:", "at least 2", id="one_column"
        ),
        pytest.param(
            {"first_non_null": ["date_cloture", "date_cloture"]},
            r"start_event\.{rule}\.first_non_null:",
            "'date_cloture' is given twice",
            id="repeated_column",
        ),
        pytest.param(
            {"first_non_null": None},
            r"start_event\.{rule}:",
            "give exactly one of column, first_non_null",
            id="neither",
        ),
    ],
)
def test_an_expression_is_refused_at_load_naming_its_key_path(rule, change, key_path, message):
    event: dict[str, Any] = {
        "when_missing": "defect" if rule != "ongoing_if_open" else "ongoing",
        "latest": {"first_non_null": LINE_END, "path": CONTRACT_LINES},
    }
    if rule == "earliest":
        event["earliest"] = event.pop("latest")
    if rule == "ongoing_if_open":
        event["ongoing_if_open"] = {"first_non_null": LINE_END, "path": CONTRACT_LINES}
    event[rule].update(change)
    event[rule] = {k: v for k, v in event[rule].items() if v is not None}
    with pytest.raises(PolicyError, match=key_path.format(rule=rule)) as info:
        parse_policy(policy_data(**event))
    assert message in str(info.value)


# Where the clock is read ----------------------------------------------------------------------


def test_the_schedule_names_the_expression_in_order_of_preference():
    from include.retention.policy.model import StartEvent

    event = StartEvent.model_validate(table_of(policy_data())["start_event"])
    assert event.describe() == "latest contract_lines.(date_cloture, else date_fin_validite)"


def test_every_column_of_an_expression_is_a_clock_input():
    from include.retention.database.start_events import clock_inputs
    from include.retention.policy.model import StartEvent

    event = StartEvent.model_validate(table_of(policy_data())["start_event"])
    assert clock_inputs(event) == [("contract_lines", "date_cloture"), ("contract_lines", "date_fin_validite")]


def test_the_tables_a_filtered_hop_reads_are_read_only_grants():
    from include.retention.database.roles import read_only_tables

    data = policy_data(when_missing="defect", latest={"column": "revised_on", "path": NOTE_REVISIONS})
    assert read_only_tables(parse_policy(data)) == ['"erp"."note_revisions"', '"erp"."notes"']

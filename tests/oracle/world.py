"""The world the property tests generate: an ERP-like schema, a policy over it, the rows,
their storage on each backend, a nightly run through the engine's steps, and the engine's
answer read back as an oracle ``State``.

Schema ``orc`` (a partner table shared by prospects and customers, clocks derived from
related rows, children two deep, invoices retained as dependants, a register closed by an
end event, and tracking without an archive):

    partners(partner_id, name, email, is_prospect, customer_rank, created_at naive)
      interactions(interaction_id, partner_id -> partners, occurred_at naive, direction)
        interaction_files(file_id, interaction_id -> interactions, file_name)
      contracts(contract_id, partner_id, status)    -- not governed: read by the clock
        contract_lines(line_id, contract_id -> contracts, end_date date, closed_on date)
      invoices(invoice_id, partner_id -> partners (NULL: a counter sale), invoice_date date, number)
        invoice_lines(line_id, invoice_id -> invoices, amount)
    requests(request_id, kind, closed_at with time zone)
    visits(visit_id, visitor, first_set_at with time zone)
      visit_hits(hit_id, visit_id -> visits, seen_at with time zone)  -- the clock may be the first hit

On PostgreSQL values are stored as typed values; on SQLite every date is text in the form
the example chose (date only, space or ``T``, fractional seconds or not, ``Z`` or an
offset), as applications write them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    text,
)

from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.policy.load import parse_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext, events
from include.retention.records.holds import NewHold, add_hold
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts
from include.retention.schedule.plan import plan_category
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.purge import purge_category
from include.retention.schedule.quality import QualityGateFailed
from include.retention.schedule.summary import summarize_run
from oracle.model import ACTIVE, ANONYMISED, ARCHIVE, DESTROYED, Holds, Place, State, local_day

PARIS = ZoneInfo("Europe/Paris")
SCHEMA = "orc"
CATEGORIES = ("prospection", "customer_relationship", "billing", "rights_requests", "navigation_tracking")
TABLE_ORDER = (
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
PRIMARY_KEYS = {
    "partners": "partner_id",
    "interactions": "interaction_id",
    "interaction_files": "file_id",
    "contracts": "contract_id",
    "contract_lines": "line_id",
    "invoices": "invoice_id",
    "invoice_lines": "line_id",
    "requests": "request_id",
    "visits": "visit_id",
    "visit_hits": "hit_id",
}

# --- the policy -------------------------------------------------------------------------------

_INTERACTIONS = {
    "table": "interactions",
    "primary_key": "interaction_id",
    "foreign_key": "partner_id",
    "archive_columns": ["occurred_at", "direction"],
    "children": [
        {
            "table": "interaction_files",
            "primary_key": "file_id",
            "foreign_key": "interaction_id",
            "archive_columns": ["file_name"],
        }
    ],
}
_CONTRACT_LINES = [
    {"table": "contracts", "foreign_key": "partner_id"},
    {"table": "contract_lines", "foreign_key": "contract_id"},
]
# A line ends on its closing date when it was closed (early or late), else on its planned end.
LINE_END = ["closed_on", "end_date"]
SIGNED = {"column": "status", "equals": "signed"}


def _category(label: str, active: str, archive: str | None, end_action: str, tables: list[dict]) -> dict:
    data = {
        "label": {"fr": label, "en": label},
        "legal_basis": "Test",
        "schedule": "0 2 * * *",
        "active_period": active,
        "end_action": end_action,
        "tables": tables,
    }
    if archive:
        data.update(archive_period=archive, archive_purpose="Probatoire")
    return data


@dataclass(frozen=True)
class PolicyKnobs:
    """What the examples vary in the policy."""

    prospect_active: str = "P3Y"
    prospect_archive: str = "P5Y"
    customer_active: str = "P3Y"
    customer_archive: str = "P5Y"
    customer_end: str = "delete"  # or anonymize
    billing_archive: str = "P10Y"
    requests_end: str = "delete"  # or anonymize
    tracking_active: str = "P13M"
    tracking_clock: str = "column"  # or earliest: the first hit, else first_set_at
    customers_first: bool = True  # precedence order
    line_end: str = "end_date"  # or first_non_null: closed_on, else end_date
    signed_only: bool = False  # the path's contracts step keeps status = 'signed'
    billing_active: str = "P0D"
    invoices_leave: str = "with_parent"  # or on_parent_event (archived_with.leaves_active)


def policy_data(knobs: PolicyKnobs) -> dict[str, Any]:
    interactions = lambda archive_table, anonymize: {  # noqa: E731
        **copy.deepcopy(_INTERACTIONS),
        "archive_table": archive_table,
        **({"anonymize": {"occurred_at": "month", "direction": "keep"}} if anonymize else {}),
    }
    customer_children = interactions("customer_interactions", knobs.customer_end == "anonymize")
    customer_children["children"][0]["archive_table"] = "customer_interaction_files"
    if knobs.customer_end == "anonymize":
        customer_children["children"][0]["anonymize"] = {"file_name": "null"}
    prospect_children = interactions("prospect_interactions", False)
    prospect_children["children"][0]["archive_table"] = "prospect_interaction_files"
    customer_partner = {
        "table": "partners",
        "archive_table": "customer_partners",
        "primary_key": "partner_id",
        "scope": {
            "not": {"any": [{"column": "customer_rank", "equals": 0}, {"column": "customer_rank", "is_null": True}]}
        },
        "start_event": {"when_missing": "defect", "latest": _line_ends(knobs), "ongoing_if_open": _line_ends(knobs)},
        "archive_columns": ["name", "email"],
        "children": [customer_children],
    }
    if knobs.customer_end == "anonymize":
        customer_partner["anonymize"] = {"name": "null", "email": "null"}
    requests = {
        "table": "requests",
        "primary_key": "request_id",
        "start_event": {"column": "closed_at", "when_missing": "ongoing"},
        "archive_columns": ["kind", "closed_at"],
    }
    if knobs.requests_end == "anonymize":
        requests["anonymize"] = {"kind": "keep", "closed_at": "year"}
    order = ["customer_relationship", "prospection"]
    return {
        "version": "oracle-1",
        "source_schema": SCHEMA,
        "precedence": order if knobs.customers_first else order[::-1],
        "categories": {
            "prospection": _category(
                "Prospects",
                knobs.prospect_active,
                knobs.prospect_archive,
                "delete",
                [
                    {
                        "table": "partners",
                        "archive_table": "prospect_partners",
                        "primary_key": "partner_id",
                        "scope": {"column": "is_prospect", "equals": True},
                        "start_event": {
                            "when_missing": "defect",
                            "first_of": [
                                {
                                    "latest": {
                                        "column": "occurred_at",
                                        "path": [{"table": "interactions", "foreign_key": "partner_id"}],
                                        "where": {"column": "direction", "equals": "inbound"},
                                    }
                                },
                                {"column": "created_at"},
                            ],
                        },
                        "archive_columns": ["name", "email"],
                        "children": [prospect_children],
                    }
                ],
            ),
            "customer_relationship": _category(
                "Customers", knobs.customer_active, knobs.customer_archive, knobs.customer_end, [customer_partner]
            ),
            "billing": _category(
                "Billing",
                knobs.billing_active,
                knobs.billing_archive,
                "delete",
                [
                    {
                        "table": "invoices",
                        "primary_key": "invoice_id",
                        "start_event": {"column": "invoice_date", "when_missing": "defect"},
                        "archived_with": {
                            "table": "partners",
                            "foreign_key": "partner_id",
                            **(
                                {"leaves_active": knobs.invoices_leave} if knobs.invoices_leave != "with_parent" else {}
                            ),
                        },
                        "archive_columns": ["number", "invoice_date"],
                        "children": [
                            {
                                "table": "invoice_lines",
                                "primary_key": "line_id",
                                "foreign_key": "invoice_id",
                                "archive_columns": ["amount"],
                            }
                        ],
                    }
                ],
            ),
            "rights_requests": _category("Requests", "P0D", "P5Y", knobs.requests_end, [requests]),
            "navigation_tracking": _category(
                "Tracking",
                knobs.tracking_active,
                None,
                "delete",
                [
                    {
                        "table": "visits",
                        "primary_key": "visit_id",
                        "start_event": _tracking_clock(knobs.tracking_clock),
                        "children": [{"table": "visit_hits", "primary_key": "hit_id", "foreign_key": "visit_id"}],
                    }
                ],
            ),
        },
    }


def _line_ends(knobs: PolicyKnobs) -> dict[str, Any]:
    """The contract lines' end, over the customer's contracts (the signed ones only, when
    the knob filters the path's first step)."""
    path = copy.deepcopy(_CONTRACT_LINES)
    if knobs.signed_only:
        path[0]["where"] = dict(SIGNED)
    if knobs.line_end == "first_non_null":
        return {"first_non_null": list(LINE_END), "path": path}
    return {"column": "end_date", "path": path}


def _tracking_clock(kind: str) -> dict[str, Any]:
    if kind == "column":
        return {"column": "first_set_at", "when_missing": "defect"}
    return {
        "when_missing": "defect",
        "first_of": [
            {"earliest": {"column": "seen_at", "path": [{"table": "visit_hits", "foreign_key": "visit_id"}]}},
            {"column": "first_set_at"},
        ],
    }


def build_policy(knobs: PolicyKnobs) -> RetentionPolicy:
    return parse_policy(policy_data(knobs), source="oracle.yaml")


# --- values and their stored forms ----------------------------------------------------------

# Text forms an application writes in SQLite (index -> renderer of a Paris wall-clock time).
TEXT_FORMS = ("date", "space", "space_micro", "t", "t_millis", "z", "offset")


@dataclass(frozen=True)
class Stamp:
    """A generated moment: a Paris wall-clock time, and how SQLite stores it."""

    local: datetime  # naive, Paris wall-clock
    form: str = "space"

    def aware(self) -> datetime:
        return self.local.replace(tzinfo=PARIS)

    def sqlite_text(self, aware_column: bool) -> str:
        local = self.local
        if self.form == "date":
            return local.date().isoformat()
        if self.form in ("z", "offset") and aware_column:
            instant = self.aware()
            if self.form == "z":
                return instant.astimezone(UTC).replace(tzinfo=None).isoformat(sep="T") + "Z"
            return instant.isoformat(sep="T")
        if self.form == "space_micro":
            return local.strftime("%Y-%m-%d %H:%M:%S.%f")
        if self.form in ("t", "z", "offset"):
            return local.strftime("%Y-%m-%dT%H:%M:%S")
        if self.form == "t_millis":
            return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
        return local.strftime("%Y-%m-%d %H:%M:%S")


AWARE_COLUMNS = {("requests", "closed_at"), ("visits", "first_set_at"), ("visit_hits", "seen_at")}
NAIVE_COLUMNS = {("partners", "created_at"), ("interactions", "occurred_at")}


def stored_rows(rows: Mapping[str, Sequence[Mapping[str, Any]]], sqlite: bool) -> dict[str, list[dict[str, Any]]]:
    """The rows as the backend stores them: ``Stamp`` values become text (SQLite), an aware
    ``datetime`` or a naive one (PostgreSQL); ``date`` values become ``YYYY-MM-DD`` text on SQLite."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table, table_rows in rows.items():
        out[table] = []
        for row in table_rows:
            stored = {}
            for column, value in row.items():
                aware = (table, column) in AWARE_COLUMNS
                if isinstance(value, Stamp):
                    value = value.sqlite_text(aware) if sqlite else (value.aware() if aware else value.local)
                elif sqlite and isinstance(value, date):
                    value = value.isoformat()
                stored[column] = value
            out[table].append(stored)
    return out


# --- the database ----------------------------------------------------------------------------


def _tables(md: MetaData, prefix: str) -> list[Table]:
    return [
        Table(
            "partners",
            md,
            Column("partner_id", Integer, primary_key=True),
            Column("name", String(50)),
            Column("email", String(100)),
            Column("is_prospect", Boolean),
            Column("customer_rank", Integer),
            Column("created_at", DateTime()),
        ),
        Table(
            "interactions",
            md,
            Column("interaction_id", Integer, primary_key=True),
            Column("partner_id", Integer, ForeignKey(prefix + "partners.partner_id"), nullable=False),
            Column("occurred_at", DateTime()),
            Column("direction", String(10)),
        ),
        Table(
            "interaction_files",
            md,
            Column("file_id", Integer, primary_key=True),
            Column("interaction_id", Integer, ForeignKey(prefix + "interactions.interaction_id"), nullable=False),
            Column("file_name", String(50)),
        ),
        Table(
            "contracts",
            md,
            Column("contract_id", Integer, primary_key=True),
            Column("partner_id", Integer),
            Column("status", String(10)),
        ),
        Table(
            "contract_lines",
            md,
            Column("line_id", Integer, primary_key=True),
            Column("contract_id", Integer, ForeignKey(prefix + "contracts.contract_id"), nullable=False),
            Column("end_date", Date),
            Column("closed_on", Date),
        ),
        Table(
            "invoices",
            md,
            Column("invoice_id", Integer, primary_key=True),
            Column("partner_id", Integer, ForeignKey(prefix + "partners.partner_id")),
            Column("number", String(20)),
            Column("invoice_date", Date),
        ),
        Table(
            "invoice_lines",
            md,
            Column("line_id", Integer, primary_key=True),
            Column("invoice_id", Integer, ForeignKey(prefix + "invoices.invoice_id"), nullable=False),
            Column("amount", Integer),
        ),
        Table(
            "requests",
            md,
            Column("request_id", Integer, primary_key=True),
            Column("kind", String(20)),
            Column("closed_at", DateTime(timezone=True)),
        ),
        Table(
            "visits",
            md,
            Column("visit_id", Integer, primary_key=True),
            Column("visitor", String(40)),
            Column("first_set_at", DateTime(timezone=True)),
        ),
        Table(
            "visit_hits",
            md,
            Column("hit_id", Integer, primary_key=True),
            Column("visit_id", Integer, ForeignKey(prefix + "visits.visit_id"), nullable=False),
            Column("seen_at", DateTime(timezone=True)),
        ),
    ]


def reset(target: Target) -> None:
    """Empty the target: drop the schemas (PostgreSQL; one database serves every example)."""
    if target.is_sqlite:
        return
    with target.engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{target.archive_schema}" CASCADE'))


def seed(target: Target, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Create the schema and insert the stored rows. On SQLite, text goes in as it is (the
    insert uses text-typed columns, so SQLAlchemy does not reformat it)."""
    if target.is_sqlite:
        md, prefix = MetaData(), ""
    else:
        with target.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
        md, prefix = MetaData(schema=SCHEMA), f"{SCHEMA}."
    tables = {t.name: t for t in _tables(md, prefix)}
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        for name in TABLE_ORDER:
            if not rows.get(name):
                continue
            if target.is_sqlite:
                columns = list(rows[name][0])
                sql = f'INSERT INTO "{name}" ({", ".join(columns)}) VALUES ({", ".join(":" + c for c in columns)})'
                conn.execute(text(sql), list(rows[name]))
            else:
                conn.execute(insert(tables[name]), list(rows[name]))


def add_holds(target: Target, policy: RetentionPolicy, holds: Holds, as_of: date, prefix: str) -> None:
    """Record the holds through the register's own function, as the legal_hold DAG does."""
    ctx = RunContext(run_id=f"holds-{prefix}", dag_id="legal_hold", as_of=as_of, policy_version=policy.version)
    today = datetime.now(PARIS).date()
    for n, category in enumerate(sorted(holds.categories)):
        add_hold(
            target,
            policy,
            NewHold(f"{prefix}-CAT-{n}", "category", "Litige", "legal", category=category),
            None,
            ctx,
            today,
        )
    for n, (table, keys) in enumerate(sorted(holds.rows.items())):
        if keys:
            add_hold(
                target,
                policy,
                NewHold(
                    f"{prefix}-ROWS-{n}", "rows", "Litige", "legal", table=table, keys=[k[0] for k in sorted(keys)]
                ),
                None,
                ctx,
                today,
            )


@dataclass
class NightResult:
    """What the engine's post-run gate said, per category (failed checks only)."""

    failed_checks: dict[str, list[str]] = field(default_factory=dict)


def run_night(
    target: Target, policy: RetentionPolicy, as_of: date, order: Iterable[str], night: str, gate: bool = True
) -> NightResult:
    """Every category once for ``as_of``, in ``order``, as its scheduled DAG does: plan,
    approval of the plan (a person approves a backlog), archive, purge, post-run gate, summary."""
    result = NightResult()
    for category in order:
        ctx = RunContext(
            run_id=f"{night}-{category}",
            dag_id=f"retention_{category}",
            as_of=as_of,
            policy_version=policy.version,
            dry_run=False,
        )
        step = StepContext.build(target, policy, category, ctx, None)
        plan = plan_category(step)
        approved = approved_counts(plan)
        archived = archive_category(step, None, approved)
        purged = purge_category(step, None, approved)
        try:
            if gate:
                post_run_gate(step)
        except QualityGateFailed as exc:
            result.failed_checks[category] = [str(exc)]
        summarize_run(step, archived, purged)
    return result


def _governed_nodes(policy: RetentionPolicy) -> dict[str, set[str]]:
    """table -> the archive tables its rows may be in."""
    out: dict[str, set[str]] = {}
    for category in policy.categories.values():
        for root in category.tables:
            for node in root.walk():
                out.setdefault(node.table, set())
                if category.has_archive:
                    out[node.table].add(node.archive_name)
    return out


def engine_state(target: Target, policy: RetentionPolicy, keys: Mapping[str, Iterable[Any]]) -> tuple[State, list[str]]:
    """Where the engine put each row, as an oracle ``State``; and rows found in two places."""
    state: State = {}
    problems: list[str] = []
    source_schema = None if target.is_sqlite else SCHEMA
    with target.read() as conn:
        names = set(inspect(conn).get_table_names(schema=target.archive_schema))
        for table, archives in _governed_nodes(policy).items():
            pk = PRIMARY_KEYS[table]
            source = Table(table, MetaData(), schema=source_schema, autoload_with=conn)
            active = set(conn.execute(select(source.c[pk])).scalars())
            places: dict[Any, list[Place]] = {k: [] for k in keys[table]}
            for k in active:
                places.setdefault(k, []).append(Place(ACTIVE))
            for name in sorted(archives & names):
                archive = Table(name, MetaData(), schema=target.archive_schema, autoload_with=conn)
                cols = archive.c
                for row in conn.execute(select(cols[pk], cols.retention_start, cols.retention_until, cols.anonymized)):
                    if row.anonymized:
                        place = Place(ANONYMISED, name)
                    else:
                        place = Place(
                            ARCHIVE, name, local_day(row.retention_start, PARIS), local_day(row.retention_until, PARIS)
                        )
                    places.setdefault(row[0], []).append(place)
            state[table] = {}
            for k, found in places.items():
                if len(found) > 1:
                    problems.append(f"{table} {k} is in {len(found)} places: {[str(p) for p in found]}")
                state[table][(k,)] = found[0] if found else Place(DESTROYED)
    return state, problems


def moving_events(target: Target, policy: RetentionPolicy, run_prefix: str) -> list[str]:
    """Audit events of the runs named ``run_prefix-*`` that moved, destroyed or anonymised rows
    (a second night for the same date must have none: only its own bookkeeping)."""
    trail = audit_table(target.archive_schema, policy.audit_table)
    with target.read() as conn:
        found = events(
            conn,
            trail,
            trail.c.run_id.like(f"{run_prefix}-%"),
            trail.c.action.in_(["archive", "delete", "anonymize"]),
            trail.c.row_count > 0,
        )
    return [f"{e['run_id']} {e['action']} {e['table_name']}: {e['row_count']}" for e in found]


def snapshot(target: Target, policy: RetentionPolicy) -> dict[str, list[tuple]]:
    """Every row of every governed table, active and archive (a second run must not change one)."""
    out = {}
    source_schema = None if target.is_sqlite else SCHEMA
    with target.read() as conn:
        names = set(inspect(conn).get_table_names(schema=target.archive_schema))
        for table, archives in _governed_nodes(policy).items():
            for schema, name in [(source_schema, table)] + [
                (target.archive_schema, a) for a in sorted(archives & names)
            ]:
                t = Table(name, MetaData(), schema=schema, autoload_with=conn)
                out[f"{schema}.{name}"] = sorted(tuple(map(repr, r)) for r in conn.execute(select(t)))
    return out


def open_target(url: str) -> Target:
    """The engine's own connection to the target (on SQLite, commits skip the disk flush like
    every SQLite file of the test session: tests/conftest.py)."""
    return connect(url, "archive")


__all__ = [
    "CATEGORIES",
    "PolicyKnobs",
    "Stamp",
    "TEXT_FORMS",
    "add_holds",
    "build_policy",
    "engine_state",
    "moving_events",
    "open_target",
    "reset",
    "run_night",
    "seed",
    "snapshot",
    "stored_rows",
]

"""Legal holds: data that must be kept whatever the schedule says (litigation, an inquiry).

A hold protects, until it is lifted or expires:

* ``subject`` - every row about a person, found by the keyed hash of an identifier
  (``identity.subject_hash``): the register stores hashes, never the e-mail itself;
* ``category`` - every row of a category;
* ``rows`` - listed primary keys of one table of the policy (a root or a child table).

A held row is never archived, deleted or anonymised - by the schedule or by a rights
request - and a parent row with a held child is held with its whole tree, so that
moving or destroying the parent cannot take the child along. Holding more than needed
only delays a deletion; holding less would destroy evidence, so matching errs on the
side of holding: a subject hold matches every identifier column, shared ones included.

The register is two tables in the archive schema (``retention_legal_holds`` and its
``retention_legal_hold_items``). Adding a hold, lifting it and its expiry each write a
``legal_hold`` audit event (reference, scope, counts, dates; the reason stays in the
register because it is free text).

A hold is in force on day D when it is not lifted and ``expires_on`` is after D. A run
asks on ``min(as_of, today)``: a run "as of" a future date cannot end a hold early.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Table,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.capabilities import capabilities_of
from include.retention.database.identity import Subject, SubjectKey
from include.retention.database.reflect import KEY_SEPARATOR, TableNode, archive_exists, key_text, open_category
from include.retention.database.target import Target
from include.retention.dates import instants
from include.retention.errors import RetentionError
from include.retention.policy.model import RetentionPolicy, TableBase
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.records.held_rows import in_force_on, key_value, register_exists

SCOPES = ("subject", "category", "rows")
# A hold's reference is also written to the audit trail: a case number, never a name.
# \Z, not $: "$" also matches before a final newline, which would reach the log.
REFERENCE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
REFERENCE_RULE = (
    "1-64 letters, digits, '_', '.', ':' or '-' (a case number, never a name: it is written to the audit trail)"
)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
HOLD_EVENTS = "legal_hold"  # the audit ``category`` of hold events: a hold may span categories
MAX_KEYS = 100_000


# --- The register: add, lift, list, expire ----------------------------------------------


@dataclass(frozen=True)
class NewHold:
    """A hold as the legal team asks for it (the ``legal_hold`` DAG's form)."""

    reference: str
    scope: str
    reason: str
    created_by: str
    expires_on: date | None = None
    category: str | None = None
    table: str | None = None
    keys: list[Any] = field(default_factory=list)
    subject: Subject | None = None


@dataclass(frozen=True)
class HoldView:
    """One hold as the register lists it (no identifier: subjects are counted hashes)."""

    reference: str
    scope: str
    category: str | None
    table: str | None
    items: int
    reason: str
    created_by: str
    created_at: datetime
    expires_on: date | None
    status: str  # in_force, lifted or expired
    lifted_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "scope": self.scope,
            "category": self.category,
            "table": self.table,
            "items": self.items,
            "reason": self.reason,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "status": self.status,
            "lifted_by": self.lifted_by,
        }


def add_hold(
    target: Target, policy: RetentionPolicy, new: NewHold, key: SubjectKey | None, ctx: RunContext, today: date
) -> HoldView:
    """Validate the hold against the policy and the live tables, then record and audit it
    in one transaction."""
    _check_new(policy, new, today)
    tables = store.hold_tables(target.archive_schema)
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        store.ensure_hold_tables(conn, tables)
        if conn.execute(select(tables.holds.c.hold_id).where(tables.holds.c.reference == new.reference)).first():
            raise RetentionError(
                f"legal hold {new.reference!r} already exists: choose another reference, or lift that hold first"
            )
        items = _items_of(conn, target, policy, new, key)
        inserted = conn.execute(
            insert(tables.holds).values(
                reference=new.reference,
                scope=new.scope,
                category=new.category,
                table_name=new.table,
                reason=new.reason,
                created_by=new.created_by,
                created_at=instants.utc_now(),
                expires_on=new.expires_on,
            )
        ).inserted_primary_key
        assert inserted is not None  # an INSERT of one row has its key
        hold_id = inserted[0]
        if items:
            conn.execute(insert(tables.items), [{"hold_id": hold_id, **item} for item in items])
        _audit(
            conn,
            target,
            policy,
            ctx,
            new.reference,
            new.scope,
            new.category,
            new.table,
            len(items),
            "added",
            new.expires_on,
            [i["item"] for i in items if i["kind"] == "subject"],
        )
        return _views(conn, tables, today, tables.holds.c.hold_id == hold_id)[0]


def check_reference(reference: str | None) -> None:
    """Refuse a reference that is not a plain case number, without repeating it: a refused
    reference may be a person's name, and this message reaches the task log."""
    value = reference or ""
    control = CONTROL.search(value)
    if control:
        raise RetentionError(
            "legal hold reference: contains a newline or another control character (at "
            f"position {control.start() + 1}); {REFERENCE_RULE}"
        )
    if not REFERENCE.match(value):
        raise RetentionError(f"legal hold reference ({len(value)} characters) refused: {REFERENCE_RULE}")


def _check_new(policy: RetentionPolicy, new: NewHold, today: date) -> None:
    if new.scope not in SCOPES:
        raise RetentionError(f"legal hold scope {new.scope!r} is unknown; use one of {', '.join(SCOPES)}")
    check_reference(new.reference)
    if not (new.reason or "").strip():
        raise RetentionError(f"legal hold {new.reference}: give the reason (the proceedings or the inquiry)")
    if not (new.created_by or "").strip():
        raise RetentionError(f"legal hold {new.reference}: say who asks for it (created_by)")
    if new.expires_on is not None and new.expires_on <= today:
        raise RetentionError(f"legal hold {new.reference}: expires_on {new.expires_on} is not after today ({today})")
    if new.scope == "category" and new.category not in policy.categories:
        raise RetentionError(
            f"legal hold {new.reference}: category {new.category!r} is not in the policy; known: "
            f"{', '.join(sorted(policy.categories))}"
        )
    if new.scope == "rows":
        if not new.keys:
            raise RetentionError(f"legal hold {new.reference}: a 'rows' hold lists the primary keys it protects")
        if len(new.keys) > MAX_KEYS:
            raise RetentionError(
                f"legal hold {new.reference}: {len(new.keys)} keys; at most {MAX_KEYS} per hold "
                "(hold the category instead)"
            )
        _policy_table(policy, new.table, new.reference)
    if new.scope == "subject" and new.subject is None:
        raise RetentionError(
            f"legal hold {new.reference}: a 'subject' hold needs the person's e-mail, phone, "
            "customer number or visitor id"
        )


def _policy_table(policy: RetentionPolicy, table: str | None, reference: str) -> tuple[str, TableBase]:
    """The category and policy entry of ``table`` (a root or a child)."""
    for key, category in policy.categories.items():
        for root in category.tables:
            for node in root.walk():
                if node.table == table:
                    return key, node
    known = sorted({n.table for c in policy.categories.values() for t in c.tables for n in t.walk()})
    raise RetentionError(f"legal hold {reference}: table {table!r} is not in the policy; known: {', '.join(known)}")


def _items_of(
    conn: Connection, target: Target, policy: RetentionPolicy, new: NewHold, key: SubjectKey | None
) -> list[dict[str, str]]:
    if new.scope == "subject":
        if key is None:
            raise RetentionError(
                "a subject hold stores keyed hashes: configure the Airflow Variable retention_subject_secret first"
            )
        assert new.subject is not None  # _check_new refused a subject hold without one
        return [{"kind": "subject", "table_name": "", "item": h} for h in dict.fromkeys(new.subject.hashes(key))]
    if new.scope == "rows":
        table, values = _existing_keys(conn, target, policy, new)
        return [{"kind": "row", "table_name": table, "item": v} for v in values]
    return []


def _existing_keys(conn: Connection, target: Target, policy: RetentionPolicy, new: NewHold) -> tuple[str, list[str]]:
    """The hold's table (as the policy names it) and its keys as stored text, after checking
    each names a row, active or archived.

    A key that names no row is refused: a typo would otherwise protect nothing, silently.
    """
    _, entry = _policy_table(policy, new.table, new.reference)
    nodes = _nodes_of(conn, target, policy, entry.table)
    where = f"{nodes[0].source.fullname}"
    wanted = list(dict.fromkeys(key_value(k, len(entry.primary_key), where) for k in new.keys))
    found: set[str] = set()
    sides = [(nodes[0].source, nodes[0])] + [(n.archive, n) for n in nodes if archive_exists(conn, n)]
    for table, node in sides:
        text = key_text(table, node.key_columns)
        for start in range(0, len(wanted), 1000):
            chunk = wanted[start : start + 1000]
            found |= set(conn.execute(select(text).where(text.in_(chunk))).scalars())
    missing = [k for k in wanted if k not in found]
    if missing:
        shown = ", ".join(k.replace(KEY_SEPARATOR, "|") for k in missing[:10])
        raise RetentionError(
            f"legal hold {new.reference}: {len(missing)} key(s) of {where} name no row, active "
            f"or archived: {shown}; nothing was recorded"
        )
    return entry.table, wanted


def _nodes_of(conn: Connection, target: Target, policy: RetentionPolicy, table: str) -> list[TableNode]:
    """``table`` as each category that names it sees it: a table several categories share
    (partners: prospects and customers) has one active table but one archive per category,
    and a held row may be in any of them."""
    naming = [c for c in policy.categories.values() if any(n.table == table for t in c.tables for n in t.walk())]
    return [
        node
        for category in naming
        for root in open_category(conn, policy, category, target.source_schema, target.archive_schema, target.dialect)
        for node in root.walk()
        if node.name == table
    ]


def lift_hold(
    target: Target, policy: RetentionPolicy, reference: str, lifted_by: str, reason: str, ctx: RunContext, today: date
) -> HoldView:
    """Lift a hold in force (who and why are recorded); its rows follow the schedule again."""
    check_reference(reference)
    if not (lifted_by or "").strip() or not (reason or "").strip():
        raise RetentionError(f"lifting legal hold {reference!r} needs who lifts it and why")
    tables = store.hold_tables(target.archive_schema)
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        store.ensure_hold_tables(conn, tables)
        holds = tables.holds
        row = conn.execute(select(holds).where(holds.c.reference == reference)).first()
        if row is None:
            raise RetentionError(f"no legal hold {reference!r} in the register")
        if row.lifted_at is not None:
            raise RetentionError(f"legal hold {reference!r} was already lifted on {row.lifted_at:%Y-%m-%d}")
        if row.expires_on is not None and row.expires_on <= today:
            raise RetentionError(f"legal hold {reference!r} already expired on {row.expires_on}")
        _audit(
            conn,
            target,
            policy,
            ctx,
            reference,
            row.scope,
            row.category,
            row.table_name,
            _item_count(conn, tables, row.hold_id),
            "lifted",
            row.expires_on,
            [],
        )
        # The event just written: audit.record holds the chain's lock until this transaction ends.
        trail = store.audit_table(target.archive_schema, policy.audit_table)
        event_id = conn.execute(select(func.max(trail.c.event_id))).scalar_one()
        _lift(conn, holds, row.hold_id, event_id, lifted_by, reason)
        return _views(conn, tables, today, holds.c.hold_id == row.hold_id)[0]


def _lift(conn: Connection, holds: Table, hold_id: int, event_id: int, lifted_by: str, reason: str) -> None:
    """Mark the hold lifted, after its audit event ``event_id``: through the administrator's
    function where the roles script installed it (it checks that event), else directly."""
    if capabilities_of(conn.dialect.name).definer_functions:
        assert holds.schema is not None  # the register always lives in the archive schema
        schema = conn.dialect.identifier_preparer.quote_identifier(holds.schema)
        function = f"{schema}.{store.LIFT_FUNCTION}"
        installed = conn.execute(
            sql_text("SELECT to_regprocedure(:new) IS NOT NULL, to_regprocedure(:old) IS NOT NULL"),
            {"new": f"{function}(integer, integer, text, text)", "old": f"{function}(integer, text, text)"},
        ).one()
        if installed[0]:
            conn.execute(
                sql_text(f"SELECT {function}(:hold, :event, :by, :why)"),
                {"hold": hold_id, "event": event_id, "by": lifted_by, "why": reason},
            )
            return
        if installed[1]:
            raise RetentionError(
                f"{function}(integer, text, text) is the earlier version of the lift function: "
                "have the administrator run the roles script again "
                "(python -m include.retention.database.roles, see docs/how-to/own-postgresql.md)"
            )
    conn.execute(
        update(holds)
        .where(holds.c.hold_id == hold_id)
        .values(lifted_at=instants.utc_now(), lifted_by=lifted_by, lift_reason=reason)
    )


def record_expiries(conn: Connection, target: Target, policy: RetentionPolicy, ctx: RunContext, today: date) -> int:
    """Audit, once, each hold that has expired by ``today``; return how many."""
    tables = store.hold_tables(target.archive_schema)
    if not register_exists(conn, tables):
        return 0
    holds = tables.holds
    expired = conn.execute(
        select(holds).where(
            holds.c.lifted_at.is_(None), holds.c.expires_on <= today, holds.c.expiry_recorded_at.is_(None)
        )
    ).all()
    for row in expired:
        conn.execute(update(holds).where(holds.c.hold_id == row.hold_id).values(expiry_recorded_at=instants.utc_now()))
        _audit(
            conn,
            target,
            policy,
            ctx,
            row.reference,
            row.scope,
            row.category,
            row.table_name,
            _item_count(conn, tables, row.hold_id),
            "expired",
            row.expires_on,
            [],
        )
    return len(expired)


def list_holds(
    conn: Connection, archive_schema: str | None, today: date, *, in_force_only: bool = False
) -> list[HoldView]:
    tables = store.hold_tables(archive_schema)
    if not register_exists(conn, tables):
        return []
    return _views(conn, tables, today, in_force_on(tables.holds, today) if in_force_only else true())


def _views(conn: Connection, tables: store.HoldTables, today: date, where: ColumnElement[bool]) -> list[HoldView]:
    holds, items = tables.holds, tables.items
    counted = select(items.c.hold_id, func.count().label("n")).group_by(items.c.hold_id).subquery()
    rows = conn.execute(
        select(holds, func.coalesce(counted.c.n, 0).label("items"))
        .outerjoin(counted, counted.c.hold_id == holds.c.hold_id)
        .where(where)
        .order_by(holds.c.hold_id)
    ).all()
    return [
        HoldView(
            r.reference,
            r.scope,
            r.category,
            r.table_name,
            r.items,
            r.reason,
            r.created_by,
            r.created_at,
            r.expires_on,
            _status(r, today),
            r.lifted_by,
        )
        for r in rows
    ]


def _status(row: Any, today: date) -> str:
    if row.lifted_at is not None:
        return "lifted"
    if row.expires_on is not None and row.expires_on <= today:
        return "expired"
    return "in_force"


def _item_count(conn: Connection, tables: store.HoldTables, hold_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(tables.items).where(tables.items.c.hold_id == hold_id)
    ).scalar_one()


def _audit(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    ctx: RunContext,
    reference: str,
    scope: str,
    category: str | None,
    table: str | None,
    items: int,
    outcome: str,
    expires_on: date | None,
    subject_hashes: list[str],
) -> None:
    """One ``legal_hold`` event (per keyed hash for a subject hold, so a lookup finds it)."""
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    store.ensure_audit_table(conn, trail)
    details: dict[str, Any] = {"hold_reference": reference, "hold_scope": scope, "outcome": outcome, "items": items}
    if expires_on is not None:
        details["expires_on"] = expires_on
    hashes: list[str | None] = [*subject_hashes] or [None]
    for subject_hash in hashes:
        audit.record(
            conn,
            trail,
            ctx,
            category=category or HOLD_EVENTS,
            action="legal_hold",
            table_name=table,
            row_count=items,
            details=details,
            subject_hash=subject_hash,
        )

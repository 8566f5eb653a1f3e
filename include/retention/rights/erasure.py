"""Erasure on request (GDPR art. 17): delete a person's rows wherever no obligation keeps them.

(Also what a withdrawn consent and an opposition to prospection delete: the categories that
list those requests in ``deleted_on``, at once, whatever the age of the rows.)

One request is one transaction: every row about the person, in every category, active
and archive, children first, is deleted - or nothing is, if anything fails. What must
be kept is kept and said, per table:

- a category whose policy says ``on_erasure: keep`` (a legal obligation: invoices for
  their 10 years, the evidence that a request was handled) keeps its rows where they
  are, and the outcome names its legal basis;
- a row that a kept row of another category depends on (``archived_with``: a customer
  whose invoices are kept) is kept with its children, because deleting it would break
  the kept evidence;
- a row under a legal hold (``holds.py``: the person, the category, or the row itself)
  is kept with its children, and the outcome says so.

An erasure never meets a nightly batch half-way: on PostgreSQL it first waits (bounded,
``locks.wait_for_batches``) for the batches in flight to commit and keeps new ones out until
it commits, so it finds the person's rows wherever the batches put them, active or archive.
Every row found and not erased is explained - a legal obligation, a hold, or a kept row of
another category, each counted (a row both held and needed once); anything else (a row that
changed under the erasure) rolls the erasure back with an error rather than reporting a
reason that is not true.

Through links the policy declares but the database does not enforce, the application may
commit a child under the person's rows while the erasure runs: after the parents are
deleted, their children are looked for again by the deleted keys, at any depth, until none
is left, and counted as found and erased; a late row of another category pointing at a
deleted row rolls the erasure back.

The audit trail gets one ``erase`` event per table and one ``rights_request`` event per
identifier, all under the person's keyed hash, with counts only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, false, not_, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.identity import Subject, SubjectKey
from include.retention.database.reflect import Side, TableNode, archive_exists, key_of, key_text
from include.retention.database.store import hold_tables
from include.retention.database.target import Target
from include.retention.errors import RetentionError
from include.retention.policy.model import RetentionPolicy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.records.held_rows import HoldsInForce, hold_day, holds_in_force
from include.retention.records.locks import ERASURE_WAIT_SECONDS, wait_for_batches
from include.retention.rights.subjects import Found, Restriction, locate_in, open_trees

# The audit ``category`` of request-level events: a request spans the policy's categories.
REQUEST_EVENTS = "subject_request"


@dataclass(frozen=True)
class TableErasure:
    """What happened to one table side's rows about the person."""

    category: str
    table: str
    archive: bool
    found: int
    erased: int
    kept_because: str | None  # None when nothing was kept

    @property
    def kept(self) -> int:
        return self.found - self.erased


@dataclass
class ErasureResult:
    subject_hashes: list[str]
    tables: list[TableErasure] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The outcome per table, for the request register (counts and the reasons for keeping)."""
        return {
            "no_data_held": self.no_data_held,
            "erased": self.erased,
            "kept": self.kept,
            "tables": [{**asdict(t), "kept": t.kept} for t in self.tables],
        }

    @property
    def erased(self) -> int:
        return sum(t.erased for t in self.tables)

    @property
    def kept(self) -> int:
        return sum(t.kept for t in self.tables)

    @property
    def no_data_held(self) -> bool:
        return not self.tables


def erase(
    target: Target,
    policy: RetentionPolicy,
    subject: Subject,
    key: SubjectKey,
    ctx: RunContext,
    request_type: str = "erasure",
    batch_wait: float = ERASURE_WAIT_SECONDS,
) -> ErasureResult:
    """Delete the subject's rows everywhere nothing keeps them, in one transaction; audit it."""
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        return erase_in(conn, target, policy, subject, key, ctx, request_type, batch_wait)


def erase_in(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    subject: Subject,
    key: SubjectKey,
    ctx: RunContext,
    request_type: str = "erasure",
    batch_wait: float = ERASURE_WAIT_SECONDS,
) -> ErasureResult:
    """``erase`` inside the caller's transaction (the request register closes in the same one).

    ``erasure`` covers every category and honours ``on_erasure: keep``; ``consent_withdrawal``
    and ``opposition`` cover the categories that list them in ``deleted_on``, whatever the
    age of the rows. ``batch_wait``: seconds to wait for running batches before giving up.
    """
    categories = _categories_for(policy, request_type)
    wait_for_batches(conn, batch_wait)  # before anything is read: the rows are where the batches left them
    result = ErasureResult(subject.hashes(key))
    trees = open_trees(conn, target, policy, subject, categories)  # checked and reflected once
    holds = holds_in_force(
        conn,
        hold_tables(target.archive_schema),
        hold_day(ctx.as_of, datetime.now(policy.zone).date()),
        key,
        target.dialect,
    )
    present = locate_in(conn, trees, subject)
    on_hold = (
        _counts(locate_in(conn, trees, subject, restrict=lambda category, root, side: holds.held(root, side, category)))
        if holds.any
        else {}
    )
    needed_by = _needed_by(_archived_dependants(conn, trees))
    needed = (
        _counts(locate_in(conn, trees, subject, restrict=needed_by))
        if any(root.dependants for _, root in trees)
        else {}
    )
    # Rows held *or* needed, counted once: a row both held and needed explains one row, not two.
    explained = (
        _counts(
            locate_in(
                conn,
                trees,
                subject,
                restrict=lambda category, root, side: or_(
                    holds.held(root, side, category), needed_by(category, root, side)
                ),
            )
        )
        if on_hold or needed
        else {}
    )
    erasable = locate_in(conn, trees, subject, restrict=_erasable(holds, needed_by))
    _close_asks(conn, target, policy, erasable, honour_keep=request_type == "erasure")
    erased, deleted_keys = _delete(conn, policy, erasable, honour_keep=request_type == "erasure")
    late = _sweep_late_children(conn, erasable, deleted_keys)
    _check_no_late_dependant(conn, deleted_keys)
    result.tables = [_outcome(policy, found, erased, on_hold, needed, explained, late) for found in present]
    result.tables += [
        TableErasure(category, name, side == Side.ARCHIVE, rows, rows, None)
        for (category, name, side), rows in late.items()
        if (category, name, side) not in {(f.category, f.node.name, f.side) for f in present}
    ]
    _audit(conn, target, policy, ctx, result, request_type)
    return result


def _categories_for(policy: RetentionPolicy, request_type: str) -> list[str]:
    if request_type == "erasure":
        return list(policy.categories)
    chosen = [key for key, category in policy.categories.items() if request_type in category.deleted_on]
    if not chosen:
        raise RetentionError(
            f"{policy.source}: no category lists {request_type!r} in deleted_on, so this request "
            "would delete nothing; say which categories it concerns"
        )
    return chosen


def _erasable(holds: HoldsInForce, needed: Any):
    """Root rows that may go: not under a legal hold, and not ``needed`` by a kept row of another category."""

    def restrict(category: str, root: TableNode, side: Side) -> ColumnElement[bool]:
        return and_(not_(holds.held(root, side, category)), not_(needed(category, root, side)))

    return restrict


def _archived_dependants(conn: Connection, trees: list[tuple[str, TableNode]]) -> set[int]:
    """The retained dependants whose archive table exists, by ``id`` (nodes are not hashable)."""
    return {id(dep.node) for _, root in trees for dep in root.dependants if archive_exists(conn, dep.node)}


def _needed_by(archived: set[int]) -> Restriction:
    """Root rows a row of another category depends on (``archived_with``): on the same side;
    and, for an active row, also from that category's archive - a dependant released by its
    parent's event (``on_parent_event``: an invoice in billing's archive while its customer is
    still active) would otherwise be left pointing at a deleted customer."""

    def needed(category: str, root: TableNode, side: Side) -> ColumnElement[bool]:
        parts = [_referenced_by(dep.node, dep.foreign_key, root, side) for dep in root.dependants]
        if side == Side.ACTIVE:
            parts += [
                _referenced_from_archive(dep.node, dep.foreign_key, root)
                for dep in root.dependants
                if id(dep.node) in archived
            ]
        return or_(false(), *parts)

    return needed


def _counts(found: list[Found]) -> dict[tuple[str, str, str], int]:
    return {(f.category, f.node.name, f.side): f.rows for f in found}


def _referenced_from_archive(dependant: TableNode, foreign_key: list[str], parent: TableNode) -> ColumnElement[bool]:
    """Active rows of ``parent`` that an archive row of ``dependant`` points at."""
    table, parent_table = dependant.archive, parent.source
    return exists().where(
        *(table.c[fk] == parent_table.c[pk] for fk, pk in zip(foreign_key, parent.key_columns, strict=True))
    )


def _referenced_by(dependant: TableNode, foreign_key: list[str], parent: TableNode, side: Side) -> ColumnElement[bool]:
    table, parent_table = dependant.table(side), parent.table(side)
    return exists().where(
        *(table.c[fk] == parent_table.c[pk] for fk, pk in zip(foreign_key, parent.key_columns, strict=True))
    )


Where = tuple[str, str, str]  # (category, table, side)


def _close_asks(
    conn: Connection, target: Target, policy: RetentionPolicy, erasable: list[Found], honour_keep: bool
) -> None:
    """Close the re-consent asks of the asked rows about to be deleted (``failure`` ``erased``):
    a yes is the person's, not the row key's, and a new row given the same key must not
    inherit the restarted clock (``reflect`` reads only the yes of asks not closed). One
    set-based UPDATE per table side, before the rows go."""
    register = store.reconsent_table(target.archive_schema)
    asked = [
        found
        for found in erasable
        if policy.categories[found.category].asked_table == found.node.name
        and not (honour_keep and policy.categories[found.category].on_erasure == "keep")
    ]
    if not asked or not store.table_exists(conn, register):
        return
    for found in asked:
        rows = select(key_text(found.table, found.node.key_columns)).where(found.where)
        conn.execute(
            update(register)
            .where(
                register.c.category == found.category,
                register.c.table_name == found.node.name,
                register.c.row_key.in_(rows),
            )
            .values(failure=store.ASK_ERASED)
        )


def _delete(
    conn: Connection, policy: RetentionPolicy, erasable: list[Found], honour_keep: bool
) -> tuple[dict[Where, int], dict[Where, tuple[Found, list[tuple]]]]:
    """Children before parents, dependants' categories before their parents' categories, so
    that no foreign key is left dangling and a kept dependant still protects its parent.

    Returns the rows deleted per table side, and the keys of the deleted rows of tables that
    have children (``_sweep_late_children`` looks for children of those keys again)."""

    def order(found: Found) -> tuple[int, int]:
        has_parent_elsewhere = any(t.archived_with for t in policy.categories[found.category].tables)
        return (0 if has_parent_elsewhere else 1, -found.depth)

    erased: dict[Where, int] = {}
    deleted_keys: dict[Where, tuple[Found, list[tuple]]] = {}
    for found in sorted(erasable, key=order):
        if honour_keep and policy.categories[found.category].on_erasure == "keep":
            continue
        where = (found.category, found.node.name, found.side)
        statement = delete(found.table).where(found.where)
        if found.node.children or found.node.dependants:
            keys = [
                tuple(row)
                for row in conn.execute(statement.returning(*(found.table.c[c] for c in found.node.key_columns)))
            ]
            deleted_keys[where] = (found, keys)
            erased[where] = len(keys)
        else:
            erased[where] = conn.execute(statement).rowcount
    return erased, deleted_keys


def _sweep_late_children(
    conn: Connection, erasable: list[Found], deleted_keys: dict[Where, tuple[Found, list[tuple]]]
) -> dict[Where, int]:
    """Children the application committed under the person's rows while the erasure ran.

    Through a link the policy declares but the database does not enforce (no foreign key),
    another session may commit a child between the erasure's deletion of the children and of
    their parent: found by no earlier statement, it would outlive its parent, pointing at
    nothing and about no one ``was_erased`` can find. So, after the parents are gone, their
    children are looked for again by the deleted parents' keys - and theirs, at any depth -
    pass after pass until a pass finds none, in the erasure's transaction; what they delete is
    counted as found and erased. (A child committed after the last pass, in the instant
    before the commit, is not seen: only a foreign key or SERIALIZABLE closes that window.)"""
    parents = [(found.category, found.node, found.side, keys) for found, keys in deleted_keys.values() if keys]
    swept: dict[Where, int] = {}
    while parents:
        again = []
        for category, node, side, keys in parents:
            for child in node.children:
                if side == Side.ARCHIVE and not archive_exists(conn, child):
                    continue
                table = child.table(side)
                rows = [
                    tuple(r)
                    for chunk in _chunks(keys)
                    for r in conn.execute(
                        delete(table)
                        .where(_key_in(table, child.foreign_key, chunk))
                        .returning(*(table.c[c] for c in child.key_columns))
                    )
                ]
                if rows:
                    where = (category, child.name, side)
                    swept[where] = swept.get(where, 0) + len(rows)
                    again.append((category, child, side, rows))
        parents = again
    return swept


def _check_no_late_dependant(conn: Connection, deleted_keys: dict[Where, tuple[Found, list[tuple]]]) -> None:
    """A row of another category committed while the erasure ran, pointing at a row it has
    deleted (``archived_with`` through a link the database does not enforce): the rows that
    needed were spared before, this one came too late - roll back rather than orphan it."""
    for found, keys in deleted_keys.values():
        for dep in found.node.dependants:
            if found.side == Side.ARCHIVE and not archive_exists(conn, dep.node):
                continue
            table = dep.node.table(found.side)
            for chunk in _chunks(keys):
                if conn.execute(select(exists().where(_key_in(table, dep.foreign_key, chunk)))).scalar():
                    raise RetentionError(
                        f"erasure of {found.node.name} ({found.side}): a row of {dep.node.name} ({dep.category.key}) that "
                        "depends on a deleted row was written while the erasure ran; nothing was erased: run the "
                        "request again"
                    )


_KEY_CHUNK = 1000  # keys per statement: below SQLite's and PostgreSQL's bound on parameters


def _chunks(keys: list[tuple]) -> list[list[tuple]]:
    return [keys[start : start + _KEY_CHUNK] for start in range(0, len(keys), _KEY_CHUNK)]


def _key_in(table: Any, columns: list[str], keys: list[tuple]) -> ColumnElement[bool]:
    """``columns`` of ``table`` hold one of ``keys`` (a row value for composite keys)."""
    return key_of(table, columns).in_(keys if len(columns) > 1 else [k[0] for k in keys])


def _outcome(
    policy: RetentionPolicy,
    found: Found,
    erased: dict[Where, int],
    on_hold: dict[Where, int],
    needed: dict[Where, int],
    explained_rows: dict[Where, int],
    late: dict[Where, int],
) -> TableErasure:
    """The table's counts and the reason for what was kept - only a reason that was counted:
    rows found and neither erased nor explained (held or needed, each row once) roll the
    erasure back. ``late``: children swept after their parents, found and erased."""
    category = policy.categories[found.category]
    where = (found.category, found.node.name, found.side)
    removed, rows = erased.get(where, 0) + late.get(where, 0), found.rows + late.get(where, 0)
    found = replace(found, rows=rows)
    if removed > found.rows:
        raise RetentionError(
            f"erasure of {found.node.name} ({found.side}): {removed} rows deleted but {found.rows} were found; rolled back"
        )
    reason = None
    if category.on_erasure == "keep" and removed == 0:
        reason = f"legal obligation: {category.legal_basis}"
    elif removed < found.rows and on_hold.get(where):
        reason = f"legal hold: {on_hold[where]} row(s) kept until the hold is lifted or expires"
    elif removed < found.rows and needed.get(where):
        reason = "needed by kept rows of another category"
    explained = (
        found.rows if reason and reason.startswith("legal obligation") else removed + explained_rows.get(where, 0)
    )
    if explained < found.rows:
        raise RetentionError(
            f"erasure of {found.node.name} ({found.side}): {found.rows} row(s) found, {removed} deleted, and no hold or "
            "kept row of another category explains the rest (the rows changed while being erased?); nothing was "
            "erased: run the request again"
        )
    return TableErasure(found.category, found.node.name, found.side == Side.ARCHIVE, found.rows, removed, reason)


def _audit(
    conn: Connection, target: Target, policy: RetentionPolicy, ctx: RunContext, result: ErasureResult, request_type: str
) -> None:
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    store.ensure_audit_table(conn, trail)
    first_hash = result.subject_hashes[0]
    for table in result.tables:
        audit.record(
            conn,
            trail,
            ctx,
            category=table.category,
            action="erase",
            table_name=table.table,
            row_count=table.erased,
            subject_hash=first_hash,
            details={"archive": table.archive, "found": table.found, "kept": table.kept},
        )
    for subject_hash in result.subject_hashes:
        audit.record(
            conn,
            trail,
            ctx,
            category=REQUEST_EVENTS,
            action="rights_request",
            row_count=result.erased,
            subject_hash=subject_hash,
            details={
                "request_type": request_type,
                "outcome": "completed",
                "erased": result.erased,
                "kept": result.kept,
                "tables": len(result.tables),
            },
        )

"""Retained dependants (``archived_with``): what their parents' run does with them.

A dependant (an invoice kept 10 years from its date) leaves the active base with its
parent (the customer) and keeps its own category's clock in the archive. One run of the
parent's category must leave both where the schedule says, whatever the order in which
the categories run:

* a dependant already past its own horizon is destroyed (or anonymised, by its own
  category's ``end_action``) by the parent's purge, before the parents are walked - audited
  under the dependant's category, with the same-run count;
* a parent is kept in the archive only by a dependant that stays there: one within its
  horizon, or one a legal hold protects (an anonymised row is no one's data: it keeps
  nothing);
* a legal hold on a dependant keeps it and its parent where they are, as a hold on a child
  keeps its parent: the parent is never moved without it;
* a legal hold on a parent keeps its dependants too: they are about the same person (a hold
  on a person reaches the customer through its e-mail; the invoice, with no identifier of
  its own, only through its customer). Neither the parent's run nor the dependant's own run
  destroys a dependant whose parent a hold protects - in any parent category, archived or
  still active (``held_by_parent``).

The conditions are SQL expressions on the parent's (``root``) or the dependant's tables,
built from the same clock and hold conditions as the rest of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, exists, false, not_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement, False_

from include.retention.database.reflect import Dependant, Side, TableNode, archive_exists, key_of, reflect_category
from include.retention.database.target import Target
from include.retention.policy.model import Category, RetentionPolicy
from include.retention.records.held_rows import HoldsInForce


@dataclass(frozen=True)
class Parent:
    """The table a retained dependant is archived with, as one parent category sees it (a
    partner table serves prospects and customers: two parents, two archives)."""

    category: Category
    node: TableNode
    foreign_key: list[str]  # the dependant's columns holding the parent's key
    archived: bool  # the parent category's archive table exists


def parents_of(conn: Connection, policy: RetentionPolicy, target: Target, node: TableNode) -> list[Parent]:
    """Every parent category's view of ``node``'s ``archived_with`` table (none for a table
    that is no one's dependant). Reflected here because a dependant's own run knows its
    parents' tables only by name; ``open_category`` has checked them against the database."""
    link = getattr(node.policy, "archived_with", None)
    if link is None:
        return []
    out = []
    for category in policy.categories.values():
        if not any(t.table == link.table for t in category.tables):
            continue
        for parent in reflect_category(conn, policy, category, target.source_schema, target.archive_schema):
            if parent.name == link.table:
                out.append(Parent(category, parent, list(link.foreign_key), archive_exists(conn, parent)))
    return out


def held_by_parent(parents: list[Parent], node: TableNode, side: Side, holds: HoldsInForce) -> ColumnElement[bool]:
    """Rows of the dependant ``node`` (on ``side``) whose parent row a legal hold protects, in
    any parent category: in its archive, or in the active base within that category's scope
    (a parent held there keeps whatever of its dependants is already archived)."""
    if not holds.any or not parents:
        return false()
    link = key_of(node.table(side), parents[0].foreign_key)
    # A row with no parent (a counter sale: NULL link) is held by no parent: ``NULL IN (...)``
    # is NULL, and ``NOT held`` would then drop it from every step - never moved, never destroyed.
    linked = and_(*(node.table(side).c[c].is_not(None) for c in parents[0].foreign_key))
    parts = []
    for parent in parents:
        sides = [(Side.ACTIVE, parent.node.scope)] + ([(Side.ARCHIVE, true())] if parent.archived else [])
        for parent_side, scope in sides:
            protected = holds.held(parent.node, parent_side, parent.category.key)
            if isinstance(protected, False_):
                continue
            table = parent.node.table(parent_side)
            parts.append(
                and_(linked, link.in_(select(*(table.c[c] for c in parent.node.key_columns)).where(scope, protected)))
            )
    return or_(false(), *parts)


def held_through_parent(
    conn: Connection, policy: RetentionPolicy, target: Target, node: TableNode, side: Side, holds: HoldsInForce
) -> ColumnElement[bool]:
    """``held_by_parent`` for ``node``, its parents reflected only when a hold is in force
    (no reflection, no SQL added, on the nights without any hold)."""
    if not holds.any:
        return false()
    return held_by_parent(parents_of(conn, policy, target, node), node, side, holds)


def not_held_dependant(
    holds: HoldsInForce, node: TableNode, side: Side, category: str, parents: list[Parent]
) -> list[ColumnElement[bool]]:
    """``[NOT held]`` for rows of a table that may be a retained dependant: held themselves (or
    through a child), or through their parent - nothing at all when no hold is in force."""
    if not holds.any:
        return []
    return [not_(or_(holds.held(node, side, category), held_by_parent(parents, node, side, holds)))]


def held_released(
    conn: Connection,
    policy: RetentionPolicy,
    target: Target,
    root: TableNode,
    side: Side,
    category: str,
    holds: HoldsInForce,
) -> ColumnElement[bool]:
    """Rows of ``root`` a legal hold keeps where they are in its own run (``held``) - and, for a
    dependant released by its parent's event (``on_parent_event``), held through its parent
    too: a held customer keeps its invoices where they are, active as archived."""
    parts = [held(holds, root, side, category)]
    if holds.any and root.release is not None:
        parts.append(held_through_parent(conn, policy, target, root, side, holds))
    return or_(*parts)


def not_held_released(
    conn: Connection,
    policy: RetentionPolicy,
    target: Target,
    root: TableNode,
    side: Side,
    category: str,
    holds: HoldsInForce,
) -> list[ColumnElement[bool]]:
    """``[NOT held_released]`` - nothing at all when no hold is in force."""
    return [not_(held_released(conn, policy, target, root, side, category, holds))] if holds.any else []


def _link(dep: Dependant, root: TableNode, side: Side) -> list[ColumnElement[bool]]:
    """A dependant row of ``side`` points at the parent row of the same side."""
    table, parent = dep.node.table(side), root.table(side)
    return [table.c[fk] == parent.c[pk] for fk, pk in zip(dep.foreign_key, root.key_columns, strict=True)]


def held(holds: HoldsInForce, root: TableNode, side: Side, category: str) -> ColumnElement[bool]:
    """Rows of ``root`` a legal hold protects: held themselves (or through a child), or with a
    held dependant on the same side."""
    parts = [holds.held(root, side, category)]
    if holds.any:
        parts += [
            exists().where(*_link(dep, root, side), holds.held(dep.node, side, dep.category.key))
            for dep in root.dependants
        ]
    return or_(*parts)


def not_held(holds: HoldsInForce, root: TableNode, side: Side, category: str) -> list[ColumnElement[bool]]:
    """``[NOT held]`` (dependants included) - nothing at all when no hold is in force."""
    return [not_(held(holds, root, side, category))] if holds.any else []


def at_end_of_life(
    dep: Dependant, root: TableNode, as_of: date, holds: HoldsInForce, parents: list[Parent]
) -> ColumnElement[bool]:
    """Archive rows of ``dep`` past their own horizon whose parent is in ``root``'s archive:
    the parent's purge destroys them first - unless a hold protects them or their parent
    (``parents``: every parent category's view of their parent table, ``parents_of``)."""
    return and_(
        dep.node.expired(as_of),
        dep.linked(Side.ARCHIVE, root, true()),
        *not_held_dependant(holds, dep.node, Side.ARCHIVE, dep.category.key, parents),
    )


def staying(dep: Dependant, as_of: date, holds: HoldsInForce) -> ColumnElement[bool]:
    """Archive rows of ``dep`` that stay after this run: within their horizon, held, or
    without a horizon at all (no start date: a defect the post-run gate reports; it cannot
    be aged, so it is never destroyed silently, and its parent stays with it)."""
    archive = dep.node.archive
    # Not NULL: in SQL an undated row would be neither expired nor staying.
    expired = and_(archive.c.retention_until.is_not(None), dep.node.expired(as_of))
    ends = and_(expired, *holds.not_held(dep.node, Side.ARCHIVE, dep.category.key)) if holds.any else expired
    return and_(archive.c.anonymized == false(), not_(ends))


def kept(dep: Dependant, root: TableNode, as_of: date, holds: HoldsInForce) -> ColumnElement[bool]:
    """Archive rows of ``root`` that a dependant staying in the archive keeps there."""
    return exists().where(*_link(dep, root, Side.ARCHIVE), staying(dep, as_of, holds))


def kept_by_any(root: TableNode, as_of: date, holds: HoldsInForce) -> ColumnElement[bool]:
    return or_(false(), *(kept(dep, root, as_of, holds) for dep in root.dependants))

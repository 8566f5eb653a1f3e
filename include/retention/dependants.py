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
  keeps its parent: the parent is never moved without it.

The conditions are SQL expressions on the parent's (``root``) or the dependant's tables,
built from the same clock and hold conditions as the rest of the engine.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, exists, false, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from .catalog import Dependant, TableNode
from .holds import HoldsInForce


def _link(dep: Dependant, root: TableNode, side: str) -> list[ColumnElement[bool]]:
    """A dependant row of ``side`` points at the parent row of the same side."""
    table, parent = getattr(dep.node, side), getattr(root, side)
    return [table.c[fk] == parent.c[pk] for fk, pk in zip(dep.foreign_key, root.key_columns, strict=True)]


def held(holds: HoldsInForce, root: TableNode, side: str, category: str) -> ColumnElement[bool]:
    """Rows of ``root`` a legal hold protects: held themselves (or through a child), or with a
    held dependant on the same side."""
    parts = [holds.held(root, side, category)]
    if holds.any:
        parts += [exists().where(*_link(dep, root, side), holds.held(dep.node, side, dep.category.key))
                  for dep in root.dependants]
    return or_(*parts)


def not_held(holds: HoldsInForce, root: TableNode, side: str, category: str) -> list[ColumnElement[bool]]:
    """``[NOT held]`` (dependants included) - nothing at all when no hold is in force."""
    return [not_(held(holds, root, side, category))] if holds.any else []


def at_end_of_life(dep: Dependant, root: TableNode, as_of: date, holds: HoldsInForce) -> ColumnElement[bool]:
    """Archive rows of ``dep`` past their own horizon, not held, whose parent is in ``root``'s
    archive: the parent's purge destroys them first."""
    return and_(dep.node.expired(as_of), dep.linked("archive", root, true()),
                *holds.not_held(dep.node, "archive", dep.category.key))


def staying(dep: Dependant, as_of: date, holds: HoldsInForce) -> ColumnElement[bool]:
    """Archive rows of ``dep`` that stay after this run: within their horizon, or held."""
    archive = dep.node.archive
    expired = dep.node.expired(as_of)
    ends = and_(expired, *holds.not_held(dep.node, "archive", dep.category.key)) if holds.any else expired
    return and_(archive.c.anonymized == false(), not_(ends))


def kept(dep: Dependant, root: TableNode, as_of: date, holds: HoldsInForce) -> ColumnElement[bool]:
    """Archive rows of ``root`` that a dependant staying in the archive keeps there."""
    return exists().where(*_link(dep, root, "archive"), staying(dep, as_of, holds))


def kept_by_any(root: TableNode, as_of: date, holds: HoldsInForce) -> ColumnElement[bool]:
    return or_(false(), *(kept(dep, root, as_of, holds) for dep in root.dependants))

"""Where a person's rows are: each table side holding rows about them, found by identifier.

How a person is named without being named (canonical identifiers, keyed hashes) is
``database/identity.py``; whether they were erased is ``rights/erased.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, func, not_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.identifiers import (
    names_someone_sql,
)
from include.retention.database.identity import (
    Subject,
    normalised_sql,
)
from include.retention.database.reflect import (
    Side,
    TableNode,
    archive_exists,
    key_of,
    linked_rows,
    open_category,
)
from include.retention.database.target import Target
from include.retention.errors import RetentionError
from include.retention.policy.model import RetentionPolicy


@dataclass
class Found:
    """One table side (active ``source`` or ``archive``) holding rows about the subject.

    ``where`` selects exactly those rows: identifier matches for a table that declares
    identifiers, else (children) the rows linked to the parent's matching rows.
    """

    category: str
    node: TableNode
    side: Side
    where: ColumnElement[bool]
    rows: int
    depth: int

    @property
    def table(self) -> Any:
        return self.node.table(self.side)


# A condition ``locate`` adds to the subject's rows of one side of a category's table (a legal
# hold on them, a dependant that needs them): called with the category key, the node and the side.
Restriction = Callable[[str, TableNode, Side], ColumnElement[bool]]


def locate(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    subject: Subject,
    restrict: Restriction | None = None,
    categories: Iterable[str] | None = None,
) -> list[Found]:
    """Every table side of every category with the subject's rows and child rows (counts > 0).

    The policy's identifiers are checked against the live database first (``open_category``).
    Matching is set-based SQL on normalised values: case and spaces of e-mails, separators
    and national form of phone numbers do not matter. ``restrict(category, node, side)`` narrows the
    root rows (and so the children linked to them), and the child rows found by their own
    identifiers: erasure uses it to spare rows it must keep (held, or needed by another category).
    An active row is found in one category only (``_Domains``): a root's in the category whose
    effective scope holds it (none when no scope does); a child's in the category whose tree
    holds its parent row, else - parent row in no scope, or none - in the first category, in
    policy order, declaring the table as a child with subject identifiers.
    ``categories`` limits the search (default: every category).
    """
    return locate_in(conn, open_trees(conn, target, policy, subject, categories), subject, restrict)


class Trees(list[tuple[str, TableNode]]):
    """The opened trees a request searches, ``(category, root)``, and ``context``: every
    category's trees that declare one of their child tables, in policy order (the searched
    ones included, as the same objects). Which category an active child row belongs to
    depends on all of them (``_Domains``), not only on the categories searched."""

    def __init__(self, searched: Iterable[tuple[str, TableNode]], context: list[tuple[str, TableNode]]) -> None:
        super().__init__(searched)
        self.context = context


def open_trees(
    conn: Connection, target: Target, policy: RetentionPolicy, subject: Subject, categories: Iterable[str] | None = None
) -> Trees:
    """The checked and reflected root tables of the categories that declare one of the
    subject's kinds of identifier: opened once, searched as often as needed (``locate_in``).
    The other categories that declare one of their child tables (and so on) are opened too,
    as context: they decide which category holds a child row, never searched themselves."""
    wanted = set(policy.categories if categories is None else categories)
    opened: dict[str, list[TableNode]] = {}
    for category in (c for c in policy.categories.values() if c.key in wanted):
        declared = {kind for table in category.tables for node in table.walk() for kind in node.subject_identifiers}
        if declared & subject.kinds:
            opened[category.key] = open_category(
                conn, policy, category, target.source_schema, target.archive_schema, target.dialect
            )
    searched = set(opened)
    # Until no category is added: a context category's own child tables have owners too.
    added = True
    while added:
        children = {node.name for roots in opened.values() for root in roots for node in root.walk()[1:]}
        added = False
        for category in policy.categories.values():
            if category.key not in opened and children & {n.table for t in category.tables for n in t.walk()}:
                opened[category.key] = open_category(
                    conn, policy, category, target.source_schema, target.archive_schema, target.dialect
                )
                added = True
    context = [(key, root) for key in policy.categories for root in opened.get(key, [])]
    return Trees([(key, root) for key, root in context if key in searched], context)


def locate_in(
    conn: Connection,
    trees: list[tuple[str, TableNode]],
    subject: Subject,
    restrict: Restriction | None = None,
) -> list[Found]:
    """``locate`` over trees already opened by ``open_trees`` (a plain list is its own context)."""
    domains = _Domains(trees.context if isinstance(trees, Trees) else trees)
    found = [
        f for category, root in trees for f in _locate_node(conn, category, root, subject, None, 0, restrict, domains)
    ]
    return [f for f in found if f.rows]


# Per side: the subject's rows of a table in one category's tree.
_Sides = dict[Side, ColumnElement[bool]]


def _locate_node(
    conn: Connection,
    category: str,
    node: TableNode,
    subject: Subject,
    parent: tuple[TableNode, _Sides] | None,
    depth: int,
    restrict: Restriction | None,
    domains: _Domains,
) -> list[Found]:
    """The subject's rows of ``node`` and of its children, per side, in ``category``'s tree.

    ``parent``: the parent node and the subject's rows among its rows (per side). A child's
    row is the subject's when it is linked to one of those, or when it holds one of their
    identifiers itself - and then only among this category's rows of the table
    (``_Domains.of``): a table shared by several categories (partners, scoped prospect or
    customer) has the same children in each tree, and an active row belongs to one of them.
    Found by its own identifiers, a child row also answers to ``restrict`` itself (a legal
    hold on that row, or on the person): its parent's restriction only reaches the rows
    linked to it."""
    sides = (Side.ACTIVE, Side.ARCHIVE) if archive_exists(conn, node) else (Side.ACTIVE,)
    matches: _Sides = {}
    found: list[Found] = []
    for side in sides:
        table = node.table(side)
        # Archive: every row - each category archives a shared table into its own archive table.
        domain = domains.of(node) if side == Side.ACTIVE else true()
        own = [and_(domain, hit) for hit in _matches(node, table, subject)]
        if own and restrict is not None and parent is not None:
            own = [and_(own[0], restrict(category, node, side))]
        inherited = (
            [linked_rows(node, side, node.foreign_key, parent[0], parent[1][side])]
            if parent and side in parent[1]
            else []
        )
        matches[side] = or_(*own, *inherited) if own or inherited else false()
        if restrict is not None and parent is None:
            matches[side] = and_(matches[side], restrict(category, node, side))
        rows = conn.execute(select(func.count()).select_from(table).where(matches[side])).scalar_one()
        found.append(Found(category, node, side, matches[side], rows, depth))
    for child in node.children:
        found += _locate_node(conn, category, child, subject, (node, matches), depth + 1, restrict, domains)
    return found


class _Domains:
    """Which category each active row of a governed table belongs to, so that a request
    finds every active row holding the person's identifier exactly once.

    A root's rows: those in its effective scope (a root row in no category's scope is
    governed by none and found by none). A child's rows: the children of its category's
    rows of the parent table, at every depth (a contact belongs to the category whose scope
    holds its company); and the rows no category's tree holds that way - parent in no
    category's scope, or no parent (NULL key, orphan) - belong to the first category, in
    policy order, declaring the table as a child with subject identifiers (the only category
    that found them when there was one). ``context``: every category's ``(key, root)``
    trees that declare the table, in policy order."""

    def __init__(self, context: list[tuple[str, TableNode]]) -> None:
        self._parent: dict[int, TableNode | None] = {}
        self._nodes: dict[tuple[str | None, str], list[TableNode]] = {}
        self._owner: dict[tuple[str | None, str], int] = {}
        for _, root in context:
            self._index(root, None)
        self._memo: dict[int, ColumnElement[bool]] = {}
        self._busy: set[tuple[str | None, str]] = set()

    def _index(self, node: TableNode, parent: TableNode | None) -> None:
        self._parent[id(node)] = parent
        table = _table_id(node)
        self._nodes.setdefault(table, []).append(node)
        if parent is not None and node.policy.subject_identifiers:
            self._owner.setdefault(table, id(node))
        for child in node.children:
            self._index(child, node)

    def of(self, node: TableNode) -> ColumnElement[bool]:
        """The active rows of ``node``'s table that are its category's, at its place in the tree."""
        if id(node) not in self._memo:
            held = self._held(node)
            if self._owner.get(_table_id(node)) == id(node):
                held = or_(held, self._held_by_none(node))
            self._memo[id(node)] = held
        return self._memo[id(node)]

    def _held(self, node: TableNode) -> ColumnElement[bool]:
        """A root's rows in its scope; a child's rows linked to its category's parent rows."""
        parent = self._parent.get(id(node))
        if parent is None:
            return node.scope
        return linked_rows(node, Side.ACTIVE, node.foreign_key, parent, self.of(parent))

    def _held_by_none(self, node: TableNode) -> ColumnElement[bool]:
        """Rows of ``node``'s table no category's tree holds (``_held``), matched by key:
        each tree reflects the table on its own Table object, never mixed in one FROM."""
        table = _table_id(node)
        if table in self._busy:  # a table that is its own ancestor through other categories
            raise RetentionError(
                f"table {table[1]!r} is declared below itself through several categories: "
                "a request cannot tell which category holds its rows"
            )
        self._busy.add(table)
        try:
            key = key_of(node.source, node.key_columns)
            held = [
                key.in_(
                    select(*(other.source.c[c] for c in other.key_columns)).where(self._held(other)).correlate(None)
                )
                for other in self._nodes[table]
            ]
        finally:
            self._busy.discard(table)
        return not_(or_(*held))


def _table_id(node: TableNode) -> tuple[str | None, str]:
    return (node.source.schema, node.source.name)


# Identifiers that may be shared by several people (a household's or a switchboard's phone).
SHARED_KINDS = frozenset({"phone"})


def _matches(node: TableNode, table: Any, subject: Subject) -> list[ColumnElement[bool]]:
    """The rows about the subject: those holding one of their unique identifiers (e-mail,
    customer number...), and those holding a shared one (phone) unless another identifier
    of the row names someone else - two people who share a phone are told apart by their
    e-mails. (A request that gives only a phone number cannot tell them apart.)"""
    columns = {
        kind: [table.c[c] for c in node.policy.subject_identifiers.get(kind, []) if c in table.c]
        for kind in subject.kinds
    }
    values = {kind: [v for k, v in subject.identifiers if k == kind] for kind in subject.kinds}

    def hit(kinds: set[str]) -> list[ColumnElement[bool]]:
        return [normalised_sql(kind, column).in_(values[kind]) for kind in kinds for column in columns[kind]]

    unique, shared = hit(subject.kinds - SHARED_KINDS), hit(subject.kinds & SHARED_KINDS)
    # Only a unique identifier that can name a person makes the row someone else's: not one
    # of whitespace or invisible characters, nor a placeholder e-mail (N/A, -, inconnu).
    someone_else = [
        and_(column.is_not(None), names_someone_sql(kind, column), normalised_sql(kind, column).not_in(values[kind]))
        for kind in subject.kinds - SHARED_KINDS
        for column in columns[kind]
    ]
    if shared:
        unique.append(and_(or_(*shared), not_(or_(*someone_else))) if someone_else else or_(*shared))
    return [or_(*unique)] if unique else []

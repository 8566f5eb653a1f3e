"""Structured row conditions: which rows of a table a rule is about.

A condition is data, not SQL text, so a policy can never inject SQL: columns are checked
against the live table and values always travel as bound parameters.

    {column: is_company, equals: true}
    {column: state, in: [done, cancel]}
    {column: date_end, is_null: true}
    {all: [cond, cond, ...]}     # and
    {any: [cond, cond, ...]}     # or
    {not: cond}                  # not (a NULL result counts as not matching)
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from sqlalchemy import and_, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

Value = bool | int | float | str | date | datetime
_TESTS = ("equals", "in_", "is_null", "is_not_null")


class StrictModel(BaseModel):
    """Every block of the policy: unknown keys are errors (a typo must not silently disable a
    rule), and a loaded policy is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnTest(StrictModel):
    """One test on one column; exactly one of equals, in, is_null, is_not_null."""

    column: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        description="The column tested, on the table the condition is about; checked against the live table."
    )
    equals: Value | None = Field(
        default=None, description="Rows whose column equals this value (sent as a bound parameter, never as SQL)."
    )
    in_: list[Value] | None = Field(
        default=None, alias="in", min_length=1, description="Rows whose column holds one of these values."
    )
    is_null: bool | None = Field(default=None, description="`true`: rows whose column is empty (NULL).")
    is_not_null: bool | None = Field(default=None, description="`true`: rows whose column is not empty.")

    @model_validator(mode="after")
    def _exactly_one_test(self) -> ColumnTest:
        given = [name for name in _TESTS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of equals, in, is_null, is_not_null for column {self.column!r}")
        if self.is_null is False or self.is_not_null is False:
            raise ValueError("is_null and is_not_null take the value true")
        return self


class AllOf(StrictModel):
    """``{all: [cond, ...]}``: rows that pass every condition of the list (and)."""

    all: list[Condition] = Field(min_length=1, description="The conditions a row must all pass.")


class AnyOf(StrictModel):
    """``{any: [cond, ...]}``: rows that pass at least one condition of the list (or)."""

    any: list[Condition] = Field(min_length=1, description="The conditions a row must pass one of.")


class NoneOf(StrictModel):
    """``{not: cond}``: rows for which ``cond`` is not true (NULL counts as not true)."""

    not_: Condition = Field(
        alias="not", description="The condition a row must not pass; a row for which it is NULL passes `not`."
    )


def _condition_kind(value: Any) -> str:
    """Pick the model by its key, so an error speaks of one shape, not of all three."""
    if isinstance(value, dict):
        for key, tag in (("all", ALL_OF), ("any", ANY_OF), ("not", NOT)):
            if key in value:
                return tag
        return COLUMN_TEST
    tags: dict[type, str] = {AllOf: ALL_OF, AnyOf: ANY_OF, NoneOf: NOT}
    return tags.get(type(value), COLUMN_TEST)


# Tag names appear in pydantic's error locations; load.py leaves them out of key paths.
COLUMN_TEST, ALL_OF, ANY_OF, NOT = "<column test>", "<all of>", "<any of>", "<not>"


Condition = Annotated[
    Annotated[ColumnTest, Tag(COLUMN_TEST)]
    | Annotated[AllOf, Tag(ALL_OF)]
    | Annotated[AnyOf, Tag(ANY_OF)]
    | Annotated[NoneOf, Tag(NOT)],
    Discriminator(_condition_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
NoneOf.model_rebuild()


def to_sql(table: Any, condition: Condition | None) -> ColumnElement[bool]:
    """The condition as a SQLAlchemy expression on ``table``; values are bound parameters."""
    if condition is None:
        return true()
    if isinstance(condition, AllOf):
        return and_(*(to_sql(table, c) for c in condition.all))
    if isinstance(condition, AnyOf):
        return or_(*(to_sql(table, c) for c in condition.any))
    if isinstance(condition, NoneOf):
        return is_not_true(to_sql(table, condition.not_))
    column = table.c[condition.column]
    if condition.is_null:
        return column.is_(None)
    if condition.is_not_null:
        return column.is_not(None)
    if condition.in_ is not None:
        return column.in_(condition.in_)
    return column == literal(condition.equals, type_=column.type)


def is_not_true(expression: ColumnElement[bool]) -> ColumnElement[bool]:
    """``NOT expression``, where NULL counts as false (SQL's NOT NULL is NULL, not true)."""
    return not_(func.coalesce(expression, false()))


def columns_of(condition: Condition | None) -> list[str]:
    """Every column a condition reads, for checking against the live table."""
    if condition is None:
        return []
    if isinstance(condition, AllOf):
        return [c for part in condition.all for c in columns_of(part)]
    if isinstance(condition, AnyOf):
        return [c for part in condition.any for c in columns_of(part)]
    if isinstance(condition, NoneOf):
        return columns_of(condition.not_)
    return [condition.column]


def provably_disjoint(a: Condition | None, b: Condition | None) -> bool:
    """True when no row can satisfy both conditions, judged from their conjuncts alone.

    Two scopes are disjoint when some column is pinned by both to non-overlapping value
    sets (``equals``/``in``), or is required NULL by one and a value (or NOT NULL) by the
    other. Anything subtler counts as a possible overlap: the policy must then state a
    precedence. (Any one conjunct of an ``all`` is enough: its rows are a subset.)
    """
    left, right = _pins(a), _pins(b)
    return any(_pins_disjoint(left[column], right[column]) for column in left.keys() & right.keys())


_NULL, _NOT_NULL = "null", "not_null"


def _pins_disjoint(left: Any, right: Any) -> bool:
    if _NULL in (left, right):
        return left != right  # NULL against a value or NOT NULL
    if _NOT_NULL in (left, right):
        return False
    return not (left & right)


def _pins(condition: Condition | None) -> dict[str, Any]:
    """Column -> the values it must take (a frozenset of reprs), ``"null"`` or ``"not_null"``."""
    if isinstance(condition, AllOf):
        pins: dict[str, Any] = {}
        for part in condition.all:
            pins.update(_pins(part))
        return pins
    if not isinstance(condition, ColumnTest):
        return {}  # no condition, an ``any`` or a ``not``: pins nothing for sure
    if condition.is_null:
        return {condition.column: _NULL}
    if condition.is_not_null:
        return {condition.column: _NOT_NULL}
    values = condition.in_ if condition.in_ is not None else [condition.equals]
    return {condition.column: frozenset(repr(v) for v in values)}

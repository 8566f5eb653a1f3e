"""The retention policy: the charter's schedule as validated, frozen data.

Each class is one block of the YAML file, and each field one key: its type and bounds are
checked here, one key at a time (``validate`` checks the rules between keys, ``load`` reads
the file). Every field's description is the reference for its key:
``python -m include.retention.policy.reference`` writes them to ``docs/reference/policy.md``.

The engine knows nothing about any particular schema: everything it touches is named
here. Tables are a tree (``children``) so that child rows move and die with their parent.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from include.retention.dates.clock import Zones
from include.retention.dates.periods import Period
from include.retention.errors import PolicyError, Problem
from include.retention.policy.conditions import Condition

IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]

_CRON_FIELD = r"[0-9A-Za-z*/,\-?LW#]+"
# ASCII: a no-break or em space, or a trailing newline, passes Python's ``\s`` and ``$`` but
# not the cron parser of the scheduler, which would then fail on every DAG file parse.
_CRON = re.compile(rf"[ \t]*{_CRON_FIELD}([ \t]+{_CRON_FIELD}){{4}}[ \t]*", re.ASCII)

# The longest period a policy may state, for each of active_period and archive_period. The
# charter's longest is ten years (billing records), and legal retention obligations run to
# thirty at most; a hundred years is above any of them, and keeps every date the engine
# computes (a start plus both periods, today minus a period) well inside the calendar that
# Python and the databases can represent: P99999Y used to load, then fail every run with
# "year -97973 is out of range".
MAX_PERIOD = Period(years=100)


def _as_list(value: Any) -> Any:
    """Let a single column be written as a plain string: ``primary_key: id``."""
    return [value] if isinstance(value, str) else value


def _parse_period(value: Any) -> Any:
    return Period.parse(value) if isinstance(value, str) else value


def _within_max_period(period: Period) -> Period:
    """Refuse a period longer than ``MAX_PERIOD`` at load time, not at the first run."""
    if period.is_longer_than(MAX_PERIOD):
        raise ValueError(
            f"longer than {MAX_PERIOD} ({MAX_PERIOD.in_words()}), the longest period a policy may "
            "state: no legal retention obligation comes near it, and dates beyond it fall "
            "outside the calendar the engine computes in"
        )
    return period


ColumnList = Annotated[list[Identifier], BeforeValidator(_as_list), Field(min_length=1)]
PeriodField = Annotated[
    Period, BeforeValidator(_parse_period), AfterValidator(_within_max_period), PlainSerializer(str)
]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently disable a rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Label(_Strict):
    fr: str = Field(min_length=1)
    en: str = Field(min_length=1)


class RelationStep(_Strict):
    """One hop from a table to related rows of another table.

    ``foreign_key`` names this step's columns that hold the previous table's key
    (``references``, by default the previous table's primary key). ``where`` is a condition
    on this step's own table: a polymorphic link (``elementtype = 'contrat'`` beside
    ``fk_element``) is one hop plus a filter, so that a row of another type with the same id
    is never taken for a related one.
    """

    table: Identifier
    schema_name: Identifier | None = Field(default=None, alias="schema")
    foreign_key: ColumnList
    references: Annotated[list[Identifier], BeforeValidator(_as_list)] | None = None
    where: Condition | None = None


def _distinct_columns(columns: list[str]) -> list[str]:
    """A repeated column in ``first_non_null`` is a typo for another one, never intended."""
    for i, column in enumerate(columns):
        if column in columns[:i]:
            raise ValueError(f"{column!r} is given twice; list each column once, in order of preference")
    return columns


# At least two columns: one column is ``column``; the first non-NULL of several is the
# per-row expression (a contract line ends on its closing date, else on its planned end).
ExpressionColumns = Annotated[list[Identifier], Field(min_length=2), AfterValidator(_distinct_columns)]


class _RelatedValue(_Strict):
    """A value of each row reached by ``path`` and passing ``where``: one ``column``, or
    ``first_non_null`` of several columns of that row (``COALESCE``), never both."""

    column: Identifier | None = None
    first_non_null: ExpressionColumns | None = None
    # The columns that hold a planned end (a contract line's planned end date): they may lie
    # ahead of today, so the gate checks them only against a far bound; every other column
    # holds an event that happened and must not lie in the future.
    planned: Annotated[list[Identifier], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    path: list[RelationStep] = Field(min_length=1)
    where: Condition | None = None

    @field_validator("planned")
    @classmethod
    def _planned_among_columns(cls, planned: list[str] | None, info: ValidationInfo) -> list[str] | None:
        """A planned column the source does not read is a typo: it would exempt nothing, and
        the column meant would stay checked as an event that happened (or the reverse)."""
        read = [info.data["column"]] if info.data.get("column") else list(info.data.get("first_non_null") or [])
        if planned is None or not read:
            return planned
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "planned_column",
                    "{message}",
                    {"message": f"{name!r} is not one of this source's columns ({', '.join(read)})"},
                ),
                loc=(i,),
                input=name,
            )
            for i, name in enumerate(planned)
            if name not in read
        ]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return planned

    @model_validator(mode="after")
    def _column_or_expression(self) -> _RelatedValue:
        if (self.column is None) == (self.first_non_null is None):
            raise ValueError("give exactly one of column, first_non_null")
        return self

    @property
    def columns(self) -> list[str]:
        """The columns read on the last table of the path, in order of preference."""
        return [self.column] if self.column is not None else list(self.first_non_null or [])

    @property
    def column_key(self) -> str:
        """The policy key that names the columns (for error messages)."""
        return "column" if self.column is not None else "first_non_null"

    def describe_value(self) -> str:
        """``crm_lead.date_closed``, or ``contract_lines.(date_cloture, else date_fin_validite)``."""
        table = self.path[-1].table
        if self.column is not None:
            return f"{table}.{self.column}"
        return f"{table}.({', else '.join(self.columns)})"


class Aggregate(_RelatedValue):
    """The latest or earliest value over rows reached by ``path``, filtered by ``where``."""


class ClockSource(_Strict):
    """One candidate start date: a column of the row, or an aggregate over related rows."""

    column: Identifier | None = None
    latest: Aggregate | None = None
    earliest: Aggregate | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ClockSource:
        given = [k for k in ("column", "latest", "earliest") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, latest, earliest")
        return self


class OpenRelated(_RelatedValue):
    """Related rows whose value (an end date, or the first non-NULL of several) is empty
    keep the row ongoing."""


class StartEvent(_Strict):
    """Where a row's retention clock starts, and what a missing value means.

    The start is one ``column`` of the row, the ``latest`` / ``earliest`` value over
    related rows (of one column, or of ``first_non_null`` of several columns of each related
    row), or ``first_of`` an ordered list of those (the first that is not empty wins).
    ``ongoing_if_open`` keeps the row active while a related row is still open (its column,
    or each column of its expression, is empty).

    ``when_missing: ongoing`` - the event has not happened yet (a contract still
    running, a request still open): the row stays active.
    ``when_missing: defect`` - the event always exists, so a missing value is a data
    defect: the row cannot be aged, stays where it is, and is reported.
    """

    column: Identifier | None = None
    latest: Aggregate | None = None
    earliest: Aggregate | None = None
    first_of: list[ClockSource] | None = Field(default=None, min_length=1)
    when_missing: Literal["ongoing", "defect"]
    ongoing_if_open: OpenRelated | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StartEvent:
        given = [k for k in ("column", "latest", "earliest", "first_of") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, latest, earliest, first_of")
        return self

    @property
    def sources(self) -> list[ClockSource]:
        """The candidates in order (one, unless ``first_of``)."""
        if self.first_of is not None:
            return list(self.first_of)
        return [ClockSource(column=self.column, latest=self.latest, earliest=self.earliest)]

    def describe(self) -> str:
        """``last_inbound_contact_at``, or ``latest crm_lead.date_closed``... for docs."""
        return " else ".join(_describe_source(s) for s in self.sources)


def _describe_source(source: ClockSource) -> str:
    """``column``, ``latest table.column`` or ``earliest table.column`` (exactly one is given)."""
    if source.latest is not None:
        return f"latest {source.latest.describe_value()}"
    if source.earliest is not None:
        return f"earliest {source.earliest.describe_value()}"
    return str(source.column)


class PrefixRule(_Strict):
    """Keep the first ``prefix`` characters (a postcode's département: ``75``)."""

    prefix: int = Field(ge=1)


class RoundRule(_Strict):
    """Round a number down to a multiple of ``round`` (an amount to the nearest 100)."""

    round: float = Field(gt=0)


AnonymizeRule = Literal["null", "keep", "year", "month"] | PrefixRule | RoundRule


class TableBase(_Strict):
    table: Identifier
    schema_name: Identifier | None = Field(default=None, alias="schema")
    archive_table: Identifier | None = None
    primary_key: ColumnList
    archive_columns: Annotated[list[Identifier], BeforeValidator(_as_list)] = []
    subject_identifiers: dict[Identifier, ColumnList] = {}
    # The columns the person gave us (a form's fields): what a portability export holds.
    provided_columns: Annotated[list[Identifier], BeforeValidator(_as_list)] = []
    anonymize: dict[Identifier, AnonymizeRule] = {}
    children: list[ChildTable] = []

    def walk(self) -> list[TableBase]:
        """This table and all its descendants, parents before children."""
        return [self] + [t for child in self.children for t in child.walk()]

    @property
    def archive_name(self) -> str:
        """The archive table's name: ``archive_table``, else the table's own name."""
        return self.archive_table or self.table


class ChildTable(TableBase):
    """A table whose rows belong to a parent row and share its fate.

    ``foreign_key`` lists this table's columns that hold the parent's primary key, in
    the same order. Foreign keys are not discovered from the database on purpose: the
    policy states the tree, and ``catalog`` checks that no undeclared foreign key points
    at a table the engine deletes from.
    """

    foreign_key: ColumnList


class ArchivedWith(_Strict):
    """The parent row whose archiving carries this row to the archive.

    A customer's invoices belong to billing, with billing's clock, but they cannot stay
    in the active base once the customer has left it: they are moved in the same
    transaction as the customer, and the customer is not destroyed while they are kept.
    ``foreign_key`` lists this table's columns holding the parent's primary key.

    ``leaves_active`` says when the row leaves the active base. ``with_parent`` (the
    default): with its parent row, in the parent's batch. ``on_parent_event``: as soon as
    its parent row's start event (the end of the relationship, in the parent category that
    governs that row) plus this row's own active period has passed - the purpose "manage
    the customer" is over, even though the customer itself stays active for years. Its end
    of life stays its own either way (its start + active + archive periods).
    """

    table: Identifier
    foreign_key: ColumnList
    leaves_active: Literal["with_parent", "on_parent_event"] = "with_parent"

    @property
    def on_parent_event(self) -> bool:
        return self.leaves_active == "on_parent_event"


class TablePolicy(TableBase):
    """A table whose rows carry their own retention clock.

    ``scope`` selects which of its rows the category governs, when one table holds
    several kinds of people (prospects, customers and suppliers in one partner table).
    ``archived_with`` makes it a retained dependant of a table of another category.
    ``partitioned``: the table is range-partitioned on its start-event column (PostgreSQL
    declarative partitioning); whole partitions past their horizon then move or are
    dropped at once (``partitions.py``), the others go by batches.
    """

    start_event: StartEvent
    scope: Condition | None = None
    archived_with: ArchivedWith | None = None
    partitioned: bool = False


class DeletionLimit(_Strict):
    """The most rows one run may remove from the active base, or from the archive, per table,
    without a person approving it first (``limits.py``): as a number, and as a fraction of
    what the table holds. A wrong clock or a period shortened by mistake shows up as a run
    far over its usual volume; it then waits for approval instead of destroying data."""

    rows: int | None = Field(default=None, ge=0)
    fraction: float | None = Field(default=None, gt=0, le=1)


class Category(_Strict):
    """One row of the charter's schedule."""

    key: str = ""
    label: Label
    # The charter's words for the start event ("the last contact initiated by the
    # person"), shown next to the policy's columns in the DPO report.
    counted_from: Label | None = None
    legal_basis: str = Field(min_length=1)
    archive_purpose: str | None = None
    schedule: str
    active_period: PeriodField
    archive_period: PeriodField | None = None
    end_action: Literal["delete", "anonymize"]
    # What a data subject's erasure request does to this category's rows: ``delete`` them,
    # or ``keep`` them because a legal obligation requires it (accounting records, evidence
    # that a request was handled); the answer to the person then names ``legal_basis``.
    on_erasure: Literal["delete", "keep"] = "delete"
    # Requests other than erasure that delete this category's rows at once, whatever their
    # age: ``consent_withdrawal`` (tracking that exists only by consent), ``opposition``
    # (prospection; the person is also put on the suppression list).
    deleted_on: list[Literal["consent_withdrawal", "opposition"]] = []
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000)
    deletion_limit: DeletionLimit | None = None  # this category's own limit (else the policy's)
    tables: list[TablePolicy] = Field(min_length=1)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not _CRON.fullmatch(value):
            raise ValueError("must be a 5-field cron expression such as '30 2 * * *'")
        return value

    @property
    def has_archive(self) -> bool:
        return self.archive_period is not None and not self.archive_period.is_zero

    @property
    def archive_or_zero(self) -> Period:
        return self.archive_period or Period()


class RetentionPolicy(_Strict):
    """The whole schedule. ``version`` is stamped on every archived row and audit event."""

    version: str = Field(min_length=1)
    timezone: str = "Europe/Paris"
    naive_timezone: str | None = None
    source_schema: Identifier = "public"
    archive_schema: Identifier = "archive"
    audit_table: Identifier = "retention_audit"
    batch_size: int = Field(default=5_000, ge=1, le=1_000_000)
    # Batches run side by side on PostgreSQL (each its own transaction on its own
    # connection): a single statement uses one core, the server has more.
    batch_workers: int = Field(default=2, ge=1, le=8)
    # Above this, a run pauses for a person's approval (``limits.py``); the default stops a
    # run that would empty a fifth of a table, or move 100,000 rows, at once.
    deletion_limit: DeletionLimit = DeletionLimit(rows=100_000, fraction=0.2)
    # How long a run waits for that approval before it fails, changing nothing.
    approval_timeout_hours: int = Field(default=24, ge=1, le=24 * 14)
    precedence: list[Identifier] = []
    # The project's register of data-subject requests (``store.register_table``): a root
    # table of one of the categories, which then governs its retention.
    rights_register: Identifier | None = None
    categories: dict[Identifier, Category] = Field(min_length=1)
    source: str = Field(default="<memory>", exclude=True)

    @field_validator("timezone", "naive_timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone; the charter's is 'Europe/Paris'") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def zones(self) -> Zones:
        """Days are counted in ``timezone``; naive timestamps are read in ``naive_timezone``."""
        return Zones(self.zone, ZoneInfo(self.naive_timezone or self.timezone))

    def category(self, key: str) -> Category:
        try:
            return self.categories[key]
        except KeyError:
            known = ", ".join(sorted(self.categories))
            problem = Problem("categories", f"no category {key!r}; known: {known}")
            raise PolicyError(self.source, [problem]) from None

    def register_category(self) -> Category | None:
        """The category that governs the rights-request register (None without a register)."""
        return next((c for c in self.categories.values() for t in c.tables if t.table == self.rights_register), None)

    def batch_size_for(self, category: Category) -> int:
        return category.batch_size or self.batch_size

    def deletion_limit_for(self, category: Category) -> DeletionLimit:
        return category.deletion_limit or self.deletion_limit


def category_precedence(policy: RetentionPolicy, key: str) -> list[str]:
    """Categories that win over ``key`` on rows both would match."""
    if key not in policy.precedence:
        return []
    return policy.precedence[: policy.precedence.index(key)]


for _model in (TableBase, ChildTable, TablePolicy):
    _model.model_rebuild()

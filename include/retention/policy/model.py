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
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails, PydanticCustomError

from include.retention.dates.clock import Zones
from include.retention.dates.periods import Period
from include.retention.errors import PolicyError, Problem
from include.retention.policy.conditions import Condition, StrictModel
from include.retention.settings import MAX_BATCH_SIZE, MIN_BATCH_SIZE

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


class Label(StrictModel):
    """A text of the charter in both of its languages: ``{fr: ..., en: ...}``."""

    fr: str = Field(min_length=1, description="The text in French, as the charter words it.")
    en: str = Field(min_length=1, description="The same text in English.")


class RelationStep(StrictModel):
    """One hop from a table to related rows of another table.

    ``foreign_key`` names this step's columns that hold the previous table's key
    (``references``, by default the previous table's primary key). ``where`` is a condition
    on this step's own table: a polymorphic link (``elementtype = 'contrat'`` beside
    ``fk_element``) is one hop plus a filter, so that a row of another type with the same id
    is never taken for a related one.
    """

    table: Identifier = Field(description="The table this hop reaches.")
    schema_name: Identifier | None = Field(
        default=None,
        alias="schema",
        description="PostgreSQL schema of `table`. Default: the schema its own `tables[]` entry declares, else "
        "`source_schema`.",
    )
    foreign_key: ColumnList = Field(
        description="This step's column, or list of columns, holding the previous table's key (`references`)."
    )
    references: Annotated[list[Identifier], BeforeValidator(_as_list)] | None = Field(
        default=None,
        description="The previous table's column(s) that `foreign_key` holds, in the same order: the far side of a "
        "many-to-many link table (`{table: accounts, foreign_key: account_id, references: account_id}`). "
        "Default: the previous table's primary key.",
    )
    where: Condition | None = Field(
        default=None,
        description="A condition on this step's own table: only its rows that pass are followed (only signed "
        "contracts; the `elementtype` beside a polymorphic `fk_element`). Default: every row.",
    )


def _distinct_columns(columns: list[str]) -> list[str]:
    """A repeated column in ``first_non_null`` is a typo for another one, never intended."""
    for i, column in enumerate(columns):
        if column in columns[:i]:
            raise ValueError(f"{column!r} is given twice; list each column once, in order of preference")
    return columns


# At least two columns: one column is ``column``; the first non-NULL of several is the
# per-row expression (a contract line ends on its closing date, else on its planned end).
ExpressionColumns = Annotated[list[Identifier], Field(min_length=2), AfterValidator(_distinct_columns)]


class _RelatedValue(StrictModel):
    """A value of each row reached by ``path`` and passing ``where``: one ``column``, or
    ``first_non_null`` of several columns of that row (``COALESCE``), never both."""

    column: Identifier | None = Field(
        default=None,
        description="A date or timestamp column of the last table of `path`. Give this or `first_non_null`.",
    )
    first_non_null: ExpressionColumns | None = Field(
        default=None,
        description="At least two distinct date columns of the last table of `path`, in order of preference: each "
        "row's value is the first that is not empty (a contract line ends on its closing date when it was closed, "
        "else on its planned end). All must hold the same kind of date. Give this or `column`.",
    )
    # The columns that hold a planned end (a contract line's planned end date): they may lie
    # ahead of today, so the gate checks them only against a far bound; every other column
    # holds an event that happened and must not lie in the future.
    planned: Annotated[list[Identifier], BeforeValidator(_as_list), Field(min_length=1)] | None = Field(
        default=None,
        description="The column(s), among `column` or `first_non_null`, that hold a planned end and may lie ahead of "
        "today (up to a hundred years; a contract line running until 2028). Every other column is an event that "
        "happened: a value more than a day ahead stops the run. Default: none.",
    )
    path: list[RelationStep] = Field(
        min_length=1,
        description="Foreign-key hops from this table to the related rows, to any depth; the value is read on the "
        "last table.",
    )
    where: Condition | None = Field(
        default=None,
        description="A condition on the last table of `path`: only its rows that pass count (only contacts that "
        "came from the person). Default: every related row.",
    )

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


class ClockSource(StrictModel):
    """One candidate start date: a column of the row, or an aggregate over related rows."""

    column: Identifier | None = Field(default=None, description="A date or timestamp column of the row itself.")
    latest: Aggregate | None = Field(default=None, description="The latest value over related rows.")
    earliest: Aggregate | None = Field(default=None, description="The earliest value over related rows.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ClockSource:
        given = [k for k in ("column", "latest", "earliest") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of column, latest, earliest")
        return self


class OpenRelated(_RelatedValue):
    """Related rows whose value (an end date, or the first non-NULL of several) is empty
    keep the row ongoing."""


class StartEvent(StrictModel):
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

    column: Identifier | None = Field(
        default=None, description="A date or timestamp column of the row itself (`last_inbound_contact_at`)."
    )
    latest: Aggregate | None = Field(
        default=None, description="The latest value over related rows (the last inbound contact, the last line end)."
    )
    earliest: Aggregate | None = Field(default=None, description="The earliest value over related rows.")
    first_of: list[ClockSource] | None = Field(
        default=None,
        min_length=1,
        description="Ordered fallbacks, each a `column`, `latest` or `earliest`: the first that is not empty wins. "
        "All must hold the same kind of date.",
    )
    when_missing: Literal["ongoing", "defect"] = Field(
        description="What an empty start means. `ongoing`: the event has not happened yet (a contract still running, "
        "a request still open), the row stays active. `defect`: the event always exists, so the row cannot be "
        "aged; it stays where it is and every run reports it."
    )
    ongoing_if_open: OpenRelated | None = Field(
        default=None,
        description="Related rows that keep the row active while one of them is open (its value is empty: a "
        "contract line with no end date). Default: nothing keeps the row open.",
    )

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


class PrefixRule(StrictModel):
    """Keep the first ``prefix`` characters (a postcode's département: ``75``)."""

    prefix: int = Field(ge=1, description="How many leading characters to keep (at least 1).")


class RoundRule(StrictModel):
    """Round a number down to a multiple of ``round`` (an amount to the nearest 100)."""

    round: float = Field(
        gt=0, description="The multiple to round towards zero to (above 0): `100` turns 1,234.5 into 1,200."
    )


AnonymizeRule = Literal["null", "keep", "year", "month"] | PrefixRule | RoundRule


class TableBase(StrictModel):
    """The keys a table (``tables[]``) and a child table (``children[]``) share."""

    table: Identifier = Field(
        description="Table name. One policy governs one table of a name: the same name in two schemas is refused."
    )
    schema_name: Identifier | None = Field(
        default=None,
        alias="schema",
        description="PostgreSQL schema of the table. Default: `source_schema`.",
    )
    archive_table: Identifier | None = Field(
        default=None,
        description="Name of its archive table, in `archive_schema`. Default: the table's own name. Required, and "
        "distinct, when one table serves several categories.",
    )
    primary_key: ColumnList = Field(description="Column, or list of columns. Batches walk it in order.")
    archive_columns: Annotated[list[Identifier], BeforeValidator(_as_list)] = Field(
        default=[],
        description="Columns kept in the archive (minimisation). The primary key, the foreign key and every column "
        "of `subject_identifiers` are always kept; everything else is dropped when the row is archived. Default: "
        "keys and identifiers only.",
    )
    subject_identifiers: dict[Identifier, ColumnList] = Field(
        default={},
        description="`{kind: [columns]}` (`email`, `phone`, `customer_number`, `visitor_id`...): how a person is "
        'found in this table by rights requests, legal holds and the "was X erased?" lookup. Default: none.',
    )
    # The columns the person gave us (a form's fields): what a portability export holds.
    provided_columns: Annotated[list[Identifier], BeforeValidator(_as_list)] = Field(
        default=[],
        description="Columns the person gave us (a form's fields): what a portability export holds. Default: none.",
    )
    anonymize: dict[Identifier, AnonymizeRule] = Field(
        default={},
        description="`{column: rule}`, only when the category's `end_action` is `anonymize`, and then one rule for "
        "every archived column that is not a key. Rules (irreversible): `null` (remove), `keep` (a column judged "
        "non-identifying; refused on a subject identifier), `year` / `month` (a date or timestamp truncated to the "
        "first day of its year or month, in `timezone`), `{prefix: N}`, `{round: R}`.",
    )
    children: list[ChildTable] = Field(
        default=[],
        description="Child tables, archived and destroyed together with their parent row, to any depth. A table is "
        "never its own child, at any depth. Default: none.",
    )

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
    policy states the tree (a link may be declared here alone when the database has none),
    and the live check refuses an undeclared foreign key that points at a table the engine
    deletes from.
    """

    foreign_key: ColumnList = Field(
        description="This table's column(s) holding the parent's primary key, in the same order."
    )


class ArchivedWith(StrictModel):
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

    table: Identifier = Field(
        description="The parent: a root table (`tables[]`) of another category, which has an archive."
    )
    foreign_key: ColumnList = Field(
        description="This table's column(s) holding the parent's primary key, outside this table's own primary key "
        "when its category anonymises (anonymising sets the link to NULL)."
    )
    leaves_active: Literal["with_parent", "on_parent_event"] = Field(
        default="with_parent",
        description="When the row leaves the active base. `with_parent`: with its parent row, in the parent's batch. "
        "`on_parent_event`: once its parent row's start event plus this row's own `active_period` has passed.",
    )

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
    dropped at once, the others go by batches.
    """

    start_event: StartEvent = Field(description="Where the clock starts and what an empty start means.")
    scope: Condition | None = Field(
        default=None,
        description="A condition selecting the rows this category governs, when one table serves several "
        "categories. Default: every row.",
    )
    archived_with: ArchivedWith | None = Field(
        default=None,
        description="Makes the table a retained dependant of another category's table: it leaves the active base "
        "with its parent row (or at its parent's event), and its parent is kept while it is. Default: none.",
    )
    partitioned: bool = Field(
        default=False,
        description="`true`: the table is range-partitioned on its start-event column (PostgreSQL); whole "
        "partitions past the horizon move or are dropped at once, the others go by batches.",
    )


class DeletionLimit(StrictModel):
    """The most rows one run may remove from the active base, or from the archive, per table,
    without a person approving it first: as a number, and as a fraction of what that side of
    the table holds. A wrong clock or a period shortened by mistake shows up as a run far over
    its usual volume; it then waits for approval instead of destroying data."""

    rows: int | None = Field(default=None, ge=0, description="A number of rows (0 or more). `null`: no limit by count.")
    fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="A fraction of what that side of the table holds, above 0 and at most 1. `null`: no limit by "
        "fraction.",
    )


RECONSENT_PLACEHOLDERS = ("label", "period_end", "yes_url", "no_url", "expires_on")


class Reconsent(StrictModel):
    """The charter's promise before a prospect's data leaves the active base: the person is asked,
    ``notice_days`` before the end of the active period, whether they still want commercial
    messages. A yes restarts the clock, a no is an opposition, no answer lets the schedule go on.
    The archive step waits for the ask at most ``notice_days`` past the end of the active period."""

    table: Identifier | None = Field(
        default=None,
        description="The root table whose rows are asked (one of the category's `tables`). Default: the category's "
        "only table; required when it has several.",
    )
    address_column: Identifier = Field(
        description="The column holding the e-mail address the notice is written to: one of the table's "
        "`subject_identifiers.email` columns, so that its keyed hash is the one the suppression list and requests use."
    )
    notice_days: int = Field(
        ge=1,
        le=365,
        description="How many days before the end of the active period the person is asked (1 to 365, and shorter "
        "than the active period). The archive waits for the ask at most this many days past the end of the active "
        "period.",
    )
    answer_days: int | None = Field(
        default=None,
        ge=1,
        le=365,
        description="How long an answer is awaited after the notice is sent, in days: the signed links expire then. "
        "At most `notice_days` (a later answer would arrive after the row may have left). Default: `notice_days`.",
    )
    language: Literal["fr", "en"] = Field(
        default="fr", description="The language of the built-in notice: `fr` (default) or `en`."
    )
    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The notice's subject, replacing the built-in one; one line. Placeholders: `{label}`, "
        "`{period_end}`, `{expires_on}` (not the links: they carry the token).",
    )
    body: str | None = Field(
        default=None,
        min_length=1,
        max_length=20000,
        description="The notice's plain-text body, replacing the built-in one; must contain `{yes_url}` and "
        "`{no_url}`. Placeholders: `{label}`, `{period_end}`, `{expires_on}`, `{yes_url}`, `{no_url}`.",
    )
    sender: str = Field(
        min_length=3,
        max_length=200,
        description='Who the notice comes from: one address with a domain, or `Name <address>` ("Service RGPD '
        '<rgpd@example.fr>"), on one line.',
    )
    answer_url: str = Field(
        min_length=8,
        max_length=500,
        description="The company's web page the yes/no links point to: an absolute `https://` address without a "
        "query, fragment or credentials (`http://` only for `localhost` and `127.0.0.1`). It receives `?token=...` and "
        "posts the token to Airflow's REST API (`reconsent_answer`). No endpoint is opened on Airflow itself.",
    )
    connection: Identifier = Field(
        default="smtp_default",
        description="The Airflow SMTP connection the notices are sent through. Default: `smtp_default`.",
    )
    batch_size: int = Field(
        default=100,
        ge=1,
        le=5000,
        description="Notices recorded and sent per batch (1 to 5,000); each batch's asks are committed before any "
        "of them is sent. Default: 100.",
    )

    @property
    def awaited_days(self) -> int:
        """How long the links stay valid: ``answer_days``, by default ``notice_days``."""
        return self.answer_days if self.answer_days is not None else self.notice_days


class Category(StrictModel):
    """One row of the charter's schedule: what the data is kept for, how long in the active base
    and then in the archive, and what happens at the end. Each category is one DAG,
    ``retention_<key>``."""

    key: SkipJsonSchema[str] = Field(
        default="",
        description="Set by the loader to the category's key in `categories`; not written in the file.",
    )
    label: Label = Field(description="The charter's label of the category.")
    counted_from: Label | None = Field(
        default=None,
        description='The charter\'s words for the start event ("the last contact initiated by the person"), shown '
        "in the DPO report next to the policy's columns. Default: none.",
    )
    legal_basis: str = Field(
        min_length=1, description="Legal basis of the processing, named in the answer to an erasure request it keeps."
    )
    archive_purpose: str | None = Field(
        default=None,
        description="Why the archive is kept (probative, accounting...). Required when there is an archive period.",
    )
    schedule: str = Field(
        description="When the category's DAG runs: a 5-field cron expression (`30 2 * * *`), in `timezone`; fields "
        "separated by ASCII spaces or tabs."
    )
    active_period: PeriodField = Field(
        description="ISO-8601 period (`P3Y`, `P13M`, `P30D`; at most `P100Y`) counted from the start event, during "
        'which rows stay in the active base. `P0D` means "as long as the contract or request lasts": allowed only '
        "when every table counts from an end event (`when_missing: ongoing`) or waits for the row it is "
        "`archived_with`."
    )
    archive_period: PeriodField | None = Field(
        default=None,
        description="ISO-8601 period (at most `P100Y`) that follows the active period, during which rows are kept "
        "in the archive schema. Absent or `P0D`: no archive, rows go straight to end of life.",
    )
    end_action: Literal["delete", "anonymize"] = Field(
        description="What end of life does: `delete` the rows, or `anonymize` them in the archive (needs an archive "
        "period, and a rule in `anonymize` for every archived column)."
    )
    on_erasure: Literal["delete", "keep"] = Field(
        default="delete",
        description="What a data subject's erasure request does to this category's rows: `delete` them, or `keep` "
        "them because a legal obligation requires it (accounting records, evidence that a request was handled); the "
        "answer to the person then names `legal_basis`.",
    )
    deleted_on: list[Literal["consent_withdrawal", "opposition"]] = Field(
        default=[],
        description="Requests other than erasure that delete this category's rows at once, whatever their age: "
        "`consent_withdrawal` (tracking that exists only by consent), `opposition` (prospection; the person is also "
        "put on the suppression list). Default: none.",
    )
    batch_size: int | None = Field(
        default=None,
        ge=MIN_BATCH_SIZE,
        le=MAX_BATCH_SIZE,
        description="Parent rows per transaction for this category (1 to 1,000,000). Default: the top-level "
        "`batch_size`.",
    )
    deletion_limit: DeletionLimit | None = Field(
        default=None, description="This category's own deletion limit. Default: the top-level `deletion_limit`."
    )
    tables: list[TablePolicy] = Field(
        min_length=1, description="The tables whose rows carry this category's clock (at least one)."
    )
    reconsent: Reconsent | None = Field(
        default=None,
        description="Ask the person before the active period ends (see `Reconsent`). Default: nobody is asked.",
    )

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

    @property
    def asked_table(self) -> str | None:
        """The root table whose rows are asked before their active period ends (``reconsent``);
        None when nobody is asked."""
        if self.reconsent is None:
            return None
        return self.reconsent.table or self.tables[0].table


class RetentionPolicy(StrictModel):
    """The whole schedule: where the governed tables and the archive are, how runs behave, and
    one category per row of the charter's schedule. ``version`` is stamped on every archived row
    and audit event."""

    version: str = Field(
        min_length=1,
        description="A string you bump on every change; stamped on each archived row and audit event.",
    )
    timezone: str = Field(
        default="Europe/Paris", description="IANA time zone in which days are counted, and the schedules run."
    )
    language: Literal["fr", "en"] = Field(
        default="fr",
        description="The language of what a person reads: run certificates, the DPO report, the Retention view, "
        "the trigger forms and the e-mails (`fr`, default, or `en`; a page or report may still be asked in the "
        "other). Dates are written as a reader of that language writes them, times in `timezone`.",
    )
    naive_timezone: str | None = Field(
        default=None,
        description="IANA zone that naive timestamps are stored in (`UTC` for Odoo, Django...). PostgreSQL only: "
        "SQLite cannot convert zones, so it is refused there. Default: `timezone`.",
    )
    source_schema: Identifier = Field(
        default="public",
        description="PostgreSQL schema of the active tables (SQLite: ignored, tables are in the main database).",
    )
    archive_schema: Identifier = Field(
        default="archive",
        description="PostgreSQL schema of the archive; on SQLite, the name of the attached archive database.",
    )
    audit_table: Identifier = Field(
        default="retention_audit", description="Name of the audit table, in the archive schema."
    )
    batch_size: int = Field(
        default=5_000,
        ge=MIN_BATCH_SIZE,
        le=MAX_BATCH_SIZE,
        description="Parent rows per transaction (1 to 1,000,000; their children move with them), unless a category "
        "or the run's Param says otherwise.",
    )
    # Batches run side by side on PostgreSQL (each its own transaction on its own
    # connection): a single statement uses one core, the server has more.
    batch_workers: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Batches run side by side on PostgreSQL, each its own transaction on its own connection (1 to "
        "8; SQLite always runs one at a time).",
    )
    # Above this, a run pauses for a person's approval (``limits.py``); the default stops a
    # run that would empty a fifth of a table, or move 100,000 rows, at once.
    deletion_limit: DeletionLimit = Field(
        default=DeletionLimit(rows=100_000, fraction=0.2),
        description="The most rows one run may remove from the active base, or from the archive, per table, "
        "without a person's approval.",
    )
    approval_timeout_hours: int = Field(
        default=24,
        ge=1,
        le=24 * 14,
        description="Hours a run past its deletion limit waits for approval before it fails, changing nothing (1 to "
        "336).",
    )
    precedence: list[Identifier] = Field(
        default=[],
        description="Ordered category keys: where the scopes of two categories on one table overlap, the earlier "
        "wins. Default: none (scopes must then be provably exclusive).",
    )
    # The project's register of data-subject requests (``store.register_table``): a root
    # table of one of the categories, which then governs its retention.
    rights_register: Identifier | None = Field(
        default=None,
        description="The table that records data-subject requests: a root table of the category that governs "
        "them, created with the project's layout if missing. Required for the `subject_request` DAG. Default: none.",
    )
    categories: dict[Identifier, Category] = Field(
        min_length=1,
        description="Category key (an identifier; its DAG is `retention_<key>`) to category: one row of the "
        "charter's schedule each (at least one).",
    )
    source: SkipJsonSchema[str] = Field(
        default="<memory>",
        exclude=True,
        description="Set by the loader to the file the policy was read from, for error messages; not written in "
        "the file.",
    )

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

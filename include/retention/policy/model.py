"""The retention policy: the charter's schedule as validated, frozen data.

A policy is a YAML file (``include/policy/retention_policy.yaml``, or the file named by
the ``RETENTION_POLICY`` environment variable). Loading it checks types, unknown keys,
periods, identifiers and the rules that tie keys together, and reports *every* mistake
with the file, the key path and the bad value. ``catalog.check_against_database`` then
checks that the schemas, tables and columns it names exist.

The engine knows nothing about any particular schema: everything it touches is named
here. Tables are a tree (``children``) so that child rows move and die with their parent.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
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
from include.retention.policy.conditions import ALL_OF, ANY_OF, COLUMN_TEST, NOT, Condition, provably_disjoint

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policy" / "retention_policy.yaml"
POLICY_ENV_VAR = "RETENTION_POLICY"

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
    if source.column:
        return source.column
    kind, agg = ("latest", source.latest) if source.latest else ("earliest", source.earliest)
    return f"{kind} {agg.describe_value()}"  # type: ignore[union-attr]


class PrefixRule(_Strict):
    """Keep the first ``prefix`` characters (a postcode's département: ``75``)."""

    prefix: int = Field(ge=1)


class RoundRule(_Strict):
    """Round a number down to a multiple of ``round`` (an amount to the nearest 100)."""

    round: float = Field(gt=0)


AnonymizeRule = Union[Literal["null", "keep", "year", "month"], PrefixRule, RoundRule]


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
    # The project's register of data-subject requests (``requests.register_table``): a root
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


def load_policy(path: str | os.PathLike[str] | None = None) -> RetentionPolicy:
    """Load and validate a policy: ``path``, else ``$RETENTION_POLICY``, else the default."""
    chosen = Path(path or os.environ.get(POLICY_ENV_VAR) or DEFAULT_POLICY_PATH)
    return parse_policy(read_policy_yaml(chosen), source=str(chosen))


# A policy is a few kilobytes (the shipped one: 8 KB, about 500 YAML nodes). The bounds are
# generous for any real schedule and stop a hostile or broken file long before it costs
# seconds or memory: a "billion laughs" of a few hundred bytes expands to 10**12 nodes.
MAX_POLICY_BYTES = 1_000_000
MAX_POLICY_NODES = 50_000


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2's core schema, decimal only (its 0x and 0o forms are left out too): an optional
# sign, ASCII digits, and for a float a point and/or an exponent. YAML 1.1, which PyYAML
# follows, also reads 1:20 as 80 (base 60), 0x10 as 16, 010 as 8 and 1_000 as 1000.
_DECIMAL_INT = re.compile(r"[-+]?[0-9]+", re.ASCII)
_DECIMAL_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_MAX_NUMBER_DIGITS = 30  # int() refuses 4,300 digits with a message about Python, not the policy


class _PolicyLoader(yaml.SafeLoader):
    """Safe YAML whose plain numbers are YAML 1.2 decimal numbers; any other scalar that YAML
    1.1 took for a number is a string, refused where the policy reads a number."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _decimal_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode, pattern: re.Pattern[str], kind: str) -> str:
    """The scalar's text if it is a decimal number; an explicit ``!!int 0x10`` is refused too."""
    text = loader.construct_scalar(node)
    if not pattern.fullmatch(text) or len(text) > _MAX_NUMBER_DIGITS:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"{text!r} is not a plain decimal {kind} of at most {_MAX_NUMBER_DIGITS} characters "
            "(this file is read as YAML 1.2: no 0x, 0o, 1:20 or 1_000 forms)",
            node.start_mark,
        )
    return text


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(_decimal_scalar(loader, node, _DECIMAL_INT, "integer"))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = float(_decimal_scalar(loader, node, _DECIMAL_FLOAT, "number"))
    if math.isinf(value):  # 1e999: no key of a policy reads an infinite number
        raise yaml.constructor.ConstructorError(None, None, "a number too large to be a policy value", node.start_mark)
    return value


_PolicyLoader.add_implicit_resolver(_INT_TAG, re.compile(rf"{_DECIMAL_INT.pattern}\Z", re.ASCII), list("-+0123456789"))
_PolicyLoader.add_implicit_resolver(
    _FLOAT_TAG, re.compile(rf"{_DECIMAL_FLOAT.pattern}\Z", re.ASCII), list("-+.0123456789")
)
_PolicyLoader.add_constructor(_INT_TAG, _construct_int)
_PolicyLoader.add_constructor(_FLOAT_TAG, _construct_float)


def read_policy_yaml(path: Path) -> Any:
    """The YAML data of a policy file, read safely: a bounded size, no duplicate key at any
    level, no merge key, numbers as YAML 1.2 reads them, aliases allowed only while their
    expansion stays small. Raises ``PolicyError`` naming the file (and the key path and
    lines, for duplicate and merge keys; the line, for a malformed number)."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(source, [Problem("", f"cannot read the file: {exc.strerror}")]) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(
            source,
            [Problem("", f"the file is larger than {MAX_POLICY_BYTES} bytes; a retention policy is a few kilobytes")],
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            source, [Problem("", f"not UTF-8 text (byte {exc.start} cannot be decoded); save the file as UTF-8")]
        ) from None
    loader = _PolicyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, {}, set())
        key_problems = _key_problems(loader, node, "", set())
        if key_problems:
            raise PolicyError(source, key_problems)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [Problem("", f"not valid YAML: {exc}")]) from None
    except _TooLarge as exc:
        raise PolicyError(source, [Problem("", str(exc))]) from None
    except RecursionError:
        raise PolicyError(source, [Problem("", "the YAML is nested too deeply to be a retention policy")]) from None
    finally:
        loader.dispose()


class _TooLarge(Exception):
    """The composed YAML would expand past ``MAX_POLICY_NODES``, or an alias refers to itself."""


def _check_expansion(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (each node is sized
    once, so this is linear in the file even when the expansion is exponential)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        mark = node.start_mark
        raise _TooLarge(f"an alias refers to itself (the node at line {mark.line + 1}): a policy is a tree")
    open_nodes.add(id(node))
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    size = 1 + sum(_check_expansion(child, sizes, open_nodes) for child in children)
    open_nodes.discard(id(node))
    if size > MAX_POLICY_NODES:
        raise _TooLarge(
            f"the YAML node at line {node.start_mark.line + 1} expands to more than "
            f"{MAX_POLICY_NODES} nodes once its aliases (*name) are expanded; a retention policy "
            "is a few hundred - refusing what looks like an alias bomb"
        )
    sizes[id(node)] = size
    return size


def _key_problems(loader: yaml.SafeLoader, node: yaml.Node, path: str, seen: set[int]) -> list[Problem]:
    """Every key given twice in one mapping, and every merge key (``<<``), at any depth.

    YAML loaders keep the last of two equal keys silently: a second ``active_period: P1D``
    would shorten a retention without a word. A merge key lets one value win over another
    just as silently (the later of two ``<<``, the first mapping of a ``<<`` list, an
    explicit key over a merged one), and a policy has no need of it: anchors and aliases
    (``*name``) still share whole values.
    """
    if id(node) in seen:
        return []  # an aliased node: checked where its anchor is
    seen.add(id(node))
    problems: list[Problem] = []
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _key_problems(loader, item, f"{path}[{index}]", seen)
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                problems.append(
                    Problem(
                        f"{path}.<<" if path else "<<",
                        f"merge keys (<<) are not allowed (line {key_node.start_mark.line + 1}): "
                        "YAML lets one merged value silently win over another; write each key "
                        "out, or share a whole value with an alias (*name)",
                    )
                )
                continue
            key = (
                loader.construct_object(key_node, deep=True)
                if isinstance(key_node, yaml.ScalarNode)
                else key_node.start_mark.line
            )
            key_path = f"{path}.{key}" if path else str(key)
            line = key_node.start_mark.line + 1
            if key in first_line:
                problems.append(
                    Problem(
                        key_path,
                        f"duplicate key: first at line {first_line[key]}, again at line {line}; give each key once",
                    )
                )
            else:
                first_line[key] = line
            problems += _key_problems(loader, value_node, key_path, seen)
    return problems


def parse_policy(data: Any, source: str = "<memory>") -> RetentionPolicy:
    """Validate already-parsed YAML. Raises ``PolicyError`` listing every problem."""
    if not isinstance(data, dict):
        problem = Problem("", "the file must hold a mapping with version and categories", type(data).__name__)
        raise PolicyError(source, [problem])
    try:
        # Strict: YAML reads yes/no/on/off as booleans, and a lax model would take them for 1
        # and 0 (``fraction: yes`` a limit of 100 %); a quoted "5000" is not a number either.
        policy = RetentionPolicy.model_validate({**data, "source": source}, strict=True)
    except ValidationError as exc:
        raise PolicyError(source, [_problem_from_pydantic(err) for err in exc.errors()]) from None
    policy = policy.model_copy(
        update={"categories": {k: c.model_copy(update={"key": k}) for k, c in policy.categories.items()}}
    )
    problems = _consistency_problems(policy)
    if problems:
        raise PolicyError(source, problems)
    return policy


_UNION_BRANCHES = {
    "literal['null', 'keep', 'year', 'month']",
    "PrefixRule",
    "RoundRule",
    COLUMN_TEST,
    ALL_OF,
    ANY_OF,
    NOT,
    "function-after[_exactly_one_test(), ColumnTest]",
}


def _problem_from_pydantic(err: dict[str, Any]) -> Problem:
    path = ""
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _UNION_BRANCHES:
            continue  # union branch names: noise for a YAML author
        else:
            path += f".{part}" if path else str(part)
    value = err.get("input")
    if isinstance(value, (dict, list)):
        value = None  # do not echo a whole sub-tree back
    return Problem(path, _strict_hint(err["type"], value) or err["msg"], value)


_NUMBER_ERRORS = {"int_type", "float_type", "int_from_float"}


def _strict_hint(error_type: str, value: Any) -> str | None:
    """Say why a value YAML parsed as a boolean, or a number, is refused where the other is read."""
    if error_type in _NUMBER_ERRORS and isinstance(value, bool):
        return "must be a number; YAML reads yes/no/on/off/true/false as a boolean"
    if error_type in _NUMBER_ERRORS and isinstance(value, str):
        return (
            "must be a plain decimal number without quotes, such as 5000 or 0.2 (the file is read as "
            "YAML 1.2: 0x10, 0o10, 1:20 and 1_000 are strings)"
        )
    if error_type == "bool_type" and not isinstance(value, bool):
        return "must be true or false (a number or a string is not a boolean)"
    return None


def _consistency_problems(policy: RetentionPolicy) -> list[Problem]:
    """Rules that tie several keys together; each problem names its key path."""
    problems: list[Problem] = []
    appearances: dict[str, list[tuple[str, str, TableBase]]] = {}
    archive_names: dict[str, str] = {}
    for i, name in enumerate(policy.precedence):
        if name not in policy.categories:
            problems.append(Problem(f"precedence[{i}]", "not a category of this policy", name))
    for key, category in policy.categories.items():
        base = f"categories.{key}"
        if category.has_archive and not category.archive_purpose:
            problems.append(Problem(f"{base}.archive_purpose", "required when there is an archive period"))
        # P0D: "as long as the relationship lasts" - counted from its end (a contract's end,
        # ``when_missing: ongoing``), or for rows that wait for the parent they are archived
        # with (``archived_with``). Counted from a contact, it would empty the active base.
        waits = all(t.start_event.when_missing == "ongoing" or t.archived_with for t in category.tables)
        if category.active_period.is_zero and not waits:
            problems.append(
                Problem(
                    f"{base}.active_period",
                    "P0D is only allowed when every table counts from an "
                    "end event (when_missing: ongoing, e.g. a contract's end) or waits for the "
                    "row it is archived with (archived_with); counted from a contact or a "
                    "creation date it would take every row out of the active base the day it "
                    "is created",
                    str(category.active_period),
                )
            )
        for t_index, table in enumerate(category.tables):
            for path, node in _walk_with_paths(table, f"{base}.tables[{t_index}]"):
                appearances.setdefault(node.table, []).append((key, path, node))
                if node.archive_name in archive_names:
                    problems.append(
                        Problem(
                            f"{path}.archive_table",
                            f"archive table {node.archive_name!r} is already used at {archive_names[node.archive_name]}; "
                            "a table shared by several categories needs a distinct archive_table in each",
                            node.archive_name,
                        )
                    )
                archive_names.setdefault(node.archive_name, path)
                problems += _table_problems(node, path, category)
    for table, places in appearances.items():
        problems += _shared_table_problems(policy, table, places)
    problems += _archived_with_problems(policy, appearances)
    problems += _partitioned_problems(policy)
    problems += _self_reference_problems(policy)
    problems += _schema_name_problems(policy)
    problems += _two_parent_problems(policy)
    if policy.rights_register and policy.register_category() is None:
        roots = sorted({t.table for c in policy.categories.values() for t in c.tables})
        problems.append(
            Problem(
                "rights_register",
                "must be a table with its own clock in one of the categories "
                f"(one of: {', '.join(roots)}), so that the register's retention is enforced",
                policy.rights_register,
            )
        )
    return problems


def _archived_with_problems(
    policy: RetentionPolicy, appearances: dict[str, list[tuple[str, str, TableBase]]]
) -> list[Problem]:
    """``archived_with`` must name a root table of another category that has an archive."""
    problems = []
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            link = table.archived_with
            if link is None:
                continue
            path = f"categories.{key}.tables[{t_index}].archived_with"
            parents = [(k, node) for k, _, node in appearances.get(link.table, []) if isinstance(node, TablePolicy)]
            if not parents or all(k == key for k, _ in parents):
                problems.append(
                    Problem(f"{path}.table", "must be a table with its own clock in another category", link.table)
                )
                if link.on_parent_event:
                    problems.append(
                        Problem(
                            f"{path}.leaves_active",
                            f"on_parent_event counts from the start event "
                            f"of the {link.table} row, but {link.table} is not a root table "
                            "(tables[]) of any other category: it has no start event of its own",
                            link.leaves_active,
                        )
                    )
                continue
            if not category.has_archive:
                problems.append(
                    Problem(path, "a dependant is moved to the archive: its category needs an archive_period")
                )
            problems += _anonymised_link_problems(key, category, table, path)
            for parent_key, parent in parents:
                if not policy.categories[parent_key].has_archive:
                    problems.append(
                        Problem(
                            path,
                            f"category {parent_key!r} deletes {link.table} without archiving "
                            "it; a retained dependant needs its parent archived",
                            link.table,
                        )
                    )
                if len(link.foreign_key) != len(parent.primary_key):
                    problems.append(
                        Problem(
                            f"{path}.foreign_key",
                            f"has {len(link.foreign_key)} column(s) but "
                            f"the primary key of {link.table} has {len(parent.primary_key)}",
                            link.foreign_key,
                        )
                    )
                if parent.archived_with is not None:  # type: ignore[union-attr]
                    problems.append(
                        Problem(
                            path,
                            f"{link.table} is itself archived with another table; "
                            "chains of retained dependants are not supported",
                            link.table,
                        )
                    )
    return problems


def _self_reference_problems(policy: RetentionPolicy) -> list[Problem]:
    """A table declared as its own descendant (``children``), or archived with itself.

    A self-reference (a company's subsidiaries, a contact's manager: ``parent_id`` to the same
    table) is no tree edge: its rows would be chosen twice, as rows of their own and as
    children of another row of the same table, copied into two archive tables and deleted
    from under each other. Each row keeps its own place in the tree instead, and the
    database link must be ``ON DELETE SET NULL`` (``catalog`` checks it against the database).
    """
    problems = []
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            base = f"categories.{key}.tables[{t_index}]"
            problems += _descendant_problems(table, base, [table.table])
            link = table.archived_with
            if link is not None and link.table == table.table:
                problems.append(
                    Problem(
                        f"{base}.archived_with.table",
                        f"table {table.table} is archived with itself (through {', '.join(link.foreign_key)}): a "
                        "self-reference cannot carry rows of one category with rows of another in the same table; "
                        f"give each row its own clock, and make the database link ON DELETE SET NULL",
                        link.table,
                    )
                )
    return problems


def _qualified(policy: RetentionPolicy, node: TableBase) -> str:
    """A governed table's identity: ``schema.table``, in its own ``schema`` or the policy's
    ``source_schema`` (``schema: public`` and no schema name one table when public is the source)."""
    return f"{node.schema_name or policy.source_schema}.{node.table}"


def _schema_name_problems(policy: RetentionPolicy) -> list[Problem]:
    """One table name in two schemas (``crm.contacts`` and ``web.contacts``).

    The engine tells governed tables apart by their name at run time: a category with
    precedence excludes its rows from every table of that name (with ``crm`` first, ``web``
    never archived one row of ``web.contacts``), ``archived_with`` names a parent by its name
    alone, a hold on a row names a table, and SQLite has no schemas at all. One policy governs
    one table of each name.
    """
    first: dict[str, tuple[str, str]] = {}
    problems = []
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            for path, node in _walk_with_paths(table, f"categories.{key}.tables[{t_index}]"):
                qualified = _qualified(policy, node)
                seen, seen_at = first.setdefault(node.table, (qualified, path))
                if seen != qualified:
                    problems.append(
                        Problem(
                            f"{path}.schema",
                            f"table {qualified} has the name of {seen} (at {seen_at}): the engine "
                            "tells governed tables apart by their name (precedence between categories, archived_with, "
                            "holds on a row; SQLite has no schemas), so one policy may govern only one table of a "
                            "name; govern the other in a policy of its own",
                            node.schema_name or policy.source_schema,
                        )
                    )
    return problems


def _two_parent_problems(policy: RetentionPolicy) -> list[Problem]:
    """A child declared under two different parents (a link table between accounts and
    contacts, a note that may belong to either, a transfer from one account to another)
    keeps nothing but its keys in the archive.

    A parent is a link: the parent table, schema-qualified, and the child's foreign key to it;
    a transfer declared under accounts through ``from_account`` and again through
    ``to_account`` has two parents. A row pointing at both goes with whichever leaves first,
    into that parent's archive, and is destroyed at that parent's end of life. An erasure,
    access request or legal hold about the other parent reaches it only through the tree it
    left in, so it must carry nothing of that person there: no archived column beyond its
    keys, and no ``subject_identifiers`` (they would also find an active row twice, once in
    each tree, and make every erasure of that person fail).
    """
    declared: dict[str, list[tuple[str, str, TableBase]]] = {}
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            for path, node in _walk_with_paths(table, f"categories.{key}.tables[{t_index}]"):
                for i, child in enumerate(node.children):
                    link = f"{_qualified(policy, node)} (through {', '.join(child.foreign_key)})"
                    declared.setdefault(_qualified(policy, child), []).append((link, f"{path}.children[{i}]", child))
    problems = []
    for table, places in declared.items():
        parents = sorted({link for link, _, _ in places})
        if len(parents) < 2:
            continue
        for parent, path, child in places:
            others = " and ".join(p for p in parents if p != parent)
            why = (
                f"table {table} is a child of {' and of '.join(parents)}: a row pointing at several of them "
                f"goes with whichever leaves first, and an erasure, access request or legal hold about "
                f"{others} cannot reach it in the archive of {parent}"
            )
            for sub_path, node in _walk_with_paths(child, path):
                keys = set(node.primary_key) | set(getattr(node, "foreign_key", []))
                kept = [c for c in node.archive_columns if c not in keys]
                if kept:
                    problems.append(
                        Problem(
                            f"{sub_path}.archive_columns",
                            f"{why}, so it may keep only its keys there: remove {', '.join(kept)} from archive_columns",
                            kept,
                        )
                    )
                for kind, columns in node.subject_identifiers.items():
                    problems.append(
                        Problem(
                            f"{sub_path}.subject_identifiers.{kind}",
                            f"{why}; identifiers "
                            "would find one active row twice (once under each parent) and make "
                            "every erasure of that person fail: remove them",
                            columns,
                        )
                    )
    return problems


def _descendant_problems(node: TableBase, path: str, ancestors: list[str]) -> list[Problem]:
    """Children whose table is already on the way down from the root (``ancestors``)."""
    problems = []
    for i, child in enumerate(node.children):
        child_path = f"{path}.children[{i}]"
        if child.table in ancestors:
            chain = " -> ".join([*ancestors, child.table])
            problems.append(
                Problem(
                    child_path,
                    f"table {child.table} is declared under itself ({chain}, through "
                    f"{', '.join(child.foreign_key)}): a self-reference is not a child, its rows would be chosen twice. "
                    f"Leave it out of children (each row moves with its own parent row), and make the database link "
                    f"ON DELETE SET NULL",
                    child.table,
                )
            )
            continue
        problems += _descendant_problems(child, child_path, [*ancestors, child.table])
    return problems


def _anonymised_link_problems(key: str, category: Category, table: TablePolicy, path: str) -> list[Problem]:
    """Anonymising a retained dependant sets its ``archived_with`` link to NULL (the one thing
    that ties it back to a person). A link column that is part of the primary key - and so of
    its children's foreign keys - cannot hold NULL: every run would fail on it, so refuse."""
    if category.end_action != "anonymize":
        return []
    in_key = [c for c in table.archived_with.foreign_key if c in table.primary_key]  # type: ignore[union-attr]
    if not in_key:
        return []
    return [
        Problem(
            f"{path}.foreign_key",
            f"column {in_key[0]!r} is part of the primary key of {table.table} "
            f"(and of its children's foreign keys), but category {key!r} anonymises at end of life, "
            "which sets the link to NULL: a key column cannot hold NULL. Link through columns outside "
            "the primary key, or use end_action: delete",
            in_key,
        )
    ]


def _partitioned_problems(policy: RetentionPolicy) -> list[Problem]:
    """A partition moves whole only if "past the horizon" is a fact about its bounds: the
    start is the partition column itself, and every row of the table belongs to the
    category, with nothing else moving with it."""
    problems = []
    kept_with = {t.archived_with.table for c in policy.categories.values() for t in c.tables if t.archived_with}
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            if not table.partitioned:
                continue
            path = f"categories.{key}.tables[{t_index}].partitioned"
            reasons = [
                (
                    table.start_event.column is None,
                    "start_event.column (the partition column): a start derived "
                    "from other rows cannot be read from partition bounds",
                ),
                (table.start_event.ongoing_if_open is not None, "no start_event.ongoing_if_open"),
                (table.scope is not None, "no scope: every row of the table must belong to the category"),
                (bool(table.children), "no children (they would have to move first, row by row)"),
                (table.archived_with is not None, "no archived_with"),
                (table.table in kept_with, "no table archived with it"),
            ]
            problems += [Problem(path, f"a partitioned table needs {why}", table.table) for bad, why in reasons if bad]
    return problems


def _shared_table_problems(
    policy: RetentionPolicy, table: str, places: list[tuple[str, str, TableBase]]
) -> list[Problem]:
    """A table may serve several categories as scoped, non-overlapping root tables.

    Overlap is allowed when both categories appear in ``precedence``: the earlier wins.
    A child table may appear under several categories (its rows follow whichever
    category their parent row belongs to), but not also as a root with a clock of its own.
    """
    problems = []
    for i, (key_a, path_a, node_a) in enumerate(places):
        for key_b, path_b, node_b in places[i + 1 :]:
            roots = isinstance(node_a, TablePolicy), isinstance(node_b, TablePolicy)
            if roots == (False, False):
                continue
            if roots != (True, True):
                problems.append(
                    Problem(
                        path_b, f"table {table} is both a child and a table with its own clock (see {path_a})", table
                    )
                )
            elif key_a == key_b:
                problems.append(Problem(path_b, f"table {table} appears twice in category {key_a!r}", table))
            elif not (key_a in policy.precedence and key_b in policy.precedence) and not provably_disjoint(
                node_a.scope, node_b.scope
            ):
                problems.append(
                    Problem(
                        path_b,
                        f"categories {key_a!r} and {key_b!r} may both match a row of table {table}; make their "
                        "scopes exclusive (equals/in/is_null on the same column) or list both in precedence",
                        table,
                    )
                )
    return problems


def category_precedence(policy: RetentionPolicy, key: str) -> list[str]:
    """Categories that win over ``key`` on rows both would match."""
    if key not in policy.precedence:
        return []
    return policy.precedence[: policy.precedence.index(key)]


def _walk_with_paths(node: TableBase, path: str) -> list[tuple[str, TableBase]]:
    out = [(path, node)]
    for i, child in enumerate(node.children):
        out += _walk_with_paths(child, f"{path}.children[{i}]")
    return out


def _table_problems(node: TableBase, path: str, category: Category) -> list[Problem]:
    problems: list[Problem] = []
    for i, child in enumerate(node.children):
        if len(child.foreign_key) != len(node.primary_key):
            problems.append(
                Problem(
                    f"{path}.children[{i}].foreign_key",
                    f"has {len(child.foreign_key)} column(s) but the parent's primary key has {len(node.primary_key)}",
                    child.foreign_key,
                )
            )
    if category.end_action != "anonymize":
        if node.anonymize:
            problems.append(Problem(f"{path}.anonymize", "only allowed when the category's end_action is anonymize"))
        return problems
    if not category.has_archive:
        # Anonymised rows are kept in the archive schema; with no archive there is nowhere to keep them.
        problems.append(
            Problem(
                f"categories.{category.key}.end_action",
                "anonymize needs an archive_period: anonymised rows are kept in the archive",
            )
        )
    keys = set(node.primary_key) | set(getattr(node, "foreign_key", []))
    for column in node.archive_columns:
        if column not in node.anonymize and column not in keys:
            rule_names = "null, keep, year, month, prefix, round"
            problems.append(Problem(f"{path}.anonymize", f"every archive column needs a rule ({rule_names})", column))
    identifiers = {c for cols in node.subject_identifiers.values() for c in cols}
    for column, rule in node.anonymize.items():
        if column not in node.archive_columns:
            problems.append(Problem(f"{path}.anonymize.{column}", "not one of this table's archive_columns", column))
        elif column in keys:
            problems.append(Problem(f"{path}.anonymize.{column}", "key columns cannot be rewritten", column))
        elif column in identifiers and rule == "keep":
            problems.append(
                Problem(f"{path}.anonymize.{column}", "a subject identifier cannot be kept in an anonymised row", rule)
            )
    return problems


for _model in (TableBase, ChildTable, TablePolicy):
    _model.model_rebuild()

"""Data-quality gates: Great Expectations suites, generated from the policy, that must pass
before any row moves.

The pre-archive gate runs first in every DAG run. It checks, per table of the category
(children and retained dependants included):

* the live schema matches the policy - every table and column it names exists, and every
  clock input holds dates or timestamps (``check.check_against_database``, which names
  the key path of each mistake);
* the key columns and the archive columns exist (``expect_column_to_exist``);
* the primary key is unique (``expect_column_values_to_be_unique`` /
  ``expect_compound_columns_to_be_unique``);
* on SQLite, every clock value (of the table, of a related table a clock reads, or a column
  ``ongoing_if_open`` tests for emptiness) is text
  the clock reads as a date: ``YYYY-MM-DD``, optionally ``[ T]HH:MM[:SS[.fff]]``, optionally
  ``Z`` or ``+HH:MM``/``-HH:MM`` (``clock.sqlite_readable``, the clock's own grammar). Anything
  else - ``''``, ``N/A``, ``31/12/2020``, ``2024-02-30``, a number - would never fall due, or
  fall due at random;
* no clock input lies in the future beyond a small tolerance (``unexpected_rows_expectation``):
  a contact dated in the future means a wrong clock, and a wrong clock destroys data. This
  applies to events that have happened (``when_missing: defect``); end events that may
  be missing (``ongoing``) may legitimately be scheduled ahead. A column the policy names
  ``planned`` (a contract line's planned end) may lie ahead too, but not beyond
  ``MAX_PERIOD`` (a hundred years): further is a typo, and the row would never fall due.

Missing start dates that the policy calls a defect are not a gate failure: ``plan``
counts them as a ``quality_finding`` and lists a few of their keys in its XCom.

No suite is written by hand for a table: a user's own tables get the same gates. Each
expectation is a single query in the database; nothing is pulled into pandas. Each
outcome goes to the audit log - suite, table, expectation, success and counts only; the
rows themselves never leave the database.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, DateTime, column, literal, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from include.retention.database.reflect import TableNode
from include.retention.database.start_events import clock_inputs, future_checks, open_inputs
from include.retention.dates.clock import sqlite_later_than, sqlite_readable
from include.retention.errors import RetentionError
from include.retention.policy.model import MAX_PERIOD, TablePolicy
from include.retention.records import audit
from include.retention.schedule.context import StepContext, open_step

log = logging.getLogger(__name__)
FUTURE_TOLERANCE = timedelta(days=1)
NOW, FAR = "now", "far"  # how far ahead a clock input may lie: the tolerance, or MAX_PERIOD


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome on one table. Counts only."""

    suite: str
    table: str
    expectation: str
    success: bool
    unexpected: int = 0
    blocking: bool = True
    sample: str = ""  # the key of one failing row ("member_id=12"), so it can be found and fixed

    def describe(self) -> str:
        if not self.unexpected:
            return f"{self.expectation} on {self.table}"
        example = f", e.g. {self.sample}" if self.sample else ""
        return f"{self.expectation} on {self.table}: {self.unexpected} row(s){example}"


class QualityGateFailed(RetentionError):
    """A blocking expectation failed. Says what failed, where, on how many rows."""

    def __init__(self, gate: str, failed: list[CheckResult], consequence: str):
        self.failed = failed
        listed = "; ".join(r.describe() for r in failed[:10])
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        super().__init__(
            f"{gate} gate failed, {consequence}: {listed}{more}; see the audit log (action "
            "'validation') and the task log"
        )


def pre_archive_gate(step: StepContext, now: datetime | None = None) -> list[CheckResult]:
    """Validate the category's tables; raise ``QualityGateFailed`` if a blocking check fails."""
    nodes = open_step(step, create_archive=False)  # the schema check: raises PolicyError naming key paths
    moment = now or datetime.now(UTC)
    results: list[CheckResult] = []
    # One suite per related table, each check once: a clock may read several columns of one
    # table (a ``first_non_null`` expression, fallbacks over the same rows).
    related_checks: dict[str, tuple[Any, dict[str, str], dict[str, None]]] = {}
    with _GxValidator(step.target.engine) as gx_run:
        for root in nodes:
            for node in root.walk_all():
                results += gx_run(node.source, f"pre_archive.{node.name}", _table_expectations(node, step, moment))
            for related, column, future in _related_clock_inputs(root) + _released_parent_clock_inputs(root):
                futures, readable = related_checks.setdefault(related.fullname, (related, {}, {}))[1:]
                if future == NOW or (future == FAR and column not in futures):
                    futures[column] = future  # an event that happened wins over a planned end
                if not step.target.capabilities.typed_dates:
                    readable[column] = None
            for related, column in _open_rule_inputs(root) if not step.target.capabilities.typed_dates else []:
                related_checks.setdefault(related.fullname, (related, {}, {}))[2][column] = None
        for related, futures, readable in related_checks.values():
            keys = [c.name for c in related.primary_key.columns]
            checks = [
                _no_future_dates(related, keys, column, step, moment, far=future == FAR)
                for column, future in futures.items()
            ]
            checks += [_readable_dates(related, keys, column, step) for column in readable]
            if checks:
                results += gx_run(related, f"pre_archive.{related.name}.clock", checks)
    return conclude_gate(step, results, "pre-archive", "no row was moved")


def conclude_gate(step: StepContext, results: list[CheckResult], gate: str, consequence: str) -> list[CheckResult]:
    """Audit and log every outcome, then raise if a blocking check failed."""
    with step.target.engine.begin() as conn:
        for result in results:
            audit.record(
                conn,
                step.audit_table,
                step.ctx,
                category=step.category.key,
                action="validation",
                table_name=result.table,
                row_count=result.unexpected,
                details={
                    "suite": result.suite,
                    "expectation": result.expectation,
                    "success": result.success,
                    "blocking": result.blocking,
                },
            )
    for result in results:
        log.info("%s %s: %s", "PASSED" if result.success else "FAILED", result.suite, result.describe())
    failed = [r for r in results if r.blocking and not r.success]
    if failed:
        raise QualityGateFailed(gate, failed, consequence)
    return results


def results_as_dicts(results: list[CheckResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]


def _table_expectations(node: TableNode, step: StepContext, now: datetime) -> list[Any]:
    import great_expectations.expectations as gxe

    own_clock = (
        [c for t, c in clock_inputs(node.policy.start_event) if t is None]
        if isinstance(node.policy, TablePolicy)
        else []
    )
    expectations: list[Any] = [
        gxe.ExpectColumnToExist(column=c)
        for c in dict.fromkeys([*node.key_columns, *own_clock, *node.policy.archive_columns])
    ]
    if len(node.key_columns) == 1:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=node.key_columns[0]))
    else:
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=node.key_columns))
    # Only for events that have happened (a contact, a submission: ``when_missing: defect``).
    # An end event that may be missing (``ongoing``) may also be scheduled ahead - a
    # contract cancelled for the end of next month - and is then simply not due yet.
    if isinstance(node.policy, TablePolicy) and node.policy.start_event.when_missing == "defect":
        for column in own_clock:
            expectations.append(_no_future_dates(node.source, node.key_columns, column, step, now))
    if not step.target.capabilities.typed_dates:
        expectations += [_readable_dates(node.source, node.key_columns, column, step) for column in own_clock]
    return expectations


@dataclass(frozen=True)
class _RowCheck:
    """A check written as "these rows are wrong": one SQL condition on one table's own
    columns. Great Expectations counts the rows; when there are some, one key is looked up
    so that the failure says which row to fix (a key, never the value)."""

    table: Any
    key_columns: list[str]
    condition: str
    description: str

    def expectation(self, quote: Any) -> Any:
        import great_expectations.expectations as gxe

        keys = ", ".join(quote(c) for c in self.key_columns)
        return gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=f"SELECT {keys} FROM {{batch}} WHERE {self.condition}", description=self.description
        )

    def sample(self, engine: Engine) -> str:
        keys = [self.table.c[c] for c in self.key_columns]
        query = select(*keys).where(text(self.condition)).order_by(*keys).limit(1)
        with engine.connect() as conn:
            row = conn.execute(query).first()
        return ", ".join(f"{c}={v}" for c, v in zip(self.key_columns, row, strict=True)) if row else ""


def _condition(expression: Any, step: StepContext) -> str:
    """A condition built by SQLAlchemy (identifiers quoted, values computed here and never
    taken from the policy) as SQL text for Great Expectations."""
    dialect = step.target.engine.dialect
    return str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _readable_dates(table: Any, key_columns: list[str], column_name: str, step: StepContext) -> _RowCheck:
    """SQLite stores dates as text, and compares text as text: '26/11/2019' would sort after
    '2023-...' and never fall due, '2024-02-30' would fall due at random. Every clock value
    must be text the clock reads as a date (``clock.sqlite_readable`` is its grammar in
    SQL); anything else stops the run."""
    value: ColumnClause[Any] = column(column_name)
    unreadable = value.is_not(None) & ~sqlite_readable(value)
    return _RowCheck(table, key_columns, _condition(unreadable, step), f"readable_dates_{column_name}")


def _related_clock_inputs(root: TableNode) -> list[tuple[Any, str, str | None]]:
    """Columns of related tables that the root's clock reads (``latest``/``earliest``), and how
    far ahead each may lie (``_future_check``)."""
    if not isinstance(root.policy, TablePolicy):
        return []
    reflected = root.source.metadata.tables.values()
    event = root.policy.start_event
    return [
        (next(t for t in reflected if t.name == table_name), column_name, _future_check(event, planned))
        for (table_name, column_name), planned in future_checks(event).items()
        if table_name is not None
    ]


def _released_parent_clock_inputs(root: TableNode) -> list[tuple[Any, str, str | None]]:
    """The clock inputs of the parent categories of a dependant released by its parent's event
    (``archived_with.leaves_active: on_parent_event``): its run moves rows by that clock, so it
    checks those columns as the parent's own run does - the parent table's own and the related
    ones (a contract line closed in 2205 would otherwise hold invoices back unseen)."""
    if root.release is None:
        return []
    reflected = list(root.source.metadata.tables.values())
    inputs = []
    for clock in root.release.clocks:
        event = clock.policy.start_event
        for (table_name, column_name), planned in future_checks(event).items():
            related = next(t for t in reflected if t.name == (table_name or clock.policy.table))
            inputs.append((related, column_name, _future_check(event, planned)))
    return inputs


def _open_rule_inputs(root: TableNode) -> list[tuple[Any, str]]:
    """The columns ``ongoing_if_open`` tests for emptiness (the root's own rule, and its
    released parents' rules): on SQLite a value there that is no date (``''``) is neither
    open (NULL) nor an end, so it must be reported as unreadable like any clock value."""
    events = [root.policy.start_event] if isinstance(root.policy, TablePolicy) else []
    events += [clock.policy.start_event for clock in root.release.clocks] if root.release is not None else []
    reflected = list(root.source.metadata.tables.values())
    return [
        (next(t for t in reflected if t.name == table_name), column_name)
        for event in events
        for table_name, column_name in open_inputs(event)
    ]


def _future_check(event: Any, planned: bool) -> str | None:
    """How far ahead a clock input may lie: a planned end (``planned``) up to the far bound;
    an event that happened (a ``defect`` clock) up to now, within the tolerance; an end event
    that may be missing (``ongoing``) is not checked - it may be scheduled ahead."""
    if planned:
        return FAR
    return NOW if event.when_missing == "defect" else None


def _no_future_dates(
    table: Any, key_columns: list[str], column_name: str, step: StepContext, now: datetime, far: bool = False
) -> _RowCheck:
    """Rows whose ``column`` lies after now + tolerance (``no_future_<column>``) or, for a
    planned end, after now + ``MAX_PERIOD`` (``no_far_future_<column>``: a planned end beyond
    the longest period a policy may state is a typo, and the row would never fall due), as a
    single query on the table. On SQLite the text is read as the clock reads it (an instant
    when it has a zone)."""
    moment = _far_bound(now) if far else now + FUTURE_TOLERANCE
    later: ColumnElement[bool]
    if not step.target.capabilities.typed_dates:
        later = sqlite_readable(column(column_name)) & sqlite_later_than(column(column_name), moment, step.policy.zones)
    else:
        column_type = table.c[column_name].type
        later = column(column_name) > literal(_future_bound(column_type, moment, step), type_=column_type)
    return _RowCheck(table, key_columns, _condition(later, step), f"no_{'far_' if far else ''}future_{column_name}")


def _far_bound(now: datetime) -> datetime:
    """Now + ``MAX_PERIOD`` (a hundred years), with the calendar's clamping (29 February)."""
    return datetime.combine(MAX_PERIOD.add_to(now.date()), now.timetz())


def _future_bound(column_type: Any, moment: datetime, step: StepContext) -> datetime | date:
    zones = step.policy.zones
    if isinstance(column_type, DateTime):
        return moment if column_type.timezone else moment.astimezone(zones.naive).replace(tzinfo=None)
    if isinstance(column_type, Date):
        return moment.astimezone(zones.company).date()
    return moment


class _GxValidator:
    """An ephemeral Great Expectations context on the target's active tables."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def __enter__(self) -> _GxValidator:
        logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        url = self.engine.url.render_as_string(hide_password=False)
        self.source: Any
        if self.engine.dialect.name == "sqlite":
            self.source = self.context.data_sources.add_sqlite("target", connection_string=url)
        elif self.engine.dialect.name == "postgresql":
            self.source = self.context.data_sources.add_postgres("target", connection_string=url)
        else:
            self.source = self.context.data_sources.add_sql("target", connection_string=url)
        self.assets: dict[str, Any] = {}
        return self

    def __exit__(self, *exc: Any) -> None:
        # GX keeps its own engine; on SQLite an idle pooled connection of it can hold the
        # file's lock, which would block the batches that follow.
        self.source.get_execution_engine().engine.dispose()
        self.source.get_engine().dispose()

    def __call__(self, table: Any, suite_name: str, checks: list[Any]) -> list[CheckResult]:
        """Validate ``checks`` (Great Expectations expectations, or ``_RowCheck``) on ``table``."""
        asset_name = f"{table.schema}.{table.name}" if table.schema else table.name
        if asset_name not in self.assets:
            asset = self.source.add_table_asset(asset_name, table_name=table.name, schema_name=table.schema)
            self.assets[asset_name] = asset.add_batch_definition_whole_table("all")
        suite = self.context.suites.add(self.gx.ExpectationSuite(name=suite_name))
        quote = self.engine.dialect.identifier_preparer.quote
        row_checks = {_label(c.description): c for c in checks if isinstance(c, _RowCheck)}
        for check in checks:
            suite.add_expectation(check.expectation(quote) if isinstance(check, _RowCheck) else check)
        outcome = self.assets[asset_name].get_batch().validate(suite, result_format="SUMMARY")
        results = [_result(suite_name, table.name, r) for r in outcome.results]
        return [self._with_sample(r, row_checks.get(r.expectation)) for r in results]

    def _with_sample(self, result: CheckResult, check: _RowCheck | None) -> CheckResult:
        if check is None or result.success or not result.unexpected:
            return result
        return replace(result, sample=check.sample(self.engine))


def _result(suite: str, table: str, result: Any) -> CheckResult:
    config = result.expectation_config
    name = config.description if config.type == "unexpected_rows_expectation" and config.description else config.type
    columns = config.kwargs.get("column") or ",".join(config.kwargs.get("column_list") or [])
    name = f"{name}:{columns}" if columns else name
    raised = bool(result.exception_info and result.exception_info.get("raised_exception"))
    count = result.result.get("unexpected_count")
    if count is None and config.type == "unexpected_rows_expectation":
        count = result.result.get("observed_value")
    return CheckResult(suite, table, _label(name), bool(result.success) and not raised, int(count or 0))


def _label(name: str) -> str:
    """Expectation names go to the audit log: keep them to plain identifiers."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", name)[:128]

"""What tonight's run of a category will do - forecast from the plan's own counts, changing nothing.

The Retention view shows, before the run, per category: the rows due for the archive and at
end of life, those a legal hold keeps, those waiting for re-consent, the defects (rows that
cannot be aged) and the tables whose removals pass the deletion limit (the run will wait for
approval). The counts are the plan's (``plan.count_category``: the same SQL a dry run runs,
without what only the task log reads - child rows, sample keys), read on a read-only
connection: no audit event, no archive table, no write lock - the page is viewed at any
time, also while a run is under way. The legal holds are read as of the run's day (a hold
that ends before the run keeps nothing then); on PostgreSQL the forecast's transaction is
READ ONLY and its waits are bounded (``LOCK_WAIT``, ``COUNT_LIMIT``): a table a run holds
makes that category's ``problem``, never a page waiting behind the run.

A category the database does not match (a table or a column missing) is a forecast with a
``problem`` naming what is wrong - never the rows - so that one broken category does not hide
the others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from include.retention.database.identity import SubjectKey
from include.retention.database.target import Target
from include.retention.errors import RetentionError, describe
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext
from include.retention.schedule.context import StepContext, holds_on, reflect_step
from include.retention.schedule.limits import excesses
from include.retention.schedule.plan import CategoryPlan, Excess, TablePlan, count_category


@dataclass(frozen=True, kw_only=True)
class TableForecast:
    """One root table of the category: what tonight's run does to it."""

    table: str
    active_rows: int
    due_for_archive: int
    due_for_end_of_life: int
    held: int  # kept by a legal hold: due for the archive, and at end of life
    held_open: int  # kept active by an open related row, or a parent still active
    waiting_for_reconsent: int
    missing_start: int  # defects: no start date, so the rows cannot be aged
    dependants_end_of_life: dict[str, int] = field(default_factory=dict)  # retained dependants destroyed

    @classmethod
    def of(cls, table: TablePlan) -> TableForecast:
        return cls(
            table=table.table,
            active_rows=table.active_rows,
            due_for_archive=table.due_for_archive,
            due_for_end_of_life=table.due_for_end_of_life,
            held=table.legal_hold_due + table.legal_hold_end_of_life,
            held_open=table.held_open,
            waiting_for_reconsent=table.waiting_for_reconsent,
            missing_start=table.defective,
            dependants_end_of_life={name: d["rows"] for name, d in table.dependants_end_of_life.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "active_rows": self.active_rows,
            "due_for_archive": self.due_for_archive,
            "due_for_end_of_life": self.due_for_end_of_life,
            "held": self.held,
            "held_open": self.held_open,
            "waiting_for_reconsent": self.waiting_for_reconsent,
            "missing_start": self.missing_start,
            "dependants_end_of_life": dict(self.dependants_end_of_life),
        }


@dataclass(frozen=True, kw_only=True)
class CategoryForecast:
    """Tonight's run of one category, summed over its root tables (``tables``: each one).

    ``due_for_end_of_life``: the category's own rows deleted or anonymised (``end_action``);
    ``dependants_end_of_life``: retained dependants (another category's rows, e.g. invoices)
    its run destroys with their parents. ``over_limit``: the tables whose removals pass the
    deletion limit - the run waits for a person's approval (``excesses``: each side, counted).
    ``problem``: why the category could not be counted (then every count is 0)."""

    category: str
    as_of: date
    due_for_archive: int = 0
    due_for_end_of_life: int = 0
    end_action: str
    held: int = 0
    waiting_for_reconsent: int = 0
    missing_start: int = 0
    over_limit: tuple[str, ...] = ()
    tables: tuple[TableForecast, ...] = ()
    seconds: float = 0.0
    problem: str | None = None
    has_archive: bool = True
    dependants_end_of_life: int = 0
    excesses: tuple[Excess, ...] = ()

    @classmethod
    def of(cls, plan: CategoryPlan, found: list[Excess], seconds: float) -> CategoryForecast:
        """The forecast a plan's counts make, with the deletion limits they pass (``found``)."""
        tables = tuple(TableForecast.of(t) for t in plan.tables)
        return cls(
            category=plan.category,
            as_of=plan.as_of,
            due_for_archive=sum(t.due_for_archive for t in tables),
            due_for_end_of_life=sum(t.due_for_end_of_life for t in tables),
            end_action=plan.end_action,
            held=sum(t.held for t in tables),
            waiting_for_reconsent=sum(t.waiting_for_reconsent for t in tables),
            missing_start=sum(t.missing_start for t in tables),
            over_limit=tuple(dict.fromkeys(e.table for e in found)),
            tables=tables,
            seconds=seconds,
            has_archive=plan.has_archive,
            dependants_end_of_life=sum(sum(t.dependants_end_of_life.values()) for t in tables),
            excesses=tuple(found),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (the day as an ISO string, each excess with its sentence)."""
        return {
            "category": self.category,
            "as_of": self.as_of.isoformat(),
            "due_for_archive": self.due_for_archive,
            "due_for_end_of_life": self.due_for_end_of_life,
            "end_action": self.end_action,
            "held": self.held,
            "waiting_for_reconsent": self.waiting_for_reconsent,
            "missing_start": self.missing_start,
            "over_limit": list(self.over_limit),
            "tables": [t.to_dict() for t in self.tables],
            "seconds": self.seconds,
            "problem": self.problem,
            "has_archive": self.has_archive,
            "dependants_end_of_life": self.dependants_end_of_life,
            "excesses": [e.to_xcom() for e in self.excesses],
        }


def forecast(
    target: Target,
    policy: RetentionPolicy,
    category: str,
    as_of: date,
    *,
    subject_key: SubjectKey | None = None,
) -> CategoryForecast:
    """What the run of ``category`` on ``as_of`` will do, counted as its plan counts, written nowhere.

    ``subject_key``: the HMAC key, needed only when a legal hold protects a person (matched by
    keyed hash); without it such a category's forecast says so in ``problem``."""
    started = time.perf_counter()
    step: StepContext | None = None
    try:
        step = StepContext.build(target, policy, category, _forecast_run(policy, category, as_of), subject_key)
        plan = _count(step)
    except (RetentionError, SQLAlchemyError) as exc:
        return CategoryForecast(
            category=category,
            as_of=as_of,
            end_action=policy.categories[category].end_action if category in policy.categories else "",
            seconds=time.perf_counter() - started,
            problem=_problem(exc, step),
        )
    return CategoryForecast.of(plan, excesses(plan, policy), time.perf_counter() - started)


def _forecast_run(policy: RetentionPolicy, category: str, as_of: date) -> RunContext:
    """The run the forecast stands for: a dry run of the category's DAG on ``as_of`` (never recorded)."""
    return RunContext(
        run_id=f"forecast__{as_of.isoformat()}",
        dag_id=f"retention_{category}",
        as_of=as_of,
        policy_version=policy.version,
        dry_run=True,
    )


def _count(step: StepContext) -> CategoryPlan:
    """The plan's counts on one read-only connection (READ ONLY transaction on PostgreSQL,
    bounded waits: ``_bounded``), the legal holds read in it as of the run's day."""
    with step.target.read() as conn:
        if step.target.dialect == "postgresql":
            # For this transaction only: the pooled connection keeps the server's defaults after it.
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            _bounded(conn)
        # As of the run's day, not today: a hold that expires before tonight's run no longer
        # keeps its rows when the run comes (a real run reads them as of its day, too).
        holds = holds_on(conn, step, step.ctx.as_of)
        return count_category(conn, step, reflect_step(conn, step), holds, detail=False)


# How long the forecast waits. A run's partition DETACH or DROP takes an ACCESS EXCLUSIVE lock:
# the page gives up on that category after LOCK_WAIT rather than wait behind the run, and never
# counts a category for longer than COUNT_LIMIT (its ACCESS SHARE locks would delay the run).
LOCK_WAIT = "3s"
COUNT_LIMIT = "60s"
_LOCK_NOT_AVAILABLE = "55P03"
_QUERY_CANCELED = "57014"


def _bounded(conn: Connection) -> None:
    """Bound the forecast's waits, for its transaction only (SET LOCAL)."""
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = '{COUNT_LIMIT}'")


def _problem(exc: RetentionError | SQLAlchemyError, step: StepContext | None) -> str:
    """What the page says of a category it could not count: a wait cut short in plain words
    (naming the table a run holds, when the server says which), else the scrubbed error."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate == _LOCK_NOT_AVAILABLE:
        busy = _locked_tables(step) if step is not None else []
        return "table busy: a run holds it" + (f" ({', '.join(busy)})" if busy else "")
    if sqlstate == _QUERY_CANCELED:
        return f"counting stopped after {COUNT_LIMIT} (statement_timeout): tables too large or busy"
    return describe(exc)


def _locked_tables(step: StepContext) -> list[str]:
    """The category's schemas' tables another session holds in ACCESS EXCLUSIVE mode (names
    only; a failure to look is no reason to hide the problem itself)."""
    schemas = [step.target.source_schema(step.policy.source_schema), step.target.archive_schema]
    query = text(
        "SELECT DISTINCT n.nspname || '.' || c.relname FROM pg_locks l"
        " JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE l.mode = 'AccessExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()"
        " AND n.nspname = ANY(:schemas) ORDER BY 1"
    )
    try:
        with step.target.read() as conn:
            return list(conn.execute(query, {"schemas": schemas}).scalars())
    except SQLAlchemyError:
        return []

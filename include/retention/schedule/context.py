"""What every step of a run shares: the target, the policy, the category, the run.

``open_step`` is the one place where a step touches the database before doing its work:
it checks the policy against the live schema, reflects the category's tables and makes
sure the audit table (and, for a real run, the archive tables) exist.

The two steps that change data, archive and purge, share one skeleton (``begin``): the
batch size, the policy version against the run's plan, the step opened once (``OpenStep``:
tables reflected, holds read), their work as a list of ``Walk``s, then the dry-run gate -
the one place a dry run stops, after logging what each walk would do - and, for a run
that executes, every walk's checks (the deletion limit...) before the first row moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.identity import SubjectKey
from include.retention.database.partitioning import Partition
from include.retention.database.reflect import Side, TableNode, ensure_archive_tables, open_category
from include.retention.database.store import hold_tables
from include.retention.database.target import Target
from include.retention.errors import RetentionError
from include.retention.policy.model import Category, DeletionLimit, RetentionPolicy
from include.retention.records.audit import RunContext
from include.retention.records.held_rows import HoldsInForce, hold_day, holds_in_force
from include.retention.settings import MAX_BATCH_SIZE, MIN_BATCH_SIZE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepContext:
    """One step of one category's run: where (target), under which rules (policy, category
    - the object, resolved once from the key a task receives), for which run (``ctx``)."""

    target: Target
    policy: RetentionPolicy
    category: Category
    ctx: RunContext
    # The HMAC key: for the categories whose checks compare rows with the suppression list,
    # and for legal holds that protect a person by keyed hash.
    subject_key: SubjectKey | None = None

    @classmethod
    def build(
        cls,
        target: Target,
        policy: RetentionPolicy,
        category_key: str,
        ctx: RunContext,
        subject_key: SubjectKey | None = None,
    ) -> StepContext:
        return cls(target, policy, policy.category(category_key), ctx, subject_key)

    @property
    def audit_table(self) -> Table:
        return store.audit_table(self.target.archive_schema, self.policy.audit_table)


def reflect_step(conn: Connection, step: StepContext) -> list[TableNode]:
    """Validate the category against the live schema and reflect its tables - reads only, so
    that a forecast (``tonight``) can open a category without creating anything."""
    target = step.target
    return open_category(conn, step.policy, step.category, target.source_schema, target.archive_schema, target.dialect)


def open_step(step: StepContext, *, create_archive: bool) -> list[TableNode]:
    """Validate, reflect, and create what the step will write to."""
    target = step.target
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        nodes = reflect_step(conn, step)
        store.ensure_audit_table(conn, step.audit_table)
        if create_archive:
            ensure_archive_tables(conn, nodes)
    return nodes


def create_archive_tables(step: StepContext, nodes: list[TableNode]) -> None:
    """Create the archive tables a step is about to write to (after its checks have passed)."""
    with step.target.engine.begin() as conn:
        ensure_archive_tables(conn, nodes)


def holds_of(step: StepContext) -> HoldsInForce:
    """The legal holds in force for this step (read once per step, before any batch): as of
    the run's day, never later than today - a run dated ahead ends no hold early."""
    today = datetime.now(step.policy.zone).date()
    with step.target.read() as conn:
        return holds_on(conn, step, hold_day(step.ctx.as_of, today))


def holds_on(conn: Connection, step: StepContext, day: date) -> HoldsInForce:
    """The legal holds in force on ``day``, read on ``conn`` (a forecast reads them in its own
    read-only transaction, as of the day of the run it stands for)."""
    return holds_in_force(conn, hold_tables(step.target.archive_schema), day, step.subject_key, step.target.dialect)


def batch_size_of(step: StepContext, requested: int | None) -> int:
    """The batch size a step uses: the one asked for, else the policy's; refused outside
    1..1,000,000 (0 would loop on nothing, a huge batch is one endless transaction)."""
    size = step.policy.batch_size_for(step.category) if requested is None else requested
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_BATCH_SIZE <= size <= MAX_BATCH_SIZE:
        raise RetentionError(
            f"batch_size {size!r} for category {step.category.key}: give a whole number from 1 "
            f"to {MAX_BATCH_SIZE:,} (rows per transaction)"
        )
    return size


def check_policy_unchanged(step: StepContext) -> None:
    """Refuse to move or destroy rows under another policy version than the run's plan: an
    edit deployed in the middle of a run must not act on a plan (and an approval) made
    under the previous rules. The next run plans under the new version."""
    trail = step.audit_table
    with step.target.read() as conn:
        if not store.table_exists(conn, trail):
            return
        planned = conn.execute(
            select(trail.c.policy_version).where(trail.c.run_id == step.ctx.run_id, trail.c.action == "plan").limit(1)
        ).scalar()
    if planned is not None and planned != step.policy.version:
        raise RetentionError(
            f"the policy changed during run {step.ctx.run_id}: planned under version {planned!r}, "
            f"now {step.policy.version!r}; nothing was changed - start a new run"
        )


@dataclass(frozen=True)
class OpenStep:
    """A step that changes data, opened once: its tables reflected, the legal holds in force
    and its batch size read, before anything is checked or moved."""

    step: StepContext
    nodes: list[TableNode]
    holds: HoldsInForce
    batch_size: int


@dataclass(frozen=True)
class Walk:
    """One walk of a step that changes data: the rows of ``node`` on ``side`` that ``where``
    selects, under ``step``'s category (its rule and its audit events: a retained dependant's
    own). ``counted`` and ``base``: the rows the deletion limit counts, and the rows that side
    holds (its base); ``whole``: partitions moved or dropped whole before the batches;
    ``verb``: what the dry run says it would do; ``due``: the rows ``counted`` held when the
    walk was checked, just before its first batch (``begin``) - its progress log's total."""

    node: TableNode
    side: Side
    where: ColumnElement[bool]
    counted: ColumnElement[bool]
    base: ColumnElement[bool]
    limit: DeletionLimit
    step: StepContext
    verb: str
    whole: tuple[Partition, ...] = ()
    whole_verb: str = "move"
    due: int = 0

    @property
    def table(self) -> Table:
        return self.node.table(self.side)


def begin(
    step: StepContext,
    batch_size: int | None,
    walks_of: Callable[[OpenStep], list[Walk]],
    check: Callable[[Walk], int],
    *,
    create_archive: bool,
) -> tuple[OpenStep, list[Walk]] | None:
    """The beginning archive and purge share. Returns the opened step and its walks to carry
    out, or None for a dry run - the one gate, after it logged what each walk would do.

    In order: the batch size (refused out of bounds), the policy version against the run's
    plan (an executing run only), the step opened once, the walks, then - executing - every
    walk's ``check`` before anything is created or moved (it returns the rows the walk will
    act on, counted in the database: the walk's ``due``), and the archive tables created."""
    size = batch_size_of(step, batch_size)
    if not step.ctx.dry_run:
        check_policy_unchanged(step)
    opened = OpenStep(step, open_step(step, create_archive=False), holds_of(step), size)
    walks = walks_of(opened)
    if step.ctx.dry_run:
        for walk in walks:
            _log_would(walk)
        return None
    walks = [replace(walk, due=check(walk)) for walk in walks]  # all checked before anything moves
    if create_archive:
        create_archive_tables(step, opened.nodes)
    return opened, walks


def _log_would(walk: Walk) -> None:
    """What a dry run says of one walk: the rows it would act on now, and whole partitions."""
    step = walk.step
    with step.target.read() as conn:
        count = conn.execute(select(func.count()).select_from(walk.table).where(walk.where)).scalar_one()
    log.info(
        "Would %s %d rows of %s (category %s, as of %s)",
        walk.verb,
        count,
        walk.node.name,
        step.category.key,
        step.ctx.as_of,
    )
    if walk.whole:
        log.info(
            "Would %s %d partition(s) whole: %s",
            walk.whole_verb,
            len(walk.whole),
            ", ".join(p.qualified for p in walk.whole),
        )

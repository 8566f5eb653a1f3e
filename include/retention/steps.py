"""What every step of a run shares: the target, the policy, the category, the run.

``open_step`` is the one place where a step touches the database before doing its work:
it checks the policy against the live schema, reflects the category's tables and makes
sure the audit table (and, for a real run, the archive tables) exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table

from . import audit
from .audit import RunContext
from .catalog import TableNode, ensure_archive_tables, open_category
from .holds import HoldsInForce, hold_day, hold_tables, holds_in_force
from .policy import Category, RetentionPolicy
from .subjects import SubjectKey
from .target import Target


@dataclass(frozen=True)
class StepContext:
    target: Target
    policy: RetentionPolicy
    category: Category
    ctx: RunContext
    # The HMAC key: for the categories whose checks compare rows with the suppression list,
    # and for legal holds that protect a person by keyed hash.
    subject_key: SubjectKey | None = None

    @classmethod
    def build(cls, target: Target, policy: RetentionPolicy, category_key: str, ctx: RunContext,
              subject_key: SubjectKey | None = None) -> "StepContext":
        return cls(target, policy, policy.category(category_key), ctx, subject_key)

    @property
    def audit_table(self) -> Table:
        return audit.audit_table(self.target.archive_schema, self.policy.audit_table)


def open_step(step: StepContext, *, create_archive: bool) -> list[TableNode]:
    """Validate, reflect, and create what the step will write to."""
    target = step.target
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        nodes = open_category(conn, step.policy, step.category, target.source_schema,
                              target.archive_schema, target.dialect)
        audit.ensure_audit_table(conn, step.audit_table)
        if create_archive:
            ensure_archive_tables(conn, nodes)
    return nodes


def holds_of(step: StepContext) -> HoldsInForce:
    """The legal holds in force for this step (read once per step, before any batch)."""
    today = datetime.now(step.policy.zone).date()
    with step.target.read() as conn:
        return holds_in_force(conn, hold_tables(step.target.archive_schema), hold_day(step.ctx.as_of, today),
                              step.subject_key, step.target.dialect)

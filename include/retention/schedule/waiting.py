"""Which due rows wait for the re-consent ask before they leave the active base.

The charter promises that a prospect is asked, before the data is destroyed, whether they
still want commercial messages (a category's ``reconsent`` block). So a row of the category's
asked table (``Category.asked_table``) whose active period ended on its period end D does not
leave the active base (to the archive, or to its end without one) while the promise is open:

* today is before D + ``notice_days``: the promise delays a row at most by the notice
  window, never longer;
* its address is usable (not NULL, not blank): a row nobody can write to is not kept waiting;
* its key is whole (no NULL part): the register names a row by its key, so nobody can ask or
  answer for a row without one (the campaign leaves it out) - it is not kept waiting either;
* no ask for this row and this period end settles the promise: asking failed for good
  (``failed``), there was no usable address (``no_address``), the person is suppressed
  (``suppressed``), or the notice was sent at least ``notice_days`` before today - the window
  it was promised.

D is the start's company-local day plus the active period (``clock.add_period``: the calendar
rules of ``Period.add_to``), as the campaign records it in the register's ``period_end``; the
start is the clock a yes restarted (``start_events.restarted_by_consent``), so after a yes D is
a new period end and that period's promise is a new one. Every piece is SQL on the row, for the
archive and purge steps, the plan and the post-run gate to add to their own conditions.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import Table, and_, func, literal, not_, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.reflect import TableNode, key_text
from include.retention.dates.clock import Zones, add_period, is_due, local_date
from include.retention.dates.instants import UtcDateTime
from include.retention.errors import RetentionError
from include.retention.policy.conditions import is_not_true
from include.retention.policy.model import Category, Reconsent
from include.retention.schedule.context import StepContext

# Register statuses that let a due row go: the person could not be, or will not be, asked.
RELEASING_STATUSES = ("failed", "no_address", "suppressed")


def period_end(root: TableNode, category: Category, dialect: str, zones: Zones) -> ColumnElement[date]:
    """D: the row's start, as a day in the company's zone, plus the active period."""
    return add_period(local_date(root.start, dialect, zones), category.active_period, dialect)


def usable_address(root: TableNode, category: Category) -> ColumnElement[bool]:
    """The row has an address to write to: not NULL, not blank once trimmed. Never NULL."""
    column = root.source.c[_block(category).address_column]
    return and_(column.is_not(None), func.trim(column) != "")


def in_notice_window(root: TableNode, category: Category, as_of: date, zones: Zones) -> ColumnElement[bool]:
    """``D - notice_days <= as_of < D + notice_days``, as two ``is_due`` comparisons of the
    start (on a start column, index-friendly): due ``notice_days`` from now, and not yet due
    ``notice_days`` ago. NULL for a row without a start (never true)."""
    notice = timedelta(days=_block(category).notice_days)
    period = category.active_period
    return and_(
        is_due(root.start, period, as_of + notice, zones), not_(is_due(root.start, period, as_of - notice, zones))
    )


def waiting_in_step(conn: Connection, step: StepContext, root: TableNode) -> ColumnElement[bool] | None:
    """``waiting_for_reconsent`` for a step's root: the register is read if it exists. A
    step creates nothing for it (a plan or a dry run changes nothing): before the first
    campaign there is no ask, and every due row in the window with an address waits."""
    if not asks_from(step.category, root):
        return None
    register = store.reconsent_table(step.target.archive_schema)
    present = store.table_exists(conn, register)
    return waiting_for_reconsent(
        root, step.category, register if present else None, step.ctx.as_of, step.policy.zones, step.target.dialect
    )


def not_waiting_in_step(conn: Connection, step: StepContext, root: TableNode) -> list[ColumnElement[bool]]:
    """``[NOT waiting]`` to add to a step's "due" condition (archive, purge without an archive,
    the post-run gate) - nothing at all when nobody is asked from this table."""
    waiting = waiting_in_step(conn, step, root)
    return [] if waiting is None else [is_not_true(waiting)]


def asks_from(category: Category, root: TableNode) -> bool:
    """Whether the category asks the rows of this root table for re-consent."""
    return category.reconsent is not None and root.name == category.asked_table


def waiting_for_reconsent(
    root: TableNode, category: Category, register: Table | None, as_of: date, zones: Zones, dialect: str
) -> ColumnElement[bool] | None:
    """Rows of ``root`` whose period has ended (D <= ``as_of``) but that wait for the ask
    (see the module doc); None when nobody is asked from this table, so no SQL is added.

    ``register``: the re-consent register (``store.reconsent_table``), or None when it does
    not exist yet (no ask recorded: nothing settles the promise). The caller adds its own
    scope, "nothing open" and hold conditions; NULL for a row without a start (wrap in
    ``is_not_true`` to negate)."""
    if not asks_from(category, root):
        return None
    notice = timedelta(days=_block(category).notice_days)
    period = category.active_period
    waiting = and_(
        is_due(root.start, period, as_of, zones),
        not_(is_due(root.start, period, as_of - notice, zones)),
        usable_address(root, category),
        *(root.source.c[k].is_not(None) for k in root.key_columns),
    )
    if register is None:
        return waiting
    # The period ends of this row's asks that settle the promise. D is compared outside the
    # subquery: the row's start may itself be a subquery on the row (a related table, the
    # last yes), which correlates only with the query whose FROM holds the row.
    settled_ends = select(register.c.period_end).where(
        register.c.category == category.key,
        register.c.table_name == root.name,
        register.c.row_key == key_text(root.source, root.key_columns),
        or_(
            register.c.status.in_(RELEASING_STATUSES),
            and_(register.c.status == "sent", register.c.sent_at < _start_of_day_after(as_of - notice, zones)),
        ),
    )
    return and_(waiting, period_end(root, category, dialect, zones).not_in(settled_ends))


def _start_of_day_after(day: date, zones: Zones) -> ColumnElement[datetime]:
    """The first instant after ``day`` in the company's zone: an instant before it was on
    ``day`` or earlier there. A bound parameter, compared with the stored instant as it is."""
    midnight = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zones.company)
    return literal(midnight, type_=UtcDateTime())


def _block(category: Category) -> Reconsent:
    if category.reconsent is None:
        raise RetentionError(f"category {category.key} asks nobody for re-consent (no reconsent block)")
    return category.reconsent

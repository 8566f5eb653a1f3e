"""Which due rows wait for the re-consent ask before they leave the active base.

The charter promises that a prospect is asked, before the data is destroyed, whether they
still want commercial messages (a category's ``reconsent`` block). So a row of the category's
asked table (``Category.asked_table``) whose active period ended on its period end D does not
move to the archive while the promise is still open:

* today is before D + ``notice_days``: the promise delays a row at most by the notice
  window, never longer;
* its address is usable (not NULL, not blank): a row nobody can write to is not kept waiting;
* no ask for this row and this period end settles the promise: asking failed for good
  (``failed``), there was no usable address (``no_address``), the person is suppressed
  (``suppressed``), or the notice was sent at least ``notice_days`` before today - the window
  it was promised.

D is the start's company-local day plus the active period (``clock.add_period``: the calendar
rules of ``Period.add_to``), as the campaign records it in the register's ``period_end``. Every
piece is SQL on the row, for the archive step and the plan to add to their own conditions.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import Table, and_, exists, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.reflect import TableNode, key_text
from include.retention.dates.clock import Zones, add_period, is_due, local_date
from include.retention.dates.instants import UtcDateTime
from include.retention.errors import RetentionError
from include.retention.policy.model import Category, Reconsent

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
    start (index-friendly): due ``notice_days`` from now, and not yet due ``notice_days`` ago.
    NULL for a row without a start (never true)."""
    notice = timedelta(days=_block(category).notice_days)
    period = category.active_period
    return and_(
        is_due(root.start, period, as_of + notice, zones), not_(is_due(root.start, period, as_of - notice, zones))
    )


def waiting_for_reconsent(
    root: TableNode, category: Category, register: Table, as_of: date, zones: Zones, dialect: str
) -> ColumnElement[bool] | None:
    """Rows of ``root`` whose period has ended (D <= ``as_of``) but that wait for the ask
    (see the module doc); None when nobody is asked from this table, so no SQL is added.

    ``register``: the re-consent register (``store.reconsent_table``); it must exist (the
    steps create it when first needed, ``store.ensure_table``). The caller adds its own scope,
    "nothing open" and hold conditions; NULL for a row without a start (wrap in
    ``is_not_true`` to negate)."""
    if category.reconsent is None or root.name != category.asked_table:
        return None
    notice = timedelta(days=category.reconsent.notice_days)
    settled = exists().where(
        register.c.category == category.key,
        register.c.table_name == root.name,
        register.c.row_key == key_text(root.source, root.key_columns),
        register.c.period_end == period_end(root, category, dialect, zones),
        or_(
            register.c.status.in_(RELEASING_STATUSES),
            and_(register.c.status == "sent", register.c.sent_at < _start_of_day_after(as_of - notice, zones)),
        ),
    )
    period = category.active_period
    return and_(
        is_due(root.start, period, as_of, zones),
        not_(is_due(root.start, period, as_of - notice, zones)),
        usable_address(root, category),
        not_(settled),
    )


def _start_of_day_after(day: date, zones: Zones) -> ColumnElement[datetime]:
    """The first instant after ``day`` in the company's zone: an instant before it was on
    ``day`` or earlier there. A bound parameter, compared with the stored instant as it is."""
    midnight = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zones.company)
    return literal(midnight, type_=UtcDateTime())


def _block(category: Category) -> Reconsent:
    if category.reconsent is None:
        raise RetentionError(f"category {category.key} asks nobody for re-consent (no reconsent block)")
    return category.reconsent

"""The daily re-consent campaign of one category: ask every person whose active period ends
within the notice window, once per period end, through an outbox.

Who is asked: the rows of the category's asked table that are in scope, whose clock runs
(start known, nothing open), whose period end D satisfies ``D - notice_days <= as_of <
D + notice_days`` (``schedule.waiting.in_notice_window``), that have no register row for D
yet, and that no legal hold protects (a held row is not even recorded). Each such row gets
one register row (``retention_reconsent``): ``suppressed`` when its address's keyed hash is on
the suppression list (never mailed), ``no_address`` when the address is NULL, blank or not
one address the register can key (``notice.usable_address``: the very test of the keyed hash,
so one odd address never fails the recording of the others; never mailed), else ``pending`` -
then it is sent. A row with a NULL key part is not selected: no register row can name it, so
nobody can be asked or answer for it (the archive gate does not keep it waiting either).

Guarantee: AT LEAST ONCE, never silently lost, duplicates identical. Rows are taken in
primary-key order, ``batch_size`` at a time. One transaction records a batch's asks
(``pending``, each with its own random token id); then, for each notice, one transaction
marks it ``sending``, the notice is handed to the SMTP server, and one transaction marks it
``sent``. A run (the same one retried, or the next day's) first sends every ask of the
category still ``pending`` or ``sending`` whose links have not expired, with the SAME token
and the same Message-ID (``<reconsent-{token_id}@{sender domain}>``), rechecking the
suppression list, the holds and the address. An ask whose row's address has changed since it
was recorded (its keyed hash is no longer the ask's ``subject_hash``) is not sent to the new
address: the register's one ask per row and period end belongs to the old one, so it is
settled ``no_address`` with the failure "address changed" and the row is not kept waiting
for it (the new address is asked at the row's next period end, after a yes restarted the
clock or never). A ``pending`` ask whose links expired before it could be sent (deferred day
after day) is settled ``failed``, "deferred until expiry": the person could not be asked. So:

* killed between recording and sending: the notice is sent once, by the next run;
* killed between sending and marking: the next run sends the identical message again (same
  Message-ID, same links): the person may see it twice - mail clients that thread or
  de-duplicate by Message-ID show one - and answering either counts once (one register row,
  one token id);
* a notice is never sent for a row that has no register row, nor recorded twice for one
  period end (the register's unique key).

The server's answer decides the rest (``mailer.classify``): a permanent refusal (5xx at RCPT,
or at DATA: one message, one recipient) is ``failed`` with the code and words, never the
address (the person could not be asked, the archive goes on); a temporary one (4xx) leaves
the ask ``pending``, counted ``deferred``, for the next run; a refused sender or a lost
connection raises ``MailServerFault`` (the task fails, Airflow retries it; the asks stay to
be sent). One ask's refusal never stops the others.

Circuit breaker: a relay that refuses everyone (``554 5.7.1 Relay access denied``) is a fault
of the server, not of the people. When ``BREAKER_STREAK`` recipients in a row - or every
recipient of a run that tried fewer, at least two - are refused for good with the same code
and none was accepted in between, those asks go back to ``pending`` (their failure text
kept), the campaign stops and raises ``MailServerFault`` naming the code and the server's
words, never an address; the task fails and Airflow retries it. Pending asks do not release
their rows, so the archive gate keeps them waiting meanwhile - never beyond ``notice_days``
past their period end.

A database error during the campaign is raised as ``CampaignDatabaseError``: its class and
SQLSTATE only, as the database's own text may quote a register row (hash, token id).

Two campaigns of one category never run at once (``records.locks.category_step`` under the
name ``reconsent:<category>``). A dry run counts what it would do and records, sends and
audits nothing. Logs and the audit event (``reconsent_campaign``) hold counts only.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, Table, and_, exists, false, func, insert, not_, select, tuple_, type_coerce, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from include.retention.database import store
from include.retention.database.identity import SubjectKey, keyed_hash_in, require_keyed_hash_sql, subject_hash
from include.retention.database.reflect import Side, TableNode, key_text, open_category
from include.retention.database.target import Target
from include.retention.dates import instants
from include.retention.dates.clock import Zones
from include.retention.errors import RetentionError, describe
from include.retention.policy.model import Category, Reconsent, RetentionPolicy
from include.retention.reconsent.mailer import Mailer, classify
from include.retention.reconsent.notice import ADDRESS_KIND, compose, usable_address
from include.retention.reconsent.tokens import new_token_id
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.records.held_rows import HoldsInForce
from include.retention.records.locks import category_step, release_lease
from include.retention.schedule.context import StepContext, holds_of
from include.retention.schedule.waiting import in_notice_window, period_end

log = logging.getLogger(__name__)

# Recipients refused for good in a row, with one code and none accepted between, that make a
# server fault (see the module doc's circuit breaker).
BREAKER_STREAK = 3
# What settles an ask that cannot be sent as recorded (stored in the register's ``failure``).
ADDRESS_CHANGED = "address changed"
DEFERRED_UNTIL_EXPIRY = "deferred until expiry"


class MailServerFault(Exception):
    """The SMTP server failed the campaign: the connection was lost, the sender refused, or it
    refused several recipients in a row with one code (its fault, not theirs). Not a
    ``RetentionError`` (which fails a task for good): the task fails and Airflow retries it;
    the asks stay to be sent. Its text is scrubbed of the address at hand."""


class CampaignDatabaseError(Exception):
    """A database error during the campaign, told by its class and SQLSTATE only (the
    database's text may quote a register row). Retried, as a lost connection would be."""


@dataclass
class CampaignResult:
    """What one campaign did (or, in a dry run, would do), in counts.

    ``recorded``: asks recorded (every status); ``sent``: notices the server accepted, of which
    ``resent`` were recorded by an earlier run (left pending or sending by a crash, or deferred);
    ``failed``: refused for good; ``deferred``: refused for now, retried next run;
    ``no_address`` / ``suppressed``: recorded but never mailed."""

    category: str
    recorded: int = 0
    sent: int = 0
    resent: int = 0
    failed: int = 0
    deferred: int = 0
    no_address: int = 0
    suppressed: int = 0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int]:
        """The counts alone (the audit event's details)."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, int) and not isinstance(v, bool)}


@dataclass(frozen=True)
class _Ask:
    """One ask about to be sent: its register row's handle and what the notice needs."""

    ask_id: int
    token_id: str
    address: str
    period_end: date
    expires_on: date


@dataclass
class _Campaign:
    """One campaign's fixed parts, opened once."""

    target: Target
    category: Category
    block: Reconsent
    root: TableNode
    holds: HoldsInForce
    register: Table
    key: SubjectKey
    ctx: RunContext
    mailer: Mailer
    result: CampaignResult
    dry_run: bool
    zones: Zones
    register_present: bool  # False only in a dry run before the first campaign
    suppression_present: bool
    address_column: Any = field(init=False)
    attempted: int = 0  # notices handed to the server in this run
    streak: list[tuple[_Ask, int, str]] = field(default_factory=list)  # refused in a row: ask, code, words

    def __post_init__(self) -> None:
        self.address_column = self.root.source.c[self.block.address_column]


def run_campaign(
    target: Target,
    policy: RetentionPolicy,
    category_key: str,
    key: SubjectKey,
    ctx: RunContext,
    mailer: Mailer,
    *,
    dry_run: bool = False,
) -> CampaignResult:
    """Ask, for ``ctx.as_of``, everyone of ``category_key`` the notice window has reached (see
    the module doc for the outbox and its guarantee)."""
    category = policy.category(category_key)
    if category.reconsent is None:
        raise RetentionError(f"category {category_key} asks nobody for re-consent: it has no reconsent block")
    dry_run = dry_run or ctx.dry_run
    lock_name = f"reconsent:{category_key}"
    try:
        with _held(target, lock_name, ctx, dry_run):
            campaign = _open(target, policy, category, key, ctx, mailer, dry_run)
            _settle_expired(campaign)
            _resend_left_over(campaign)
            _ask_new(campaign)
            _check_whole_run(campaign)
            if not dry_run:
                _audit(campaign, policy)
    except SQLAlchemyError as exc:
        raise _database_error(exc, category_key) from None
    log.info("Re-consent campaign of %s as of %s: %s", category_key, ctx.as_of, campaign.result.counts())
    return campaign.result


def _database_error(exc: SQLAlchemyError, category_key: str) -> CampaignDatabaseError:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    diag = getattr(orig, "diag", None)
    sqlstate = getattr(diag, "sqlstate", None) or getattr(orig, "sqlstate", None)
    return CampaignDatabaseError(
        f"the re-consent campaign of {category_key} met a database error: {type(exc).__name__} "
        f"({type(orig).__name__}{f', SQLSTATE {sqlstate}' if sqlstate else ''}); its text is withheld, "
        "as it may quote a register row"
    )


@contextmanager
def _held(target: Target, lock_name: str, ctx: RunContext, dry_run: bool) -> Iterator[None]:
    """The category's campaign lock (a dry run takes none: it changes nothing), given back
    when the campaign ends, even by an error. A killed campaign's lease is taken again by
    its retry (the same run id), or by another run once stale (``locks.STALE_AFTER``)."""
    if dry_run:
        yield
        return
    try:
        with category_step(target, lock_name, ctx.run_id, ctx.dag_id):
            yield
    finally:
        release_lease(target, lock_name, ctx.run_id)


def _open(
    target: Target,
    policy: RetentionPolicy,
    category: Category,
    key: SubjectKey,
    ctx: RunContext,
    mailer: Mailer,
    dry_run: bool,
) -> _Campaign:
    """Check the category against the live database and reflect it (identifiers reach SQL only
    after that), create the register (a real run), read the holds in force."""
    register = store.reconsent_table(target.archive_schema)
    if not dry_run:
        target.ensure_archive_schema()
    with target.engine.begin() as conn:
        nodes = open_category(conn, policy, category, target.source_schema, target.archive_schema, target.dialect)
        require_keyed_hash_sql(conn, "a re-consent campaign (the suppression list is read by keyed hash)")
        if not dry_run:
            store.ensure_table(conn, register)
            store.ensure_audit_table(conn, store.audit_table(target.archive_schema, policy.audit_table))
        register_present = store.table_exists(conn, register)
        suppression_present = store.table_exists(conn, store.suppression_table(target.archive_schema))
    root = next(node for node in nodes if node.name == category.asked_table)
    holds = holds_of(StepContext(target, policy, category, ctx, key))
    assert category.reconsent is not None
    return _Campaign(
        target,
        category,
        category.reconsent,
        root,
        holds,
        register,
        key,
        ctx,
        mailer,
        CampaignResult(category.key, dry_run=dry_run),
        dry_run,
        policy.zones,
        register_present,
        suppression_present,
    )


# --- asks left by an earlier run -------------------------------------------------------------


def _settle_expired(c: _Campaign) -> None:
    """A ``pending`` ask whose links expired before any run could send it (deferred until
    then) is settled ``failed``: the person could not be asked. A dry run only counts."""
    if not c.register_present:
        return
    reg = c.register
    expired = and_(
        reg.c.category == c.category.key,
        reg.c.table_name == c.root.name,
        reg.c.status == "pending",
        reg.c.answer.is_(None),
        reg.c.expires_on < c.ctx.as_of,
    )
    with c.target.engine.begin() as conn:
        if c.dry_run:
            c.result.failed += conn.execute(select(func.count()).select_from(reg).where(expired)).scalar_one()
            return
        settled = conn.execute(update(reg).where(expired).values(status="failed", failure=DEFERRED_UNTIL_EXPIRY))
        c.result.failed += settled.rowcount


def _resend_left_over(c: _Campaign) -> None:
    """Send again, batch by batch, every ask of the category still ``pending`` or ``sending``
    whose links still work, with its own token; a person since suppressed, or whose address
    is gone, is recorded so and not mailed; a held row's ask waits."""
    if not c.register_present:
        return
    last = 0
    while True:
        with c.target.engine.begin() as conn:
            rows = conn.execute(_left_over_query(c, last)).all()
            if not rows:
                return
            last = rows[-1].ask_id
            asks = _settle_unmailable(conn, c, rows)
        for ask in asks:
            if _deliver(c, ask):
                c.result.resent += 1


def _left_over_query(c: _Campaign, after: int) -> Any:
    reg, root = c.register, c.root
    return (
        select(
            reg.c.ask_id,
            reg.c.token_id,
            reg.c.subject_hash,
            reg.c.period_end,
            reg.c.expires_on,
            c.address_column.label("address"),
            _listed(c).label("listed"),
        )
        .select_from(reg.join(root.source, reg.c.row_key == key_text(root.source, root.key_columns)))
        .where(
            reg.c.category == c.category.key,
            reg.c.table_name == root.name,
            reg.c.status.in_(("pending", "sending")),
            reg.c.answer.is_(None),  # left in `sending` by a crash, then answered: it arrived
            reg.c.expires_on >= c.ctx.as_of,
            reg.c.ask_id > after,
            *c.holds.not_held(root, Side.ACTIVE, c.category.key),
        )
        .order_by(reg.c.ask_id)
        .limit(c.block.batch_size)
    )


def _settle_unmailable(conn: Connection, c: _Campaign, rows: Sequence[Any]) -> list[_Ask]:
    """Mark the left-over asks that can no longer be mailed (address gone, unusable or changed
    since the ask was recorded, person suppressed); return the others to send. A dry run
    marks nothing."""
    asks: list[_Ask] = []
    for row in rows:
        status, failure = _status(row.address, row.listed), None
        if status == "pending" and subject_hash(c.key, ADDRESS_KIND, row.address) != row.subject_hash:
            status, failure = "no_address", ADDRESS_CHANGED
        if status == "pending":
            asks.append(_Ask(row.ask_id, row.token_id, row.address.strip(), row.period_end, row.expires_on))
            continue
        setattr(c.result, status, getattr(c.result, status) + 1)
        if not c.dry_run:
            values = {"status": status} if failure is None else {"status": status, "failure": failure}
            conn.execute(update(c.register).where(c.register.c.ask_id == row.ask_id).values(**values))
    if c.dry_run:
        c.result.sent += len(asks)
        c.result.resent += len(asks)
        return []
    return asks


# --- new asks ----------------------------------------------------------------------------------


def _ask_new(c: _Campaign) -> None:
    """Record, then send, the asks of the rows the notice window has reached, a batch at a time
    in primary-key order (the key of the last row read is where the next batch starts)."""
    after: tuple[Any, ...] | None = None
    while True:
        with c.target.engine.begin() as conn:
            rows = conn.execute(_new_asks_query(c, after)).all()
            if not rows:
                return
            after = tuple(rows[-1][: len(c.root.key_columns)])
            asks = _record(conn, c, rows)
        for ask in asks:
            _deliver(c, ask)


def _new_asks_query(c: _Campaign, after: tuple[Any, ...] | None) -> Any:
    root, reg = c.root, c.register
    keys = [root.source.c[k] for k in root.key_columns]
    day = type_coerce(period_end(root, c.category, c.target.dialect, c.zones), Date)
    conditions = [
        *(k.is_not(None) for k in keys),  # no register row can name it: nobody asks or answers
        root.ageable(),
        in_notice_window(root, c.category, c.ctx.as_of, c.zones),
        *c.holds.not_held(root, Side.ACTIVE, c.category.key),
    ]
    if c.register_present:
        conditions.append(
            not_(
                exists().where(
                    reg.c.category == c.category.key,
                    reg.c.table_name == root.name,
                    reg.c.row_key == key_text(root.source, root.key_columns),
                    reg.c.period_end == day,
                )
            )
        )
    if after is not None:
        conditions.append(tuple_(*keys) > tuple_(*after) if len(keys) > 1 else keys[0] > after[0])
    return (
        select(
            *(k.label(f"key_{i}") for i, k in enumerate(keys)),
            key_text(root.source, root.key_columns).label("row_key"),
            day.label("period_end"),
            c.address_column.label("address"),
            _listed(c).label("listed"),
        )
        .where(and_(*conditions))
        .order_by(*keys)
        .limit(c.block.batch_size)
    )


def _record(conn: Connection, c: _Campaign, rows: Sequence[Any]) -> list[_Ask]:
    """One register row per selected row (one transaction: the caller's), each with its own
    token id; the pending ones come back to be sent. A dry run only counts."""
    now = instants.utc_now()
    records, asks = [], []
    for row in rows:
        status = _status(row.address, row.listed)
        token_id = new_token_id()
        expires_on = _expires_on(c, row.period_end)
        records.append(
            {
                "category": c.category.key,
                "table_name": c.root.name,
                "row_key": row.row_key,
                "period_end": row.period_end,
                "subject_hash": subject_hash(c.key, ADDRESS_KIND, row.address) if status != "no_address" else None,
                "token_id": token_id,
                "expires_on": expires_on,
                "status": status,
                "recorded_at": now,
                "run_id": c.ctx.run_id,
                "policy_version": c.ctx.policy_version,
            }
        )
        c.result.recorded += 1
        if status == "pending":
            asks.append(_Ask(0, token_id, row.address.strip(), row.period_end, expires_on))
        else:
            setattr(c.result, status, getattr(c.result, status) + 1)
    if c.dry_run:
        c.result.sent += len(asks)
        return []
    conn.execute(insert(c.register), records)
    ids = dict(
        conn.execute(
            select(c.register.c.token_id, c.register.c.ask_id).where(
                c.register.c.token_id.in_([a.token_id for a in asks])
            )
        ).all()
    )
    return [_Ask(ids[a.token_id], a.token_id, a.address, a.period_end, a.expires_on) for a in asks]


def _expires_on(c: _Campaign, day: date) -> date:
    """The last day the links are accepted: the answer is awaited ``awaited_days`` from today,
    and never past the notice window (D + notice_days), after which the row may have left."""
    return min(c.ctx.as_of + timedelta(days=c.block.awaited_days), day + timedelta(days=c.block.notice_days)) - (
        timedelta(days=1)
    )


# --- shared ------------------------------------------------------------------------------------


def _status(address: str | None, listed: Any) -> str:
    """``no_address`` before ``suppressed``: an unusable address cannot be on the list."""
    if not usable_address(address):
        return "no_address"
    return "suppressed" if listed else "pending"


def _listed(c: _Campaign) -> Any:
    """The row's address hashes to an entry of the suppression list (canonical or former form);
    false when the list does not exist yet."""
    if not c.suppression_present:
        return false()
    suppression = store.suppression_table(c.target.archive_schema)
    return keyed_hash_in(c.key, ADDRESS_KIND, c.address_column, c.target.dialect, select(suppression.c.subject_hash))


def _deliver(c: _Campaign, ask: _Ask) -> bool:
    """Hand one notice to the server through the outbox: ``sending`` committed first, then the
    SMTP hand-over, then ``sent`` (or ``failed`` / back to ``pending``). True when accepted."""
    notice = compose(
        c.category,
        to=ask.address,
        token_id=ask.token_id,
        key=c.key,
        period_end=ask.period_end,
        expires_on=ask.expires_on,
    )
    _set(c, ask, status="sending")
    c.attempted += 1
    try:
        c.mailer.send(notice)
    except (smtplib.SMTPException, OSError, UnicodeEncodeError) as exc:  # what a mailer raises about a send
        try:
            refusal = classify(exc, ask.address)
        except (smtplib.SMTPException, OSError, UnicodeEncodeError):
            raise MailServerFault(f"{type(exc).__name__}: {describe(exc, [ask.address])}") from None
        if refusal.permanent:
            _set(c, ask, status="failed", failure=str(refusal))
            c.result.failed += 1
            _count_refusal(c, ask, refusal.code, refusal.words)
        else:
            _set(c, ask, status="pending", failure=str(refusal))
            c.result.deferred += 1
            c.streak.clear()
        return False
    _set(c, ask, status="sent", sent_at=instants.utc_now(), failure=None)
    c.result.sent += 1
    c.streak.clear()
    return True


def _count_refusal(c: _Campaign, ask: _Ask, code: int, words: str) -> None:
    """The circuit breaker's count: refusals in a row with one code (another code starts a
    new count); at ``BREAKER_STREAK`` it trips."""
    if c.streak and c.streak[-1][1] != code:
        c.streak.clear()
    c.streak.append((ask, code, words))
    if len(c.streak) >= BREAKER_STREAK:
        _trip(c)


def _check_whole_run(c: _Campaign) -> None:
    """A run that tried fewer than ``BREAKER_STREAK`` notices, at least two, all refused with
    one code: the same server fault."""
    if 2 <= len(c.streak) == c.attempted:
        _trip(c)


def _trip(c: _Campaign) -> None:
    """Put the refused asks of the streak back to ``pending`` (their failure text kept) and
    stop the campaign with ``MailServerFault``."""
    ids = [ask.ask_id for ask, _, _ in c.streak]
    with c.target.engine.begin() as conn:
        conn.execute(update(c.register).where(c.register.c.ask_id.in_(ids)).values(status="pending"))
    c.result.failed -= len(ids)
    c.result.deferred += len(ids)
    _, code, words = c.streak[-1]
    raise MailServerFault(
        f'the SMTP server refused {len(ids)} recipients in a row for good with "{code} {words}" and accepted '
        f"none: a fault of the server, not of the people; their asks of {c.category.key} are kept pending for "
        "the retry"
    )


def _set(c: _Campaign, ask: _Ask, **values: Any) -> None:
    with c.target.engine.begin() as conn:
        conn.execute(update(c.register).where(c.register.c.ask_id == ask.ask_id).values(**values))


def _audit(c: _Campaign, policy: RetentionPolicy) -> None:
    """One ``reconsent_campaign`` event: counts only (row_count: the notices sent)."""
    with c.target.engine.begin() as conn:
        audit.record(
            conn,
            store.audit_table(c.target.archive_schema, policy.audit_table),
            c.ctx,
            category=c.category.key,
            action="reconsent_campaign",
            row_count=c.result.sent,
            table_name=c.root.name,
            details=c.result.counts(),
        )

"""One run of a category at a time, even across two Airflow deployments on one database.

``max_active_runs=1`` keeps one deployment's runs apart; nothing in Airflow stops a second
deployment (a staging copy pointed at production, a migration overlap). Two locks in the
target database do:

* a **run lease**, a row per category in ``<archive>.retention_run_locks``: the first step
  of a run takes it, each step renews it, the run's summary gives it back. A step of
  another run finds it taken and fails with ``CategoryBusy`` (Airflow retries it later),
  so two runs never interleave their steps. A lease not renewed for ``STALE_AFTER`` (its
  deployment died) may be taken over; the takeover is logged.
* a **step lock** while a step works: on PostgreSQL a session advisory lock, which the
  server drops by itself if the process dies; on SQLite the database's own write lock
  already serialises every batch. It keeps a step and its zombie twin (a retried task
  whose old process still runs) apart.

Taking the lease is one short transaction, serialised by a transaction advisory lock on
PostgreSQL and by SQLite's write lock (``BEGIN IMMEDIATE``).

An erasure must not meet a batch half-way: a batch has locked the person's active row and
is moving it, the erasure's ``DELETE`` waits for that row lock, and when the batch commits
the row is gone from where the erasure looked (PostgreSQL re-checks a waiting ``DELETE``
only against the row it waited for) - the erasure then deletes nothing and the row lives
on in the archive. So on PostgreSQL every batch holds a **shared** transaction advisory
lock (``batch_in_progress``) and an erasure takes it **exclusively** (``wait_for_batches``)
before it looks for anything: it waits for the batches in flight to commit (bounded), new
batches wait for the erasure's one short transaction, and the erasure then reads the rows
where the batches put them. On SQLite ``BEGIN IMMEDIATE`` serialises them already.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from include.retention.database import store
from include.retention.database.capabilities import capabilities_of
from include.retention.database.target import Target
from include.retention.dates import instants
from include.retention.errors import RetentionError

log = logging.getLogger(__name__)
STALE_AFTER = timedelta(hours=24)


# How long an erasure waits for the batches in flight (each is one short transaction).
ERASURE_WAIT_SECONDS = 120.0
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout expired


class CategoryBusy(RuntimeError):
    """Another run holds the category. Not a ``RetentionError``: waiting and retrying helps."""


class BatchStillRunning(RetentionError):
    """An erasure waited its bounded time for a running batch; nothing was done."""


def lock_key(category: str, purpose: str = "step") -> int:
    """A stable 63-bit advisory lock key for a category (the same in every deployment); the
    step lock and the lease's short transaction lock use different keys, so that renewing
    the lease never waits for the step lock of its own run."""
    return int.from_bytes(hashlib.sha256(f"retention:{purpose}:{category}".encode()).digest()[:8], "big") >> 1


@contextmanager
def category_step(target: Target, category: str, run_id: str, dag_id: str) -> Iterator[None]:
    """Hold the category for one step of run ``run_id``: renew the run's lease, then keep the
    step lock until the step ends. Raise ``CategoryBusy`` naming the holder otherwise."""
    take_lease(target, category, run_id, dag_id)
    if not target.capabilities.advisory_locks:
        yield
        return
    with target.engine.connect() as conn:
        key = lock_key(category)
        if not conn.execute(select(func.pg_try_advisory_lock(key))).scalar_one():
            raise CategoryBusy(
                f"a step of category {category!r} is running in another process (a retried task "
                "whose previous attempt still runs?); retry when it ends"
            )
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(key)))
            conn.commit()


def batch_key() -> int:
    """The advisory lock key every batch shares and every erasure takes alone (all categories:
    a batch of one category moves another's retained dependants)."""
    return lock_key("*", "batch")


def batch_in_progress(conn: Connection) -> None:
    """Called first in each batch's transaction: a running erasure makes the batch wait for it,
    and an erasure that comes later waits for the batch (``wait_for_batches``)."""
    if capabilities_of(conn.dialect.name).advisory_locks:
        conn.execute(select(func.pg_advisory_xact_lock_shared(batch_key())))


def wait_for_batches(conn: Connection, seconds: float = ERASURE_WAIT_SECONDS) -> None:
    """Wait, at most ``seconds``, until no batch is in flight, and keep batches out until the
    caller's transaction ends. Raise ``BatchStillRunning`` past the wait (the caller's
    transaction is then aborted: nothing it did stays)."""
    if not capabilities_of(conn.dialect.name).advisory_locks:
        return
    previous = conn.execute(select(func.current_setting("lock_timeout"))).scalar_one()
    conn.execute(select(func.set_config("lock_timeout", f"{max(1, round(seconds * 1000))}ms", True)))
    try:
        conn.execute(select(func.pg_advisory_xact_lock(batch_key())))
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        raise BatchStillRunning(
            f"the erasure waited {seconds:g} s for a running retention batch to commit and it is still running; "
            "nothing was erased: run the request again (with the same reference) once the batch has ended"
        ) from None
    conn.execute(select(func.set_config("lock_timeout", previous, True)))


def take_lease(target: Target, category: str, run_id: str, dag_id: str) -> None:
    table = store.locks_table(target.archive_schema)
    target.ensure_archive_schema()
    now = instants.utc_now()
    with target.engine.begin() as conn:
        store.ensure_table(conn, table)
        if target.capabilities.advisory_locks:
            conn.execute(select(func.pg_advisory_xact_lock(lock_key(category, "lease"))))
        held = conn.execute(select(table).where(table.c.category == category)).first()
        if held is None:
            conn.execute(
                insert(table).values(
                    category=category, run_id=run_id, dag_id=dag_id, holder=_holder(), acquired_at=now, renewed_at=now
                )
            )
            return
        if held.run_id != run_id:
            if now - held.renewed_at < STALE_AFTER:  # two aware UTC instants, on either backend
                raise CategoryBusy(
                    f"category {category!r} is being enforced by run {held.run_id!r} of {held.dag_id} "
                    f"({held.holder}, since {held.acquired_at:%Y-%m-%d %H:%M} UTC); two runs must "
                    "not interleave - this one retries later"
                )
            log.warning(
                "Taking over the lease of category %s from run %s, not renewed since %s (its deployment stopped?)",
                category,
                held.run_id,
                held.renewed_at,
            )
        conn.execute(
            update(table)
            .where(table.c.category == category)
            .values(
                run_id=run_id,
                dag_id=dag_id,
                holder=_holder(),
                renewed_at=now,
                **({} if held.run_id == run_id else {"acquired_at": now}),
            )
        )


def release_lease(target: Target, category: str, run_id: str) -> None:
    """Give the lease back at the end of the run (only if this run holds it)."""
    table = store.locks_table(target.archive_schema)
    with target.engine.begin() as conn:
        if store.table_exists(conn, table):
            conn.execute(delete(table).where(table.c.category == category, table.c.run_id == run_id))


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:250]

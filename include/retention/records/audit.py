"""The audit trail: what was done, to how many rows, under which policy, by which run.

Events live in ``<archive_schema>.<audit_table>`` in the target database, so a batch's
event is written in the same transaction as the batch itself: a batch that rolls back
leaves no event behind, and a committed batch always has one.

Events never hold personal data. They carry counts, dates and names from the policy;
``details`` accepts numbers, booleans and dates only (no free text), so a value from a
row cannot slip in by accident.

The trail is tamper-evident: each event stores the SHA-256 of a canonical serialisation
of its fields and of the previous event's hash (``prev_hash``, ``event_hash``), with
contiguous ids; ``verify_chain`` recomputes it and names the first event that was
altered, removed, reordered or forged. Writers are serialised while they append (an
advisory lock on PostgreSQL; SQLite's write transaction already is exclusive), and the
database itself refuses UPDATE and DELETE on the table (triggers on both backends).

A log re-hashed from some event on, or cut short, is consistent in itself: only hashes
copied outside the database when they were written show it (``check_anchors``): the run
certificates' and the daily anchors' (``anchors.py``), compared by ``certificate.chain_status``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    Table,
    func,
    select,
)
from sqlalchemy.engine import Connection

from include.retention.database.capabilities import capabilities_of
from include.retention.dates import instants

ACTIONS = (
    "plan",
    "archive",
    "delete",
    "anonymize",
    "quality_finding",
    "validation",
    "run_summary",
    "rights_request",
    "erase",
    "rectify",
    "legal_hold",
    "approval",
    "reconsent_campaign",
    "reconsent_answer",
)


@dataclass(frozen=True)
class RunContext:
    """Who is acting and for which day; stamped on every event and archived row."""

    run_id: str
    dag_id: str
    as_of: date
    policy_version: str
    dry_run: bool = False


def record(
    conn: Connection,
    table: Table,
    ctx: RunContext,
    *,
    category: str,
    action: str,
    row_count: int,
    table_name: str | None = None,
    details: Mapping[str, Any] | None = None,
    subject_hash: str | None = None,
) -> None:
    """Append one event to the chain, inside the caller's transaction.

    ``subject_hash`` says whom the event is about, as a keyed hash (``identity.subject_hash``):
    anything but 64 hex digits is refused, so an identifier itself cannot be stored by mistake.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
    if subject_hash is not None and not _SUBJECT_HASH.match(subject_hash):
        raise TypeError("audit subject_hash: only a keyed hash (64 hex digits) may be logged, never an identifier")
    if capabilities_of(conn.dialect.name).advisory_locks:
        # Held until the caller's transaction ends: appends never interleave.
        conn.execute(select(func.pg_advisory_xact_lock(_CHAIN_LOCK)))
    last = conn.execute(select(table.c.event_id, table.c.event_hash).order_by(table.c.event_id.desc()).limit(1)).first()
    event = {
        "event_id": (last.event_id + 1) if last else 1,
        "recorded_at": instants.utc_now(),
        "run_id": ctx.run_id,
        "dag_id": ctx.dag_id,
        "category": category,
        "table_name": table_name,
        "action": action,
        "row_count": int(row_count),
        "policy_version": ctx.policy_version,
        "as_of": ctx.as_of,
        "dry_run": ctx.dry_run,
        "details": _serialise_details(details) if details else None,
        "subject_hash": subject_hash,
        "prev_hash": last.event_hash if last else GENESIS,
    }
    event["event_hash"] = event_hash(event)
    conn.execute(table.insert().values(**event))


GENESIS = "0" * 64
_CHAIN_LOCK = 0x52455441  # "RETA": one advisory lock for every appender of the trail
_HASHED = (
    "event_id",
    "recorded_at",
    "run_id",
    "dag_id",
    "category",
    "table_name",
    "action",
    "row_count",
    "policy_version",
    "as_of",
    "dry_run",
    "details",
    "subject_hash",
    "prev_hash",
)
_SUBJECT_HASH = re.compile(r"^[0-9a-f]{64}$")
_ANCHOR_CHUNK = 1000  # ids per statement: below SQLite's and PostgreSQL's bound on parameters


def event_hash(event: Mapping[str, Any]) -> str:
    """SHA-256 of the event's canonical serialisation (which includes the previous hash)."""
    return hashlib.sha256(canonical(event).encode("utf-8")).hexdigest()


def canonical(event: Mapping[str, Any]) -> str:
    """Field order, types and time zone fixed, so the same event always gives the same bytes,
    whichever database it was read back from."""

    def normal(name: str, value: Any) -> Any:
        if name == "recorded_at":
            # The same bytes for an aware UTC instant, for its '+00:00' text on SQLite, and for
            # the naive UTC text earlier versions wrote there: logs written before still verify.
            return instants.read_instant(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if name == "as_of":
            return value.isoformat()
        if name == "dry_run":
            return bool(value)
        return value

    return json.dumps([normal(n, event[n]) for n in _HASHED], separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of ``verify_chain``: ``broken_at`` is the first event that does not hold;
    ``head_hash`` the hash of the last event read, when the whole chain held (what a daily
    anchor copies: it covers every event before it)."""

    events: int
    broken_at: int | None = None
    reason: str = ""
    head_hash: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify_chain(conn: Connection, table: Table) -> ChainReport:
    """Recompute the whole chain in id order; stop at the first event that does not hold.

    An altered event no longer matches its hash; a removed one leaves a gap in the ids and
    a ``prev_hash`` that points at nothing; reordered or forged events break the link to
    their predecessor (re-hashing them would break every later link instead).
    """
    expected_id, previous, count = 1, GENESIS, 0
    for row in conn.execute(select(table).order_by(table.c.event_id)):
        event = dict(row._mapping)
        count += 1
        if event["event_id"] != expected_id:
            return ChainReport(count, expected_id, f"event {expected_id} is missing (next is {event['event_id']})")
        if event["prev_hash"] != previous:
            return ChainReport(count, event["event_id"], "does not link to the event before it")
        if event_hash(event) != event["event_hash"]:
            return ChainReport(count, event["event_id"], "its content no longer matches its hash")
        expected_id, previous = expected_id + 1, event["event_hash"]
    return ChainReport(count, head_hash=previous if count else "")


def check_anchors(conn: Connection, table: Table, anchors: Iterable[tuple[int, str, str]]) -> list[str]:
    """Compare hashes kept outside the database with the log; return what does not match.

    The chain alone cannot reveal a log rewritten from the first event on, hashes
    recomputed, or shortened by its last events (someone with DDL rights could). Hashes
    copied elsewhere when they were written - each run's certificate names its first and
    last, each daily anchor the last event verified - pin the log down up to them: a log
    shorter than an anchor lacks its event, a re-hashed one has another hash there.
    ``anchors`` are ``(event_id, event_hash, where the copy is)``.
    """
    anchors = list(anchors)
    wanted = sorted({event_id for event_id, _, _ in anchors})
    stored: dict[int, str] = {}
    for start in range(0, len(wanted), _ANCHOR_CHUNK):  # years of anchors: more ids than one statement may bind
        chunk = wanted[start : start + _ANCHOR_CHUNK]
        query = select(table.c.event_id, table.c.event_hash).where(table.c.event_id.in_(chunk))
        stored.update(conn.execute(query).all())
    return [
        f"event {event_id} named in {source} "
        + ("is missing from the log" if event_id not in stored else "has another hash in the log")
        for event_id, event_hash, source in anchors
        if stored.get(event_id) != event_hash
    ]


def _serialise_details(details: Mapping[str, Any]) -> str:
    return json.dumps(_only_counts(details, "details"), sort_keys=True, separators=(",", ":"))


# The only text an event may carry: names of checks, never values from a row.
_LABEL_KEYS = {
    "suite",
    "expectation",
    "request_type",
    "outcome",
    "hold_reference",
    "hold_scope",
    "partition",
    # re-consent answers: the answer given or why a token was refused, and the ask's category
    "answer",
    "refused",
    "category",
}
_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # fullmatch: "$" would let a final newline in


def _only_counts(value: Any, path: str) -> Any:
    """Numbers, booleans, dates and nested mappings of them; anything else is refused
    (except check names under ``suite`` and ``expectation``)."""
    if isinstance(value, Mapping):
        return {str(k): _only_counts(v, f"{path}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and path.rsplit(".", 1)[-1] in _LABEL_KEYS and _LABEL.fullmatch(value):
        return value
    raise TypeError(f"audit {path}: only counts, flags and dates may be logged, not {type(value).__name__}")


def events(conn: Connection, table: Table, *conditions: Any, **filters: Any) -> list[dict[str, Any]]:
    """Events in the order they were written, filtered by conditions and column equality."""
    query = select(table).where(*conditions).order_by(table.c.event_id)
    for name, value in filters.items():
        query = query.where(table.c[name] == value)
    return _decoded(conn, query)


def latest_events(
    conn: Connection, table: Table, *conditions: Any, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """One page of events, newest first (for browsing the log)."""
    query = select(table).where(*conditions).order_by(table.c.event_id.desc()).limit(limit).offset(offset)
    return _decoded(conn, query)


def _decoded(conn: Connection, query: Any) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else {}
    return rows

"""The register of data-subject requests: what was asked, by when it must be answered, and
what was done, per table.

Every request is recorded, whatever happens next: a request whose identity check is still
pending is recorded and stops there; a verified one is handled and its outcome written.
The register is a table of the project (``store.register_table``) named by the policy key
``rights_register``; the category whose table it is governs its retention (kept while the
request is open, then archived as evidence). It holds what the answer needs (reference,
type, dates, outcome per table, the requester's e-mail to reply to) - the audit trail only
holds keyed hashes.

Deadlines (GDPR art. 12(3)): one month from receipt, calendar arithmetic in the company's
time zone (received 31 January -> due 28 February); extendable by two more months for a
complex request, with its reason recorded.

A request's handling and its closing are one transaction, so a worker that dies half-way
(SIGKILL, a lost node) leaves it ``in_progress`` with nothing of the handling done. Running
it again with the same reference resumes it: the handling transaction first claims the
register row (an ``UPDATE ... WHERE status = 'in_progress'``: on PostgreSQL a row lock held to
the commit, on SQLite the write lock), so two workers never carry it out twice, and a request
another worker completed meanwhile is refused as completed. The request is recorded, and
audited as received, once. It is resumed only about the same person: the identifiers given
again must be exactly those it was received with, compared as the keyed hashes of its
received events (which carry the register's ``request_id``); another person, or more or
fewer identifiers, is refused naming the reference - never an identifier.

A request recorded ``pending_identity`` is carried out the same way, once its identity is
checked: run again with the same reference, type, receipt date and person and the identity
verified, it is promoted to ``in_progress`` (audited as received again, with
``identity_verified: true``) and handled as a verified request; its deadline still runs from its receipt.
Run again still unverified, it stays pending, recorded once.

Every text field is checked before any SQL: a NUL byte (PostgreSQL cannot store one) or a
value longer than its column is refused naming the field, never showing the value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Table,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from include.retention.database import store
from include.retention.database.identity import Subject, SubjectKey
from include.retention.database.store import suppression_table
from include.retention.database.target import Target
from include.retention.dates import instants
from include.retention.dates.instants import normalise_sqlite_text
from include.retention.dates.periods import Period
from include.retention.errors import RetentionError
from include.retention.policy.model import RetentionPolicy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.records.suppression import suppress
from include.retention.rights.erasure import REQUEST_EVENTS, erase_in
from include.retention.rights.export import export_subject
from include.retention.rights.rectify import rectify_in

REQUEST_TYPES = ("access", "portability", "rectification", "erasure", "opposition", "consent_withdrawal")
STATUSES = ("pending_identity", "in_progress", "completed", "failed")
RESPONSE_PERIOD = Period(months=1)
EXTENDED_PERIOD = Period(months=3)  # the month, plus two more (art. 12(3))
INSTANT_COLUMNS = ("received_at", "closed_at")  # instants.UtcDateTime: stored with their zone
EXTENSION_REASON_LENGTH = 2000
IDENTIFIER_LENGTH = 200  # as the trigger form allows (dags/subject_request.py)


def check_text(field_name: str, value: object, max_length: int) -> None:
    """Refuse, before any SQL, a text PostgreSQL cannot store (a NUL byte) or one longer than
    its column: a clear error naming the field - never the value, which may be personal data."""
    if value is None:
        return
    if not isinstance(value, str):
        raise RetentionError(f"{field_name}: expected text, got {type(value).__name__}")
    if "\x00" in value:
        raise RetentionError(f"{field_name}: contains a NUL byte (\\x00), which cannot be stored; remove it")
    if len(value) > max_length:
        raise RetentionError(f"{field_name}: {len(value)} characters, at most {max_length} allowed")


def check_identifiers(subject: Subject) -> None:
    """The person's identifiers, checked as the request's other fields (named by their kind):
    in their canonical form, and as given (``legacy``: the canonical form drops invisible
    characters, so a NUL byte is only seen there)."""
    for kind, value in (*subject.identifiers, *getattr(subject, "legacy", ())):
        check_text(kind, value, IDENTIFIER_LENGTH)


@dataclass(frozen=True)
class RequestRecord:
    """A request as received: what the form says."""

    reference: str
    request_type: str
    received: date
    identity_verified: bool
    requester_email: str | None = None
    extension_reason: str | None = None

    def __post_init__(self) -> None:
        check_text("request_type", self.request_type, 30)
        if self.request_type not in REQUEST_TYPES:
            raise RetentionError(f"request type {self.request_type!r}: use one of {', '.join(REQUEST_TYPES)}")
        check_text("reference", self.reference, store.REQUEST_REFERENCE_LENGTH)
        if not self.reference.strip():
            raise RetentionError("the request reference is empty")
        check_text("requester_email", self.requester_email, 200)
        check_text("extension_reason", self.extension_reason, EXTENSION_REASON_LENGTH)

    @property
    def due(self) -> date:
        return due_date(self.received, extended=self.extension_reason is not None)


def due_date(received: date, *, extended: bool = False) -> date:
    """One month after receipt, three when extended (art. 12(3)), counted from receipt."""
    return (EXTENDED_PERIOD if extended else RESPONSE_PERIOD).add_to(received)


def record(conn: Connection, register: Table, request: RequestRecord, received_at: datetime) -> int:
    """Write the request (status ``pending_identity`` or ``in_progress``); refuse a reference
    that is already registered, so a retried trigger never handles a request twice."""
    return record_or_resume(conn, register, request, received_at, resume=False)[0]


def record_or_resume(
    conn: Connection,
    register: Table,
    request: RequestRecord,
    received_at: datetime,
    resume: bool = True,
    *,
    trail: Table | None = None,
    subject_hashes: Sequence[str] = (),
) -> tuple[int, str]:
    """Write the request, or - with ``resume`` - find it again: ``(request_id, how)``, ``how``
    being ``recorded`` (new), ``resumed`` (a dead worker left it ``in_progress``, or it is
    still ``pending_identity`` and still unverified) or ``verified`` (it was
    ``pending_identity`` and its identity is now verified: promoted to ``in_progress``).
    Found again only as the same request: type and receipt date, and the same person
    (``subject_hashes``, the keyed hashes of the identifiers given now, must be those its
    received events in the audit ``trail`` recorded - see ``check_same_subject``). Any other
    known reference is refused, naming its status."""
    known = conn.execute(
        select(register.c.request_id, register.c.status, register.c.request_type, register.c.received_at).where(
            register.c.reference == request.reference
        )
    ).first()
    if known and resume and _resumable(known.status, request.identity_verified):
        if known.request_type != request.request_type or known.received_at != received_at:
            raise RetentionError(
                f"request {request.reference!r} is in the register as a {known.request_type} "
                f"received {known.received_at:%Y-%m-%d}, status {known.status}; running it again "
                "must give the same type and receipt date (or use a new reference)"
            )
        check_same_subject(conn, trail, request, known.request_id, subject_hashes, known.status)
        if known.status == "pending_identity" and request.identity_verified:
            verify_identity(conn, register, request, known.request_id)
            return known.request_id, "verified"
        return known.request_id, "resumed"
    if known:
        raise RetentionError(
            f"request {request.reference!r} is already in the register (id {known.request_id}, status {known.status})"
        )
    return conn.execute(
        insert(register)
        .values(
            reference=request.reference,
            request_type=request.request_type,
            requester_email=request.requester_email,
            received_at=received_at,
            due_at=request.due,
            extended=request.extension_reason is not None,
            extension_reason=request.extension_reason,
            identity_verified=request.identity_verified,
            status="in_progress" if request.identity_verified else "pending_identity",
        )
        .returning(register.c.request_id)
    ).scalar_one(), "recorded"


def _resumable(status: str, identity_verified: bool) -> bool:
    """Whether a known request may be found again by a new trigger: an ``in_progress`` one
    when verified (a dead worker's), a ``pending_identity`` one either way (verified: it is
    carried out; still unverified: it stays pending). Never a closed one."""
    return status == "pending_identity" or (status == "in_progress" and identity_verified)


def verify_identity(conn: Connection, register: Table, request: RequestRecord, request_id: int) -> None:
    """Promote a ``pending_identity`` request whose identity is now verified to ``in_progress``
    (its due date stays the one counted from receipt); refuse it if another trigger has
    promoted it meanwhile (on PostgreSQL the update waits for that one's commit)."""
    promoted = conn.execute(
        update(register)
        .where(register.c.request_id == request_id, register.c.status == "pending_identity")
        .values(status="in_progress", identity_verified=True)
    ).rowcount
    if promoted != 1:
        raise RetentionError(
            f"request {request.reference!r} (id {request_id}) is no longer waiting for its identity "
            "check: another run verified it meanwhile"
        )


def check_same_subject(
    conn: Connection,
    trail: Table | None,
    request: RequestRecord,
    request_id: int,
    subject_hashes: Sequence[str],
    status: str = "in_progress",
) -> None:
    """Refuse to take up again a request about anyone but the person it was recorded about.

    The reference alone says nothing of whom the request is about: run again with another
    person's identifiers, it would erase (or export) their data under the first person's
    entry. The identifiers given now must be exactly those given when it was recorded -
    compared as keyed hashes, those of its received events (``request_id`` in their
    details, their outcome the request's ``status``), never as identifiers; fewer or more
    are refused too. The error names the reference and never an identifier."""
    recorded = _received_hashes(conn, trail, request_id, status) if trail is not None else set()
    if recorded and recorded == set(subject_hashes):
        return
    why = (
        "no received event in the audit log carries its id (recorded by an earlier version, or not by handle)"
        if not recorded
        else f"the {len(set(subject_hashes))} identifier(s) given now are not the {len(recorded)} it was received "
        "with (compared as keyed hashes: or the key changed since)"
    )
    raise RetentionError(
        f"request {request.reference!r} (id {request_id}, status {status}) was not taken up again, as the "
        f"person given now may not be the person it was recorded about: {why}. Run it again with "
        "exactly the identifiers it was received with, or close it by hand and record the other "
        "request under a new reference"
    )


def _received_hashes(conn: Connection, trail: Table, request_id: int, status: str) -> set[str]:
    """The keyed hashes of the request's ``received`` events (one per identifier given) for
    its ``status``: those written when it was recorded, or when its identity was verified."""
    if not store.table_exists(conn, trail):
        return set()
    marked = trail.c.details.like(f'%"request_id":{int(request_id)}%')  # narrowed here, checked exactly below
    events = audit.events(conn, trail, marked, category=REQUEST_EVENTS, action="rights_request")
    return {
        e["subject_hash"]
        for e in events
        if e["details"].get("request_id") == request_id and e["details"].get("outcome") == status
    }


def claim(conn: Connection, register: Table, request: RequestRecord, request_id: int) -> None:
    """The handling transaction's first statement: hold the request while it is carried out,
    or refuse it if another worker has completed it meanwhile (see the module's docstring)."""
    claimed = conn.execute(
        update(register)
        .where(register.c.request_id == request_id, register.c.status == "in_progress")
        .values(status="in_progress")
    ).rowcount
    if claimed != 1:
        status = conn.execute(select(register.c.status).where(register.c.request_id == request_id)).scalar_one()
        raise RetentionError(
            f"request {request.reference!r} is already in the register (id {request_id}, "
            f"status {status}): another worker carried it out meanwhile"
        )


def close(conn: Connection, register: Table, request_id: int, status: str, outcome: dict[str, Any]) -> None:
    """Write the outcome (per table) and close the request."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    conn.execute(
        update(register)
        .where(register.c.request_id == request_id)
        .values(
            status=status,
            outcome=json.dumps(outcome, sort_keys=True, default=str),
            closed_at=instants.utc_now() if status in ("completed", "failed") else None,
        )
    )


@dataclass(frozen=True)
class Deadline:
    reference: str
    request_type: str
    due: date
    days_left: int  # negative: overdue


def open_deadlines(conn: Connection, register: Table, today: date, within_days: int = 7) -> list[Deadline]:
    """Open requests that are overdue or due within ``within_days``, most urgent first."""
    rows = conn.execute(
        select(register.c.reference, register.c.request_type, register.c.due_at)
        .where(register.c.closed_at.is_(None))
        .order_by(register.c.due_at)
    )
    deadlines = [Deadline(r.reference, r.request_type, r.due_at, (r.due_at - today).days) for r in rows]
    return [d for d in deadlines if d.days_left <= within_days]


@dataclass
class Handled:
    """What the handling of one request did."""

    request_id: int
    status: str
    outcome: dict[str, Any]


def handle(
    target: Target,
    policy: RetentionPolicy,
    key: SubjectKey,
    request: RequestRecord,
    subject: Subject,
    ctx: RunContext,
    received_at: datetime,
    changes: dict[str, dict[str, Any]] | None = None,
    correct_start_date: bool = False,
) -> Handled:
    """Record the request, then - once the identity is verified - carry it out.

    The record is committed first, so that every request is in the register even if its
    handling fails; the handling and the closing of the request are one transaction, so a
    request is either fully carried out and marked ``completed``, or not at all. A request a
    dead worker left ``in_progress`` is resumed by running it again, and one left
    ``pending_identity`` is carried out once run again with the identity verified
    (``record_or_resume``).
    """
    check_identifiers(subject)
    register = ensure_register(target, policy)
    target.ensure_archive_schema()  # where the audit log lives, even before any scheduled run
    hashes = subject.hashes(key)
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    with target.engine.begin() as conn:
        request_id, how = record_or_resume(conn, register, request, received_at, trail=trail, subject_hashes=hashes)
        status = "in_progress" if request.identity_verified else "pending_identity"
        if how != "resumed":  # audited as received once per status, however many times it is run
            verified = {"identity_verified": True} if how == "verified" else {}
            _audit_request(conn, target, policy, ctx, request, request_id, hashes, status, details=verified)
    if not request.identity_verified:
        return Handled(request_id, status, {})
    if request.request_type in ("access", "portability"):
        with target.read() as conn:
            path, counts = export_subject(conn, target, policy, subject, request.reference, request.request_type)
        outcome = {"export": str(path), "rows": counts, "no_data_held": not counts}
        with target.engine.begin() as conn:
            claim(conn, register, request, request_id)
            close(conn, register, request_id, "completed", outcome)
            _audit_request(conn, target, policy, ctx, request, request_id, hashes, "completed", sum(counts.values()))
        return Handled(request_id, "completed", outcome)
    with target.engine.begin() as conn:
        claim(conn, register, request, request_id)
        if request.request_type == "rectification":
            done = rectify_in(conn, target, policy, subject, key, ctx, changes or {}, correct_start_date)
            outcome = {"tables": [{"table": d.table, "columns": d.columns, "rows": d.rows} for d in done]}
            _audit_request(
                conn, target, policy, ctx, request, request_id, hashes, "completed", sum(d.rows for d in done)
            )
        else:
            result = erase_in(conn, target, policy, subject, key, ctx, request.request_type)
            outcome = result.to_dict()
            if request.request_type == "opposition":
                outcome["suppressed"] = suppress(
                    conn, suppression_table(target.archive_schema), subject, key, ctx.as_of, request.reference
                )
        close(conn, register, request_id, "completed", outcome)
    return Handled(request_id, "completed", outcome)


def ensure_register(target: Target, policy: RetentionPolicy) -> Table:
    """The register named by the policy, created with the project's layout if missing; an
    existing one must have every column of that layout."""
    if not policy.rights_register:
        raise RetentionError(
            f"{policy.source}: rights_register is not set: name the table that records "
            "data-subject requests (a table of the category that governs them)"
        )
    register = store.register_table(target.source_schema(policy.source_schema), policy.rights_register)
    with target.engine.begin() as conn:
        if store.ensure_table(conn, register):
            return register
        missing = store.missing_columns(conn, register)
    if missing:
        raise RetentionError(
            f"rights register {register.name} lacks column(s) {', '.join(missing)} "
            "of the project's layout (include/retention/database/store.py: register_table)"
        )
    with target.engine.begin() as conn:  # SQLite: what earlier versions wrote gets its zone
        normalise_sqlite_text(conn, register, INSTANT_COLUMNS)
    return register


def _audit_request(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    ctx: RunContext,
    request: RequestRecord,
    request_id: int,
    hashes: list[str],
    status: str,
    rows: int = 0,
    details: dict[str, Any] | None = None,
) -> None:
    """One ``rights_request`` event per identifier hash (a lookup by any of them finds it),
    with the register's ``request_id`` (a number, not the reference): what a resumed request
    is checked against (``check_same_subject``); ``details`` adds to them
    (``identity_verified: true`` when a pending request's identity is checked). (Erasures write theirs in
    ``erasure``.)"""
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    store.ensure_audit_table(conn, trail)
    for subject_hash in hashes:
        audit.record(
            conn,
            trail,
            ctx,
            category=REQUEST_EVENTS,
            action="rights_request",
            row_count=rows,
            subject_hash=subject_hash,
            details={
                "request_type": request.request_type,
                "outcome": status,
                "due": request.due,
                "request_id": request_id,
                **(details or {}),
            },
        )

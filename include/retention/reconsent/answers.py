"""The answers to re-consent notices: a person's yes or no, and the bounces a mailing tool reports.

The company's website (the page the notice's links open) or its mailing tool posts the tokens to
Airflow (the ``reconsent_answer`` DAG: a list, or a CSV read by ``read_answers_csv``); each is
checked here against its signature (``tokens.read``) and the register (``retention_reconsent``).

* **yes**: the ask is marked ``answer=yes`` with ``answered_at`` and ``answered_on`` (the company
  day of the answer), in one transaction with its audit event. The clock restarts from
  ``answered_on``: the asked table's start event reads it (``database/start_events.py``), so plan,
  archive, purge and reports all count from the yes.
* **no**: an opposition, exactly as the ``subject_request`` DAG records one
  (``rights.requests.handle``, reference ``RECONSENT-{ask_id}``, the address read from the asked
  row, when its keyed hash is the ask's - the address the notice went to): the person's rows in the categories that list ``opposition`` in ``deleted_on`` are erased
  and their address suppressed. Then the ask is marked ``answer=no`` and the ask's keyed hash is
  made sure to be on the suppression list (one transaction, with its audit event). The hash is
  the canonical keyed hash of the address the notice went to (``identity.subject_hash``), the
  form the list stores - so a row whose address changed since, or that is gone (erased, or its
  address blanked), still leaves the person suppressed. The address is read from the active
  row, else from its archive twin (which keeps every identifier); with none left there is
  nothing to erase by: no request is recorded, the hash alone is suppressed (``suppressed: 1``
  in the event) and a warning says so. A row whose address changed since the notice is
  treated the same way (``address_changed: true`` in the event too): the
  token proves its holder reads the old address's mail, not that the new one's owner said no.
  A crash between the opposition and the mark: the same token again finds the request under its
  reference - completed: straight to the mark; in progress: resumed with its receipt instant -
  and completes the answer once, even after the token's last day (it was accepted in time).
  Two runs answering the same "no" at the same moment: the requests register lets one carry
  the opposition out and refuses the other (an error: the task fails, its retry marks it).
* **Refused** (audited, returned - never raised, so one bad token does not stop a batch):
  ``forged`` (bad signature or malformed), ``unknown`` (well signed, no such ask), ``expired``
  (after the token's last day), ``replayed`` (the ask already has an answer: a yes then a no
  on the same notice leaves the yes).
* **bounce** (either token of the notice names the ask): status ``failed``, failure ``bounce``
  - the person could not be asked, and the archive step stops waiting for them. Ignored, with
  its reason, when the ask is ``answered``, already ``failed``, or was never sent (``not_sent``).

Every token gives one ``reconsent_answer`` event: category the ask's (``reconsent`` when no ask
is known), ``subject_hash`` the ask's, details ``{answer | refused, category}`` (``bounce: true``
for a bounce; for a no, ``suppressed``: 1 when the ask's hash was not yet on the list). A token
is a credential: it is never logged, audited or put in an error.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Select, Table, select, update
from sqlalchemy.engine import Connection

from include.retention.database import store
from include.retention.database.identifiers import canonical
from include.retention.database.identity import Subject, SubjectKey, subject_hash
from include.retention.database.reflect import Side, TableNode, archive_exists, key_text, open_category
from include.retention.database.target import Target
from include.retention.dates import instants
from include.retention.errors import RetentionError
from include.retention.policy.model import RetentionPolicy
from include.retention.reconsent.tokens import Token, TokenRefused, read
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.records.suppression import suppress_hash
from include.retention.rights.requests import RequestRecord, ensure_register, handle

log = logging.getLogger(__name__)

# The event category of a refused token that names no known ask (forged, or unknown).
NO_ASK = "reconsent"
# Why a reported bounce changed nothing.
BOUNCE_IGNORED = ("answered", "failed", "not_sent")
# Statuses of an ask whose notice was (or may have been) handed to the mail server.
_SENT_OR_SENDING = ("pending", "sending", "sent")
# One batch of answers (a DAG run's list, or one CSV): bounded, so a run stays short.
MAX_ANSWERS = 10_000
MAX_CSV_CHARACTERS = 2_000_000  # about 15,000 lines of a token (110 characters) and an event
CSV_EVENTS = ("answer", "bounce")


@dataclass(frozen=True)
class Outcome:
    """What became of one token: ``answer`` recorded (``yes``, ``no`` or ``bounce``), or
    ``refused`` with its reason; ``category``: the ask's, when the token named a known ask."""

    answer: str | None = None
    refused: str | None = None
    category: str | None = None


@dataclass
class AnswersResult:
    """The counts of a batch of answers and bounces (what the DAG task returns and logs).

    Refusals are counted, not raised: the DPO sees each one in the audit log; whether a run with
    refusals fails is the task's choice (a forged token retried forever should not page anyone)."""

    yes: int = 0
    no: int = 0
    bounced: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        if outcome.refused is not None:
            self.refused[outcome.refused] = self.refused.get(outcome.refused, 0) + 1
        elif outcome.answer == "yes":
            self.yes += 1
        elif outcome.answer == "no":
            self.no += 1
        elif outcome.answer == "bounce":
            self.bounced += 1

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "yes": self.yes,
            "no": self.no,
            "bounced": self.bounced,
            "refused": dict(sorted(self.refused.items())),
            "refused_total": self.refused_total,
        }


@dataclass(frozen=True)
class AnswerFile:
    """A CSV of answers, read: the tokens answered (event ``answer``) and those bounced."""

    tokens: list[str]
    bounces: list[str]


@dataclass(frozen=True)
class _Ask:
    """The register row a token names: what an answer needs of it."""

    ask_id: int
    category: str
    table_name: str
    row_key: str
    subject_hash: str | None
    expires_on: date
    status: str
    answer: str | None


@dataclass(frozen=True)
class _Opposition:
    """The opposition request an earlier run of the same "no" recorded (``RECONSENT-{ask_id}``)."""

    status: str
    received_at: datetime


# --- One answer, one bounce -----------------------------------------------------------------


def answer_token(
    target: Target, policy: RetentionPolicy, key: SubjectKey, ctx: RunContext, token: str, today: date
) -> Outcome:
    """Record the answer a token stands for, or refuse it.

    ``today`` is the real day the answer arrived, in the company's zone (the wall clock) - never
    a run's logical date, which whoever triggers a run may choose: the token's last day is
    checked against it, and a yes restarts the clock from it."""
    register = store.reconsent_table(target.archive_schema)
    target.ensure_archive_schema()
    ask: _Ask | None = None
    try:
        signed = _read(key, token)
        ask = _ask_named(target, register, signed.token_id)
        if ask.answer is not None:
            raise TokenRefused("replayed")
        if signed.answer == "yes":
            _check_in_time(signed, ask, today)
            _check_still_active(target, policy, ask)
            return _record_yes(target, policy, ctx, register, ask, today)
        return _record_no(target, policy, key, ctx, register, signed, ask, today)
    except TokenRefused as refused:
        return _refuse(target, policy, ctx, refused.reason, ask)


def report_bounce(
    target: Target, policy: RetentionPolicy, key: SubjectKey, ctx: RunContext, token: str, today: date
) -> Outcome:
    """Record that the notice a token belongs to bounced: the person could not be asked.

    Either token of the notice names it; its last day does not matter (a bounce may be reported
    late). A bounce after an answer, or about an ask already failed or never sent, is ignored
    and audited with that reason. ``today``: the real day, as for ``answer_token``."""
    register = store.reconsent_table(target.archive_schema)
    target.ensure_archive_schema()
    try:
        token_id = _read(key, token).token_id
        ask = _ask_named(target, register, token_id)
    except TokenRefused as refused:
        return _refuse(target, policy, ctx, refused.reason, None, bounce=True)
    with target.engine.begin() as conn:
        marked = conn.execute(
            update(register)
            .where(
                register.c.ask_id == ask.ask_id,
                register.c.answer.is_(None),
                register.c.status.in_(_SENT_OR_SENDING),
            )
            .values(status="failed", failure="bounce")
        ).rowcount
        if marked == 1:
            _audit(conn, target, policy, ctx, ask, {"bounce": True}, row_count=1)
            return Outcome(answer="bounce", category=ask.category)
        ignored = _ignored_bounce(_find(conn, register, token_id))
    return _refuse(target, policy, ctx, ignored, ask, bounce=True)


def _ignored_bounce(ask: _Ask | None) -> str:
    """Why a bounce changed nothing (read again in the transaction that tried)."""
    if ask is None or ask.answer is not None:
        return "answered"
    return "failed" if ask.status == "failed" else "not_sent"


# --- Checking a token -------------------------------------------------------------------------


def _read(key: SubjectKey, token: object) -> Token:
    """The signed content of a token; anything but text (a JSON number posted by mistake) is forged."""
    if not isinstance(token, str):
        raise TokenRefused("forged")
    return read(key, token)


def _ask_named(target: Target, register: Table, token_id: str) -> _Ask:
    """The ask a well-signed token names, or ``unknown`` (no register yet, or no such row)."""
    with target.read() as conn:
        ask = _find(conn, register, token_id) if store.table_exists(conn, register) else None
    if ask is None:
        raise TokenRefused("unknown")
    return ask


def _find(conn: Connection, register: Table, token_id: str) -> _Ask | None:
    row = conn.execute(
        select(
            register.c.ask_id,
            register.c.category,
            register.c.table_name,
            register.c.row_key,
            register.c.subject_hash,
            register.c.expires_on,
            register.c.status,
            register.c.answer,
        ).where(register.c.token_id == token_id)
    ).first()
    return _Ask(*row) if row is not None else None


def _check_in_time(signed: Token, ask: _Ask, today: date) -> None:
    """A token is accepted up to its last day included (the signed one and the register's agree;
    the earlier wins if they ever did not)."""
    if today > min(signed.expires_on, ask.expires_on):
        raise TokenRefused("expired")


# --- Yes, no --------------------------------------------------------------------------------


def _record_yes(
    target: Target, policy: RetentionPolicy, ctx: RunContext, register: Table, ask: _Ask, today: date
) -> Outcome:
    """Mark the ask answered yes, with its event, in one transaction: the clock restarts from ``today``."""
    with target.engine.begin() as conn:
        _mark(conn, register, ask, "yes", today)
        _audit(conn, target, policy, ctx, ask, {"answer": "yes"}, row_count=1)
    return Outcome(answer="yes", category=ask.category)


def _record_no(
    target: Target,
    policy: RetentionPolicy,
    key: SubjectKey,
    ctx: RunContext,
    register: Table,
    signed: Token,
    ask: _Ask,
    today: date,
) -> Outcome:
    """The opposition (unless an earlier run completed it), then the mark and the suppression
    of the ask's hash. An opposition begun before is carried through whatever the day: the
    answer was accepted in time."""
    reference = f"RECONSENT-{ask.ask_id}"
    begun = _opposition_of(target, policy, reference)
    if begun is None:
        _check_in_time(signed, ask, today)
    not_opposed: str | None = None
    if begun is None or begun.status != "completed":
        received_at = begun.received_at if begun else datetime.combine(today, time.min, policy.zone)
        not_opposed = _oppose(target, policy, key, ctx, ask, reference, received_at)
    details = {"answer": "no", **({"address_changed": True} if not_opposed == "address_changed" else {})}
    with target.engine.begin() as conn:
        _mark(conn, register, ask, "no", today)
        suppressed = (
            suppress_hash(
                conn, store.suppression_table(target.archive_schema), ask.subject_hash, "email", today, reference
            )
            if ask.subject_hash
            else 0
        )
        _audit(conn, target, policy, ctx, ask, {**details, "suppressed": suppressed}, row_count=1)
    return Outcome(answer="no", category=ask.category)


def _opposition_of(target: Target, policy: RetentionPolicy, reference: str) -> _Opposition | None:
    """The request an earlier run of this "no" recorded, if any (the rights register)."""
    rights = ensure_register(target, policy)
    with target.read() as conn:
        row = conn.execute(select(rights.c.status, rights.c.received_at).where(rights.c.reference == reference)).first()
    return _Opposition(row.status, instants.read_instant(row.received_at)) if row is not None else None


def _oppose(
    target: Target,
    policy: RetentionPolicy,
    key: SubjectKey,
    ctx: RunContext,
    ask: _Ask,
    reference: str,
    received_at: datetime,
) -> str | None:
    """The opposition request, as ``subject_request`` records and carries one out - when the
    asked row still holds the address the notice went to. Otherwise only the ask's hash is
    suppressed, and the reason is returned: ``no_address`` (the row or its address is gone), or
    ``address_changed`` (the row holds another address now: the token proves its holder reads
    the mail of the address asked, not of the new one, whose owner must not be erased)."""
    address = _asked_address(target, policy, ask)
    if address is None:
        return _not_opposed(ask, "no_address")
    if not _notice_went_to(key, ask, address):
        return _not_opposed(ask, "address_changed")
    request = RequestRecord(
        reference=reference,
        request_type="opposition",
        received=received_at.astimezone(policy.zone).date(),
        identity_verified=True,  # whoever holds the token received the notice at that address
    )
    handle(target, policy, key, request, Subject.of({"email": address}), ctx, received_at)
    return None


def _notice_went_to(key: SubjectKey, ask: _Ask, address: str) -> bool:
    """Whether ``address`` is the one the notice went to (its keyed hash is the ask's)."""
    return ask.subject_hash is not None and hmac.compare_digest(subject_hash(key, "email", address), ask.subject_hash)


def _not_opposed(ask: _Ask, reason: str) -> str:
    """Say (without the address) why a "no" is not carried out as an opposition; return the reason."""
    log.warning(
        "re-consent 'no' (category %s): not an opposition (%s); the address asked is suppressed by its hash",
        ask.category,
        reason,
    )
    return reason


def _check_still_active(target: Target, policy: RetentionPolicy, ask: _Ask) -> None:
    """A yes restarts the clock of a row still in the active base; once the row left it
    (archived after a bounce or an unanswered window, or erased) there is no clock left to
    restart, and counting one would be a restart that never happened: ``closed``."""
    with target.read() as conn:
        asked = _asked_root(conn, target, policy, ask)
        present = asked is not None and _found(conn, asked[0].table(Side.ACTIVE), asked[0], ask.row_key)
    if not present:
        raise TokenRefused("closed")


def _asked_address(target: Target, policy: RetentionPolicy, ask: _Ask) -> str | None:
    """The address the asked row holds now: in the active table, else in its archive twin (which
    keeps every identifier). None when the policy no longer asks that table, or the row is gone,
    or its address is blank or malformed."""
    with target.read() as conn:
        asked = _asked_root(conn, target, policy, ask)
        if asked is None:
            return None
        root, column = asked
        for table in _homes(conn, root):
            value = _address_in(conn, table, root, column, ask.row_key)
            if value is not None:
                return value
    return None


def _asked_root(conn: Connection, target: Target, policy: RetentionPolicy, ask: _Ask) -> tuple[TableNode, str] | None:
    """The asked table's node and its address column, or None when the policy no longer asks that table."""
    category = policy.categories.get(ask.category)
    if category is None or category.reconsent is None or category.asked_table != ask.table_name:
        return None
    nodes = open_category(conn, policy, category, target.source_schema, target.archive_schema, target.dialect)
    return next(node for node in nodes if node.name == ask.table_name), category.reconsent.address_column


def _found(conn: Connection, table: Table, root: TableNode, row_key: str) -> bool:
    return conn.execute(_row_of(table, root, row_key)).first() is not None


def _row_of(table: Table, root: TableNode, row_key: str) -> Select[Any]:
    """The asked row, found by its key in the register's text form."""
    return select(key_text(table, root.key_columns)).where(key_text(table, root.key_columns) == row_key).limit(1)


def _homes(conn: Connection, root: TableNode) -> Iterator[Table]:
    """Where an asked row may be: its active table, then its archive twin if there is one."""
    yield root.table(Side.ACTIVE)
    if archive_exists(conn, root):
        yield root.table(Side.ARCHIVE)


def _address_in(conn: Connection, table: Table, root: TableNode, column: str, row_key: str) -> str | None:
    if column not in table.c:
        return None
    value = conn.execute(_row_of(table, root, row_key).with_only_columns(table.c[column])).scalar()
    try:
        return value if isinstance(value, str) and canonical("email", value) else None
    except RetentionError:  # malformed since it was asked: nothing to find the person's rows by
        return None


def _mark(conn: Connection, register: Table, ask: _Ask, answer: str, today: date) -> None:
    """Write the answer on the ask - unless another run answered it meanwhile (``replayed``:
    the caller's transaction rolls back)."""
    marked = conn.execute(
        update(register)
        .where(register.c.ask_id == ask.ask_id, register.c.answer.is_(None))
        .values(answer=answer, answered_at=instants.utc_now(), answered_on=today)
    ).rowcount
    if marked != 1:
        raise TokenRefused("replayed")


# --- The audit events -----------------------------------------------------------------------


def _refuse(
    target: Target,
    policy: RetentionPolicy,
    ctx: RunContext,
    reason: str,
    ask: _Ask | None,
    *,
    bounce: bool = False,
) -> Outcome:
    """Audit a refused token (or an ignored bounce) and say why - the reason, never the token."""
    details: dict[str, Any] = {"refused": reason, **({"bounce": True} if bounce else {})}
    with target.engine.begin() as conn:
        _audit(conn, target, policy, ctx, ask, details, row_count=0)
    log.warning(
        "re-consent %s refused: %s (category %s)",
        "bounce" if bounce else "answer",
        reason,
        ask.category if ask else "-",
    )
    return Outcome(refused=reason, category=ask.category if ask else None)


def _audit(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    ctx: RunContext,
    ask: _Ask | None,
    details: Mapping[str, Any],
    row_count: int,
) -> None:
    """One ``reconsent_answer`` event, about the ask's keyed hash when the token named an ask."""
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    store.ensure_audit_table(conn, trail)
    audit.record(
        conn,
        trail,
        ctx,
        category=ask.category if ask else NO_ASK,
        action="reconsent_answer",
        row_count=row_count,
        table_name=ask.table_name if ask else None,
        subject_hash=ask.subject_hash if ask else None,
        details={**details, **({"category": ask.category} if ask else {})},
    )


# --- A batch --------------------------------------------------------------------------------


def answer_all(
    target: Target,
    policy: RetentionPolicy,
    key: SubjectKey,
    ctx: RunContext,
    tokens: Sequence[str],
    bounces: Sequence[str],
    today: date,
) -> AnswersResult:
    """Every answer, then every bounce (a bounce after an answer is then ignored), each on its
    own: a refused token is counted and audited, and the others are recorded all the same.
    ``today``: the real day the batch arrived (see ``answer_token``).

    An answer that fails unexpectedly (a database error, a rights register of the wrong layout)
    does not lose the rest of the batch either: it is logged without its token, the others are
    recorded, and the batch raises at the end - the task fails, so someone looks. Running the
    same batch again is safe: an answer recorded is then refused as ``replayed``, and a "no"
    cut short completes once."""
    given = len(tokens) + len(bounces)
    if given > MAX_ANSWERS:
        raise RetentionError(f"{given:,} answers and bounces in one batch: at most {MAX_ANSWERS:,}; split them")
    result = AnswersResult()
    failed = 0
    steps = [(answer_token, token) for token in tokens] + [(report_bounce, token) for token in bounces]
    for step, token in steps:
        try:
            result.add(step(target, policy, key, ctx, token, today))
        except Exception as exc:  # one answer's failure must not lose the others of the batch
            failed += 1
            log.error("re-consent %s failed: %s", "answer" if step is answer_token else "bounce", _safe_words(exc))
    log.info("re-consent answers: %s", result.to_dict())
    if failed:
        raise RetentionError(
            f"re-consent: {failed} of the {given} answers and bounces failed (their errors are logged above); "
            f"the {given - failed} others are recorded. Fix the cause and post the same batch again: "
            "what was recorded is then refused as replayed"
        )
    return result


def _safe_words(exc: Exception) -> str:
    """What a log may say of an unexpected failure: the engine's own messages never hold a
    token or an address; another library's might quote a statement's parameters (a token id,
    an address), so only its class is named."""
    return (
        str(exc) if isinstance(exc, RetentionError) else f"{type(exc).__name__} (details withheld: they may quote data)"
    )


def read_answers_csv(text: str) -> AnswerFile:
    """The tokens of a CSV of answers: a ``token`` column and an optional ``event`` column
    (``answer``, the default, or ``bounce``), named on the first line in any case.

    A byte-order mark, CRLF line ends and blank lines are fine. A file without a ``token``
    column, a line without a token or with another event, or a file over the bounds is refused
    whole, before anything is recorded, naming the line - never showing a cell (a token is a
    credential, and a file without a header would have one on its first line)."""
    if len(text) > MAX_CSV_CHARACTERS:
        raise RetentionError(f"answers CSV: {len(text):,} characters, at most {MAX_CSV_CHARACTERS:,}: split the file")
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    lines = _filled_lines(reader)
    header = next(lines, None)
    names = [name.strip().lower() for name in (header[1] if header else [])]
    if "token" not in names:
        raise RetentionError(
            "answers CSV: no 'token' column: the first line must name the columns, one of them "
            "'token' (and optionally 'event': answer or bounce)"
        )
    token_at, event_at = names.index("token"), names.index("event") if "event" in names else None
    read_file = AnswerFile([], [])
    for number, cells in lines:
        token, event = _cell(cells, token_at), (_cell(cells, event_at).lower() or "answer")
        if not token:
            raise RetentionError(f"answers CSV: line {number} has no token")
        if event not in CSV_EVENTS:
            raise RetentionError(f"answers CSV: line {number}: the event must be 'answer' or 'bounce'")
        (read_file.bounces if event == "bounce" else read_file.tokens).append(token)
        if len(read_file.tokens) + len(read_file.bounces) > MAX_ANSWERS:
            raise RetentionError(f"answers CSV: more than {MAX_ANSWERS:,} lines: split the file")
    return read_file


def _filled_lines(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """The lines that hold anything, with their line number; a line that is not CSV is refused
    by number (the csv module's own message could quote it)."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise RetentionError(f"answers CSV: line {reader.line_num} is not valid CSV") from None
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells


def _cell(cells: list[str], at: int | None) -> str:
    return cells[at].strip() if at is not None and at < len(cells) else ""

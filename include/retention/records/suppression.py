"""The suppression list: people who opposed prospection, never to be contacted again.

An opposition must be honoured durably (CNIL): the person's prospection data is deleted,
but the company must still recognise them if their address comes back (a purchased list,
a trade-show scan). It keeps the minimum for that: the keyed hash of each identifier
(``identity.subject_hash``), in ``<archive_schema>.retention_suppression`` - no address.

Two guards use it:
- ``refuse_suppressed``: the import and seeding path refuses a batch that would re-add a
  suppressed address, before writing anything;
- ``suppressed_active_rows``: the post-run check counts active rows of the prospection
  categories whose identifier hash is on the list (a row that came in by another path).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Table, func, insert, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.identifiers import canonical_form, legacy_form
from include.retention.database.identity import Subject, SubjectKey, keyed_hash_in, require_keyed_hash_sql
from include.retention.database.reflect import TableNode
from include.retention.errors import RetentionError

# Identifiers by which a prospect is contacted: those are suppressed.
CONTACT_KINDS = ("email", "phone")


def suppress(
    conn: Connection, table: Table, subject: Subject, key: SubjectKey, day: date, reference: str | None
) -> int:
    """Put the subject's contact identifiers on the list under their canonical-form hash
    (idempotent); return how many were not listed before, in either form."""
    store.ensure_table(conn, table)
    wanted = {key.digest(f"{kind}:{value}"): kind for kind, value in subject.identifiers if kind in CONTACT_KINDS}
    if not wanted:
        raise RetentionError(
            "an opposition to prospection needs the person's e-mail or phone number, by which they would be contacted"
        )
    legacy = {key.digest(f"{kind}:{value}") for kind, value in subject.legacy if kind in CONTACT_KINDS}
    known = set(
        conn.execute(select(table.c.subject_hash).where(table.c.subject_hash.in_(set(wanted) | legacy))).scalars()
    )
    new = [
        {"subject_hash": h, "kind": kind, "suppressed_on": day, "request_reference": reference}
        for h, kind in wanted.items()
        if h not in known
    ]
    if new:
        conn.execute(insert(table), new)
    listed_before = len(known & (legacy - set(wanted)))  # listed in the former form only: not new
    return max(len(new) - listed_before, 0)


def suppress_hash(
    conn: Connection, table: Table, subject_hash: str, kind: str, day: date, reference: str | None
) -> int:
    """Put one canonical-form keyed hash (``identity.subject_hash``) on the list as it is
    (idempotent): for a person known by that hash alone - a re-consent ask answered "no" whose
    row, and so whose address, is gone. 1 when it was not listed before."""
    if kind not in CONTACT_KINDS:
        raise ValueError(f"only contact identifiers ({', '.join(CONTACT_KINDS)}) are suppressed, not {kind!r}")
    store.ensure_table(conn, table)
    if conn.execute(select(table.c.subject_hash).where(table.c.subject_hash == subject_hash)).first():
        return 0
    conn.execute(
        insert(table).values(subject_hash=subject_hash, kind=kind, suppressed_on=day, request_reference=reference)
    )
    return 1


def refuse_suppressed(conn: Connection, table: Table, key: SubjectKey, kind: str, values: Iterable[str | None]) -> None:
    """Refuse an import batch holding any suppressed ``kind`` value, naming how many (not which:
    the list must not turn into a way to read addresses back)."""
    given = [v for v in values if v]
    if not given or not store.table_exists(conn, table):
        return
    # Each value under its canonical form and the former one (entries listed before the canonical
    # form); an import value is stored data, so never refused for being malformed, just hashed.
    hashes = [
        {key.digest(f"{kind}:{form}") for form in (canonical_form(kind, v), legacy_form(kind, v)) if form}
        for v in given
    ]
    listed = set(
        conn.execute(select(table.c.subject_hash).where(table.c.subject_hash.in_(set().union(*hashes)))).scalars()
    )
    hits = sum(1 for value_hashes in hashes if value_hashes & listed)
    if hits:
        raise RetentionError(
            f"import refused: {hits} {kind} value(s) of this batch belong to people who opposed "
            "prospection (suppression list); remove them and import again"
        )


@dataclass(frozen=True)
class SuppressedRows:
    table: str
    rows: int


def suppressed_active_rows(
    conn: Connection,
    suppressed: Table,
    key: SubjectKey,
    root: TableNode,
    dialect: str,
    also: Sequence[ColumnElement[bool]] = (),
) -> SuppressedRows:
    """Active rows of ``root`` whose contact identifier hash is on the list, counted in SQL
    (``also``: further conditions, e.g. not under a legal hold)."""
    if not store.table_exists(conn, suppressed):
        return SuppressedRows(root.name, 0)
    columns = [
        (kind, root.source.c[c])
        for kind in CONTACT_KINDS
        for c in root.policy.subject_identifiers.get(kind, [])
        if c in root.source.c
    ]
    if not columns:
        return SuppressedRows(root.name, 0)
    require_keyed_hash_sql(conn, "comparing active rows with the suppression list")
    listed = select(suppressed.c.subject_hash)
    hit = [keyed_hash_in(key, kind, column, dialect, listed) for kind, column in columns]
    rows = conn.execute(select(func.count()).select_from(root.source).where(root.scope, or_(*hit), *also)).scalar_one()
    return SuppressedRows(root.name, rows)

"""Who a row is about, without naming them: identifiers in canonical form and their keyed hashes.

The audit trail must be able to say "this rights request, this legal hold was about
person P" without holding P's e-mail address. It stores ``HMAC-SHA256(key, kind:value)``
of the identifier's canonical form (``identifiers.py``) instead: the same person always
gives the same hash (``  Alice@Example.COM `` and ``alice@example.com``, ``+33 (0)6 12 34 56 78``
and ``06.12.34.56.78`` are one person each), nobody without the
key can test a guess against the log, and the DPO, who has the key, can answer "was
person X erased?" by hashing X's identifier (``rights.erased.was_erased``).

Keyed hashing is pseudonymisation, not anonymisation: the hashes stay personal data
and the key is a secret. It is read from an Airflow Variable or a secrets backend by the
Airflow glue, or from ``$RETENTION_SUBJECT_SECRET``; it never appears in a log or a repr.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, Text, and_, bindparam, func, literal, or_, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.identifiers import canonical, canonical_sql, legacy_form, legacy_sql
from include.retention.errors import RetentionError
from include.retention.settings import KEY_ENV_VAR

# "secret" in the name: Airflow masks the value in task logs and the UI by itself.
KEY_VARIABLE = "retention_subject_secret"
MIN_KEY_LENGTH = 32


class SubjectKey:
    """The HMAC key. Its repr and str never show it, so it cannot leak through a log line."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str | bytes, source: str) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        if len(raw.strip()) < MIN_KEY_LENGTH:
            raise RetentionError(
                f"the subject key from {source} is shorter than {MIN_KEY_LENGTH} characters: "
                "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        self._secret = raw.strip()

    def digest(self, message: str) -> str:
        return hmac.new(self._secret, message.encode("utf-8"), hashlib.sha256).hexdigest()

    def as_sql_parameter(self) -> Any:
        """The key as a bound parameter, for ``keyed_hash_sql`` (never inlined in the SQL text)."""
        return bindparam("subject_key", self._secret.decode("utf-8"), type_=String, literal_execute=False)

    def __repr__(self) -> str:
        return "SubjectKey(<hidden>)"

    __str__ = __repr__


def key_from(variable_value: str | None) -> SubjectKey:
    """The key from the Airflow Variable ``KEY_VARIABLE`` when it is set (the caller reads it,
    task or API server side), else from the environment."""
    if variable_value:
        return SubjectKey(variable_value, f"Airflow Variable {KEY_VARIABLE!r}")
    return key_from_env()


def configured_key(variable_value: str | None) -> SubjectKey | None:
    """``key_from`` when a key is configured, None when neither the Variable nor the
    environment holds one (a key that is set but too short is still an error)."""
    if not variable_value and not os.environ.get(KEY_ENV_VAR):
        return None
    return key_from(variable_value)


def key_from_env(environ: dict[str, str] | None = None) -> SubjectKey:
    """The key from ``$RETENTION_SUBJECT_SECRET``; a clear error says where to set it if absent."""
    secret = (environ if environ is not None else os.environ).get(KEY_ENV_VAR)
    if not secret:
        raise RetentionError(
            f"no subject key: set the Airflow Variable {KEY_VARIABLE!r} (or a secrets backend "
            f"entry of that name) or the environment variable {KEY_ENV_VAR}"
        )
    return SubjectKey(secret, f"${KEY_ENV_VAR}")


def normalise(kind: str, value: str) -> str:
    """The canonical form of an identifier someone asks about, so that one person always
    hashes the same (``identifiers.canonical``: e-mails of any case, Unicode form and
    surrounding whitespace; phones in any national or international writing). A malformed
    value is refused, naming it by kind only (the value itself is personal data)."""
    return canonical(kind, value)


def subject_hash(key: SubjectKey, kind: str, value: str) -> str:
    """HMAC-SHA256 of ``kind:canonical value``: an e-mail and a phone never collide."""
    return key.digest(f"{kind}:{normalise(kind, value)}")


def normalised_sql(kind: str, column: Any) -> ColumnElement[Any]:
    """``normalise`` in SQL, for stored values, so that matching is set-based (the same
    string as Python's, on every backend: ``identifiers.canonical_sql``)."""
    return canonical_sql(kind, column)


def _hmac_sql(key: SubjectKey, message: Any, dialect: str) -> ColumnElement[str]:
    if dialect == "sqlite":
        return func.retention_hmac_sha256(key.as_sql_parameter(), message)
    return func.encode(
        func.hmac(
            func.convert_to(message, "UTF8"), func.convert_to(key.as_sql_parameter(), "UTF8"), literal("sha256", Text)
        ),
        "hex",
    )


def keyed_hash_sql(key: SubjectKey, kind: str, column: Any, dialect: str) -> ColumnElement[str]:
    """``subject_hash`` computed by the database, so that a whole table can be compared with
    the suppression list in one statement: pgcrypto's ``hmac()`` on PostgreSQL (the extension
    must be installed), a function the target registers on SQLite."""
    return _hmac_sql(key, literal(f"{kind}:", Text) + normalised_sql(kind, column), dialect)


def legacy_keyed_hash_sql(key: SubjectKey, kind: str, column: Any, dialect: str) -> ColumnElement[str]:
    """The keyed hash of a stored value in the form before the canonical one, as the
    matchers computed it then (``identifiers.legacy_sql``)."""
    return _hmac_sql(key, literal(f"{kind}:", Text) + legacy_sql(kind, column), dialect)


def keyed_hash_in(key: SubjectKey, kind: str, column: Any, dialect: str, hashes: Any) -> ColumnElement[bool]:
    """Rows whose ``column`` hashes, in the canonical or in the former form, to one of
    ``hashes`` (a list or a subquery): suppression entries and hold items written before
    the canonical form keep matching what they matched (the two forms colliding for two
    different people would take an HMAC collision). False, never NULL, for a NULL value."""
    # NULL never matches, and says so: a bare ``hash IN (...)`` is NULL there, and under
    # NOT (a hold's "not held") it would keep a row without a phone out of every run.
    return and_(
        column.is_not(None),
        or_(
            keyed_hash_sql(key, kind, column, dialect).in_(hashes),
            legacy_keyed_hash_sql(key, kind, column, dialect).in_(hashes),
        ),
    )


def require_keyed_hash_sql(conn: Connection, why: str) -> None:
    """Refuse clearly when PostgreSQL lacks pgcrypto, which ``keyed_hash_sql`` needs there."""
    if (
        conn.dialect.name == "postgresql"
        and not conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'")).scalar_one()
    ):
        raise RetentionError(
            f"{why} needs PostgreSQL's pgcrypto extension: CREATE EXTENSION pgcrypto "
            "(include/sql/least_privilege_roles.sql does it)"
        )


@dataclass(frozen=True)
class Subject:
    """A person, as the identifiers given for them (kind, normalised value).

    Several identifiers (an e-mail and a customer number...) all designate the same
    person: a row matching any of them is about them - except a shared kind (a phone) on a
    row whose other identifiers name someone else (see ``_matches``).
    """

    identifiers: tuple[tuple[str, str], ...]
    # The same identifiers in the form before the canonical one (where it accepted them): for
    # looking up what older suppression entries, hold items and audit events hold.
    legacy: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, given: dict[str, str | list[str]]) -> Subject:
        """Normalise every identifier given; refuse none, or a malformed one, before anything runs."""
        asked = [
            (kind, value)
            for kind, values in given.items()
            for value in ([values] if isinstance(values, str) else values)
        ]
        pairs = [(kind, normalise(kind, value)) for kind, value in asked]
        if not pairs:
            raise RetentionError("no subject identifier given: at least one e-mail, phone or customer number")
        legacy = [(kind, form) for kind, value in asked if (form := legacy_form(kind, value)) is not None]
        return cls(tuple(dict.fromkeys(pairs)), tuple(dict.fromkeys(legacy)))

    def hashes(self, key: SubjectKey) -> list[str]:
        """One keyed hash per identifier (so a later lookup by any of them finds the events)."""
        return [key.digest(f"{kind}:{value}") for kind, value in self.identifiers]

    def lookup_hashes(self, key: SubjectKey) -> list[str]:
        """``hashes`` and those of the former form: what to look stored hashes up by."""
        legacy = [key.digest(f"{kind}:{value}") for kind, value in self.legacy]
        return list(dict.fromkeys(self.hashes(key) + legacy))

    @property
    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.identifiers}

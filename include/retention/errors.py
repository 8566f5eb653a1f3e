"""Errors that name what is wrong, where, and what the user can do about it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class RetentionError(Exception):
    """Base class: every error the engine raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a policy: where it is (a dotted key path) and what is wrong."""

    path: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{self.path or '<top>'}: {self.message}{shown}"


class PolicyError(RetentionError, ValueError):
    """A policy file that cannot be enforced as written. Lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid retention policy {source}:\n{lines}")


class BatchIntegrityError(RetentionError):
    """A batch copied and removed different numbers of rows; it was rolled back."""


# --- Personal data and secrets out of error text ------------------------------------------------
#
# An error's text reaches Airflow's task log (the message and the traceback). The engines hide
# bound parameters (``target.connect``), but a database still quotes row values in what it
# says (``DETAIL:  Key (email)=(jeanne@example.fr) is still referenced``, ``invalid input
# syntax for type integer: "..."``, a trigger's RAISE), and a message the engine builds may
# quote what a user typed. ``scrub`` removes those; ``scrubbed`` gives the error a task raises
# in place of the original (which is not chained, so its text is not printed either).

REDACTED = "<redacted>"
_MIN_SECRET_LENGTH = 4  # shorter known values would blank out ordinary words and numbers

_EMAIL = re.compile(r"(?:\"[^\"\n]*\"|[\w.!#$%&'*+/=?^`{|}~-]+)@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# A run of digits and phone separators; a phone if it holds 9 to 15 digits and is not a date.
_PHONE_SEPARATORS = r"\s().\-/_\u00a0\u202f\u2009"
_PHONE_CANDIDATE = re.compile(rf"(?<![\w+])\+?\d[\d{_PHONE_SEPARATORS}]{{6,}}\d(?!\w)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A date (and its time) is matched first and kept, so "2026-11-26 06 12 34 56 78" keeps its
# date and loses the phone after it, instead of being read as one date-like number.
_DATE_OR_PHONE = re.compile(
    rf"(?P<date>\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?)?)"
    rf"|(?P<phone>{_PHONE_CANDIDATE.pattern})"
)
_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'")
_LONG_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")
# A database message's lines after the first: DETAIL quotes row values; CONTEXT may quote a
# statement or a COPY line; only the context "while <doing> tuple (x,y) in relation "t"" is kept.
_SAFE_CONTEXT = re.compile(r'^CONTEXT:\s+while \w+ tuple \(\d+,\d+\) in relation "[\w$]+"$')
_DETAIL_VALUES = re.compile(r"(=|contains |\bvalue )\(.*", re.DOTALL)
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_IDENTIFIER = re.compile(r"[A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)*")
_VALUE_BEFORE_QUOTE = re.compile(r"(?::\s*|\bvalue\s+|\bsyntax\s+)$")
_STATEMENT_LIMIT = 2000
_RAISED_IN_DATABASE = ("P0001",)  # RAISE EXCEPTION in a trigger or function: its text is anyone's


class ScrubbedError(RetentionError):
    """What a task raises in place of an error whose text could hold personal data or a secret:
    the original's class name and its message after ``scrub``. It is raised without the
    original chained to it, so that the traceback Airflow logs does not print the original."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(f"{kind}: {message}")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the known ``secrets`` (values a user typed, the subject key), e-mail
    addresses, phone numbers and SQLAlchemy's ``[parameters: ...]`` block.

    Secrets are matched case-insensitively, longest first; values shorter than 4 characters
    are left (they would blank out ordinary words and numbers)."""
    for secret in sorted(
        {s.strip() for s in secrets if s and len(s.strip()) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
    ):
        text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
    text = _PARAMETERS.sub("[parameters hidden]", text)
    # Full-width and other compatibility forms (＠, ０６) read as what they look like.
    text = _EMAIL.sub(REDACTED, unicodedata.normalize("NFKC", text))
    return _DATE_OR_PHONE.sub(_phone_or_not, text)


def _phone_or_not(match: re.Match[str]) -> str:
    found = match.group(0)
    if match.group("date"):
        return found
    digits = sum(c.isdigit() for c in found)
    return REDACTED if 9 <= digits <= 15 and not _DATE.search(found) else found


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """The scrubbed text of ``exc``: a database error as its SQLSTATE, its first line with
    quoted values removed, the tables and constraint it names, and the statement with its
    literals removed; anything else as its scrubbed message."""
    orig = getattr(exc, "orig", None)
    if orig is not None and hasattr(exc, "statement"):
        return _describe_database_error(exc, orig, list(secrets))
    return scrub(str(exc), secrets)


def scrubbed(exc: BaseException, secrets: Iterable[str] = ()) -> ScrubbedError:
    """The error to raise in place of ``exc`` (``raise scrubbed(exc) from None``)."""
    return ScrubbedError(type(exc).__name__, describe(exc, secrets))


def _describe_database_error(exc: BaseException, orig: BaseException, secrets: list[str]) -> str:
    diag = getattr(orig, "diag", None)
    sqlstate = getattr(diag, "sqlstate", None) or getattr(orig, "sqlstate", None)
    lines = str(orig).splitlines() or [""]
    if sqlstate in _RAISED_IN_DATABASE:
        first = "raised by a trigger or function in the database (its message is withheld: it may quote row values)"
    else:
        first = _unquote_values(lines[0])
    parts = [f"({type(orig).__name__}{f', SQLSTATE {sqlstate}' if sqlstate else ''}) {first}"]
    for line in lines[1:]:
        if line.startswith("DETAIL:"):
            parts.append(_DETAIL_VALUES.sub(lambda m: m.group(1) + f"({REDACTED})", line))
        elif _SAFE_CONTEXT.match(line.strip()):
            parts.append(line.strip())
        elif line.startswith("HINT:"):
            parts.append(_unquote_values(line))
    named = _named_objects(diag)
    if named:
        parts.append(f"(on {named})")
    statement = getattr(exc, "statement", None)
    if statement:  # names and placeholders; literals removed; cut, as a log line should be
        shown = _SQL_LITERAL.sub(repr(REDACTED), statement)
        parts.append(f"[SQL: {shown[:_STATEMENT_LIMIT]}{' ...' if len(shown) > _STATEMENT_LIMIT else ''}]")
    text = "\n".join(parts)
    return _LONG_HEX.sub(REDACTED, scrub(text, secrets))


def _unquote_values(line: str) -> str:
    """A database message line with quoted values removed; quoted names (a relation, a column)
    are kept when they read as identifiers and are not in a value's place (``for type x: "v"``)."""

    def one(match: re.Match[str]) -> str:
        before = line[: match.start()]
        if _IDENTIFIER.fullmatch(match.group(1)) and not _VALUE_BEFORE_QUOTE.search(before):
            return match.group(0)
        return f'"{REDACTED}"'

    return _QUOTED.sub(one, _SQL_LITERAL.sub(repr(REDACTED), line))


def _named_objects(diag: Any) -> str:
    """Schema, table, column, constraint and type the database names (names, never values)."""
    if diag is None:
        return ""
    fields = (
        ("table", ".".join(p for p in (getattr(diag, "schema_name", None), getattr(diag, "table_name", None)) if p)),
        ("column", getattr(diag, "column_name", None)),
        ("constraint", getattr(diag, "constraint_name", None)),
        ("type", getattr(diag, "datatype_name", None)),
    )
    return ", ".join(f"{label} {value}" for label, value in fields if value)


class CertificateNotWritten(RetentionError):
    """A run's deletion certificate could not be written (a name too long, a read-only or
    missing folder). The run's events are in the audit log, which says so too; the category
    was released all the same, so that the next run is not refused as busy."""

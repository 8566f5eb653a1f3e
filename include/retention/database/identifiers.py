"""The canonical form of a person's identifier, in Python and in SQL alike.

Erasure, "was X erased?", subject legal holds and the suppression list all compare an
identifier *as it was asked for* (a request form, a hold, an import) with identifiers *as
they are stored* (typed by people, imported from spreadsheets and phones). They match a
person only if both sides are reduced to one form, and the reduction is computed twice: in
Python for the asked value, and in SQL for every stored row (set-based matching, keyed
hashes compared in the database). The two must give the very same string, or a person
asked to be erased is "not held" while their row stays. So the form is defined by a few
rules that are written once here and can be computed identically by each backend:

* ``email`` - Unicode NFKC (decomposed accents composed, full-width letters folded), every
  whitespace, control and invisible format character removed (tab, newline, no-break and
  narrow no-break spaces, zero-width space, BOM...: an address cannot contain them),
  then lower-cased character by character with one explicit table (``LOWER_MAP``), not
  the database's ``lower()``, which depends on its locale (ASCII only under ``C``).
* ``phone`` - E.164, with France as the default country: NFKC, the number read from its
  first digit or ``+`` up to the first character that cannot belong to a phone number
  (``poste 12``, ``ext.``), separators dropped, ``00`` read as ``+``, the trunk ``0``
  dropped after a country code whose trunk prefix is ``0`` (``+33 (0)6``, ``+44 (0)20``,
  but Italy keeps its ``0``). Without ``+`` or ``00``, only the French national plan is
  read as French: ``0`` + 9 digits (``06 12 34 56 78`` -> ``+33612345678``; an overseas
  department's prefix gives its own code, ``0692 12 34 56`` -> ``+262692123456``) and
  ``33`` + 9 digits; any other number keeps its bare digits (``612 345 678``, a Spanish
  mobile written nationally, is ``612345678``, which no E.164 form can equal). Which country
  codes exist, which use a ``0`` trunk prefix and which national prefixes are overseas comes
  from Google's libphonenumber metadata (the ``phonenumbers`` package), not from a
  hand-written list; the tests check the form against ``phonenumbers``' own E.164 for every
  country's example numbers. A whole number stored in a number column (612345678.0) reads
  as its integer digits.
* other kinds (customer numbers, visitor ids) - NFKC, and whitespace and invisible
  characters trimmed at both ends.

The rules, not ``phonenumbers.parse``, define the form: a parser cannot run inside
PostgreSQL, and a form that SQL only approximates would let the same string, asked and
stored, fail to match. ``canonical_form`` is total (it never refuses stored data);
``canonical`` also validates an asked value. SQL: ``canonical_sql``. SQLite calls the very
same Python function (``target`` registers it on every connection); PostgreSQL computes an
expression built from the same tables, passed as bound parameters; another dialect (MariaDB
is coming) adds its compiler below and nowhere else.

The form before this module (``legacy_form``, ``legacy_sql``) is kept: keyed hashes of it
are stored in suppression lists, hold registers and audit logs (see ``subjects``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, cached_property
from typing import Any

from sqlalchemy import Integer, Numeric, Text, and_, case, cast, func, literal, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from include.retention.errors import RetentionError

# The kinds of identifier a request or a lookup may give (a policy declares its columns per kind).
IDENTIFIER_KINDS = ("email", "phone", "customer_number", "visitor_id")
# National numbers ("06 12 34 56 78") are read as French ones: the company is French.
DEFAULT_COUNTRY_CODE = "33"


# --- The tables (generated from the Unicode database and libphonenumber, never typed by hand) ----

# Where Unicode has cased letters and invisible characters: planes 0-3 and the tags of plane 14
# (test_identifiers checks that a scan of every code point finds the same), scanned in 0.2 s.
_SCANNED = (range(0x0, 0x40000), range(0xE0000, 0xE1000))
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Characters a written phone number may hold besides digits, a leading +, and invisible ones.
PHONE_SEPARATORS = "()./-"


def is_invisible(char: str) -> bool:
    """Whitespace, control and format characters: tab, newline, NBSP, U+202F, ZWSP, BOM..."""
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def lower_pair(char: str) -> tuple[str, str] | None:
    """``(char, lower)`` when ``str.lower`` maps ``char`` to one other character; İ maps to i
    (its full mapping is two characters) and the final ς to σ, so lower-casing is per
    character and never depends on the context (Python's lower() writes a final sigma)."""
    if char == "\u0130":
        return char, "i"
    if char == "\u03c2":
        return char, "\u03c3"
    lower = char.lower()
    return (char, lower) if lower != char and len(lower) == 1 else None


@dataclass(frozen=True)
class Tables:
    """Everything the form needs, built once per process on first use (not at import: DAG
    parsing imports this module and never needs them)."""

    invisible: str  # every invisible character
    lower: dict[str, str]  # one character -> its lower case, ASCII first, then in code point order

    @cached_property
    def trunk_zero_codes(self) -> tuple[str, ...]:
        return _trunk_zero_codes()  # libphonenumber's metadata loads in 0.5 s: only for phones

    @cached_property
    def drop(self) -> dict[int, None]:
        return {ord(c): None for c in self.invisible}

    @cached_property
    def drop_and_lower(self) -> dict[int, Any]:
        return {**self.drop, **{ord(k): v for k, v in self.lower.items()}}

    @property
    def invisible_sql(self) -> str:
        """The invisible set as PostgreSQL text can hold it (never NUL)."""
        return self.invisible.replace("\x00", "")

    @property
    def ascii_invisible_sql(self) -> str:
        return "".join(c for c in self.invisible_sql if c < "\x80")

    def phone_written(self, invisible: str) -> str:
        """The number as written: from its first digit or + to the first character that
        cannot be part of it (a letter: ``poste 12``, ``ext. 3``)."""
        return "[+0-9]" + bracket("0123456789+" + PHONE_SEPARATORS + invisible) + "*"

    @cached_property
    def phone_written_re(self) -> re.Pattern[str]:
        return re.compile(self.phone_written(self.invisible))

    @cached_property
    def phone_characters_re(self) -> re.Pattern[str]:
        return re.compile(bracket("0123456789+" + PHONE_SEPARATORS + self.invisible) + "*")

    @cached_property
    def overseas_codes(self) -> dict[str, str]:
        return _overseas_codes()

    def national_code(self, national: str) -> str:
        """The calling code of a number written in the French national plan (``0`` + 9 digits),
        from its first 3 national digits: an overseas department's (``0692...`` is Réunion's
        ``+262``), else France's."""
        return self.overseas_codes.get(national[:3], DEFAULT_COUNTRY_CODE)

    @property
    def trunk_pattern(self) -> str:
        return "^(" + "|".join(self.trunk_zero_codes) + ")0"

    @cached_property
    def trunk_re(self) -> re.Pattern[str]:
        return re.compile(self.trunk_pattern)


@cache
def tables(scanned: tuple[range, ...] = _SCANNED) -> Tables:
    points = [chr(c) for r in scanned for c in r if not 0xD800 <= c < 0xE000]
    pairs = [p for p in map(lower_pair, _ASCII_UPPER) if p]
    pairs += [p for p in map(lower_pair, points) if p and p[0] not in _ASCII_UPPER]
    return Tables("".join(c for c in points if is_invisible(c)), dict(pairs))


def _trunk_zero_codes() -> tuple[str, ...]:
    """Country calling codes whose main region dials a ``0`` trunk prefix at home, which is
    dropped after the code (``+33 (0)6...`` is ``+336...``); from libphonenumber metadata.
    Calling codes are prefix-free, so an alternation of them matches at most one."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    codes = []
    for code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
        if metadata is not None and metadata.national_prefix == "0":
            codes.append(str(code))
    return tuple(codes)


# Territories dialled within the French national plan (``0`` + 9 digits) under their own calling
# code: Réunion and Mayotte, Guadeloupe, Saint-Barthélemy and Saint-Martin, Guyane, Martinique,
# Saint-Pierre-et-Miquelon. Which national prefixes belong to which comes from libphonenumber.
FRENCH_PLAN_OVERSEAS_CODES = (262, 508, 590, 594, 596)
# Fixed, mobile and VoIP ranges: toll-free and premium 08 numbers are the national plan's own.
_OVERSEAS_TYPES = ("fixed_line", "mobile", "voip")


def _overseas_codes() -> dict[str, str]:
    """``{3 national digits: calling code}`` for the prefixes that libphonenumber gives to exactly
    one overseas calling code (``692`` -> ``262``). A prefix shared by several of them (VoIP
    ``0709``, ``0939``...) cannot be told apart in national writing and stays French. Each
    prefix is tried with 100 completions (``XY XY XY``), which reach every 5-digit branch."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    patterns = {}
    for code in FRENCH_PLAN_OVERSEAS_CODES:
        alternatives = [
            desc.national_number_pattern
            for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
            for metadata in [PhoneMetadata.metadata_for_region(region)]
            if metadata is not None
            for name in _OVERSEAS_TYPES
            for desc in [getattr(metadata, name)]
            if desc is not None and desc.national_number_pattern
        ]
        patterns[str(code)] = re.compile("|".join(f"(?:{a})" for a in alternatives))
    found = {}
    for prefix in map(str, range(100, 1000)):
        numbers = [prefix + f"{i:02d}" * 3 for i in range(100)]
        codes = [code for code, pattern in patterns.items() if any(pattern.fullmatch(n) for n in numbers)]
        if len(codes) == 1:
            found[prefix] = codes[0]
    return found


def bracket(chars: str) -> str:
    """A regular-expression bracket expression of ``chars`` that Python and PostgreSQL read
    alike: ranges of literal characters, ``-`` last (no backslash: PostgreSQL's AREs would
    read one as an escape)."""
    points = sorted({ord(c) for c in chars if c != "-"})
    if {"\\", "]", "^", "["} & {chr(p) for p in points}:
        raise ValueError("a character a bracket expression cannot hold literally")
    ranges: list[str] = []
    first = 0
    for i, point in enumerate(points):
        if i + 1 < len(points) and points[i + 1] == point + 1:
            continue
        start = points[first]
        ranges.append(chr(start) if start == point else f"{chr(start)}-{chr(point)}")
        first = i + 1
    return "[" + "".join(ranges) + ("-" if "-" in chars else "") + "]"


# --- Phone numbers -----------------------------------------------------------------------------


def _phone_form(text: str) -> str:
    t = tables()
    written = t.phone_written_re.search(text)
    written_text = written.group(0) if written else ""
    digits = re.sub("[^0-9]", "", written_text)
    if written_text.startswith("+"):
        return "+" + t.trunk_re.sub(r"\1", digits, count=1)
    if digits.startswith("00"):
        return "+" + t.trunk_re.sub(r"\1", digits[2:], count=1)
    if len(digits) == 10 and digits.startswith("0"):  # the French national plan: 0 + 9 digits
        return f"+{t.national_code(digits[1:])}{digits[1:]}"
    if len(digits) == 11 and digits.startswith(DEFAULT_COUNTRY_CODE) and digits[2] != "0":
        return "+" + digits  # the country code written without its +
    # Anything else (612 345 678: a Spanish, Portuguese, Polish... national number, or a
    # truncated one) keeps its digits without +, a form no E.164 number can equal.
    return digits


# --- The form, in Python -------------------------------------------------------------------------


def _text(value: Any) -> str:
    """The value as text. A number column holding a whole number (a phone imported from a
    spreadsheet, 612345678.0 or numeric 612345678.00) reads as its integer digits: ``str``
    would add ``.0``, i.e. one more digit, and make another number of it. PostgreSQL reads
    such columns alike (``trim_scale``); SQLite stores a whole NUMERIC as an integer."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:  # exact: 15 digits at most
        return str(int(value))
    if isinstance(value, Decimal) and value.is_finite():
        return str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")
    return str(value)


def canonical_form(kind: str, value: Any) -> str:
    """The canonical form of a stored or asked identifier; never refuses anything (stored data
    is what it is). SQLite's ``retention_canonical(kind, value)`` is this very function."""
    text, t = _text(value), tables()
    if kind == "email":
        return unicodedata.normalize("NFKC", text.translate(t.drop)).translate(t.drop_and_lower)
    if kind == "phone":
        return _phone_form(unicodedata.normalize("NFKC", text))
    return unicodedata.normalize("NFKC", text.strip(t.invisible)).strip(t.invisible)


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")  # no + : a national number not in the French plan


# An asked address: no space or separator inside (stored ones lose theirs, an asked one with
# "; DELETE ..." or "jean martin@" is a typing or pasting mistake to refuse, not to read as
# another address), and a domain of letter/digit labels joined by dots and inner hyphens.
_ASKED_EMAIL = re.compile(r"^[^@\s;,<>()\[\]\\\"]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}$")


def _asked_email_is_whole(value: Any) -> bool:
    t = tables()
    text = unicodedata.normalize("NFKC", str(value).strip(t.invisible)).strip(t.invisible)
    return not any(is_invisible(c) for c in text) and bool(_ASKED_EMAIL.match(text))


def canonical(kind: str, value: Any) -> str:
    """``canonical_form`` of an identifier someone asks about (a request, a hold, a lookup),
    refused when malformed - naming its kind only, as the value itself is personal data."""
    form = canonical_form(kind, value)
    if kind == "email" and not (_EMAIL.match(form) and _asked_email_is_whole(value)):
        raise RetentionError("the e-mail address given is not of the form name@domain.tld")
    written = unicodedata.normalize("NFKC", str(value))
    if kind == "phone" and not (
        tables().phone_characters_re.fullmatch(written)
        and 6 <= sum(c in "0123456789" for c in written) <= 15
        and _PHONE.match(form)
    ):
        raise RetentionError(
            "the phone number given must hold 6 to 15 digits, optionally after a leading + "
            "(spaces, dots, dashes, slashes and brackets allowed, nothing else)"
        )
    if not form:
        raise RetentionError(f"the {kind} given is empty")
    return form


# --- The form, in SQL ----------------------------------------------------------------------------


class _Canonical(FunctionElement[str]):
    """``canonical_form(kind, column)`` as a SQL expression, compiled per dialect below. One
    class per kind, so that a cached statement never mixes kinds."""

    type = Text()
    inherit_cache = True
    kind = ""


class _CanonicalEmail(_Canonical):
    inherit_cache = True
    kind = "email"


class _CanonicalPhone(_Canonical):
    inherit_cache = True
    kind = "phone"


class _CanonicalText(_Canonical):
    inherit_cache = True
    kind = "text"


def names_someone_sql(kind: str, column: Any) -> ColumnElement[bool]:
    """True when a stored unique identifier can name a person: an e-mail of the form
    name@domain.tld (``N/A``, ``-``, ``none``, ``inconnu`` are placeholders, naming no one),
    another kind any non-empty form. Only such a value marks a row as someone else's."""
    form = canonical_sql(kind, column)
    if kind == "email":
        return and_(form.like(_bound("%_@_%._%")), form.not_like(_bound("%@%@%")))
    return form != _bound("")


def canonical_sql(kind: str, column: Any) -> ColumnElement[str]:
    """The SQL twin of ``canonical_form``: the same string for every stored value."""
    if kind == "email":
        return _CanonicalEmail(column)
    if kind == "phone":
        return _CanonicalPhone(column)
    return _CanonicalText(column)


@compiles(_Canonical)
def _unsupported(element: _Canonical, compiler: Any, **kw: Any) -> str:
    raise RetentionError(
        f"no canonical identifier form in SQL for the {compiler.dialect.name} dialect "
        "(include/retention/database/identifiers.py supports sqlite and postgresql)"
    )


@compiles(_Canonical, "sqlite")
def _sqlite(element: _Canonical, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(func.retention_canonical(literal(element.kind, Text), column), **kw)


def sqlite_canonical(kind: str | None, value: Any) -> str | None:
    """The SQLite function ``retention_canonical``: NULL stays NULL."""
    return None if value is None or kind is None else canonical_form(kind, value)


@compiles(_Canonical, "postgresql")
def _postgresql(element: _Canonical, compiler: Any, **kw: Any) -> str:
    (column,) = element.clauses
    # A number column prints as Python's ``_text`` reads it: a whole number as its digits
    # (a float would print 6.12345678e+08 beyond 15 digits, a numeric(12,2) a final .00).
    numeric = isinstance(column.type, Numeric)
    text = cast(func.trim_scale(cast(column, Numeric)), Text) if numeric else cast(column, Text)
    return compiler.process(_POSTGRESQL[element.kind](text), **kw)


def _bound(value: str) -> Any:
    """A constant of the form's tables, as a bound parameter (never spliced into the SQL)."""
    return literal(value, Text)


def _ascii(text: Any) -> ColumnElement[bool]:
    """True when every character is ASCII (UTF-8: one byte each): the common case takes a cheap
    branch; the Unicode tables are only scanned for the others."""
    return func.octet_length(text) == func.char_length(text)


def _nfkc(text: Any) -> Any:
    return func.normalize(text, literal_column("NFKC"))  # a keyword of normalize(), not a value


def _pg_email(column: Any) -> Any:
    t = tables()
    ascii_only = func.translate(column, _bound(_ASCII_UPPER + t.ascii_invisible_sql), _bound(_ASCII_UPPER.lower()))
    dropped = func.translate(column, _bound(t.invisible_sql), _bound(""))
    full = func.translate(_nfkc(dropped), _bound("".join(t.lower) + t.invisible_sql), _bound("".join(t.lower.values())))
    return case((_ascii(column), ascii_only), else_=full)


def _pg_phone(column: Any) -> Any:
    t = tables()
    text = case((_ascii(column), column), else_=_nfkc(column))
    written = func.coalesce(func.substring(text, _bound(t.phone_written(t.invisible_sql))), _bound(""))
    digits = func.regexp_replace(written, _bound("[^0-9]"), _bound(""), _bound("g"))
    trunk = _bound(t.trunk_pattern)
    plus = _bound("+")
    overseas = [
        (func.substr(digits, 2, 3) == _bound(prefix), _bound(f"+{code}"))
        for prefix, code in sorted(t.overseas_codes.items())
    ]
    national = (
        case(*overseas, else_=_bound(f"+{DEFAULT_COUNTRY_CODE}")) if overseas else _bound(f"+{DEFAULT_COUNTRY_CODE}")
    )
    return case(
        (func.left(written, 1) == "+", plus + func.regexp_replace(digits, trunk, _bound("\\1"))),
        (func.left(digits, 2) == "00", plus + func.regexp_replace(func.substr(digits, 3), trunk, _bound("\\1"))),
        (
            and_(func.length(digits) == literal(10, Integer), func.left(digits, 1) == "0"),
            national + func.substr(digits, 2),
        ),
        (
            and_(
                func.length(digits) == literal(11, Integer),
                func.left(digits, 2) == DEFAULT_COUNTRY_CODE,
                func.substr(digits, 3, 1) != "0",
            ),
            plus + digits,
        ),
        else_=digits,
    )


def _pg_text(column: Any) -> Any:
    t = tables()
    ascii_only = func.btrim(column, _bound(t.ascii_invisible_sql))
    full = func.btrim(_nfkc(func.btrim(column, _bound(t.invisible_sql))), _bound(t.invisible_sql))
    return case((_ascii(column), ascii_only), else_=full)


_POSTGRESQL = {"email": _pg_email, "phone": _pg_phone, "text": _pg_text}


# --- The form before this module, whose keyed hashes stores still hold ---------------------------

_LEGACY_SEPARATORS = " .-()/"


_LEGACY_SEPARATOR_TABLE = {ord(c): None for c in _LEGACY_SEPARATORS}


def legacy_form(kind: str, value: Any) -> str | None:
    """The identifier as the project normalised it before the canonical form (the Python side:
    what asked values were hashed as), or None where it refused the value."""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if kind == "email":
        text = text.lower()
        return text if _EMAIL.match(text) else None
    if kind == "phone":
        digits = text.translate(_LEGACY_SEPARATOR_TABLE)
        if not re.fullmatch(r"\+?\d{6,15}", digits):
            return None
        if digits.startswith("00"):
            return "+" + digits[2:]
        if digits.startswith("0") and len(digits) == 10:
            return f"+{DEFAULT_COUNTRY_CODE}{digits[1:]}"
        return digits
    return text or None


def legacy_sql(kind: str, column: Any) -> ColumnElement[Any]:
    """The SQL side of the former normalisation, as the matchers computed it for stored rows."""
    if kind == "email":
        return func.lower(func.trim(column))
    if kind == "phone":
        digits: Any = func.trim(column)
        for separator in _LEGACY_SEPARATORS:
            digits = func.replace(digits, separator, "")
        return case(
            (func.substr(digits, 1, 2) == "00", literal("+") + func.substr(digits, 3)),
            (
                and_(func.substr(digits, 1, 1) == "0", func.length(digits) == 10),
                literal(f"+{DEFAULT_COUNTRY_CODE}") + func.substr(digits, 2),
            ),
            else_=digits,
        )
    return func.trim(column)

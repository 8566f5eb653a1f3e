"""Irreversible anonymisation rules, as SQL expressions.

Anonymisation here means generalising or removing values so that a row can no longer be
tied to a person (GDPR recital 26; WP29 opinion 05/2014): a keyed hash or encryption is
only pseudonymisation and is deliberately not offered. Rules:

* ``null`` - remove the value;
* ``keep`` - a column judged non-identifying (a product, a country); never allowed on a
  subject identifier;
* ``year`` / ``month`` - a date or timestamp truncated to the first day of its year or month;
* ``{prefix: N}`` - the first N characters (a postcode's département);
* ``{round: R}`` - a number truncated towards zero to a multiple of R.

An anonymised row also loses the dates that would date the person's history
(``retention_start``, ``retention_until``, ``archived_at``) and its ``run_id``, and the subject
identifiers its archive row keeps only so that rights requests and legal holds can find it
(declared in ``subject_identifiers`` but not in ``archive_columns``): those are set to NULL
without a rule of their own, since an anonymised row is about no one and the policy never
chose to keep them (``anonymization_rules``). An identifier the policy does archive needs its
own rule, and ``keep`` is refused for it.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, Integer, cast, func, literal, null, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.archive_tables import identifier_columns
from include.retention.policy.model import AnonymizeRule, PrefixRule, RoundRule, TableBase

_SQLITE_TRUNCATE = {"year": "start of year", "month": "start of month"}


def anonymization_rules(node: TableBase) -> dict[str, AnonymizeRule]:
    """Every archive column's rule: the policy's ``anonymize``, plus ``null`` for each subject
    identifier the archive keeps only for rights requests (not an archive column, not a key:
    a key identifies the row, not the person, and is never rewritten)."""
    keys = {*node.primary_key, *getattr(node, "foreign_key", [])}
    implicit: dict[str, AnonymizeRule] = {
        c: "null" for c in identifier_columns(node) if c not in node.archive_columns and c not in keys
    }
    return {**implicit, **node.anonymize}


def rule_expression(column: Any, rule: AnonymizeRule, dialect: str, zone: ZoneInfo) -> ColumnElement[Any] | None:
    """The new value of ``column`` under ``rule``; ``None`` means leave it as it is."""
    if rule == "keep":
        return None
    if rule == "null":
        return null()
    if isinstance(rule, PrefixRule):
        return func.substr(column, 1, rule.prefix)
    if isinstance(rule, RoundRule):
        if dialect == "sqlite":
            return type_coerce(cast(column / rule.round, Integer) * rule.round, column.type)
        return cast(func.trunc(column / rule.round) * rule.round, column.type)
    if rule in _SQLITE_TRUNCATE:
        return _truncate(column, rule, dialect, zone)
    raise ValueError(f"unknown anonymisation rule {rule!r}")


def _truncate(column: Any, unit: str, dialect: str, zone: ZoneInfo) -> ColumnElement[Any]:
    if dialect == "sqlite":
        # SQLite stores text: keep the column's own format (date or date and time).
        fn = func.datetime if isinstance(column.type, DateTime) else func.date
        return type_coerce(fn(column, _SQLITE_TRUNCATE[unit]), column.type)
    if isinstance(column.type, DateTime) and column.type.timezone:
        # Truncate in the company's time zone, not the server's: 1 June 00:00 in Paris
        # is still 31 May in UTC.
        return func.date_trunc(unit, column, literal(zone.key))
    return cast(func.date_trunc(unit, column), column.type)


ANONYMISED_METADATA = {
    "retention_start": None,
    "retention_until": None,
    "archived_at": None,
    "run_id": None,
    "anonymized": True,
}

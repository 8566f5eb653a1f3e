"""The scrubber (``errors.scrub``/``describe``) on real database errors: what a failing statement
says, on PostgreSQL and SQLite, holds no value once scrubbed - even from an engine that shows
its parameters - and keeps what an operator needs (the error, the SQLSTATE, the table)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from include.retention.errors import REDACTED, ScrubbedError, describe, scrub, scrubbed

EMAIL, PHONE, KEY = "jeanne.martin@example.fr", "+33 6 12 34 56 78", "subject-key-" + "k" * 30


def _failure(url: str, *statements: str, **values) -> DBAPIError:
    """The error a real statement raises, from an engine that does NOT hide its parameters."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), values)
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the statement was expected to fail")


def _assert_no_value(message: str, *values: str) -> None:
    assert not [v for v in values if v.lower() in message.lower()], message


@pytest.fixture
def pg_url(postgres_server):
    from scripts.throwaway_postgres import fresh_postgres_database

    return fresh_postgres_database(postgres_server)


def test_a_unique_violation_names_the_constraint_and_not_the_values(pg_url):
    exc = _failure(
        pg_url,
        "CREATE TABLE contacts (email text, phone text, UNIQUE (email, phone))",
        "INSERT INTO contacts VALUES (:e, :p)",
        "INSERT INTO contacts VALUES (:e, :p)",
        e=EMAIL,
        p=PHONE,
    )
    assert EMAIL in str(exc)  # what Airflow logged before
    message = describe(exc, [KEY])
    _assert_no_value(message, EMAIL, PHONE, "33612345678")
    assert "UniqueViolation, SQLSTATE 23505" in message and "Key (email, phone)=(<redacted>)" in message
    assert "constraint contacts_email_phone_key" in message and "[parameters" not in message


def test_a_value_quoted_in_the_primary_message_is_removed_and_a_relation_name_kept(pg_url):
    exc = _failure(pg_url, "SELECT CAST(:v AS integer)", v="Jeanne Martin")
    message = describe(exc)
    _assert_no_value(message, "Jeanne Martin")
    assert "invalid input syntax for type integer" in message
    missing = describe(_failure(pg_url, "SELECT * FROM missing_table WHERE email = :e", e=EMAIL))
    _assert_no_value(missing, EMAIL)
    assert 'relation "missing_table" does not exist' in missing


def test_a_message_a_database_function_raises_is_withheld(pg_url):
    exc = _failure(
        pg_url, "DO $$ BEGIN RAISE EXCEPTION 'contact % may not be deleted', 'jeanne.martin@example.fr'; END $$"
    )
    message = describe(exc)
    _assert_no_value(message, EMAIL, "jeanne.martin")
    assert "SQLSTATE P0001" in message and "withheld" in message


def test_the_subject_key_and_literals_in_a_statement_are_removed(pg_url):
    exc = _failure(pg_url, f"SELECT encode(hmac('x', '{KEY}', 'sha256'), 'hex') FROM missing_table")
    _assert_no_value(describe(exc), KEY)
    exc = _failure(pg_url, "SELECT :k::integer", k=KEY)
    _assert_no_value(describe(exc, [KEY]), KEY)


def test_sqlite_errors_are_scrubbed_too(tmp_path):
    exc = _failure(f"sqlite:///{tmp_path / 'x.db'}", "SELECT * FROM missing WHERE email = :e", e=EMAIL)
    message = describe(exc)
    _assert_no_value(message, EMAIL)
    assert "no such table: missing" in message


@pytest.mark.parametrize(
    "text_, values",
    [
        ("[parameters: {'lower_1_1': 'jeanne.martin@example.fr'}]", [EMAIL]),
        ("ERASE ZOÉ.ÉLODIE@EXAMPLE.FR now", ["ZOÉ.ÉLODIE@EXAMPLE.FR"]),
        ("call 06 12 34 56 78, 06.12.34.56.78, +33 (0)6 12 34 56 78 or 0033612345678", ["12 34", "612345678"]),
        (f"the key {KEY.upper()} is wrong", [KEY]),
        ("phone 06/12/34/56/78 or 06_12_34_56_78 failed", ["12/34", "12_34"]),
        ("on 2026-11-26 06 12 34 56 78 called", ["12 34"]),
        ("email jeanne\uff20exemple.fr, \uff10\uff16 12 34 56 78", ["jeanne", "12 34"]),
        ('email "jeanne martin"@exemple.fr', ["jeanne"]),
    ],
)
def test_scrub_removes_emails_phones_parameters_and_known_secrets(text_, values):
    _assert_no_value(scrub(text_, [KEY]), *values)


def test_scrub_keeps_what_names_the_problem():
    message = (
        "category 'prospection' is being enforced by run 'manual__2026-11-26T10:00:00+00:00' since "
        "2026-11-26 10:00 UTC; 1234 rows in crm.prospects"
    )
    assert scrub(message, ["ab"]) == message


def test_a_scrubbed_error_names_the_original_class_and_holds_no_value():
    error = scrubbed(ValueError(f"no such person {EMAIL}"), [KEY])
    assert isinstance(error, ScrubbedError) and str(error) == f"ValueError: no such person {REDACTED}"
    assert error.__cause__ is None and error.__context__ is None

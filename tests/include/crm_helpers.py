"""The demo CRM as a test bed for data-subject requests: Jeanne is in one active and one archived
row of every table that holds an e-mail, and in the tracking data."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from engine_helpers import run_category
from sqlalchemy import MetaData, Table, select, text, update
from sqlalchemy.engine import make_url

from include.demo.seed import seed_demo
from include.retention.database.identity import SubjectKey
from include.retention.database.target import connect, sqlite_archive_path
from include.retention.policy.load import load_policy
from scripts.throwaway_postgres import fresh_postgres_database

AS_OF = date(2026, 11, 26)
KEY = SubjectKey("erasure-test-key-" + "k" * 30, "test")
EMAIL, PHONE, VISITOR = "Jeanne.Martin@Example.FR", "06 12 34 56 78", "visitor-jeanne-0001"
# Where the demo holds an e-mail (active table -> its column; archive tables keep the same name).
EMAIL_COLUMNS = {
    "web_form_submissions": "email",
    "prospects": "email",
    "customers": "email",
    "subscriptions": "billing_email",
    "suppliers": "contact_email",
    "rights_requests": "requester_email",
}


def crm_table(target, name, archive=False):
    schema = "archive" if archive else (None if target.is_sqlite else "crm")
    return Table(name, MetaData(), schema=schema, autoload_with=target.engine)


def _first_key(conn, table):
    (pk,) = table.primary_key.columns
    return pk, conn.execute(select(pk).order_by(pk).limit(1)).scalar_one()


def _build_crm(target) -> None:
    """Seed the demo CRM, run every category once, and put Jeanne in it."""
    if not target.is_sqlite:  # what include/sql/least_privilege_roles.sql installs: keyed hashes in SQL
        with target.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    seed_demo(target.engine, None if target.is_sqlite else "crm", AS_OF)
    policy = load_policy()
    for key in policy.categories:
        run_category(target, policy, AS_OF, category=key, run_id=f"schedule-{key}")
    tables = {(name, archive): crm_table(target, name, archive) for name in EMAIL_COLUMNS for archive in (False, True)}
    cookies = crm_table(target, "tracking_cookies")
    with target.engine.begin() as conn:
        for name, column in EMAIL_COLUMNS.items():
            for archive in (False, True):
                table = tables[(name, archive)]
                pk, first = _first_key(conn, table)
                written = f"  {EMAIL.upper()} " if archive else EMAIL  # case and spaces do not matter
                conn.execute(update(table).where(pk == first).values({column: written}))
        pk, first = _first_key(conn, cookies)
        conn.execute(update(cookies).where(pk == first).values(visitor_key=VISITOR))


@pytest.fixture(scope="session")
def crm_templates(tmp_path_factory) -> dict[str, str]:
    """Built once per backend, then copied for each test: seeding and seven runs take seconds."""
    return {"dir": str(tmp_path_factory.mktemp("crm-template"))}


@pytest.fixture
def crm(request, target_url, crm_templates):
    """A fresh copy of the demo CRM after one run of every category, with Jeanne in it."""
    if target_url.startswith("sqlite"):
        yield from _sqlite_copy(target_url, crm_templates)
    else:
        yield from _postgres_copy(request.getfixturevalue("postgres_server"), crm_templates)


def _sqlite_copy(target_url: str, templates: dict[str, str]):
    template = Path(templates["dir"]) / "crm.db"
    if "sqlite" not in templates:
        built = connect(f"sqlite:///{template}")
        _build_crm(built)
        built.dispose()
        templates["sqlite"] = str(template)
    database = Path(make_url(target_url).database)
    for source, copy in (
        (template, database),
        (sqlite_archive_path(str(template)), sqlite_archive_path(str(database))),
    ):
        shutil.copyfile(source, copy)
    target = connect(target_url)
    yield target
    target.dispose()


def _postgres_copy(server_url: str, templates: dict[str, str]):
    if "postgresql" not in templates:
        url = fresh_postgres_database(server_url)
        built = connect(url)
        _build_crm(built)
        built.dispose()
        templates["postgresql"] = make_url(url).database
    target = connect(fresh_postgres_database(server_url, template=templates["postgresql"]))
    yield target
    target.dispose()


def make_writes_fail(target, table: str, operation: str = "DELETE") -> None:
    """A trigger that makes any ``operation`` on the demo CRM's ``table`` fail with 'boom':
    a failure half-way through. (Names come from the tests, never from input.)"""
    with target.engine.begin() as conn:
        if target.is_sqlite:
            conn.execute(
                text(f"CREATE TRIGGER boom BEFORE {operation} ON {table} BEGIN SELECT RAISE(ABORT, 'boom'); END")
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION crm.boom() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'boom'; END $$"
                )
            )
            conn.execute(
                text(f"CREATE TRIGGER boom BEFORE {operation} ON crm.{table} FOR EACH ROW EXECUTE FUNCTION crm.boom()")
            )


def make_supplier_deletes_fail(target) -> None:
    """Any DELETE on suppliers fails: an erasure breaks after its first tables."""
    make_writes_fail(target, "suppliers", "DELETE")

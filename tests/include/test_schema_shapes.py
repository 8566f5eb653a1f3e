"""Shapes real CRMs have, on SQLite and PostgreSQL: what the engine supports, and what it
refuses with an error naming the table and column instead of a wrong result.

- Self-references (a company's contacts in the same table, ``parent_id``; Dolibarr's
  ``llx_societe.parent``): a foreign key from a governed table to itself is accepted only
  with ``ON DELETE SET NULL`` (what the application does when it deletes a parent row); with
  NO ACTION / RESTRICT every run would fail on the first parent that leaves before a row
  pointing at it, and with CASCADE the database would delete rows the policy did not choose,
  without archiving them. A table declared as its own descendant, or archived with itself,
  is refused at load. A clock read through rows of the same table works.
- Polymorphic links (``parent_type`` + ``parent_id``): a child has no ``where``; declare
  such a table a child through a real single-type foreign key.
- Many-to-many link tables, and a child with two possible parents: a row goes with
  whichever parent leaves first.
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import Column, Date, DateTime, ForeignKey, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from crm_helpers import KEY
from engine_helpers import PARIS, archive_rows, ids, run_category, schema_metadata
from include.retention.audit import RunContext
from include.retention.catalog import check_against_database
from include.retention.erasure import erase
from include.retention.errors import PolicyError
from include.retention.policy import parse_policy
from include.retention.subjects import Subject

AS_OF = date(2026, 11, 26)
SCHEMA = "shapes"


def _category(tables: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    category = {"label": {"fr": "Sociétés", "en": "Companies"}, "legal_basis": "Contrat",
                "archive_purpose": "Probatoire", "schedule": "0 2 * * *", "active_period": "P3Y",
                "archive_period": "P5Y", "end_action": "delete", "tables": tables}
    category.update(changes)
    return category


def _policy(**categories: dict[str, Any]) -> dict[str, Any]:
    return {"version": "shapes-1", "source_schema": SCHEMA, "archive_schema": "archive", "categories": categories}


def _at(day: date | None) -> datetime | None:
    return datetime(day.year, day.month, day.day, 10, tzinfo=PARIS) if day else None


def _ids(target, table: str, archive: bool = False) -> list[int]:
    return ids(target, table, archive=archive, schema=SCHEMA)


def _problems(target, policy) -> str:
    with target.engine.connect() as conn:
        with pytest.raises(PolicyError) as refused:
            check_against_database(policy, conn, target.dialect)
    return str(refused.value)


# --- Self-references -----------------------------------------------------------------------

COMPANIES = {
    "table": "companies", "primary_key": "company_id",
    "start_event": {"column": "last_contact_at", "when_missing": "defect"},
    "archive_columns": ["name", "email", "parent_id"],
    "subject_identifiers": {"email": ["email"]},
    "children": [{"table": "activities", "primary_key": "activity_id", "foreign_key": "company_id",
                  "archive_columns": ["occurred_at"]}],
}

# company_id: (parent_id, last contact day). 1 is a group whose subsidiary 2 is still active;
# 3 and its subsidiary 4 are both due; 5 points at 3 and is not due.
COMPANY_ROWS = {
    1: (None, date(2022, 1, 10)),   # due
    2: (1, date(2026, 3, 1)),       # recent: stays active, points at 1
    3: (None, date(2021, 5, 5)),    # due
    4: (3, date(2021, 6, 6)),       # due with its group
    5: (3, date(2025, 9, 9)),       # recent: stays, points at 3
}


def _create_companies(target, ondelete: str | None, rows=COMPANY_ROWS) -> Table:
    md, prefix = schema_metadata(target, SCHEMA)
    companies = Table("companies", md, Column("company_id", Integer, primary_key=True),
                      Column("name", String(80)), Column("email", String(120)),
                      Column("parent_id", Integer, ForeignKey(prefix + "companies.company_id", ondelete=ondelete)),
                      Column("last_contact_at", DateTime(timezone=True)))
    Table("activities", md, Column("activity_id", Integer, primary_key=True),
          Column("company_id", Integer, ForeignKey(prefix + "companies.company_id"), nullable=False),
          Column("occurred_at", DateTime(timezone=True)))
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        # Parents first: the database checks the self-reference row by row on SQLite.
        for company_id, (parent_id, day) in sorted(rows.items(), key=lambda r: r[1][0] is not None):
            conn.execute(insert(companies).values(company_id=company_id, name=f"Société {company_id}",
                                                  email=f"contact{company_id}@societe.example",
                                                  parent_id=parent_id, last_contact_at=_at(day)))
    return companies


def _parents(target) -> dict[int, int | None]:
    """company_id -> parent_id of the active companies."""
    companies = Table("companies", MetaData(), schema=None if target.is_sqlite else SCHEMA,
                      autoload_with=target.engine)
    with target.read() as conn:
        return dict(conn.execute(select(companies.c.company_id, companies.c.parent_id)).all())


def _companies_policy(table: dict[str, Any] | None = None) -> Any:
    return parse_policy(_policy(companies=_category([table or COMPANIES])), source="shapes.yaml")


@pytest.mark.parametrize("ondelete", [None, "RESTRICT", "CASCADE", "SET DEFAULT"])
def test_a_self_reference_that_would_fail_or_cascade_is_refused_at_the_live_check(target, ondelete):
    _create_companies(target, ondelete)
    message = _problems(target, _companies_policy())
    assert "categories.companies.tables[0]" in message
    assert "companies" in message and "parent_id" in message
    assert (ondelete or "NO ACTION") in message
    assert "ON DELETE SET NULL" in message  # the way out


@pytest.mark.parametrize("ondelete", [None, "CASCADE"])
def test_a_run_on_a_refused_self_reference_changes_nothing(target, ondelete):
    """Today's behaviour was the reason: NO ACTION failed every night on company 1 (still
    pointed at by 2); CASCADE archived 1 and silently deleted 2, never archived."""
    _create_companies(target, ondelete)
    with pytest.raises(PolicyError, match="parent_id"):
        run_category(target, _companies_policy(), category="companies")
    assert _ids(target, "companies") == [1, 2, 3, 4, 5]


def test_a_self_reference_set_null_on_delete_is_what_the_application_does(target):
    _create_companies(target, "SET NULL")
    policy = _companies_policy()
    run_category(target, policy, category="companies")
    assert _ids(target, "companies") == [2, 5]
    assert _ids(target, "companies", archive=True) == [1, 3, 4]
    archived = {r["company_id"]: r["parent_id"] for r in archive_rows(target, "companies")}
    assert archived == {1: None, 3: None, 4: 3}  # the archive keeps the link it had when it moved
    left = _parents(target)
    assert left == {2: None, 5: None}  # the database unlinked them, as deleting the group in the app would
    again = run_category(target, policy, category="companies", run_id="run-2")
    assert again.archived == {} and _ids(target, "companies") == [2, 5]
    # 2029-05-05: group 3 reaches its end of life (2021-05-05 + 3 + 5 years) while its former
    # subsidiary 4 (archived with its own date) and 5 (archived today) stay in the archive.
    later = run_category(target, policy, as_of=date(2029, 5, 5), category="companies", run_id="run-3")
    assert _ids(target, "companies", archive=True) == [1, 2, 4, 5] and _ids(target, "companies") == []
    assert later.purged["deleted"]["companies"] == 1


def test_erasing_a_group_leaves_its_subsidiaries_unlinked(target):
    _create_companies(target, "SET NULL")
    policy = _companies_policy()
    ctx = RunContext("manual__erasure-1", "subject_request", AS_OF, "test")
    erase(target, policy, Subject.of({"email": "contact3@societe.example"}), KEY, ctx)
    assert _ids(target, "companies") == [1, 2, 4, 5]
    left = _parents(target)
    assert left == {1: None, 2: 1, 4: None, 5: None}


def test_a_company_clock_read_from_its_subsidiaries_activities_in_the_same_table(target):
    """A path that comes back to the governed table (group -> its subsidiaries, rows of the same
    table -> their activities) reads other rows of the table, not the row itself."""
    companies = _create_companies(target, "SET NULL")
    activities = Table("activities", MetaData(), schema=None if target.is_sqlite else SCHEMA,
                       autoload_with=target.engine)
    with target.engine.begin() as conn:
        conn.execute(insert(activities), [
            {"activity_id": 201, "company_id": 2, "occurred_at": _at(date(2026, 2, 1))},  # keeps group 1
            {"activity_id": 401, "company_id": 4, "occurred_at": _at(date(2020, 1, 1))},  # old: group 3 due
            {"activity_id": 101, "company_id": 1, "occurred_at": _at(date(2026, 5, 1))},  # group's own: not read
        ])
    table = copy.deepcopy(COMPANIES)
    table["start_event"] = {"when_missing": "defect", "first_of": [
        {"latest": {"column": "occurred_at", "path": [{"table": "companies", "foreign_key": "parent_id"},
                                                       {"table": "activities", "foreign_key": "company_id"}]}},
        {"column": "last_contact_at"},
    ]}
    policy = _companies_policy(table)
    run_category(target, policy, category="companies")
    # 1: its subsidiary's activity of 2026-02-01 (its own 2022 contact would have made it due);
    # 2, 5: no subsidiaries, their own recent contact; 3: 2020-01-01 through 4; 4: its own 2021 contact.
    assert _ids(target, "companies") == [1, 2, 5]
    assert _ids(target, "companies", archive=True) == [3, 4]
    assert _ids(target, "activities", archive=True) == [401]
    assert companies is not None


def _contacts_tree() -> dict[str, Any]:
    table = copy.deepcopy(COMPANIES)
    table["children"] = [{"table": "contacts", "primary_key": "contact_id", "foreign_key": "company_id",
                          "children": [{"table": "contacts", "archive_table": "reporting_contacts",
                                        "primary_key": "contact_id", "foreign_key": "reports_to"}]}]
    return table


def test_a_table_declared_as_its_own_descendant_is_refused_at_load():
    """contacts -> contacts (reports_to) would copy and delete the same rows twice, in two trees."""
    with pytest.raises(PolicyError) as refused:
        parse_policy(_policy(companies=_category([_contacts_tree()])), source="shapes.yaml")
    message = str(refused.value)
    assert "categories.companies.tables[0].children[0].children[0]" in message
    assert "contacts" in message and "reports_to" in message and "ON DELETE SET NULL" in message


def test_a_table_declared_as_a_child_of_itself_is_refused_at_load():
    table = copy.deepcopy(COMPANIES)
    table["children"] = [{"table": "companies", "archive_table": "subsidiaries", "primary_key": "company_id",
                          "foreign_key": "parent_id"}]
    with pytest.raises(PolicyError) as refused:
        parse_policy(_policy(companies=_category([table])), source="shapes.yaml")
    assert "categories.companies.tables[0].children[0]" in str(refused.value)
    assert "itself" in str(refused.value) and "parent_id" in str(refused.value)


def test_a_table_archived_with_itself_is_refused_at_load():
    """Subsidiaries (one scope) archived with their group (another scope of the same table)."""
    groups = {**copy.deepcopy(COMPANIES), "archive_table": "groups", "scope": {"column": "parent_id", "is_null": True}}
    subsidiaries = {**copy.deepcopy(COMPANIES), "archive_table": "subsidiaries", "children": [],
                    "scope": {"column": "parent_id", "is_not_null": True},
                    "archived_with": {"table": "companies", "foreign_key": "parent_id"}}
    groups["children"][0]["archive_table"] = "group_activities"
    data = _policy(groups=_category([groups]), subsidiaries=_category([subsidiaries], label={"fr": "Filiales",
                                                                                           "en": "Subsidiaries"}))
    with pytest.raises(PolicyError) as refused:
        parse_policy(data, source="shapes.yaml")
    message = str(refused.value)
    assert "categories.subsidiaries.tables[0].archived_with.table" in message and "parent_id" in message

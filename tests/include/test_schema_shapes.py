"""Shapes real CRMs have, on SQLite and PostgreSQL: what the engine supports, and what it
refuses with an error naming the table and column instead of a wrong result.

- Self-references (a company's contacts in the same table, ``parent_id``; Dolibarr's
  ``llx_societe.parent``): a foreign key from a governed table to itself is accepted only
  with ``ON DELETE SET NULL`` (what the application does when it deletes a parent row); with
  NO ACTION / RESTRICT every run would fail on the first parent that leaves before a row
  pointing at it, and with CASCADE the database would delete rows the policy did not choose,
  without archiving them. A table declared as its own descendant, or archived with itself,
  is refused at load. A clock read through rows of the same table works.
- Polymorphic links (``parent_type`` + ``parent_id``): in a clock, a path step with a
  ``where``; a child has no ``where``: declare such a table a child through a real
  single-type foreign key.
- Many-to-many link tables, and a child with two possible parents: declared under both, a
  row goes with whichever parent leaves first, so it may keep only its keys in the archive
  (no other archive column, no subject identifiers), refused at load otherwise.
"""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import pytest
from crm_helpers import KEY
from engine_helpers import PARIS, archive_rows, ids, run_category, schema_metadata
from sqlalchemy import Column, Date, DateTime, ForeignKey, Integer, MetaData, String, Table, insert, select

from include.retention.database.check import check_against_database
from include.retention.database.identity import Subject
from include.retention.errors import PolicyError
from include.retention.policy.load import parse_policy
from include.retention.records.audit import RunContext
from include.retention.rights.erasure import erase

AS_OF = date(2026, 11, 26)
SCHEMA = "shapes"


def _category(tables: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    category = {
        "label": {"fr": "Sociétés", "en": "Companies"},
        "legal_basis": "Contrat",
        "archive_purpose": "Probatoire",
        "schedule": "0 2 * * *",
        "active_period": "P3Y",
        "archive_period": "P5Y",
        "end_action": "delete",
        "tables": tables,
    }
    category.update(changes)
    return category


def _policy(**categories: dict[str, Any]) -> dict[str, Any]:
    return {"version": "shapes-1", "source_schema": SCHEMA, "archive_schema": "archive", "categories": categories}


def _at(day: date | None) -> datetime | None:
    return datetime(day.year, day.month, day.day, 10, tzinfo=PARIS) if day else None


def _ids(target, table: str, archive: bool = False) -> list[int]:
    return ids(target, table, archive=archive, schema=SCHEMA)


def _problems(target, policy) -> str:
    with target.engine.connect() as conn, pytest.raises(PolicyError) as refused:
        check_against_database(policy, conn, target.dialect)
    return str(refused.value)


# --- Self-references -----------------------------------------------------------------------

COMPANIES = {
    "table": "companies",
    "primary_key": "company_id",
    "start_event": {"column": "last_contact_at", "when_missing": "defect"},
    "archive_columns": ["name", "email", "parent_id"],
    "subject_identifiers": {"email": ["email"]},
    "children": [
        {
            "table": "activities",
            "primary_key": "activity_id",
            "foreign_key": "company_id",
            "archive_columns": ["occurred_at"],
        }
    ],
}

# company_id: (parent_id, last contact day). 1 is a group whose subsidiary 2 is still active;
# 3 and its subsidiary 4 are both due; 5 points at 3 and is not due.
COMPANY_ROWS = {
    1: (None, date(2022, 1, 10)),  # due
    2: (1, date(2026, 3, 1)),  # recent: stays active, points at 1
    3: (None, date(2021, 5, 5)),  # due
    4: (3, date(2021, 6, 6)),  # due with its group
    5: (3, date(2025, 9, 9)),  # recent: stays, points at 3
}


def _create_companies(target, ondelete: str | None, rows=COMPANY_ROWS, nullable: bool = True) -> Table:
    md, prefix = schema_metadata(target, SCHEMA)
    companies = Table(
        "companies",
        md,
        Column("company_id", Integer, primary_key=True),
        Column("name", String(80)),
        Column("email", String(120)),
        Column("parent_id", Integer, ForeignKey(prefix + "companies.company_id", ondelete=ondelete), nullable=nullable),
        Column("last_contact_at", DateTime(timezone=True)),
    )
    Table(
        "activities",
        md,
        Column("activity_id", Integer, primary_key=True),
        Column("company_id", Integer, ForeignKey(prefix + "companies.company_id"), nullable=False),
        Column("occurred_at", DateTime(timezone=True)),
    )
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        # Parents first: the database checks the self-reference row by row on SQLite.
        for company_id, (parent_id, day) in sorted(rows.items(), key=lambda r: r[1][0] is not None):
            conn.execute(
                insert(companies).values(
                    company_id=company_id,
                    name=f"Société {company_id}",
                    email=f"contact{company_id}@societe.example",
                    parent_id=parent_id,
                    last_contact_at=_at(day),
                )
            )
    return companies


def _parents(target) -> dict[int, int | None]:
    """company_id -> parent_id of the active companies."""
    companies = Table("companies", MetaData(), schema=None if target.is_sqlite else SCHEMA, autoload_with=target.engine)
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


def test_a_self_reference_set_null_on_a_not_null_column_is_refused_at_the_live_check(target):
    """A group row points at itself: deleting a group the engine archives, the database would
    set its subsidiaries' parent_id to NULL, which the column refuses."""
    rows = {c: (parent or c, day) for c, (parent, day) in COMPANY_ROWS.items()}
    _create_companies(target, "SET NULL", rows, nullable=False)
    message = _problems(target, _companies_policy())
    assert "categories.companies.tables[0]" in message and "parent_id is NOT NULL" in message


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
    activities = Table(
        "activities", MetaData(), schema=None if target.is_sqlite else SCHEMA, autoload_with=target.engine
    )
    with target.engine.begin() as conn:
        conn.execute(
            insert(activities),
            [
                {"activity_id": 201, "company_id": 2, "occurred_at": _at(date(2026, 2, 1))},  # keeps group 1
                {"activity_id": 401, "company_id": 4, "occurred_at": _at(date(2020, 1, 1))},  # old: group 3 due
                {"activity_id": 101, "company_id": 1, "occurred_at": _at(date(2026, 5, 1))},  # group's own: not read
            ],
        )
    table = copy.deepcopy(COMPANIES)
    table["start_event"] = {
        "when_missing": "defect",
        "first_of": [
            {
                "latest": {
                    "column": "occurred_at",
                    "path": [
                        {"table": "companies", "foreign_key": "parent_id"},
                        {"table": "activities", "foreign_key": "company_id"},
                    ],
                }
            },
            {"column": "last_contact_at"},
        ],
    }
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
    table["children"] = [
        {
            "table": "contacts",
            "primary_key": "contact_id",
            "foreign_key": "company_id",
            "children": [
                {
                    "table": "contacts",
                    "archive_table": "reporting_contacts",
                    "primary_key": "contact_id",
                    "foreign_key": "reports_to",
                }
            ],
        }
    ]
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
    table["children"] = [
        {"table": "companies", "archive_table": "subsidiaries", "primary_key": "company_id", "foreign_key": "parent_id"}
    ]
    with pytest.raises(PolicyError) as refused:
        parse_policy(_policy(companies=_category([table])), source="shapes.yaml")
    assert "categories.companies.tables[0].children[0]" in str(refused.value)
    assert "itself" in str(refused.value) and "parent_id" in str(refused.value)


def test_a_table_archived_with_itself_is_refused_at_load():
    """Subsidiaries (one scope) archived with their group (another scope of the same table)."""
    groups = {**copy.deepcopy(COMPANIES), "archive_table": "groups", "scope": {"column": "parent_id", "is_null": True}}
    subsidiaries = {
        **copy.deepcopy(COMPANIES),
        "archive_table": "subsidiaries",
        "children": [],
        "scope": {"column": "parent_id", "is_not_null": True},
        "archived_with": {"table": "companies", "foreign_key": "parent_id"},
    }
    groups["children"][0]["archive_table"] = "group_activities"
    data = _policy(
        groups=_category([groups]),
        subsidiaries=_category([subsidiaries], label={"fr": "Filiales", "en": "Subsidiaries"}),
    )
    with pytest.raises(PolicyError) as refused:
        parse_policy(data, source="shapes.yaml")
    message = str(refused.value)
    assert "categories.subsidiaries.tables[0].archived_with.table" in message and "parent_id" in message


# --- Many-to-many link tables, and a child with two possible parents ----------------------

ACCOUNTS = {1: date(2022, 1, 1), 2: date(2026, 1, 1)}  # 1 due, 2 not
CONTACTS = {10: date(2026, 2, 2), 11: date(2021, 3, 3), 12: date(2022, 4, 4)}  # 11, 12 due
LINKS = {100: (1, 10), 101: (1, 11), 102: (2, 10), 103: (2, 11)}  # id: (account, contact)
# A note may belong to an account, a contact, or both: it goes with whichever leaves first.
NOTES = {200: (1, 10), 201: (1, None), 202: (None, 11), 203: (2, 11), 204: (2, 10)}


def _create_accounts_and_contacts(target) -> None:
    md, prefix = schema_metadata(target, SCHEMA)
    accounts = Table(
        "accounts",
        md,
        Column("account_id", Integer, primary_key=True),
        Column("name", String(80)),
        Column("email", String(120)),
        Column("last_activity_at", DateTime(timezone=True)),
    )
    contacts = Table(
        "contacts",
        md,
        Column("contact_id", Integer, primary_key=True),
        Column("full_name", String(80)),
        Column("email", String(120)),
        Column("last_contact_at", DateTime(timezone=True)),
    )
    links = Table(
        "accounts_contacts",
        md,
        Column("id", Integer, primary_key=True),
        Column("account_id", Integer, ForeignKey(prefix + "accounts.account_id"), nullable=False),
        Column("contact_id", Integer, ForeignKey(prefix + "contacts.contact_id"), nullable=False),
    )
    notes = Table(
        "notes",
        md,
        Column("note_id", Integer, primary_key=True),
        Column("account_id", Integer, ForeignKey(prefix + "accounts.account_id")),
        Column("contact_id", Integer, ForeignKey(prefix + "contacts.contact_id")),
        Column("body", String(200)),
        Column("author_email", String(120)),
        Column("created_on", Date),
    )
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        conn.execute(
            insert(accounts),
            [
                {
                    "account_id": a,
                    "name": f"Compte {a}",
                    "email": f"compte{a}@client.example",
                    "last_activity_at": _at(d),
                }
                for a, d in ACCOUNTS.items()
            ],
        )
        conn.execute(
            insert(contacts),
            [
                {
                    "contact_id": c,
                    "full_name": f"Contact {c}",
                    "email": f"contact{c}@client.example",
                    "last_contact_at": _at(d),
                }
                for c, d in CONTACTS.items()
            ],
        )
        conn.execute(insert(links), [{"id": i, "account_id": a, "contact_id": c} for i, (a, c) in LINKS.items()])
        conn.execute(
            insert(notes),
            [
                {
                    "note_id": n,
                    "account_id": a,
                    "contact_id": c,
                    "body": f"note {n}",
                    "author_email": f"contact{c}@client.example" if c else None,
                    "created_on": date(2020, 1, 1),
                }
                for n, (a, c) in NOTES.items()
            ],
        )


def _link_child(parent: str, foreign_key: str) -> dict[str, Any]:
    return {
        "table": "accounts_contacts",
        "archive_table": f"{parent}_links",
        "primary_key": "id",
        "foreign_key": foreign_key,
    }


def _note_child(parent: str, foreign_key: str, **changes: Any) -> dict[str, Any]:
    return {
        "table": "notes",
        "archive_table": f"{parent}_notes",
        "primary_key": "note_id",
        "foreign_key": foreign_key,
        **changes,
    }


def _links_policy(account_children=None, contact_children=None, contact_start=None) -> Any:
    accounts = {
        "table": "accounts",
        "primary_key": "account_id",
        "archive_columns": ["name"],
        "subject_identifiers": {"email": ["email"]},
        "start_event": {"column": "last_activity_at", "when_missing": "defect"},
        "children": account_children
        if account_children is not None
        else [_link_child("account", "account_id"), _note_child("account", "account_id")],
    }
    contacts = {
        "table": "contacts",
        "primary_key": "contact_id",
        "archive_columns": ["full_name"],
        "subject_identifiers": {"email": ["email"]},
        "start_event": contact_start or {"column": "last_contact_at", "when_missing": "defect"},
        "children": contact_children
        if contact_children is not None
        else [_link_child("contact", "contact_id"), _note_child("contact", "contact_id")],
    }
    return parse_policy(
        _policy(
            customers=_category([accounts]), contacts=_category([contacts], label={"fr": "Contacts", "en": "Contacts"})
        ),
        source="shapes.yaml",
    )


def _run_both(target, policy, order, as_of=AS_OF, run="a") -> None:
    for category in order:
        run_category(target, policy, as_of=as_of, category=category, run_id=f"run-{run}-{category}")


def _state(target) -> dict[str, list[int]]:
    state = {name: _ids(target, name) for name in ("accounts", "contacts", "accounts_contacts", "notes")}
    for name in ("accounts", "contacts", "account_links", "contact_links", "account_notes", "contact_notes"):
        state[f"archive.{name}"] = _ids(target, name, archive=True)
    return state


def test_a_link_table_declared_under_one_side_only_is_refused_naming_the_other_side(target):
    _create_accounts_and_contacts(target)
    message = _problems(target, _links_policy(contact_children=[_note_child("contact", "contact_id")]))
    assert "categories.contacts.tables[0].children" in message
    assert "accounts_contacts" in message and "contact_id" in message


# Each order on one backend in ``make test`` (customers first on SQLite, contacts first on
# PostgreSQL: each backend sees a link row leave with one parent, each order runs on one); the
# two other (backend, order) pairs, the same rule checked again, are marked ``deep``.
LINK_ORDERS = [
    pytest.param(
        backend,
        order,
        id=f"{backend}-{order[0]}_first",
        marks=() if (backend, order[0]) in {("sqlite", "customers"), ("postgresql", "contacts")} else pytest.mark.deep,
    )
    for backend in ("sqlite", "postgresql")
    for order in (("customers", "contacts"), ("contacts", "customers"))
]


@pytest.mark.parametrize(("target_url", "order"), LINK_ORDERS, indirect=["target_url"])
def test_a_link_row_and_a_two_parent_note_go_with_whichever_parent_leaves_first(target, order):
    _create_accounts_and_contacts(target)
    policy = _links_policy()
    _run_both(target, policy, order)
    state = _state(target)
    assert state["accounts"] == [2] and state["contacts"] == [10]
    assert state["accounts_contacts"] == [102] and state["notes"] == [204]  # both parents still active
    assert state["archive.accounts"] == [1] and state["archive.contacts"] == [11, 12]
    first, second = ("account", "contact") if order[0] == "customers" else ("contact", "account")
    # Link 101 and note 200... belong to account 1 and contact 11/10: whichever run came first took them.
    both_left = {"links": [101], "notes": []}
    account_only = {"links": [100], "notes": [200, 201]}
    contact_only = {"links": [103], "notes": [202, 203]}
    expected = {
        "account": {k: sorted(account_only[k] + (both_left[k] if first == "account" else [])) for k in both_left},
        "contact": {k: sorted(contact_only[k] + (both_left[k] if first == "contact" else [])) for k in both_left},
    }
    for side in (first, second):
        assert state[f"archive.{side}_links"] == expected[side]["links"], side
        assert state[f"archive.{side}_notes"] == expected[side]["notes"], side
    before = _state(target)
    _run_both(target, policy, order, run="b")
    assert _state(target) == before  # a second run changes nothing


@pytest.mark.parametrize(("target_url", "order"), LINK_ORDERS, indirect=["target_url"])
def test_each_parent_destroys_at_its_end_of_life_only_the_rows_that_left_with_it(target, order):
    _create_accounts_and_contacts(target)
    policy = _links_policy()
    _run_both(target, policy, order)
    moved = _state(target)
    # 2029-03-03: contact 11's end of life (2021-03-03 + 3 + 5 years); account 1 ends on 2030-01-01.
    _run_both(target, policy, order, as_of=date(2029, 3, 3), run="c")
    state = _state(target)
    assert 11 not in state["archive.contacts"] and 1 in state["archive.accounts"]
    # Contact 11's rows are destroyed with it, wherever they were: only the archive it left in holds them.
    assert not {101, 103} & set(state["archive.contact_links"])
    assert not {202, 203} & set(state["archive.contact_notes"])
    # What account 1 (and no one else) took with it stays until account 1's own end of life.
    assert set(moved["archive.account_links"]) <= set(state["archive.account_links"])
    assert set(moved["archive.account_notes"]) <= set(state["archive.account_notes"])


def test_erasing_either_parent_erases_its_own_rows_in_both_bases(target):
    _create_accounts_and_contacts(target)
    policy = _links_policy()
    _run_both(target, policy, ("customers", "contacts"))
    ctx = RunContext("manual__erasure-1", "subject_request", AS_OF, "test")
    erase(target, policy, Subject.of({"email": "contact10@client.example"}), KEY, ctx)  # still active
    erase(target, policy, Subject.of({"email": "contact11@client.example"}), KEY, ctx)  # archived
    erase(target, policy, Subject.of({"email": "compte2@client.example"}), KEY, ctx)  # still active
    state = _state(target)
    assert state["contacts"] == [] and state["archive.contacts"] == [12] and state["accounts"] == []
    assert state["accounts_contacts"] == [] and state["notes"] == []
    assert state["archive.contact_links"] == [] and state["archive.contact_notes"] == []
    # What account 1 took with it when it left first stays with account 1.
    assert state["archive.account_links"] == [100, 101] and state["archive.account_notes"] == [200, 201]


def _notes_with_bodies(**changes: Any) -> Any:
    return _links_policy(
        account_children=[
            _link_child("account", "account_id"),
            _note_child("account", "account_id", archive_columns=["body"], **changes),
        ],
        contact_children=[
            _link_child("contact", "contact_id"),
            _note_child("contact", "contact_id", archive_columns=["body"], **changes),
        ],
    )


def test_a_two_parent_child_that_archives_more_than_its_keys_is_refused_at_load():
    """Note 200 (account 1, contact 10) leaves with account 1 and its body is archived there:
    contact 10's erasure, access request or legal hold would never find it."""
    with pytest.raises(PolicyError) as refused:
        _notes_with_bodies()
    message = str(refused.value)
    for where in (
        "categories.customers.tables[0].children[1].archive_columns",
        "categories.contacts.tables[0].children[1].archive_columns",
    ):
        assert where in message
    assert "notes" in message and "accounts" in message and "contacts" in message
    assert "body" in message


def test_a_two_parent_child_with_its_own_identifiers_is_refused_at_load():
    """Declared under both parents, note 204 (account 2, contact 10) was found twice by contact
    10's e-mail while active - once in each tree - and every erasure of contact 10 failed."""
    with pytest.raises(PolicyError) as refused:
        _notes_with_bodies(subject_identifiers={"email": ["author_email"]})
    message = str(refused.value)
    assert "categories.contacts.tables[0].children[1].subject_identifiers" in message
    assert "author_email" in message


# A transfer between two accounts is a child of accounts twice, once through each foreign key:
# transfer 400 leaves with due account 1 through from_account, 401 through to_account, and 402
# (between two active accounts) stays. Account 2's erasure, access request or hold cannot reach
# 400 in account 1's archive, so a memo about account 2 must not be kept there.
TRANSFERS = {400: (1, 2), 401: (2, 1), 402: (2, 2)}  # id: (from_account, to_account)


def _transfer_child(foreign_key: str, archive_table: str, **changes: Any) -> dict[str, Any]:
    return {
        "table": "transfers",
        "archive_table": archive_table,
        "primary_key": "transfer_id",
        "foreign_key": foreign_key,
        **changes,
    }


def _transfers_policy(**changes: Any) -> Any:
    return _links_policy(
        account_children=[
            _link_child("account", "account_id"),
            _note_child("account", "account_id"),
            _transfer_child("from_account", "outgoing_transfers", **changes),
            _transfer_child("to_account", "incoming_transfers", **changes),
        ]
    )


def _create_transfers(target) -> None:
    md, prefix = schema_metadata(target, SCHEMA)
    Table("accounts", md, Column("account_id", Integer, primary_key=True))  # for the foreign keys only
    transfers = Table(
        "transfers",
        md,
        Column("transfer_id", Integer, primary_key=True),
        Column("from_account", Integer, ForeignKey(prefix + "accounts.account_id"), nullable=False),
        Column("to_account", Integer, ForeignKey(prefix + "accounts.account_id"), nullable=False),
        Column("memo", String(80)),
    )
    transfers.create(target.engine)
    with target.engine.begin() as conn:
        conn.execute(
            insert(transfers),
            [
                {"transfer_id": t, "from_account": a, "to_account": b, "memo": f"transfer {t}"}
                for t, (a, b) in TRANSFERS.items()
            ],
        )


def test_a_child_of_one_parent_table_through_two_foreign_keys_that_archives_its_memo_is_refused_at_load():
    """Grouped by parent table name alone, a transfer declared twice under accounts (from_account,
    to_account) loaded with its memo archived wherever the first account to leave took it."""
    with pytest.raises(PolicyError) as refused:
        _transfers_policy(archive_columns=["memo"])
    message = str(refused.value)
    for where in (
        "categories.customers.tables[0].children[2].archive_columns",
        "categories.customers.tables[0].children[3].archive_columns",
    ):
        assert where in message
    assert "from_account" in message and "to_account" in message and "memo" in message


def test_a_child_of_one_parent_table_through_two_foreign_keys_with_identifiers_is_refused_at_load():
    with pytest.raises(PolicyError) as refused:
        _transfers_policy(subject_identifiers={"email": ["memo"]})
    assert "categories.customers.tables[0].children[3].subject_identifiers.email" in str(refused.value)


def test_a_transfer_keeping_only_its_keys_goes_with_whichever_account_leaves_first(target):
    _create_accounts_and_contacts(target)
    _create_transfers(target)
    policy = _transfers_policy()
    with target.engine.connect() as conn:
        check_against_database(policy, conn, target.dialect)
    run_category(target, policy, category="customers")
    assert _ids(target, "accounts") == [2] and _ids(target, "transfers") == [402]
    assert _ids(target, "outgoing_transfers", archive=True) == [400]
    assert _ids(target, "incoming_transfers", archive=True) == [401]


# The same table name in two schemas. The engine tells governed tables apart by name at run
# time (a category's precedence over another's rows, archived_with, holds on a row, the
# tables a run locks), and SQLite has no schemas at all: one name in two schemas is refused.


def _schema_contacts(schema: str, archive_table: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "table": "contacts",
        "schema": schema,
        "archive_table": archive_table,
        "primary_key": "contact_id",
        "archive_columns": ["full_name"],
        "start_event": {"column": "last_contact_at", "when_missing": "defect"},
        "children": children,
    }


def _two_schemas_policy(note_columns: list[str]) -> dict[str, Any]:
    data = _policy(
        crm=_category(
            [_schema_contacts("crm", "crm_contacts", [_note_child("crm", "contact_id", archive_columns=note_columns)])]
        ),
        web=_category(
            [
                _schema_contacts(
                    "web", "web_contacts", [_note_child("web", "web_contact_id", archive_columns=note_columns)]
                )
            ],
            label={"fr": "Web", "en": "Web"},
        ),
    )
    data["precedence"] = ["crm", "web"]
    return data


def test_a_child_of_same_named_parents_in_two_schemas_that_archives_its_body_is_refused_at_load():
    """notes under crm.contacts and under web.contacts has two parent tables, not one."""
    with pytest.raises(PolicyError) as refused:
        parse_policy(_two_schemas_policy(["body"]), source="shapes.yaml")
    message = str(refused.value)
    for where in (
        "categories.crm.tables[0].children[0].archive_columns",
        "categories.web.tables[0].children[0].archive_columns",
    ):
        assert where in message
    assert f"{SCHEMA}.notes" in message and "crm.contacts" in message and "web.contacts" in message


def test_one_table_name_in_two_schemas_is_refused_at_load_naming_both():
    """With precedence [crm, web], web's run excluded every row crm's scope matched - in
    crm.contacts, taken for the same table - so web.contacts was never archived."""
    with pytest.raises(PolicyError) as refused:
        parse_policy(_two_schemas_policy([]), source="shapes.yaml")
    message = str(refused.value)
    assert "categories.web.tables[0].schema" in message
    assert "crm.contacts" in message and "web.contacts" in message


def test_a_table_named_with_the_source_schema_is_the_same_table_as_one_without():
    """``schema: shapes`` (the policy's source_schema) and no schema name one table: a note
    declared under both spellings of accounts is no two-parent child."""
    accounts = {
        "table": "accounts",
        "schema": SCHEMA,
        "primary_key": "account_id",
        "start_event": {"column": "last_activity_at", "when_missing": "defect"},
        "children": [_note_child("account", "account_id", archive_columns=["body"])],
    }
    other = copy.deepcopy(accounts)
    other.pop("schema")
    other["archive_table"] = "prospect_accounts"
    other["children"][0]["archive_table"] = "prospect_notes"
    other["scope"] = {"column": "email", "is_null": True}
    accounts["scope"] = {"column": "email", "is_not_null": True}
    policy = parse_policy(
        _policy(customers=_category([accounts]), prospects=_category([other], label={"fr": "P", "en": "P"})),
        source="shapes.yaml",
    )
    assert [c.key for c in policy.categories.values()] == ["customers", "prospects"]


def test_a_contact_clock_read_through_the_link_table_from_its_accounts(target):
    """contacts -> accounts_contacts (contact_id) -> accounts (account_id = the link's account_id)."""
    _create_accounts_and_contacts(target)
    through_links = [
        {"table": "accounts_contacts", "foreign_key": "contact_id"},
        {"table": "accounts", "foreign_key": "account_id", "references": "account_id"},
    ]
    policy = _links_policy(
        contact_start={
            "when_missing": "defect",
            "first_of": [
                {"latest": {"column": "last_activity_at", "path": through_links}},
                {"column": "last_contact_at"},
            ],
        }
    )
    run_category(target, policy, category="contacts")
    # 10 and 11: account 2's activity of 2026-01-01 (11's own contact of 2021 would have made it due);
    # 12: no account, its own contact of 2022.
    assert _ids(target, "contacts") == [10, 11] and _ids(target, "contacts", archive=True) == [12]


# --- Polymorphic links -------------------------------------------------------------------


def _create_events(target) -> None:
    """Events point at an account or a contact (``parent_type`` + ``parent_id``, no database
    foreign key), and at an account through ``account_id`` (a real one), as Dolibarr's
    ``llx_actioncomm`` does with ``elementtype`` + ``fk_element`` beside ``fk_soc``."""
    md, prefix = schema_metadata(target, SCHEMA)
    events = Table(
        "events",
        md,
        Column("event_id", Integer, primary_key=True),
        Column("account_id", Integer, ForeignKey(prefix + "accounts.account_id")),
        Column("parent_type", String(20)),
        Column("parent_id", Integer),
        Column("occurred_at", DateTime(timezone=True)),
    )
    Table("accounts", md, Column("account_id", Integer, primary_key=True))  # for the foreign key only
    events.create(target.engine)
    with target.engine.begin() as conn:
        conn.execute(
            insert(events),
            [
                # Contact 1 does not exist, but an id of another type collides with account 1's.
                {
                    "event_id": 300,
                    "account_id": None,
                    "parent_type": "contact",
                    "parent_id": 1,
                    "occurred_at": _at(date(2026, 6, 1)),
                },
                {
                    "event_id": 301,
                    "account_id": 1,
                    "parent_type": "account",
                    "parent_id": 1,
                    "occurred_at": _at(date(2021, 1, 1)),
                },
                {
                    "event_id": 302,
                    "account_id": 2,
                    "parent_type": "account",
                    "parent_id": 2,
                    "occurred_at": _at(date(2026, 2, 2)),
                },
            ],
        )


def test_a_polymorphic_link_in_a_clock_is_a_hop_with_a_filter_and_a_child_through_its_real_key(target):
    _create_accounts_and_contacts(target)
    _create_events(target)
    events_child = {
        "table": "events",
        "primary_key": "event_id",
        "foreign_key": "account_id",
        "archive_columns": ["occurred_at"],
    }
    account_start = {
        "when_missing": "defect",
        "first_of": [
            {
                "latest": {
                    "column": "occurred_at",
                    "path": [
                        {
                            "table": "events",
                            "foreign_key": "parent_id",
                            "where": {"column": "parent_type", "equals": "account"},
                        }
                    ],
                }
            },
            {"column": "last_activity_at"},
        ],
    }
    policy = parse_policy(
        _policy(
            customers=_category(
                [
                    {
                        "table": "accounts",
                        "primary_key": "account_id",
                        "start_event": account_start,
                        "children": [
                            _link_child("account", "account_id"),
                            _note_child("account", "account_id"),
                            events_child,
                        ],
                    }
                ]
            )
        ),
        source="shapes.yaml",
    )
    run_category(target, policy, category="customers")
    # Account 1: its own event of 2021 (contact 1's event of 2026 is not its own): due.
    assert _ids(target, "accounts") == [2] and _ids(target, "accounts", archive=True) == [1]
    # The event moves with account 1 through account_id; the contact's event with the same id stays.
    assert _ids(target, "events") == [300, 302] and _ids(target, "events", archive=True) == [301]


def test_a_child_has_no_where_a_polymorphic_child_is_refused_at_load():
    """Ids of different tables collide: declared as a child through ``parent_id`` alone, contact
    1's events would move and die with account 1. A child takes no ``where``: declare such a
    table a child through a real single-type foreign key (``account_id``, ``fk_soc``)."""
    data = _policy(
        customers=_category(
            [
                {
                    "table": "accounts",
                    "primary_key": "account_id",
                    "start_event": {"column": "last_activity_at", "when_missing": "defect"},
                    "children": [
                        {
                            "table": "events",
                            "primary_key": "event_id",
                            "foreign_key": "parent_id",
                            "where": {"column": "parent_type", "equals": "account"},
                        }
                    ],
                }
            ]
        )
    )
    with pytest.raises(PolicyError) as refused:
        parse_policy(data, source="shapes.yaml")
    assert "categories.customers.tables[0].children[0].where" in str(refused.value)

"""A child table with its own subject identifiers under a root table several categories share.

Dolibarr's shape: third parties (``partners``) serve prospects and customers through scopes
(``client``: 1 customer, 2 prospect, 3 both - customers win by precedence, 0 neither), and
their contacts (``people``, with an e-mail) are declared under both categories, with the
contact's consents (``consents``, with an e-mail too) under them. A contact's active row
belongs to the category whose effective scope holds its company's row - at every depth -
so a request finds it once: erased once, exported once, kept once by a hold, counted once
by "was X erased?". In the archive each category has its own tables, so a row archived by one
category is found there only. A child row found by its own identifiers answers to a legal
hold on itself, on the person or on its category, as a root row does.

A child row no category's tree holds - its company in no category's scope (client 0), or no
company at all (NULL key: Dolibarr's private contacts) - is found once too, in the first
category in policy order declaring the table as a child with identifiers (as when there was
only one category), even when that category is the only one a request covers. A root row in
no category's scope is governed by none and found by none.
"""

from __future__ import annotations

import json
import zipfile
from datetime import date, datetime
from typing import Any

import pytest
from crm_helpers import KEY
from dolibarr_world import CONTACTS, dolibarr_policy, seed
from dolibarr_world import SCHEMA as DOLIBARR_SCHEMA
from engine_helpers import PARIS, ids, run_category, schema_metadata
from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table, insert, text

from include.retention.database.identity import Subject
from include.retention.policy.load import parse_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.rights.erased import was_erased
from include.retention.rights.erasure import erase
from include.retention.rights.export import export_subject
from include.retention.settings import EXPORTS_ENV_VAR

AS_OF = date(2026, 11, 26)
SCHEMA = "shared_parent"
CUSTOMER, PROSPECT, BOTH, NEITHER = 1, 2, 3, 0

# partner_id: (client, last contact day). Partner 1, a prospect last contacted in 2021, is
# due for prospects' archive (P3Y); the others are recent.
PARTNERS = {
    1: (PROSPECT, date(2021, 1, 1)),
    2: (CUSTOMER, date(2026, 1, 1)),
    3: (BOTH, date(2026, 1, 1)),
    4: (NEITHER, date(2026, 1, 1)),
}
# person_id: (partner_id, e-mail); each contact has one consent row, consent_id = person_id + 10.
PEOPLE = {
    11: (1, "paul@prospect.example"),
    12: (2, "jeanne@client.example"),
    13: (3, "marie@both.example"),
    14: (4, "luc@supplier.example"),
}


def _create(target) -> None:
    md, prefix = schema_metadata(target, SCHEMA)
    partners = Table(
        "partners",
        md,
        Column("partner_id", Integer, primary_key=True),
        Column("client", Integer),
        Column("last_contact_at", DateTime(timezone=True)),
    )
    people = Table(
        "people",
        md,
        Column("person_id", Integer, primary_key=True),
        Column("partner_id", Integer, ForeignKey(prefix + "partners.partner_id")),
        Column("email", String(120)),
    )
    consents = Table(
        "consents",
        md,
        Column("consent_id", Integer, primary_key=True),
        Column("person_id", Integer, ForeignKey(prefix + "people.person_id")),
        Column("email", String(120)),
    )
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        conn.execute(
            insert(partners),
            [{"partner_id": p, "client": c, "last_contact_at": _at(day)} for p, (c, day) in PARTNERS.items()],
        )
        conn.execute(
            insert(people),
            [{"person_id": p, "partner_id": partner, "email": email} for p, (partner, email) in PEOPLE.items()],
        )
        conn.execute(
            insert(consents),
            [{"consent_id": p + 10, "person_id": p, "email": email} for p, (_, email) in PEOPLE.items()],
        )
        if not target.is_sqlite:  # keyed hashes in SQL (subject holds) use pgcrypto there
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, tzinfo=PARIS)


def _partners(kind: str, clients: list[int]) -> dict[str, Any]:
    return {
        "table": "partners",
        "archive_table": f"{kind}_partners",
        "primary_key": "partner_id",
        "archive_columns": ["client"],
        "scope": {"column": "client", "in": clients},
        "start_event": {"column": "last_contact_at", "when_missing": "defect"},
        "children": [
            {
                "table": "people",
                "archive_table": f"{kind}_people",
                "primary_key": "person_id",
                "foreign_key": "partner_id",
                "archive_columns": ["email"],
                "subject_identifiers": {"email": ["email"]},
                "children": [
                    {
                        "table": "consents",
                        "archive_table": f"{kind}_consents",
                        "primary_key": "consent_id",
                        "foreign_key": "person_id",
                        "archive_columns": ["email"],
                        "subject_identifiers": {"email": ["email"]},
                    }
                ],
            }
        ],
    }


def _category(kind: str, clients: list[int]) -> dict[str, Any]:
    return {
        "label": {"fr": kind, "en": kind},
        "legal_basis": "Intérêt légitime",
        "archive_purpose": "Probatoire",
        "schedule": "0 2 * * *",
        "active_period": "P3Y",
        "archive_period": "P5Y",
        "end_action": "delete",
        "tables": [_partners(kind, clients)],
    }


def _policy() -> RetentionPolicy:
    return parse_policy(
        {
            "version": "shared-1",
            "source_schema": SCHEMA,
            "archive_schema": "archive",
            "precedence": ["customers", "prospects"],
            "categories": {
                "prospects": _category("prospect", [PROSPECT, BOTH]),
                "customers": _category("customer", [CUSTOMER, BOTH]),
            },
        },
        source="shared.yaml",
    )


def _erase(target, policy: RetentionPolicy, email: str) -> dict[tuple[str, str, bool], tuple[int, int, str | None]]:
    """The erasure's outcome per (category, table, archive): (found, erased, kept because)."""
    result = erase(
        target,
        policy,
        Subject.of({"email": email}),
        KEY,
        RunContext("manual__erasure-1", "subject_request", AS_OF, "test"),
    )
    return {(t.category, t.table, t.archive): (t.found, t.erased, t.kept_because) for t in result.tables}


def _ids(target, table: str, archive: bool = False) -> list[int]:
    return ids(target, table, archive=archive, schema=SCHEMA)


@pytest.fixture
def shared(target):
    _create(target)
    return target


def test_erasing_a_customers_contact_erases_its_rows_once_under_customers(shared):
    outcome = _erase(shared, _policy(), "jeanne@client.example")

    assert outcome == {("customers", "people", False): (1, 1, None), ("customers", "consents", False): (1, 1, None)}
    assert _ids(shared, "people") == [11, 13, 14]
    assert _ids(shared, "consents") == [21, 23, 24]
    assert _ids(shared, "partners") == [1, 2, 3, 4]


def test_a_contact_of_a_company_both_prospect_and_customer_is_erased_under_customers_only(shared):
    outcome = _erase(shared, _policy(), "marie@both.example")

    assert outcome == {("customers", "people", False): (1, 1, None), ("customers", "consents", False): (1, 1, None)}
    assert _ids(shared, "people") == [11, 12, 14]


def test_a_prospects_contact_is_erased_under_prospects_only(shared):
    outcome = _erase(shared, _policy(), "paul@prospect.example")

    assert outcome == {("prospects", "people", False): (1, 1, None), ("prospects", "consents", False): (1, 1, None)}
    assert _ids(shared, "people") == [12, 13, 14]


def test_an_archived_contact_is_found_once_in_its_own_categorys_archive(shared):
    policy = _policy()
    run_category(shared, policy, category="prospects", run_id="run-prospects")
    run_category(shared, policy, category="customers", run_id="run-customers")
    assert _ids(shared, "prospect_people", archive=True) == [11]

    outcome = _erase(shared, policy, "paul@prospect.example")

    assert outcome == {("prospects", "people", True): (1, 1, None), ("prospects", "consents", True): (1, 1, None)}
    assert _ids(shared, "prospect_people", archive=True) == []
    assert _ids(shared, "prospect_consents", archive=True) == []


def test_an_access_export_lists_a_contact_once_under_its_companys_category(shared, tmp_path, monkeypatch):
    monkeypatch.setenv(EXPORTS_ENV_VAR, str(tmp_path))
    with shared.read() as conn:
        path, counts = export_subject(
            conn, shared, _policy(), Subject.of({"email": "jeanne@client.example"}), "ACC-2026-1", "access"
        )

    assert counts == {"customers.people.active": 1, "customers.consents.active": 1}
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("subject.json"))
    assert [c["category"] for c in document["categories"]] == ["customers"]
    assert [row["person_id"] for row in document["data"]["customers"]["people"]["active"]] == [12]


def _hold(target, policy: RetentionPolicy, **fields: Any) -> None:
    add_hold(
        target,
        policy,
        NewHold(reference="LIT-2026-7", reason="Litige", created_by="dpo@example.fr", **fields),
        KEY,
        RunContext("manual__hold-1", "legal_hold", AS_OF, "test"),
        AS_OF,
    )


def test_a_contact_under_a_legal_hold_on_the_person_is_kept_once_by_the_hold(shared):
    policy = _policy()
    _hold(shared, policy, scope="subject", subject=Subject.of({"email": "jeanne@client.example"}))

    outcome = _erase(shared, policy, "jeanne@client.example")

    assert {where: (found, erased) for where, (found, erased, _) in outcome.items()} == {
        ("customers", "people", False): (1, 0),
        ("customers", "consents", False): (1, 0),
    }
    assert all(why.startswith("legal hold") for _, _, why in outcome.values())
    assert _ids(shared, "people") == [11, 12, 13, 14]
    assert _ids(shared, "consents") == [21, 22, 23, 24]


def test_a_contact_row_under_a_legal_hold_is_kept_by_the_hold(shared):
    policy = _policy()
    _hold(shared, policy, scope="rows", table="people", keys=[12])

    outcome = _erase(shared, policy, "jeanne@client.example")

    assert outcome[("customers", "people", False)][:2] == (1, 0)
    assert _ids(shared, "people") == [11, 12, 13, 14]
    assert outcome[("customers", "consents", False)][0] == 1  # found once (erased: no hold reaches it)


def test_a_contact_in_a_category_under_a_legal_hold_is_kept_by_the_hold(shared):
    policy = _policy()
    _hold(shared, policy, scope="category", category="customers")

    outcome = _erase(shared, policy, "jeanne@client.example")

    assert {where: (found, erased) for where, (found, erased, _) in outcome.items()} == {
        ("customers", "people", False): (1, 0),
        ("customers", "consents", False): (1, 0),
    }
    assert _ids(shared, "people") == [11, 12, 13, 14]


# --- The real example: Dolibarr's contacts under third parties shared by two categories --------


@pytest.mark.parametrize(
    "contact, category", [(201, "customer_relationship"), (21, "prospection"), (301, "customer_relationship")]
)  # 301: client 3, customer wins
def test_erasing_a_dolibarr_contact_erases_it_once_in_its_third_partys_category(target, contact, category):
    seed(target)

    result = erase(
        target,
        dolibarr_policy(),
        Subject.of({"email": f"camille{contact}@example.fr"}),
        KEY,
        RunContext("manual__erasure-1", "subject_request", AS_OF, "test"),
    )

    assert [(t.category, t.table, t.archive, t.found, t.erased) for t in result.tables] == [
        (category, "llx_socpeople", False, 1, 1)
    ]
    remaining = ids(target, "llx_socpeople", schema=DOLIBARR_SCHEMA)
    assert contact not in remaining and len(remaining) == len(CONTACTS) - 1


def test_was_erased_counts_a_contact_once_under_its_companys_category(shared):
    answer = was_erased(shared, _policy(), KEY, "email", "jeanne@client.example")

    assert sorted((p.category, p.table, p.active, p.archived) for p in answer.presence) == [
        ("customers", "consents", 1, 0),
        ("customers", "people", 1, 0),
    ]
    assert answer.active_rows == 2


def test_was_erased_says_a_contact_is_personal_data_not_kept_by_an_obligation(shared):
    """One category, nothing kept by another: a child row found by its own identifiers was
    also listed a second time as kept by a legal obligation."""
    policy = parse_policy(
        {
            "version": "single-1",
            "source_schema": SCHEMA,
            "archive_schema": "archive",
            "categories": {"customers": _category("customer", [CUSTOMER, BOTH])},
        },
        source="single.yaml",
    )

    answer = was_erased(shared, policy, KEY, "email", "jeanne@client.example")

    assert sorted((p.table, p.active, p.kind) for p in answer.presence) == [
        ("consents", 1, "personal_data"),
        ("people", 1, "personal_data"),
    ]


# --- Child rows no category's scope holds: found once, in the first category declaring the table ---


def _single_policy(on_erasure: str | None = None) -> RetentionPolicy:
    category = _category("customer", [CUSTOMER, BOTH])
    if on_erasure:
        category["on_erasure"] = on_erasure
    return parse_policy(
        {
            "version": "single-1",
            "source_schema": SCHEMA,
            "archive_schema": "archive",
            "categories": {"customers": category},
        },
        source="single.yaml",
    )


def _add_person(target, person_id: int, partner: int | None, email: str) -> None:
    """A contact (and its consent, ``person_id + 10``) under ``partner``, or under none."""
    md = MetaData()
    schema = None if target.is_sqlite else SCHEMA
    people = Table("people", md, schema=schema, autoload_with=target.engine)
    consents = Table("consents", md, schema=schema, autoload_with=target.engine)
    with target.engine.begin() as conn:
        conn.execute(insert(people), [{"person_id": person_id, "partner_id": partner, "email": email}])
        conn.execute(insert(consents), [{"consent_id": person_id + 10, "person_id": person_id, "email": email}])


def test_single_category_erases_a_contact_whose_company_is_outside_its_scope(shared):
    """Paul's company is a prospect; the only category governs customers: his contact row
    holds his e-mail in a governed table, so the erasure finds and erases it, in customers."""
    outcome = _erase(shared, _single_policy(), "paul@prospect.example")

    assert outcome == {("customers", "people", False): (1, 1, None), ("customers", "consents", False): (1, 1, None)}
    assert _ids(shared, "people") == [12, 13, 14]
    assert _ids(shared, "consents") == [22, 23, 24]
    assert _ids(shared, "partners") == [1, 2, 3, 4]


def test_single_category_erases_a_contact_attached_to_no_company(shared):
    _add_person(shared, 15, None, "solo@private.example")

    outcome = _erase(shared, _single_policy(), "solo@private.example")

    assert outcome == {("customers", "people", False): (1, 1, None), ("customers", "consents", False): (1, 1, None)}
    assert 15 not in _ids(shared, "people") and 25 not in _ids(shared, "consents")


def test_single_category_on_erasure_keep_keeps_a_contact_attached_to_no_company(shared):
    _add_person(shared, 15, None, "solo@private.example")

    outcome = _erase(shared, _single_policy(on_erasure="keep"), "solo@private.example")

    assert {where: (found, erased) for where, (found, erased, _) in outcome.items()} == {
        ("customers", "people", False): (1, 0),
        ("customers", "consents", False): (1, 0),
    }
    assert 15 in _ids(shared, "people")


@pytest.mark.parametrize("email, person", [("luc@supplier.example", 14), ("solo@private.example", 15)])
def test_a_contact_no_category_holds_is_erased_once_in_the_first_category_declaring_it(shared, email, person):
    """Luc's company is neither prospect nor customer (client 0); Solo has no company. Both
    contacts hold their e-mail in a table prospects and customers declare: the first
    category in policy order (prospects, whatever the precedence) finds them, once."""
    _add_person(shared, 15, None, "solo@private.example")

    outcome = _erase(shared, _policy(), email)

    assert outcome == {("prospects", "people", False): (1, 1, None), ("prospects", "consents", False): (1, 1, None)}
    assert person not in _ids(shared, "people") and person + 10 not in _ids(shared, "consents")
    assert len(_ids(shared, "people")) == 4


def test_an_access_export_lists_a_contact_attached_to_no_company_once(shared, tmp_path, monkeypatch):
    monkeypatch.setenv(EXPORTS_ENV_VAR, str(tmp_path))
    _add_person(shared, 15, None, "solo@private.example")
    with shared.read() as conn:
        path, counts = export_subject(
            conn, shared, _policy(), Subject.of({"email": "solo@private.example"}), "ACC-2026-2", "access"
        )

    assert counts == {"prospects.people.active": 1, "prospects.consents.active": 1}
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("subject.json"))
    assert [row["person_id"] for row in document["data"]["prospects"]["people"]["active"]] == [15]


def test_was_erased_lists_a_contact_whose_company_no_category_holds_once(shared):
    answer = was_erased(shared, _policy(), KEY, "email", "luc@supplier.example")

    assert sorted((p.category, p.table, p.active, p.archived, p.kind) for p in answer.presence) == [
        ("prospects", "consents", 1, 0, "personal_data"),
        ("prospects", "people", 1, 0, "personal_data"),
    ]
    assert answer.verdict == "active"


def test_a_contact_no_category_holds_is_still_found_once_when_its_company_joins_a_scope(shared):
    """The same contact, once its company becomes a customer, belongs to customers only."""
    with shared.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {'' if shared.is_sqlite else SCHEMA + '.'}partners SET client = 1 WHERE partner_id = 4")
        )

    outcome = _erase(shared, _policy(), "luc@supplier.example")

    assert outcome == {("customers", "people", False): (1, 1, None), ("customers", "consents", False): (1, 1, None)}


@pytest.mark.parametrize(
    "hold",
    [
        {"scope": "rows", "table": "people", "keys": [15]},
        {"scope": "category", "category": "prospects"},
        {"scope": "subject", "subject": Subject.of({"email": "solo@private.example"})},
    ],
)
def test_a_legal_hold_keeps_a_contact_attached_to_no_company(shared, hold):
    policy = _policy()
    _add_person(shared, 15, None, "solo@private.example")
    _hold(shared, policy, **hold)

    outcome = _erase(shared, policy, "solo@private.example")

    assert outcome[("prospects", "people", False)][:2] == (1, 0)
    assert outcome[("prospects", "people", False)][2].startswith("legal hold")
    assert set(outcome) <= {("prospects", "people", False), ("prospects", "consents", False)}
    assert 15 in _ids(shared, "people")


@pytest.mark.parametrize("contact", [901, 101])  # 901: private (fk_soc NULL); 101: a supplier's (client 0)
def test_erasing_a_dolibarr_contact_no_third_party_category_holds_erases_it_once_in_prospection(target, contact):
    seed(target)

    result = erase(
        target,
        dolibarr_policy(),
        Subject.of({"email": f"camille{contact}@example.fr"}),
        KEY,
        RunContext("manual__erasure-1", "subject_request", AS_OF, "test"),
    )

    assert [(t.category, t.table, t.archive, t.found, t.erased) for t in result.tables] == [
        ("prospection", "llx_socpeople", False, 1, 1)
    ]
    remaining = ids(target, "llx_socpeople", schema=DOLIBARR_SCHEMA)
    assert contact not in remaining and len(remaining) == len(CONTACTS) - 1


def test_a_dolibarr_third_party_in_no_categorys_scope_is_not_found(target):
    """Roots are what a category governs: a supplier-only third party (client 0) is in no
    category's scope, so a request does not find it (docs/how-to/rights-requests.md)."""
    seed(target)

    result = erase(
        target,
        dolibarr_policy(),
        Subject.of({"email": "contact10@example.fr"}),
        KEY,
        RunContext("manual__erasure-1", "subject_request", AS_OF, "test"),
    )

    assert result.tables == []
    assert 10 in ids(target, "llx_societe", schema=DOLIBARR_SCHEMA)


def _opposition(target, covered: str, email: str) -> dict[tuple[str, str, bool], tuple[int, int]]:
    """An opposition where only ``covered`` lists it in ``deleted_on``: (found, erased) per table."""
    categories = {
        "prospects": _category("prospect", [PROSPECT, BOTH]),
        "customers": _category("customer", [CUSTOMER, BOTH]),
    }
    categories[covered]["deleted_on"] = ["opposition"]
    policy = parse_policy(
        {
            "version": "shared-2",
            "source_schema": SCHEMA,
            "archive_schema": "archive",
            "precedence": ["customers", "prospects"],
            "categories": categories,
        },
        source="shared.yaml",
    )
    result = erase(
        target,
        policy,
        Subject.of({"email": email}),
        KEY,
        RunContext("manual__opposition-1", "subject_request", AS_OF, "test"),
        request_type="opposition",
    )
    return {(t.category, t.table, t.archive): (t.found, t.erased) for t in result.tables}


def test_an_opposition_covering_customers_only_leaves_a_prospects_contact_alone(shared):
    """Prospects is not searched, yet it still holds Paul's contact: customers must not take
    it for a contact no category holds."""
    assert _opposition(shared, "customers", "paul@prospect.example") == {}
    assert _ids(shared, "people") == [11, 12, 13, 14]


def test_an_opposition_reaches_a_contact_no_category_holds_only_through_the_first_category(shared):
    assert _opposition(shared, "customers", "luc@supplier.example") == {}
    assert _opposition(shared, "prospects", "luc@supplier.example") == {
        ("prospects", "people", False): (1, 1),
        ("prospects", "consents", False): (1, 1),
    }
    assert _ids(shared, "people") == [11, 12, 13]

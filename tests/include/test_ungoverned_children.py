"""Active child rows that no scheduled run can ever move or destroy are reported, never kept
silently for ever.

A child row leaves the active base with its parent row. When it has none - a NULL foreign key
(Dolibarr's private contacts, ``llx_socpeople.fk_soc IS NULL``), a key pointing at no row - or
when its parent row is in no category's tree (a supplier-only third party, ``client = 0``; a
contract of that supplier, and the contract's lines below it), no category's run reaches it.
The spec: a record that cannot be aged must never be kept silently for ever. So each category's
post-run gate reports, per child table at every depth, the count of such active rows as a
non-blocking data-quality check, ``child_rows_without_a_governed_parent``, with one primary key
to start from (in the task log only, never in the audit log; keys, never values). A child table
several categories declare is checked once, by the first category in policy order declaring it;
a child row under a parent that another category governs, with the same table declared below it,
is that category's, and not reported. Root rows in no category's scope (the supplier itself)
are governed by nobody on purpose: not reported.

Run on the synthetic Dolibarr database (``dolibarr_world``) with a few more rows no category
governs, through every step of every category's scheduled run, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from dolibarr_world import AS_OF, CATEGORIES, SCHEMA, at, dolibarr_policy, seed
from engine_helpers import run_whole
from sqlalchemy import MetaData, Table, insert
from table_checksums import checksum

from include.retention.database.identity import SubjectKey
from include.retention.database.store import audit_table
from include.retention.database.target import connect
from include.retention.records.audit import RunContext, events
from include.retention.reports import certificate
from include.retention.schedule.context import StepContext
from include.retention.schedule.postflight import post_run_gate
from scripts.throwaway_postgres import fresh_postgres_database

KEY = SubjectKey("k" * 40, "test")
CHECK = "child_rows_without_a_governed_parent"
SUPPLIER = 10  # llx_societe.client = 0: in no category's scope

# Rows added to the Dolibarr world: a supplier's contract and its line (a parent that exists but
# is governed by no category, at depth 1 and 2), and sales representatives pointing at no third
# party (NULL) and at one that does not exist (llx_societe_commerciaux has no FK in Dolibarr).
SUPPLIER_CONTRACT, SUPPLIER_LINE = 1099, 10991
REPS = {1998: None, 1999: 999}

# The world's own rows no category governs: contacts 101 (of the supplier) and 901 (fk_soc
# NULL), events 1001 (of the supplier) and 9901 (an internal meeting, fk_soc NULL).
EXPECTED = {
    ("prospection", "llx_socpeople"): (2, "rowid=101"),
    ("prospection", "llx_actioncomm"): (2, "id=1001"),
    ("prospection", "llx_contrat"): (1, f"rowid={SUPPLIER_CONTRACT}"),
    ("prospection", "llx_contratdet"): (1, f"rowid={SUPPLIER_LINE}"),
    ("prospection", "llx_societe_commerciaux"): (2, "rowid=1998"),
}
# Every child table is checked once, under the first category in policy order declaring it:
# prospection for the third parties' children (customer_relationship declares the same ones),
# billing for the invoice lines.
CHECKED = {
    ("prospection", t)
    for t in (
        "llx_socpeople",
        "llx_actioncomm",
        "llx_contrat",
        "llx_contratdet",
        "llx_categorie_societe",
        "llx_societe_commerciaux",
    )
} | {("billing", "llx_facturedet")}


def _add_ungoverned_rows(target: Any) -> None:
    md = MetaData(schema=None if target.is_sqlite else SCHEMA)
    with target.engine.begin() as conn:
        contrat, line, reps = (
            Table(n, md, autoload_with=conn) for n in ("llx_contrat", "llx_contratdet", "llx_societe_commerciaux")
        )
        conn.execute(
            insert(contrat),
            [
                {
                    "rowid": SUPPLIER_CONTRACT,
                    "ref": "CT-SUP",
                    "entity": 1,
                    "fk_soc": SUPPLIER,
                    "statut": 1,
                    "date_contrat": at(AS_OF),
                    "datec": at(AS_OF),
                }
            ],
        )
        conn.execute(
            insert(line),
            [
                {
                    "rowid": SUPPLIER_LINE,
                    "fk_contrat": SUPPLIER_CONTRACT,
                    "statut": 4,
                    "label": "Fournitures",
                    "date_ouverture": datetime(2015, 1, 1),
                    "date_fin_validite": datetime(2016, 1, 1),
                    "date_cloture": None,
                    "qty": 1,
                }
            ],
        )
        conn.execute(insert(reps), [{"rowid": k, "fk_soc": soc, "fk_user": 1} for k, soc in REPS.items()])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The Dolibarr world with the rows above, after one scheduled run of every category."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ungoverned') / 'dolibarr.db'}"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_server"))
    target = connect(url, "archive")
    try:
        seed(target)
        _add_ungoverned_rows(target)
        policy = dolibarr_policy()
        for key in CATEGORIES:
            run_whole(target, policy, key, AS_OF, f"first-{key}", KEY)
        yield {"backend": request.param, "target": target, "policy": policy}
    finally:
        target.dispose()


def _checks(world: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    target, policy = world["target"], world["policy"]
    with target.read() as conn:
        logged = [
            e
            for key in CATEGORIES
            for e in events(conn, audit_table("archive", policy.audit_table), run_id=f"{prefix}-{key}")
        ]
    return [e for e in logged if e["action"] == "validation" and e["details"]["expectation"] == CHECK]


def test_child_rows_without_a_governed_parent_are_reported_per_table(world):
    found = {
        (e["category"], e["table_name"]): e["row_count"] for e in _checks(world, "first") if not e["details"]["success"]
    }
    assert found == {k: rows for k, (rows, _) in EXPECTED.items()}, world["backend"]


def test_each_child_table_is_checked_once_by_the_first_category_declaring_it(world):
    checked = [(e["category"], e["table_name"]) for e in _checks(world, "first")]
    assert sorted(checked) == sorted(CHECKED), world["backend"]


def test_the_finding_does_not_block_the_run_and_reaches_the_certificate(world):
    target, policy = world["target"], world["policy"]
    with target.read() as conn:
        cert = certificate.build(conn, audit_table("archive", policy.audit_table), policy, "first-prospection")
    assert cert.completed
    listed = {(k.table, k.unexpected_rows) for k in cert.checks if k.check == CHECK and not k.success}
    assert listed == {(t, rows) for (c, t), (rows, _) in EXPECTED.items() if c == "prospection"}
    assert all(not k.blocking for k in cert.checks if k.check == CHECK)


def test_the_finding_names_one_key_of_a_row_to_fix(world):
    target, policy = world["target"], world["policy"]
    ctx = RunContext(
        run_id="sample-prospection",
        dag_id="retention_prospection",
        as_of=AS_OF,
        policy_version=policy.version,
        dry_run=False,
    )
    results = post_run_gate(StepContext.build(target, policy, "prospection", ctx, KEY))
    samples = {
        ("prospection", r.table): (r.unexpected, r.sample) for r in results if r.expectation == CHECK and not r.success
    }
    assert samples == EXPECTED


def test_a_second_run_changes_nothing_and_reports_the_rows_again(world):
    target, policy = world["target"], world["policy"]
    before = checksum(target)
    for key in CATEGORIES:
        run_whole(target, policy, key, AS_OF, f"again-{key}", KEY)
    assert checksum(target) == before
    found = {
        (e["category"], e["table_name"]): e["row_count"] for e in _checks(world, "again") if not e["details"]["success"]
    }
    assert found == {k: rows for k, (rows, _) in EXPECTED.items()}

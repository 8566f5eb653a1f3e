"""Every identifier of the policy is checked against the live database before use."""

import copy

import pytest
from engine_helpers import CLUB_POLICY, club_policy, create_club, run_category
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, text

from include.retention.database.check import check_against_database
from include.retention.errors import PolicyError
from include.retention.policy.load import parse_policy


def _check(target, policy):
    with target.read() as conn:
        check_against_database(policy, conn, target.dialect)


def _table(**changes) -> dict:
    table = copy.deepcopy(CLUB_POLICY["categories"]["members"]["tables"][0])
    table.update(changes)
    return table


def test_the_club_policy_matches_the_club_schema(target):
    create_club(target)
    _check(target, club_policy())


def test_unknown_table_is_named(target):
    create_club(target)
    with pytest.raises(PolicyError, match=r"categories\.members\.tables\[0\]\.table: table .*adherents does not exist"):
        _check(target, club_policy(tables=[_table(table="adherents", children=[])]))


def test_unknown_start_column_lists_the_table_columns(target):
    create_club(target)
    bad = _table(start_event={"column": "last_seen", "when_missing": "defect"})
    with pytest.raises(
        PolicyError, match=r"start_event\.column: column 'last_seen' not in table .*members; columns are: member_id"
    ):
        _check(target, club_policy(tables=[bad]))


def test_start_column_must_hold_dates(target):
    create_club(target)
    bad = _table(start_event={"column": "postcode", "when_missing": "defect"})
    with pytest.raises(
        PolicyError,
        match=r"'postcode' of .*members is VARCHAR.*not a date or timestamp; date columns are: joined_on, last_contact_at",
    ):
        _check(target, club_policy(tables=[bad]))


def test_unknown_child_foreign_key_column_is_named(target):
    create_club(target)
    bad = _table()
    bad["children"][0]["foreign_key"] = "adherent_id"
    with pytest.raises(PolicyError, match=r"children\[0\]\.foreign_key: column 'adherent_id'"):
        _check(target, club_policy(tables=[bad]))


def test_a_foreign_key_from_an_undeclared_table_is_refused(target):
    """Deleting members would fail or orphan rows of a table the policy does not mention."""
    create_club(target)
    schema = None if target.is_sqlite else "club"
    md = MetaData(schema=schema)
    Table("members", md, Column("member_id", Integer, primary_key=True))
    Table(
        "loyalty_cards",
        md,
        Column("card_id", Integer, primary_key=True),
        Column("member_id", Integer, ForeignKey(f"{schema + '.' if schema else ''}members.member_id")),
    )
    md.tables[f"{schema + '.' if schema else ''}loyalty_cards"].create(target.engine)
    with pytest.raises(
        PolicyError, match=r"table loyalty_cards has a foreign key to .*members \(member_id\) but is not declared"
    ):
        _check(target, club_policy())


def test_missing_schema_is_named_on_postgresql(target):
    if target.is_sqlite:
        pytest.skip("SQLite has no schemas: active tables are in the main database")
    create_club(target)
    data = copy.deepcopy(CLUB_POLICY)
    data["source_schema"] = "crm_typo"
    with pytest.raises(PolicyError, match=r"schema 'crm_typo' does not exist"):
        _check(target, parse_policy(data))


def test_anonymisation_rule_must_fit_the_column_type(target):
    create_club(target)
    table = _table(
        anonymize={"email": "year", "full_name": "null", "postcode": "keep", "spend": "keep", "joined_on": "keep"},
        children=[],
    )
    policy = club_policy(end_action="anonymize", tables=[table])
    with pytest.raises(PolicyError, match=r"anonymize\.email: rule does not fit column 'email'"):
        _check(target, policy)


def test_a_category_broken_by_a_schema_change_does_not_stop_the_others(target):
    create_club(target)
    data = copy.deepcopy(CLUB_POLICY)
    broken = copy.deepcopy(data["categories"]["members"])
    broken["tables"] = [_table(table="former_members", children=[])]
    data["categories"]["former_members"] = broken
    policy = parse_policy(data)
    with pytest.raises(PolicyError, match="former_members does not exist"):
        _check(target, policy)
    run_category(target, policy)  # the members category is still enforced
    with pytest.raises(PolicyError, match=r"categories\.former_members\.tables\[0\]\.table"):
        run_category(target, policy, category="former_members")


def test_an_existing_archive_table_missing_a_column_is_refused_not_altered(target):
    create_club(target)
    run_category(target, club_policy())
    with target.engine.begin() as conn:
        conn.execute(text("DROP TABLE archive.member_event_files"))
        conn.execute(text("CREATE TABLE archive.member_event_files (file_id INTEGER PRIMARY KEY, event_id INTEGER)"))
    with pytest.raises(PolicyError, match=r"archive\.member_event_files.*lacks column\(s\) file_name"):
        run_category(target, club_policy(), run_id="run-2")

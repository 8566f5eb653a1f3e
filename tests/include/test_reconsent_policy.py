"""The ``reconsent`` block is checked like every other key: when the policy loads (which rows,
which address, the windows, the template, the sender, the answer page), and against the live
database before any SQL touches the asked table (the address column exists and holds text).
Problems name the file, the category and the key, and never quote the sender, the answer page
or the template (they may hold a person's name or credentials)."""

from __future__ import annotations

import copy

import pytest
import yaml
from crm_helpers import AS_OF
from engine_helpers import CLUB_POLICY, create_club, create_rights_register, with_rights_register

from include.demo.seed import seed_demo
from include.retention.database.check import check_against_database
from include.retention.errors import PolicyError
from include.retention.policy.load import DEFAULT_POLICY_PATH, load_policy, parse_policy

SENDER = "Service données personnelles <rgpd@example.fr>"
ANSWER_URL = "https://www.example.fr/consentement"


@pytest.fixture
def shipped() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def _block(data: dict, category: str = "prospection") -> dict:
    return data["categories"][category]["reconsent"]


def _errors(data: dict) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(data, source="policy.yaml")
    return str(info.value)


def _loads(data: dict) -> None:
    parse_policy(data, source="policy.yaml")


# --- The shipped schedule ------------------------------------------------------------------------


def test_the_shipped_policy_asks_web_form_and_prospection_contacts_thirty_days_ahead_in_french():
    policy = load_policy()
    asked = {key: c for key, c in policy.categories.items() if c.reconsent is not None}
    assert set(asked) == {"web_forms", "prospection"}
    assert {key: c.asked_table for key, c in asked.items()} == {
        "web_forms": "web_form_submissions",
        "prospection": "prospects",
    }
    for category in asked.values():
        block = category.reconsent
        assert (block.address_column, block.notice_days, block.awaited_days) == ("email", 30, 30)
        assert (block.language, block.sender, block.answer_url) == ("fr", SENDER, ANSWER_URL)
        assert (block.connection, block.subject, block.body) == ("smtp_default", None, None)


def test_the_shipped_policy_passes_the_live_check_on_the_demo_database(target):
    seed_demo(target.engine, None if target.is_sqlite else "crm", AS_OF)
    with target.read() as conn:
        check_against_database(load_policy(), conn, target.dialect)


# --- Which rows are asked, at which address ------------------------------------------------------


def test_a_category_that_asks_must_be_deleted_on_opposition_since_a_no_is_an_opposition(shipped):
    shipped["categories"]["web_forms"]["deleted_on"] = []
    errors = _errors(shipped)
    assert "categories.web_forms.reconsent" in errors and "deleted_on" in errors


def test_a_policy_that_asks_must_name_a_rights_register_since_a_no_is_recorded_there(shipped):
    del shipped["rights_register"]
    errors = _errors(shipped)
    assert "categories.web_forms.reconsent" in errors and "categories.prospection.reconsent" in errors
    assert "rights_register" in errors


def test_the_asked_table_must_be_a_root_table_of_its_category(shipped):
    _block(shipped)["table"] = "prospect_interactions"
    message = _errors(shipped)
    assert "policy.yaml" in message
    assert "categories.prospection.reconsent.table: must be one of the category's tables" in message
    assert "a child has no active period of its own" in message and "one of: prospects" in message


def test_a_category_with_several_tables_must_say_which_one_is_asked(shipped):
    leads = copy.deepcopy(shipped["categories"]["prospection"]["tables"][0])
    leads.update(table="prospect_leads", children=[])
    shipped["categories"]["prospection"]["tables"].append(leads)
    message = _errors(shipped)
    assert "categories.prospection.reconsent.table: required when the category has several tables" in message
    assert "one of: prospects, prospect_leads" in message
    _block(shipped)["table"] = "prospect_leads"
    assert parse_policy(shipped).categories["prospection"].asked_table == "prospect_leads"


def test_the_address_must_be_a_hashed_email_identifier_of_the_asked_table(shipped):
    _block(shipped)["address_column"] = "phone"
    message = _errors(shipped)
    assert "categories.prospection.reconsent.address_column: must be one of table prospects's " in message
    assert "subject_identifiers.email columns (one of: email)" in message
    assert "the keyed hash of the address is what the suppression list and data-subject requests use" in message


def test_an_address_on_a_table_without_email_identifiers_says_it_has_none(shipped):
    del shipped["categories"]["prospection"]["tables"][0]["subject_identifiers"]["email"]
    assert "table prospects declares none" in _errors(shipped)


def test_a_partitioned_table_cannot_be_asked(shipped):
    shipped["categories"]["web_forms"]["tables"][0]["partitioned"] = True
    message = _errors(shipped)
    assert "categories.web_forms.reconsent.table: table web_form_submissions is partitioned" in message
    assert "a row waiting for its answer cannot stay behind" in message


def test_a_table_archived_with_another_categorys_row_cannot_be_asked(shipped):
    shipped["categories"]["customer_notes"] = {
        "label": {"fr": "Notes clients", "en": "Customer notes"},
        "legal_basis": "Intérêt légitime",
        "archive_purpose": "Probatoire",
        "schedule": "0 4 * * *",
        "active_period": "P3Y",
        "archive_period": "P5Y",
        "end_action": "delete",
        "tables": [
            {
                "table": "customer_notes",
                "primary_key": "note_id",
                "start_event": {"column": "written_at", "when_missing": "defect"},
                "archive_columns": ["written_at"],
                "subject_identifiers": {"email": ["email"]},
                "archived_with": {"table": "customers", "foreign_key": "customer_id"},
            }
        ],
        "reconsent": dict(_block(shipped)),
    }
    message = _errors(shipped)
    assert "categories.customer_notes.reconsent.table: table customer_notes is archived_with customers" in message
    assert "there is no end to announce" in message


# --- The windows ---------------------------------------------------------------------------------


def test_a_reconsent_answer_window_longer_than_the_notice_is_refused(shipped):
    _block(shipped)["answer_days"] = 31
    message = _errors(shipped)
    assert "categories.prospection.reconsent.answer_days: must be at most notice_days (30)" in message
    assert "(got 31)" in message


def test_an_answer_window_as_long_as_the_notice_or_shorter_is_accepted(shipped):
    _block(shipped)["answer_days"] = 30
    _block(shipped, "web_forms")["answer_days"] = 14
    policy = parse_policy(shipped)
    assert policy.categories["prospection"].reconsent.awaited_days == 30
    assert policy.categories["web_forms"].reconsent.awaited_days == 14


def test_a_notice_as_long_as_the_shortest_active_period_is_refused(shipped):
    shipped["categories"]["prospection"]["active_period"] = "P1M"  # 28 days in February
    _block(shipped)["notice_days"] = 28
    message = _errors(shipped)
    assert "categories.prospection.reconsent.notice_days: must be shorter than the active period P1M" in message
    assert "(at least 28 days long)" in message
    _block(shipped)["notice_days"] = 27
    _loads(shipped)


def test_reconsent_on_a_category_without_an_active_period_is_refused(shipped):
    shipped["categories"]["subscription_billing"]["reconsent"] = {
        "address_column": "billing_email",
        "notice_days": 30,
        "sender": SENDER,
        "answer_url": ANSWER_URL,
    }
    message = _errors(shipped)
    assert "categories.subscription_billing.reconsent: needs an active period: P0D has no end to announce" in message


# --- The template --------------------------------------------------------------------------------

BODY = "Bonjour,\n{label} : vos données seront archivées le {period_end}.\nOui : {yes_url}\nNon : {no_url}\n"


@pytest.mark.parametrize(
    ("written", "named"),
    [
        ("{other}", "{other}"),
        ("{label.__class__}", "{label.__class__}"),
        ("{label[0]}", "{label[0]}"),
        ("{label!r}", "{label!r}"),
        ("{period_end:%d/%m}", "{period_end:%d/%m}"),
        ("{0}", "{0}"),
        ("{}", "{}"),
    ],
)
@pytest.mark.parametrize("key", ["subject", "body"])
def test_an_unknown_placeholder_is_refused_naming_it(shipped, key, written, named):
    _block(shipped)[key] = f"Votre avis sur {written} {{label}}" + (" {yes_url} {no_url}" if key == "body" else "")
    message = _errors(shipped)
    assert f"categories.prospection.reconsent.{key}: placeholder {named} is not one of {{label}}" in message


def test_a_malformed_brace_is_refused(shipped):
    _block(shipped)["subject"] = "Votre avis sur {label"
    _block(shipped, "web_forms")["body"] = BODY + "}"
    message = _errors(shipped)
    assert "categories.prospection.reconsent.subject: is not a valid template" in message
    assert "categories.web_forms.reconsent.body: is not a valid template" in message
    assert "write a literal brace as {{ or }}" in message


def test_known_placeholders_and_literal_braces_are_accepted(shipped):
    _block(shipped)["subject"] = "{{RGPD}} {label} : votre avis avant le {expires_on}"
    _block(shipped)["body"] = BODY + "Valable jusqu'au {expires_on} {{sic}}.\n"
    _loads(shipped)


def test_a_link_in_the_subject_is_refused_because_it_carries_the_token(shipped):
    _block(shipped)["subject"] = "Répondez ici : {yes_url}"
    message = _errors(shipped)
    assert "reconsent.subject: placeholder {yes_url} is not one of {label}, {period_end}, {expires_on}" in message


def test_a_line_break_in_the_subject_is_refused(shipped):
    _block(shipped)["subject"] = "Votre avis\r\nBcc: liste@example.org"
    message = _errors(shipped)
    assert "reconsent.subject: must be one line without control characters" in message
    assert "liste@example.org" not in message


def test_a_custom_body_without_both_links_is_refused(shipped):
    _block(shipped)["body"] = "Bonjour, répondez oui ici : {yes_url}"
    message = _errors(shipped)
    assert "categories.prospection.reconsent.body: must contain {no_url}: without both links" in message
    _block(shipped)["body"] = "Bonjour, {label}."
    assert "must contain {yes_url} and {no_url}" in _errors(shipped)


# --- The sender and the answer page --------------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    [
        "rgpd",
        "rgpd@",
        "Jeanne Martin <jeanne@>",
        "jeanne.martin@example.fr, rgpd@example.fr",
        "a@b@example.fr",
        "Jeanne <jeanne@exa mple.fr>",
        "Jeanne Martin <jeanne.martin@example.fr>\nBcc: liste@example.org",
    ],
)
def test_the_sender_must_be_one_address_with_a_domain(shipped, sender):
    _block(shipped)["sender"] = sender
    message = _errors(shipped)
    assert "categories.prospection.reconsent.sender: must be one e-mail address with a domain" in message
    assert "Jeanne" not in message and "jeanne" not in message and "liste@" not in message


@pytest.mark.parametrize(
    "sender", ["rgpd@example.fr", "Service RGPD <rgpd@example.fr>", '"DPO, Siège" <dpo@mail.example.fr>']
)
def test_a_sender_alone_or_with_a_display_name_is_accepted(shipped, sender):
    _block(shipped)["sender"] = sender
    _loads(shipped)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://www.example.fr/consentement", "plain http sends the signed links in the clear"),
        ("https://www.example.fr/consentement?source=mail", "it has a query or fragment of its own"),
        ("https://www.example.fr/consentement?", "it has a query or fragment of its own"),
        ("https://www.example.fr/consentement#reponse", "it has a query or fragment of its own"),
        ("https://webmaster:s3cret@www.example.fr/consentement", "it holds credentials"),
        ("www.example.fr/consentement", "it has no https:// scheme and host"),
        ("/consentement/reponse", "it has no https:// scheme and host"),
        ("ftp://www.example.fr/consentement", "it has no https:// scheme and host"),
        ("https://www.example.fr:99999/consentement", "its port is not a number from 1 to 65535"),
        ("https://www.example.fr/mon consentement", "it holds spaces or control characters"),
        ("http://127.0.0.1.example.org/consentement", "plain http sends the signed links in the clear"),
    ],
)
def test_the_answer_page_must_be_an_absolute_https_address_without_query(shipped, url, why):
    _block(shipped)["answer_url"] = url
    message = _errors(shipped)
    assert "categories.prospection.reconsent.answer_url: must be an absolute https address" in message
    assert why in message
    assert "s3cret" not in message and "source=mail" not in message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8025/answer", "http://localhost/consentement", ANSWER_URL + "/"])
def test_plain_http_is_accepted_only_for_a_page_on_this_machine(shipped, url):
    _block(shipped)["answer_url"] = url
    _loads(shipped)


def test_every_problem_of_a_reconsent_block_is_listed_at_once(shipped):
    block = _block(shipped)
    block.update(answer_days=60, subject="{other}", sender="rgpd", answer_url="http://www.example.fr/c")
    message = _errors(shipped)
    assert message.startswith("invalid retention policy policy.yaml:")
    for key in ("answer_days", "subject", "sender", "answer_url"):
        assert f"categories.prospection.reconsent.{key}:" in message


# --- Against the live database -------------------------------------------------------------------


def _club_asking(address_column: str, identifiers: list[str]):
    data = copy.deepcopy(CLUB_POLICY)
    members = data["categories"]["members"]
    members["tables"][0]["subject_identifiers"] = {"email": identifiers}
    members["deleted_on"] = ["opposition"]
    members["reconsent"] = {
        "address_column": address_column,
        "notice_days": 30,
        "sender": "club@example.fr",
        "answer_url": "https://club.example.fr/avis",
    }
    return parse_policy(with_rights_register(data), source="club.yaml")


def _check(target, policy) -> None:
    create_rights_register(target, "club")
    with target.read() as conn:
        check_against_database(policy, conn, target.dialect)


def test_a_text_address_column_passes_the_live_check(target):
    create_club(target)
    _check(target, _club_asking("email", ["email"]))


def test_an_address_column_missing_from_the_live_table_is_named_with_its_table(target):
    create_club(target)
    with pytest.raises(PolicyError) as info:
        _check(target, _club_asking("contact_email", ["email", "contact_email"]))
    message = str(info.value)
    where = "members" if target.is_sqlite else "club.members"
    assert "club.yaml" in message
    assert (
        f"categories.members.reconsent.address_column: column 'contact_email' not in table {where}, "
        "so re-consent notices have no address to go to; columns are: member_id, email" in message
    )


def test_an_address_column_that_does_not_hold_text_is_refused_naming_table_and_column(target):
    create_club(target)
    with pytest.raises(PolicyError) as info:
        _check(target, _club_asking("joined_on", ["email", "joined_on"]))
    message = str(info.value)
    where = "members" if target.is_sqlite else "club.members"
    assert f"categories.members.reconsent.address_column: column 'joined_on' of {where} is DATE, not text" in message
    assert "text columns are: email, full_name, postcode, notes" in message

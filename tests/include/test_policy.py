"""Loading a policy: the shipped schedule, and clear errors for every kind of mistake."""

import copy

import pytest
import yaml

from include.retention.errors import PolicyError
from include.retention.periods import Period
from include.retention.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy

SPEC_CATEGORIES = {
    "web_forms": ("P3Y", "P5Y"),
    "navigation_tracking": ("P13M", None),
    "prospection": ("P3Y", "P5Y"),
    "customer_relationship": ("P3Y", "P5Y"),
    "subscription_billing": ("P0D", "P10Y"),
    "suppliers": ("P3Y", "P5Y"),
    "rights_requests": ("P0D", "P5Y"),
}


@pytest.fixture
def shipped() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def _errors(data: dict) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(data, source="policy.yaml")
    return str(info.value)


def test_shipped_policy_encodes_the_seven_categories_of_the_charter():
    policy = load_policy()
    assert {k: (str(c.active_period), c.archive_period and str(c.archive_period))
            for k, c in policy.categories.items()} == SPEC_CATEGORIES
    assert all(c.end_action == "delete" for c in policy.categories.values())
    assert policy.timezone == "Europe/Paris"


def test_subscription_billing_and_rights_requests_count_from_an_end_event_that_may_be_missing():
    policy = load_policy()
    for key in ("subscription_billing", "rights_requests", "customer_relationship", "suppliers"):
        assert policy.categories[key].tables[0].start_event.when_missing == "ongoing"
    for key in ("web_forms", "prospection", "navigation_tracking"):
        assert policy.categories[key].tables[0].start_event.when_missing == "defect"


def test_card_numbers_are_never_archived():
    billing = load_policy().categories["subscription_billing"].tables[0]
    assert "payment_card_number" not in billing.archive_columns


def test_retention_policy_environment_variable_overrides_the_default(tmp_path, monkeypatch, shipped):
    shipped["version"] = "custom-7"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(shipped))
    monkeypatch.setenv("RETENTION_POLICY", str(path))
    assert load_policy().version == "custom-7"


def test_unknown_key_is_named_with_its_path(shipped):
    shipped["categories"]["prospection"]["tables"][0]["archive_colums"] = ["email"]
    message = _errors(shipped)
    assert "policy.yaml" in message
    assert "categories.prospection.tables[0].archive_colums" in message
    assert "Extra inputs are not permitted" in message


def test_bad_period_is_named_with_its_path_and_value(shipped):
    shipped["categories"]["web_forms"]["active_period"] = "3 years"
    message = _errors(shipped)
    assert "categories.web_forms.active_period" in message
    assert "'3 years'" in message


@pytest.mark.parametrize("bad", ["prospects; DROP TABLE x", "1table", "crm.prospects", "e-mail", ""])
def test_identifiers_must_be_plain_sql_names(shipped, bad):
    shipped["categories"]["prospection"]["tables"][0]["table"] = bad
    message = _errors(shipped)
    assert "categories.prospection.tables[0].table" in message
    assert repr(bad) in message


def test_wrong_type_is_reported(shipped):
    shipped["batch_size"] = "lots"
    assert "batch_size" in _errors(shipped)


def test_missing_when_missing_is_reported(shipped):
    del shipped["categories"]["suppliers"]["tables"][0]["start_event"]["when_missing"]
    assert "categories.suppliers.tables[0].start_event.when_missing" in _errors(shipped)


def test_every_problem_is_listed_at_once(shipped):
    shipped["categories"]["web_forms"]["active_period"] = "forever"
    shipped["categories"]["suppliers"]["schedule"] = "nightly"
    message = _errors(shipped)
    assert "web_forms.active_period" in message and "suppliers.schedule" in message


def test_two_categories_on_one_table_need_exclusive_scopes_or_a_precedence(shipped):
    shipped["categories"]["web_forms"]["tables"][0]["table"] = "prospects"
    shipped["categories"]["web_forms"]["tables"][0]["archive_table"] = "web_prospects"
    message = _errors(shipped)
    assert "categories 'web_forms' and 'prospection' may both match a row of table prospects" in message


def test_a_shared_table_needs_a_distinct_archive_table_per_category(shipped):
    shipped["categories"]["web_forms"]["tables"][0]["table"] = "prospects"
    shipped["precedence"] = ["web_forms", "prospection"]
    message = _errors(shipped)
    assert "archive table 'prospects' is already used" in message


def test_archive_purpose_is_required_when_there_is_an_archive(shipped):
    del shipped["categories"]["suppliers"]["archive_purpose"]
    assert "categories.suppliers.archive_purpose" in _errors(shipped)


def test_child_foreign_key_must_match_parent_key_width(shipped):
    child = shipped["categories"]["prospection"]["tables"][0]["children"][0]
    child["foreign_key"] = ["prospect_id", "occurred_at"]
    assert "children[0].foreign_key" in _errors(shipped)


def test_unknown_time_zone_is_refused(shipped):
    shipped["timezone"] = "Europe/Pariss"
    assert "timezone" in _errors(shipped)


def test_unreadable_file_and_bad_yaml_name_the_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed\n")
    with pytest.raises(PolicyError, match=r"(?s)broken\.yaml.*not valid YAML.*line 1"):
        load_policy(broken)


def _anonymizing(shipped: dict) -> dict:
    data = copy.deepcopy(shipped)
    category = data["categories"]["web_forms"]
    category["end_action"] = "anonymize"
    category["tables"][0]["anonymize"] = {
        "form_name": "keep", "full_name": "null", "email": "null", "message": "null",
        "submitted_at": "month", "last_inbound_contact_at": "year",
    }
    return data


def test_anonymize_needs_a_rule_for_every_archived_column(shipped):
    data = _anonymizing(shipped)
    parse_policy(data)
    del data["categories"]["web_forms"]["tables"][0]["anonymize"]["message"]
    message = _errors(data)
    assert "every archive column needs a rule" in message and "'message'" in message


def test_a_subject_identifier_cannot_be_kept_by_anonymisation(shipped):
    data = _anonymizing(shipped)
    data["categories"]["web_forms"]["tables"][0]["anonymize"]["email"] = "keep"
    assert "subject identifier cannot be kept" in _errors(data)


def test_anonymize_without_an_archive_is_refused(shipped):
    data = copy.deepcopy(shipped)
    data["categories"]["navigation_tracking"]["end_action"] = "anonymize"
    assert "anonymize needs an archive_period" in _errors(data)


def test_anonymize_rules_are_refused_when_the_end_action_is_delete(shipped):
    shipped["categories"]["web_forms"]["tables"][0]["anonymize"] = {"email": "null"}
    assert "only allowed when the category's end_action is anonymize" in _errors(shipped)


def test_periods_are_parsed_into_calendar_periods():
    assert load_policy().categories["navigation_tracking"].active_period == Period(months=13)

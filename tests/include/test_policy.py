"""Loading a policy: the shipped schedule, and clear errors for every kind of mistake."""

import copy

import pytest
import yaml

from include.retention.dates.periods import Period
from include.retention.errors import PolicyError
from include.retention.policy.load import DEFAULT_POLICY_PATH, load_policy, parse_policy

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
    assert {
        k: (str(c.active_period), c.archive_period and str(c.archive_period)) for k, c in policy.categories.items()
    } == SPEC_CATEGORIES
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
        "form_name": "keep",
        "full_name": "null",
        "email": "null",
        "message": "null",
        "submitted_at": "month",
        "last_inbound_contact_at": "year",
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


# --- Hostile policy files: alias bombs, duplicate keys, booleans taken for numbers -------------


def _shipped_text() -> str:
    return DEFAULT_POLICY_PATH.read_text(encoding="utf-8")


def _load_text(tmp_path, text: str, name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


def _alias_bomb(levels: int = 12, width: int = 10) -> str:
    """The 'billion laughs' as a scope: each level is ``any`` of the previous one ``width``
    times, a few hundred bytes that expand to 10**12 column tests."""
    parts = ["&b0 {column: state, equals: lol}"]
    for level in range(1, levels + 1):
        parts.append(f"&b{level} {{any: [{', '.join([f'*b{level - 1}'] * width)}]}}")
    return "{all: [" + ", ".join(parts) + "]}"


def test_an_alias_bomb_in_a_scope_is_refused_naming_the_file(tmp_path):
    text = _shipped_text().replace(
        "      - table: prospects\n", f"      - table: prospects\n        scope: {_alias_bomb()}\n", 1
    )
    message = _load_text(tmp_path, text, "bomb.yaml")
    assert "bomb.yaml" in message
    assert "aliases" in message and "expands to more than" in message


def test_a_recursive_alias_is_refused_naming_the_file(tmp_path):
    text = _shipped_text() + "loop: &loop [*loop]\n"
    message = _load_text(tmp_path, text, "loop.yaml")
    assert "loop.yaml" in message and "refers to itself" in message


def test_an_alias_that_expands_to_a_small_tree_still_loads(tmp_path):
    """Anchors are plain YAML and cost nothing when they stay small (yaml.safe_dump writes them
    for shared objects): only the expanded size is bounded."""
    text = _shipped_text().replace(
        "    label:\n      fr: Formulaires du site web\n      en: Web site forms\n",
        "    label: &forms\n      fr: Formulaires du site web\n      en: Web site forms\n",
        1,
    )
    text = text.replace(
        "    label:\n      fr: Gestion et suivi de la prospection commerciale\n      en: Commercial prospection\n",
        "    label: *forms\n",
        1,
    )
    path = tmp_path / "anchors.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_policy(path).categories["prospection"].label.en == "Web site forms"


def test_a_policy_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    from include.retention.settings import MAX_POLICY_BYTES

    text = _shipped_text() + "#" * MAX_POLICY_BYTES + "\n"
    message = _load_text(tmp_path, text, "huge.yaml")
    assert "huge.yaml" in message and f"larger than {MAX_POLICY_BYTES} bytes" in message


def test_a_policy_nested_too_deeply_is_refused_naming_the_file(tmp_path):
    message = _load_text(tmp_path, "version: x\nscope: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    assert "deep.yaml" in message and "nested" in message


def test_a_policy_that_is_not_utf8_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(_shipped_text().encode("utf-8") + "# écrit en Latin-1\n".encode("latin-1"))
    with pytest.raises(PolicyError, match=r"(?s)latin1\.yaml.*not UTF-8"):
        load_policy(path)


def test_a_duplicate_active_period_is_refused_naming_the_key_path_and_the_lines(tmp_path):
    text = _shipped_text().replace(
        "    active_period: P3Y          # from the last contact initiated by the prospect\n",
        "    active_period: P3Y\n    active_period: P1D\n",
        1,
    )
    first = text.splitlines().index("    active_period: P3Y") + 1
    message = _load_text(tmp_path, text, "twice.yaml")
    assert "twice.yaml" in message
    assert (
        f"categories.prospection.active_period: duplicate key: first at line {first}, again at line {first + 1}"
    ) in message


def test_a_duplicate_category_is_refused_naming_the_key_path_and_the_line(tmp_path):
    text = _shipped_text()
    suppliers = text[text.index("  suppliers:\n") : text.index("\n\n", text.index("  suppliers:\n")) + 1]
    text = text.rstrip("\n") + "\n" + suppliers
    message = _load_text(tmp_path, text, "twice.yaml")
    assert "categories.suppliers: duplicate key: first at line" in message


def test_a_duplicate_version_is_refused_naming_the_line(tmp_path):
    message = _load_text(tmp_path, _shipped_text() + 'version: "2020-01-01.1"\n', "twice.yaml")
    lines = len(_shipped_text().splitlines()) + 1
    assert f"version: duplicate key: first at line 4, again at line {lines}" in message


def test_a_duplicate_key_inside_a_list_item_is_refused_with_its_index(tmp_path):
    text = _shipped_text().replace(
        "        primary_key: prospect_id\n", "        primary_key: prospect_id\n        primary_key: email\n", 1
    )
    message = _load_text(tmp_path, text)
    assert "categories.prospection.tables[0].primary_key: duplicate key" in message


def test_every_duplicate_key_is_listed_at_once(tmp_path):
    text = _shipped_text().replace("timezone: Europe/Paris\n", "timezone: Europe/Paris\ntimezone: UTC\n", 1)
    text += 'version: "again"\n'
    message = _load_text(tmp_path, text)
    assert "timezone: duplicate key" in message and "version: duplicate key" in message


@pytest.mark.parametrize(
    "key, value",
    [
        ("fraction", "yes"),
        ("fraction", "true"),
        ("rows", "on"),
        ("rows", "false"),
        ("fraction", '"0.5"'),
        ("rows", '"100"'),
    ],
)
def test_a_boolean_or_a_string_is_not_a_deletion_limit(tmp_path, key, value):
    text = _shipped_text().replace("batch_size: 5000\n", f"batch_size: 5000\ndeletion_limit: {{{key}: {value}}}\n", 1)
    message = _load_text(tmp_path, text)
    assert f"deletion_limit.{key}" in message


@pytest.mark.parametrize("value", ["true", "yes", "on", '"5000"', "5000.5"])
def test_a_boolean_a_string_or_a_fraction_is_not_a_batch_size(tmp_path, value):
    message = _load_text(tmp_path, _shipped_text().replace("batch_size: 5000\n", f"batch_size: {value}\n", 1))
    assert "batch_size" in message


def test_a_boolean_taken_for_a_number_says_that_yaml_read_it_as_a_boolean(tmp_path):
    message = _load_text(tmp_path, _shipped_text().replace("batch_size: 5000\n", "batch_size: yes\n", 1))
    assert "batch_size: must be a number; YAML reads yes/no/on/off/true/false as a boolean (got True)" in message


@pytest.mark.parametrize("number_field", ["batch_workers", "approval_timeout_hours"])
def test_a_boolean_is_not_a_count(shipped, number_field):
    shipped[number_field] = True
    assert number_field in _errors(shipped)


def test_a_boolean_is_not_a_category_batch_size_or_a_prefix_length(shipped):
    shipped["categories"]["suppliers"]["batch_size"] = True
    assert "categories.suppliers.batch_size" in _errors(shipped)
    data = _anonymizing(shipped)
    data["categories"]["web_forms"]["tables"][0]["anonymize"]["message"] = {"prefix": True}
    assert "categories.web_forms.tables[0].anonymize.message.prefix" in _errors(data)
    data["categories"]["web_forms"]["tables"][0]["anonymize"]["message"] = {"round": True}
    assert "categories.web_forms.tables[0].anonymize.message.round" in _errors(data)


@pytest.mark.parametrize("value", [1, 0, "yes", "true"])
def test_a_number_or_a_string_is_not_a_boolean(shipped, value):
    del shipped["categories"]["web_forms"]["reconsent"]  # a partitioned table cannot be asked
    shipped["categories"]["web_forms"]["tables"][0]["partitioned"] = True
    assert parse_policy(shipped).categories["web_forms"].tables[0].partitioned is True
    shipped["categories"]["web_forms"]["tables"][0]["partitioned"] = value
    assert "categories.web_forms.tables[0].partitioned" in _errors(shipped)


@pytest.mark.parametrize("value", [1, "yes"])
def test_a_number_or_a_string_is_not_is_null_in_a_scope(shipped, value):
    shipped["categories"]["suppliers"]["tables"][0]["scope"] = {"column": "is_supplier", "is_null": value}
    assert "categories.suppliers.tables[0].scope" in _errors(shipped)


def test_whole_numbers_are_still_accepted_where_a_fraction_is_read(shipped):
    shipped["deletion_limit"] = {"rows": 10, "fraction": 1}
    assert parse_policy(shipped).deletion_limit.fraction == 1.0


# --- Merge keys, YAML 1.1 numbers, unbounded and non-ASCII periods ------------------------------

_WEB_FORMS_ACTIVE = "    active_period: P3Y          # from the last contact initiated by the person\n"


def _line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


@pytest.mark.parametrize(
    "merge",
    [
        "    <<: {active_period: P1D}\n",  # supplies the key
        "    <<: {active_period: P3Y}\n    <<: {active_period: P1D}\n",  # two merges, the last wins
        "    <<: [{active_period: P1D}, {active_period: P3Y}]\n",  # a list, the first wins
    ],
)
def test_a_merge_key_is_refused_naming_the_file_the_key_path_and_the_line(tmp_path, merge):
    """YAML's merge key lets one value silently win over another (the later of two ``<<``, the
    first of a list): a retention could be shortened without any key being given twice."""
    text = _shipped_text().replace(_WEB_FORMS_ACTIVE, merge, 1)
    message = _load_text(tmp_path, text, "merged.yaml")
    assert "merged.yaml" in message
    assert f"categories.web_forms.<<: merge keys (<<) are not allowed (line {_line_of(text, '    <<')})" in message


def test_a_merge_key_overridden_by_an_explicit_key_is_refused_too(tmp_path):
    text = _shipped_text().replace(_WEB_FORMS_ACTIVE, "    <<: {active_period: P1D}\n" + _WEB_FORMS_ACTIVE, 1)
    assert "categories.web_forms.<<: merge keys (<<) are not allowed" in _load_text(tmp_path, text)


def test_a_merge_key_through_an_alias_is_refused(tmp_path):
    text = _shipped_text().replace(
        "    label:\n      fr: Formulaires du site web\n      en: Web site forms\n",
        "    label: &forms\n      fr: Formulaires du site web\n      en: Web site forms\n",
        1,
    )
    text = text.replace(
        "    label:\n      fr: Gestion et suivi de la prospection commerciale\n      en: Commercial prospection\n",
        "    label:\n      <<: *forms\n",
        1,
    )
    assert "categories.prospection.label.<<: merge keys (<<) are not allowed" in _load_text(tmp_path, text)


def _with_limit(rows: str = "100000", fraction: str = "0.2") -> str:
    return _shipped_text().replace(
        "batch_size: 5000\n", f"batch_size: 5000\ndeletion_limit: {{rows: {rows}, fraction: {fraction}}}\n", 1
    )


@pytest.mark.parametrize("rows", ["1:20", "0x10", "0o10", "1_000", "+0x10", "１０", "١٠"])
def test_yaml_1_1_sexagesimal_hex_octal_or_underscored_rows_are_not_a_number(tmp_path, rows):
    """YAML 1.1 reads ``1:20`` as 80 (base 60), ``0x10`` as 16, ``1_000`` as 1000: the policy
    reads numbers as YAML 1.2 does (plain decimal), anything else is a string, refused."""
    message = _load_text(tmp_path, _with_limit(rows=rows))
    assert "deletion_limit.rows: must be a plain decimal number" in message


@pytest.mark.parametrize("fraction", ["0x1", "1:0", "0_5", "0.5_0"])
def test_yaml_1_1_hex_or_sexagesimal_fraction_is_not_a_number(tmp_path, fraction):
    message = _load_text(tmp_path, _with_limit(fraction=fraction))
    assert "deletion_limit.fraction: must be a plain decimal number" in message


@pytest.mark.parametrize("tagged", ["!!int 0x10", "!!int 1:20", "!!int 010x", "!!float 0x1", "!!float 1_0.5"])
def test_an_explicit_number_tag_does_not_bring_back_yaml_1_1_numbers(tmp_path, tagged):
    text = _with_limit(rows=tagged)
    message = _load_text(tmp_path, text, "tagged.yaml")
    assert "tagged.yaml" in message and f"line {_line_of(text, 'deletion_limit:')}" in message


def test_numbers_are_read_as_yaml_1_2_decimal_with_an_optional_exponent(tmp_path):
    path = tmp_path / "numbers.yaml"
    path.write_text(_with_limit(rows="010", fraction="5e-2"), encoding="utf-8")
    limit = load_policy(path).deletion_limit
    assert (limit.rows, limit.fraction) == (10, 0.05)  # YAML 1.1: 8 (octal), and a string


@pytest.mark.parametrize(
    "key, period",
    [
        ("active_period: P3Y ", "P99999Y"),
        ("archive_period: P5Y", "P9000Y"),
        ("active_period: P3Y ", "P101Y"),
        ("active_period: P3Y ", "P1201M"),
        ("archive_period: P5Y", "P36525D"),
        ("archive_period: P5Y", "P100Y1D"),
        ("archive_period: P5Y", "P5300W"),
        ("active_period: P3Y ", "P999999999Y"),
    ],
)
def test_a_period_over_100_years_is_refused_at_load_saying_why(tmp_path, key, period):
    """P99999Y used to load and fail at every run (``year -97973 is out of range``)."""
    field = key.split(":")[0]
    text = _shipped_text().replace(key, f"{field}: {period} ", 1)
    message = _load_text(tmp_path, text, "long.yaml")
    assert "long.yaml" in message
    assert f"categories.web_forms.{field}: Value error, longer than P100Y" in message


def test_a_period_with_thousands_of_digits_is_not_a_period(tmp_path):
    """Python's ``int`` refuses 4,300 digits and more with a message about integers; a period
    part has at most 9 digits, and the policy error says what a period looks like."""
    text = _shipped_text().replace("active_period: P3Y ", "active_period: P" + "9" * 5000 + "Y ", 1)
    assert "categories.web_forms.active_period: Value error, 'P999" in _load_text(tmp_path, text)
    assert "is not an ISO-8601 calendar period" in _load_text(tmp_path, text)


@pytest.mark.parametrize("period", ["P100Y", "P1200M", "P36524D", "P99Y11M30D"])
def test_a_period_of_up_to_100_years_loads(tmp_path, period):
    path = tmp_path / "long.yaml"
    path.write_text(_shipped_text().replace("archive_period: P5Y", f"archive_period: {period}", 1), encoding="utf-8")
    assert str(load_policy(path).categories["web_forms"].archive_period) == Period.parse(period).__str__()


@pytest.mark.parametrize("period", ["P٣Y", "P３Y", "P1٠M", "P1Y٣D"])
def test_a_period_with_non_ascii_digits_is_not_a_period(period):
    with pytest.raises(ValueError, match="not an ISO-8601 calendar period"):
        Period.parse(period)


def test_a_period_with_arabic_indic_digits_is_refused_at_load(tmp_path):
    text = _shipped_text().replace("active_period: P3Y ", "active_period: P٣Y ", 1)
    assert "categories.web_forms.active_period: Value error, 'P٣Y' is not an ISO-8601" in _load_text(tmp_path, text)


@pytest.mark.parametrize("schedule", ["0\u20032 * * *", "0 ２ * * *", "0 2 * * *\\n"])
def test_a_schedule_with_non_ascii_spaces_or_digits_or_a_newline_is_refused(shipped, schedule):
    shipped["categories"]["web_forms"]["schedule"] = schedule.replace("\\n", "\n")
    assert "categories.web_forms.schedule: Value error, must be a 5-field cron" in _errors(shipped)


def test_a_number_too_large_to_be_finite_is_refused_with_its_line(tmp_path):
    text = _with_limit(fraction="1e999")
    message = _load_text(tmp_path, text)
    assert "too large" in message and f"line {_line_of(text, 'deletion_limit:')}" in message


def test_the_policy_reader_leaves_other_yaml_readers_as_they_were():
    """The YAML 1.2 numbers belong to the policy's own loader, not to PyYAML's SafeLoader."""
    from include.retention.policy.safe_yaml import read_policy_yaml  # noqa: F401 - its import registers the loader

    assert yaml.safe_load("[0x10, 1:20, 1_000]") == [16, 80, 1000]

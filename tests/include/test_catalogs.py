"""The French catalogs match the code: every text a person reads has its translation."""

from __future__ import annotations

import pytest

from include.retention.errors import RetentionError
from include.retention.language import DOMAINS, checked, domain_of, translator
from scripts.messages import TRANSLATED, problems


@pytest.mark.parametrize("domain", list(DOMAINS))
@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_text_the_code_marks_is_translated_with_the_same_placeholders(domain, lang):
    assert problems(domain, lang) == []


def test_a_file_of_the_retention_view_belongs_to_the_ui_catalog_not_the_airflow_one():
    assert domain_of("include/retention_airflow/ui.py") == "ui"
    assert domain_of("include/retention_airflow/forms.py") == "airflow"
    assert domain_of("include/retention/reports/certificate.py") == "engine"
    assert domain_of("include/retention/reports/dpo_render.py") == "report"
    assert domain_of("include/retention_airflow/ui/pages.py") == "ui"
    assert domain_of("dags/subject_request.py") == "airflow"


def test_an_unknown_language_is_refused_naming_it_and_the_choices():
    with pytest.raises(RetentionError, match=r"lang: language 'de' is not one we write in; use one of fr, en"):
        checked("de", "lang")


def test_english_is_the_text_as_written():
    assert translator("en", "engine")("Run certificate") == "Run certificate"

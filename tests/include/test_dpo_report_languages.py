"""The DPO report in French (the default) and in English, with fixed dates checked in Paris
time: a French reader reads French words for every value (a request type, a hold's status, an
end action), dates as they are written in French, and the moment the report was made on the
policy's clocks with the zone named - never UTC, never an ISO date."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html import unescape
from typing import get_args

import pytest
from engine_helpers import club_policy
from test_reconsent_answers import reconsent_policy

from include.retention.language import translator
from include.retention.policy.model import Category
from include.retention.reconsent.tokens import RefusalReason
from include.retention.records.holds import SCOPES, HoldView
from include.retention.reports import dpo_render, dpo_texts
from include.retention.reports.certificate import ChainStatus
from include.retention.reports.dpo_report import SEGMENTS, Campaign, Campaigns, Compliance, DpoReport, Volume
from include.retention.rights.requests import REQUEST_TYPES, Deadline

DECEMBER_1ST = date(2026, 12, 1)
# 00:12 on 1 December in Paris (UTC+1 in winter): the report of 1 December, made that night.
WINTER_NIGHT = datetime(2026, 11, 30, 23, 12, tzinfo=UTC)
# 00:30 on 2 July in Paris (UTC+2 in summer).
SUMMER_NIGHT = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)


def _report(generated_at: datetime = WINTER_NIGHT) -> DpoReport:
    """A one-day report of 1 December 2026 holding one of every kind of value a reader sees."""
    return DpoReport(
        policy=reconsent_policy(),
        period_start=DECEMBER_1ST,
        period_end=DECEMBER_1ST,
        today=DECEMBER_1ST,
        months=["2026-12"],
        volumes=[Volume("members", "members", "2026-12", archived_kept=8, deleted_same_run=6)],
        compliance=[Compliance("members", "members", date(2023, 11, 27), date(2026, 11, 27), 0, 1, 0, 0, 0, 2)],
        findings={"members": {"missing_start_date": 1}},
        chain=ChainStatus(audit_log="sqlite:///club.db#archive.retention_audit", events=12, reports="/srv/reports"),
        open_requests=[
            Deadline("DR-7", "opposition", date(2026, 11, 28), -3),
            Deadline("DR-8", "access", date(2026, 12, 20), 19),
        ],
        holds=[
            HoldView(
                "RG-1",
                "category",
                "members",
                None,
                1,
                "enquête",
                "dpo",
                datetime(2026, 3, 14, 23, 30, tzinfo=UTC),  # 15 March in Paris
                date(2027, 12, 31),
                "in_force",
            )
        ],
        campaigns=Campaigns(
            started=True,
            categories=[
                Campaign("members", recorded=3, sent=2, no_address=1, yes=1, awaiting=1, refused={"expired": 1})
            ],
        ),
        generated_at=generated_at,
    )


def _text(page: str) -> str:
    """What a reader reads: the page without its tags, unescaped."""
    return unescape(re.sub(r"<[^>]+>", " ", page))


def _cells(page: str, heading: str) -> list[str]:
    """The header and data cells of the tables that follow ``heading``, up to the next heading."""
    section = page[page.index(heading) :]
    section = section[: section.find("<h2>", 1)]
    return [unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", section)]


def test_the_french_report_says_the_request_types_their_due_days_and_the_period_in_french():
    page = dpo_render.render(_report())
    text = _text(page)
    assert "Période couverte : le 1er décembre 2026" in text
    assert "du 2026-12-01 au 2026-12-01" not in text and "du 1er décembre 2026 au" not in text
    cells = _cells(page, "<h2>4.")
    assert cells[:7] == ["Référence", "Portée", "Catégorie / table", "Éléments", "Créé le", "Échéance", "Statut"]
    assert cells[7:14] == ["RG-1", "une catégorie", "members", "1", "15 mars 2026", "31 décembre 2027", "en vigueur"]
    assert cells[14:18] == ["Référence", "Type", "Échéance", "Jours restants"]
    assert cells[18:21] == ["DR-7", "opposition", "28 novembre 2026"] and "EN RETARD (-3)" in cells[21]
    assert cells[22:] == ["DR-8", "accès", "20 décembre 2026", "19"]


def test_the_english_report_says_the_same_facts_in_english():
    page = dpo_render.render(_report(), "en")
    text = _text(page)
    assert '<html lang="en">' in page and "Period covered: 1 December 2026 (" in text
    cells = _cells(page, "<h2>4.")
    assert cells[:7] == ["Reference", "Scope", "Category / table", "Items", "Created on", "Expires on", "Status"]
    assert cells[7:14] == ["RG-1", "a category", "members", "1", "15 March 2026", "31 December 2027", "in force"]
    assert cells[14:18] == ["Reference", "Type", "Due", "Days left"]
    assert cells[18:21] == ["DR-7", "opposition", "28 November 2026"] and "OVERDUE (-3)" in cells[21]
    assert cells[22:] == ["DR-8", "access", "20 December 2026", "19"]


@pytest.mark.parametrize(
    "generated_at, french, english",
    [
        (
            WINTER_NIGHT,
            "Généré le 1er décembre 2026 à 00:12 (heure de Paris).",
            "Generated on 1 December 2026 at 00:12 (Paris time).",
        ),
        (
            SUMMER_NIGHT,
            "Généré le 2 juillet 2026 à 00:30 (heure de Paris).",
            "Generated on 2 July 2026 at 00:30 (Paris time).",
        ),
    ],
)
def test_the_footer_gives_the_moment_on_the_policys_clocks_with_its_zone_never_utc(generated_at, french, english):
    report = _report(generated_at)
    assert french in _text(dpo_render.render(report))
    assert english in _text(dpo_render.render(report, "en"))
    for lang in ("fr", "en"):
        assert "UTC" not in dpo_render.render(report, lang)


def test_the_compliance_and_schedule_tables_read_in_each_language():
    french, english = dpo_render.render(_report()), dpo_render.render(_report(), "en")
    assert _cells(french, "<h2>3.")[:4] == [
        "Catégorie",
        "Table",
        "Plus ancien enregistrement actif",
        "Devait quitter la base active le",
    ]
    assert _cells(french, "<h2>3.")[11:15] == ["Adhérents", "members", "27 novembre 2023", "27 novembre 2026"]
    assert "conforme" in _cells(french, "<h2>3.")[21] and "compliant" in _cells(english, "<h2>3.")[21]
    assert _cells(english, "<h2>3.")[11:15] == ["Members", "members", "27 November 2023", "27 November 2026"]
    assert _cells(french, "<h2>1.")[5] == "Sort final" and _cells(french, "<h2>1.")[11] == "suppression"
    assert _cells(english, "<h2>1.")[5] == "End of life" and _cells(english, "<h2>1.")[11] == "deletion"
    assert "archivés puis supprimés dans la même exécution" in french and "expiré 1" in _text(french)
    assert "archived then destroyed in the same run" in english and "expired 1" in _text(english)


# Words of the English report that would show an untranslated text in the French one.
ENGLISH_WORDS = (
    "access",
    "Generated",
    "Period covered",
    "in force",
    "category",
    "compliant",
    "deletion",
    "archived",
    "expired",
    "OVERDUE",
    "Days left",
    "Legal hold",
    "Records",
    "Refused tokens",
)


def test_no_english_word_of_the_report_leaks_into_the_french_one():
    french, english = _text(dpo_render.render(_report())), _text(dpo_render.render(_report(), "en"))
    assert all(word in english for word in ENGLISH_WORDS)  # each word is one the English report says
    leaked = [word for word in ENGLISH_WORDS if re.search(rf"\b{word}\b", french)]
    assert leaked == []


def test_no_iso_date_is_left_in_the_french_report():
    """Dates are written as a French reader writes them; only the file's name keeps ISO dates."""
    assert re.findall(r"\b\d{4}-\d{2}-\d{2}\b", _text(dpo_render.render(_report()))) == []


def test_the_schedule_page_of_the_retention_view_reads_wholly_in_french_or_english():
    policy = club_policy(archive_period=None, archive_purpose=None)
    french, english = _text(dpo_render.schedule_table(policy, "fr")), _text(dpo_render.schedule_table(policy, "en"))
    assert "Base active : durée, à compter de" in french and "aucune" in french and "suppression" in french
    assert "Active base: period, counted from" in english and "no archive" in english and "deletion" in english
    for word in ("Category", "none", "no archive", "deletion", "until", "from"):
        assert not re.search(rf"\b{word}\b", french), word


@pytest.mark.parametrize(
    "words, codes",
    [
        (dpo_texts.REQUEST_TYPE_WORDS, REQUEST_TYPES),
        (dpo_texts.HOLD_SCOPE_WORDS, SCOPES),
        (dpo_texts.HOLD_STATUS_WORDS, ("in_force", "lifted", "expired")),
        (dpo_texts.END_ACTION_WORDS, get_args(Category.model_fields["end_action"].annotation)),
        (dpo_texts.REFUSAL_WORDS, get_args(RefusalReason)),
        (dpo_texts.SEGMENT_WORDS, SEGMENTS),
    ],
)
def test_every_code_the_engine_stores_has_words_in_the_report(words, codes):
    assert set(words) == set(codes)
    french = [dpo_texts.value_words(words, code, translator("fr", "report")) for code in codes]
    assert all(french)


def test_the_schedule_says_a_clock_of_several_sources_in_the_readers_words_around_the_policys_columns():
    from test_real_schemas import erp_policy

    from include.retention.policy.load import parse_policy

    policy = parse_policy(erp_policy(), source="erp.yaml")
    french, english = _text(dpo_render.schedule_table(policy, "fr")), _text(dpo_render.schedule_table(policy, "en"))
    assert "3 ans, le plus récent des interactions.occurred_at sinon created_at" in french
    assert "3 years, latest interactions.occurred_at else created_at" in english
    assert not re.search(r"\b(latest|else)\b", french)

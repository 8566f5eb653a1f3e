"""A run certificate reads in the DPO's language: French by default, English on request, its
instant on the clocks of the policy's zone (Paris) with the zone said, its values in words -
and the files a run writes follow the policy's ``language``."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from html import unescape

import pytest
from babel.messages.pofile import read_po
from engine_helpers import AS_OF, club_policy, create_club, run_category

from include.retention.language import catalog_path
from include.retention.records.audit import RunContext
from include.retention.reports import certificate
from include.retention.reports.certificate import Certificate, CheckOutcome, TableOutcome
from include.retention.schedule.context import StepContext


def _certificate(issued_at: datetime, **changes: object) -> Certificate:
    """A certificate as ``build`` makes it, with fixed values (recorded in UTC, as the log stores them)."""
    fields: dict[str, object] = {
        "category": "members",
        "category_label": "Members",
        "dag_id": "retention_members",
        "run_id": "manual__club-nightly",
        "as_of": date(2026, 12, 1),
        "policy_version": "club-1",
        "dry_run": False,
        "completed": True,
        "approved_past_limit": None,
        "first_event": 41,
        "last_event": 58,
        "first_hash": "a" * 64,
        "last_hash": "b" * 64,
        "issued_at": issued_at,
        "audit_log": "sqlite:///srv/club.db archive.retention_audit",
        "tables": [TableOutcome("members", archived=5, deleted=1, quarantined=1)],
        "checks": [
            CheckOutcome("pre_archive", "members", "expect_column_values_to_be_unique:member_id", True, True, 0),
            CheckOutcome("post_run", "members", "no_overdue_active_rows", False, False, 2),
        ],
        "category_labels": {"fr": "Adhérents", "en": "Members"},
    }
    return Certificate(**(fields | changes))  # type: ignore[arg-type]


def _text(page: str) -> str:
    """What a reader sees: the page without its tags and style, entities read."""
    return " ".join(unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S)).split())


CERTIFICATE, DATE_WORDS = "include/retention/reports/certificate.py", "include/retention/dates/words.py"
WINTER = datetime(2026, 11, 30, 23, 12, tzinfo=UTC)  # 1 December in Paris (UTC+1)
SUMMER = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)  # 2 July in Paris (UTC+2)


def test_the_certificate_is_french_by_default_its_instant_in_paris_time():
    page = _text(certificate.render(_certificate(WINTER)))
    assert "Certificat de suppression - Adhérents - 1er décembre 2026" in page
    assert "Émis le 1er décembre 2026 à 00:12 (heure de Paris)" in page
    assert "Date de référence 1er décembre 2026" in page
    assert "UTC" not in page and "2026-11-30" not in page and "23:12" not in page


def test_the_same_certificate_in_english_on_request():
    page = _text(certificate.render(_certificate(WINTER), "en"))
    assert "Deletion certificate - Members - 1 December 2026" in page
    assert "Issued at 1 December 2026 at 00:12 (Paris time)" in page
    assert "UTC" not in page and "23:12" not in page


def test_a_summer_instant_is_two_hours_ahead_of_utc():
    assert "Émis le 2 juillet 2026 à 00:30 (heure de Paris)" in _text(certificate.render(_certificate(SUMMER)))
    assert "Issued at 2 July 2026 at 00:30 (Paris time)" in _text(certificate.render(_certificate(SUMMER), "en"))


def test_the_values_a_reader_sees_are_translated():
    french = _text(certificate.render(_certificate(WINTER)))
    assert "Mode exécution réelle" in french
    assert "Statut terminée ; 1 contrôle non bloquant a signalé des lignes (voir ci-dessous)" in french
    assert re.search(r"expect_column_values_to_be_unique:member_id\s+réussi\s+oui", french)
    assert re.search(r"no_overdue_active_rows\s+ÉCHEC\s+non", french)
    assert "Limite de suppression dans la limite" in french
    dry = _text(certificate.render(_certificate(WINTER, dry_run=True, approved_past_limit=120)))
    assert "Mode aperçu : rien n'a été modifié" in dry and "aperçu terminé, rien n'a été modifié ; 1 contrôle" in dry
    assert "dépassée : 120 retraits (archivage ou destruction) approuvés par une personne" in dry
    failed = _text(certificate.render(_certificate(WINTER, completed=False), "en"))
    assert "INCOMPLETE: the run did not finish or a check failed" in failed


def _english_texts() -> list[str]:
    """Every English text of the certificate (and the dates it says) that French says
    otherwise, cut at its placeholders: the pieces that would show if a text were left
    untranslated."""
    with catalog_path("engine", "fr").open("rb") as po:
        catalog = read_po(po)
    pieces = []
    for message in catalog:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        used_by = {path for path, _ in message.locations}
        if not message.id or set(ids) & set(strings) or not used_by & {CERTIFICATE, DATE_WORDS}:
            continue
        for text in ids:
            pieces += [p.strip(" :;,.()") for p in re.split(r"\{[a-z_]+\}", text)]
    return [p for p in pieces if re.search("[A-Za-z]{2}", p)]


@pytest.mark.parametrize("changes", [{}, {"dry_run": True, "approved_past_limit": 3}, {"completed": False}])
def test_no_english_is_left_in_the_french_certificate(changes):
    waiting = {"tables": [TableOutcome("members", waiting_for_reconsent=4)], "reconsent_notice_days": 30}
    french = _text(certificate.render(_certificate(WINTER, **changes, **waiting)))
    english = _text(certificate.render(_certificate(WINTER, **changes, **waiting), "en"))
    pieces = _english_texts()
    shown = [p for p in pieces if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", english)]
    assert len(shown) > 20  # the check sees the English page's texts
    assert [p for p in shown if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", french)] == []
    assert "4 en attente de re-consentement" in french and "d'au plus 30 jours (notice_days)" in french


def test_a_naive_issue_instant_is_refused_rather_than_read_as_paris_or_utc():
    with pytest.raises(ValueError, match="naive datetime"):
        certificate.render(_certificate(datetime(2026, 11, 30, 23, 12)))


def test_the_json_for_machines_is_unchanged_by_the_language():
    data = _certificate(WINTER).to_dict()
    assert data["issued_at"] == "2026-11-30T23:12:00+00:00" and data["category_label"] == "Members"
    assert not {"language", "timezone", "category_labels"} & data.keys()


@pytest.mark.parametrize(
    "language, says, not_says",
    [
        ("fr", "Certificat de suppression - Adhérents", "Deletion certificate"),
        ("en", "Deletion certificate - Members", "Certificat"),
    ],
)
def test_the_certificate_a_run_writes_is_in_the_policys_language(
    target, tmp_path, monkeypatch, language, says, not_says
):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    policy = club_policy().model_copy(update={"language": language})
    run_category(target, policy, run_id="run-1")
    ctx = RunContext(run_id="run-1", dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    json_path, html_path = certificate.issue(StepContext.build(target, policy, "members", ctx))
    page = _text(html_path.read_text(encoding="utf-8"))
    assert says in page and not_says not in page
    assert f'<html lang="{language}">' in html_path.read_text(encoding="utf-8")
    assert "language" not in json.loads(json_path.read_text(encoding="utf-8"))


def test_the_chain_status_says_its_verdict_in_the_readers_language_and_in_english_for_the_logs():
    from include.retention.reports.certificate import ChainStatus

    status = ChainStatus("sqlite:///srv/club.db archive.retention_audit", 58, certificates=3, anchored_to=58)
    assert status.sentence("fr") == (
        "intact : 58 événements, chaîne de hachage vérifiée, empreintes de 3 certificat(s) d'exécution et de "
        "0 ancre(s) quotidienne(s) concordantes"
    )
    assert status.sentence().startswith("intact: 58 events, hash chain verified")
    assert status.to_dict()["status"] == status.sentence()  # machines read the English one
    broken = ChainStatus("sqlite:///srv/club.db archive.retention_audit", 58, broken_at=7, reason="hash differs")
    assert broken.sentence("fr").startswith("ROMPU : la chaîne de hachage ne tient plus à l'événement 7")

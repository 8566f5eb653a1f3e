"""What a certificate calls things must be true: a preview changed nothing and is titled as
one; the count past the deletion limit includes rows moved to the archive, so it counts
removals (retraits), not deletions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_certificate_languages import _certificate, _text

from include.retention.reports import certificate

ISSUED = datetime(2026, 11, 30, 23, 12, tzinfo=UTC)  # 1 December in Paris


@pytest.mark.parametrize(
    "lang, title, not_title",
    [
        ("fr", "Aperçu (rien n'a été modifié) - Adhérents - 1er décembre 2026", "Certificat de suppression"),
        ("en", "Preview (nothing changed) - Members - 1 December 2026", "Deletion certificate"),
    ],
)
def test_a_preview_run_changes_nothing_and_its_page_says_so(lang, title, not_title):
    page = _text(certificate.render(_certificate(ISSUED, dry_run=True), lang))
    assert title in page and not_title not in page


def test_an_executed_run_keeps_its_certificate_title():
    assert "Certificat de suppression - Adhérents" in _text(certificate.render(_certificate(ISSUED)))


def test_the_approved_count_past_the_limit_is_of_removals_archived_or_destroyed():
    page = _text(certificate.render(_certificate(ISSUED, approved_past_limit=120)))
    assert "dépassée : 120 retraits (archivage ou destruction) approuvés par une personne" in page
    assert "suppressions approuvées" not in page

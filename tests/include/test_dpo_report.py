"""The DPO report: schedule as configured, monthly volumes from the log, compliance counted
now in the database, and the chain's status - in French by default, English on request."""

from __future__ import annotations

from datetime import date
from html import unescape

import pytest
from sqlalchemy import text

from engine_helpers import AS_OF, club_policy, create_club, run_category
from include.retention import dpo_report
from include.retention.dpo_report import previous_month

OCT_NOV = (date(2026, 10, 1), date(2026, 11, 30))


def _report(target, policy=None, period=OCT_NOV, today=AS_OF):
    return dpo_report.build(target, policy or club_policy(), *period, today)


def test_before_any_run_overdue_members_make_the_category_not_compliant(target):
    create_club(target)
    report = _report(target)
    (members,) = report.compliance
    # Members 1, 3, 4, 5 and 7 are past 3 years; the oldest active contact is member 4's.
    assert (members.overdue, members.missing_start, members.expired_in_archive) == (5, 1, 0)
    assert members.oldest_start == date(2018, 11, 26) and members.limit_date == date(2021, 11, 26)
    assert not members.compliant


def test_after_a_run_nothing_is_overdue_and_the_oldest_active_record_is_within_its_period(target):
    create_club(target)
    run_category(target, club_policy())
    (members,) = _report(target).compliance
    assert (members.overdue, members.missing_start, members.expired_in_archive) == (0, 1, 0)
    assert members.oldest_start == date(2023, 11, 27) and members.limit_date == date(2026, 11, 27)
    assert members.compliant


def test_compliance_is_counted_now_in_the_database_not_taken_from_the_log(target):
    create_club(target)
    run_category(target, club_policy())
    # Seven years later, without any run in between: the log has nothing new, the rows aged.
    (members,) = _report(target, today=date(2033, 11, 26)).compliance
    assert members.overdue == 2 and members.expired_in_archive == 4 and not members.compliant


def test_volumes_per_month_come_from_executed_runs_only(target):
    create_club(target)
    run_category(target, club_policy(), dry_run=True, run_id="dry")
    run_category(target, club_policy(), as_of=date(2026, 10, 15), run_id="october")
    run_category(target, club_policy(), run_id="november")
    report = _report(target)
    assert report.months == ["2026-10", "2026-11"]
    # October: members 3, 4 and 5 are archived. November: 1 and 7 are archived, and 4 reaches
    # exactly 8 years on 2026-11-26 and is destroyed.
    assert report.volumes["members"] == {"archive": [3, 2], "delete": [0, 1], "anonymize": [0, 0]}


def test_the_report_lists_missing_start_dates_found_in_the_period(target):
    create_club(target)
    run_category(target, club_policy())
    assert _report(target).findings == {"members": {"missing_start_date": 1}}
    assert _report(target, period=(date(2026, 1, 1), date(2026, 10, 31))).findings == {}


def test_the_report_is_in_french_by_default_and_in_english_on_request(target):
    create_club(target)
    run_category(target, club_policy())
    report = _report(target)
    french, english = dpo_report.render(report), dpo_report.render(report, "en")
    assert '<html lang="fr">' in french and "Durées de conservation" in french and "Adhérents" in french
    assert "3 ans" in french and "5 ans" in french and "conforme" in french
    assert '<html lang="en">' in english and "Retention schedule" in english and "3 years" in english
    for page in (french, english):
        assert page.count("<svg") == 1 and "<script" not in page and "src=" not in page
        assert "example.fr" not in page and "Numéro" not in page


def test_a_tampered_log_shows_in_the_report(target):
    create_club(target)
    run_category(target, club_policy())
    with target.engine.begin() as conn:
        if target.is_sqlite:
            conn.execute(text('DROP TRIGGER "archive"."retention_audit_no_update"'))
        else:
            conn.execute(text('DROP TRIGGER "retention_audit_append_only" ON "archive"."retention_audit"'))
        conn.execute(text('UPDATE "archive"."retention_audit" SET row_count = 0 WHERE event_id = 3'))
    report = _report(target)
    assert report.chain.broken_at == 3
    assert "CHAÎNE ROMPUE à l'événement 3" in unescape(dpo_report.render(report))


def test_the_report_is_written_under_reports_dpo(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    path = dpo_report.write(_report(target), "en")
    assert path == tmp_path / "dpo" / "retention-dpo-report_2026-10-01_2026-11-30.en.html"
    assert "Compliance today" in path.read_text()


def test_a_period_that_ends_before_it_starts_is_refused(target):
    create_club(target)
    with pytest.raises(ValueError, match="ends .2026-01-01. before it starts .2026-02-01."):
        _report(target, period=(date(2026, 2, 1), date(2026, 1, 1)))


def test_an_unknown_language_is_refused(target):
    create_club(target)
    with pytest.raises(ValueError, match="language 'de'"):
        dpo_report.render(_report(target), "de")


@pytest.mark.parametrize("day, expected", [
    (date(2026, 11, 26), (date(2026, 10, 1), date(2026, 10, 31))),
    (date(2027, 1, 1), (date(2026, 12, 1), date(2026, 12, 31))),
    (date(2028, 3, 31), (date(2028, 2, 1), date(2028, 2, 29))),
])
def test_the_monthly_report_covers_the_previous_calendar_month(day, expected):
    assert previous_month(day) == expected

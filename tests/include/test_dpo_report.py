"""The DPO report: schedule as configured, monthly volumes from the log, compliance counted
now in the database, and the chain's status - in French by default, English on request."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest
from engine_helpers import AS_OF, _members_table_policy, club_policy, count, create_club, run_category
from sqlalchemy import text
from test_real_schemas import create_erp, erp_policy

from include.retention.database import store
from include.retention.dates import words
from include.retention.errors import RetentionError
from include.retention.language import LANGUAGES
from include.retention.policy.load import parse_policy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.reports import dpo_render, dpo_report
from include.retention.reports.dpo_report import previous_month

OCT_NOV = (date(2026, 10, 1), date(2026, 11, 30))
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))

# 14 members due on AS_OF (3 years active), 6 of them past their whole horizon (3 + 5 years):
# one run archives the 14 and destroys those 6 - each of the 14 rows once.
PAST_HORIZON = {
    10: date(2012, 2, 29),
    11: date(2015, 1, 10),
    12: date(2016, 3, 5),
    13: date(2017, 6, 30),
    14: date(2018, 1, 15),
    15: date(2018, 11, 26),
}
IN_ARCHIVE_PERIOD = {
    20: date(2018, 11, 27),
    21: date(2019, 5, 5),
    22: date(2020, 2, 29),
    23: date(2021, 7, 14),
    24: date(2022, 3, 27),
    25: date(2022, 10, 30),
    26: date(2023, 6, 1),
    27: date(2023, 11, 26),
}
FOURTEEN_DUE = {**PAST_HORIZON, **IN_ARCHIVE_PERIOD, 30: date(2023, 11, 27), 31: date(2026, 1, 1), 32: None}


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
    assert [report.volume("members", month).rows for month in report.months] == [3, 3]


def test_the_report_lists_missing_start_dates_found_in_the_period(target):
    create_club(target)
    run_category(target, club_policy())
    assert _report(target).findings == {"members": {"missing_start_date": 1}}
    assert _report(target, period=(date(2026, 1, 1), date(2026, 10, 31))).findings == {}


def test_the_report_is_in_french_by_default_and_in_english_on_request(target):
    create_club(target)
    run_category(target, club_policy())
    report = _report(target)
    french, english = dpo_render.render(report), dpo_render.render(report, "en")
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
    assert "CHAÎNE ROMPUE à l'événement 3" in unescape(dpo_render.render(report))


def test_a_log_rewritten_with_recomputed_hashes_shows_in_the_report_as_retention_audit_verify_says(
    target, tmp_path, monkeypatch
):
    """The report's verdict is the daily verification's (chain and run certificates): a log
    consistent in itself but no longer matching its certificates is not called intact."""
    from test_audit_chain import AUDIT, _rewrite_whole_chain

    from include.retention.reports import certificate

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    run_category(target, club_policy())
    with target.read() as conn:
        certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
    assert _report(target).chain.intact
    _rewrite_whole_chain(target, 3, row_count=12345)
    report = _report(target)
    assert report.chain.chain_holds and not report.chain.intact
    assert "JOURNAL RÉÉCRIT" in unescape(dpo_render.render(report))
    assert "LOG REWRITTEN" in unescape(dpo_render.render(report, "en"))


def test_the_report_is_written_under_reports_dpo(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    path = dpo_render.write(_report(target), "en")
    assert path == tmp_path / "dpo" / "retention-dpo-report_2026-10-01_2026-11-30.en.html"
    assert "Compliance today" in path.read_text()


def test_a_period_that_ends_before_it_starts_is_refused(target):
    create_club(target)
    with pytest.raises(ValueError, match="ends .2026-01-01. before it starts .2026-02-01."):
        _report(target, period=(date(2026, 2, 1), date(2026, 1, 1)))


def test_an_unknown_language_is_refused(target):
    create_club(target)
    with pytest.raises(ValueError, match="language 'de'"):
        dpo_render.render(_report(target), "de")


@pytest.mark.parametrize(
    "day, expected",
    [
        (date(2026, 11, 26), (date(2026, 10, 1), date(2026, 10, 31))),
        (date(2027, 1, 1), (date(2026, 12, 1), date(2026, 12, 31))),
        (date(2028, 3, 31), (date(2028, 2, 1), date(2028, 2, 29))),
    ],
)
def test_the_monthly_report_covers_the_previous_calendar_month(day, expected):
    assert previous_month(day) == expected


# -- volumes: each row counted once -------------------------------------------------------


def _bars(page: str) -> list[tuple[int, dict[str, int]]]:
    """Each bar of the page's charts: the total printed above it and its segments' numbers."""
    bars = []
    for bar in re.findall(r'<g class="bar">(.*?)</g>', page, flags=re.S):
        total = int(re.search(r'<text class="total"[^>]*>(\d+)</text>', bar).group(1))
        segments = {name: int(n) for name, n in re.findall(r'<rect data-segment="([^"]+)" data-rows="(\d+)"', bar)}
        bars.append((total, segments))
    return bars


def _segments(volume: dpo_report.Volume) -> dict[str, int]:
    return {name: getattr(volume, name) for name in dpo_report.SEGMENTS if getattr(volume, name)}


def test_a_run_that_archives_14_rows_and_destroys_6_of_them_counts_14_rows_of_which_6_destroyed(target):
    create_club(target, FOURTEEN_DUE)
    run = run_category(target, club_policy())
    assert (run.archived["members"], run.purged["deleted"]["members"]) == (14, 6)  # what the log says
    report = _report(target, period=NOVEMBER)
    november = report.volume("members", "2026-11")
    assert (november.archived, november.deleted_same_run, november.archived_kept) == (14, 6, 8)
    assert (november.deleted_from_archive, november.deleted_directly, november.rows) == (0, 0, 14)
    page = unescape(dpo_render.render(report))
    assert _bars(page) == [(14, {"archivés et conservés": 8, "archivés puis supprimés dans la même exécution": 6})]
    assert "20" not in re.findall(r'<text class="total"[^>]*>(\d+)</text>', page)


def test_rows_archived_by_an_earlier_run_and_destroyed_now_count_as_destroyed_from_the_archive(target):
    create_club(target)
    run_category(target, club_policy(), as_of=date(2026, 10, 15), run_id="october")
    run_category(target, club_policy(), run_id="november")
    report = _report(target)
    # October archives members 4, 5 and 7 and keeps them; on 2026-11-26 member 4 reaches
    # exactly 8 years and is destroyed from the archive, while 1 and 3 are archived and kept.
    assert _segments(report.volume("members", "2026-10")) == {"archived_kept": 3}
    assert _segments(report.volume("members", "2026-11")) == {"archived_kept": 2, "deleted_from_archive": 1}
    assert [total for total, _ in _bars(unescape(dpo_render.render(report, "en")))] == [3, 3]
    only_november = _report(target, period=NOVEMBER)
    assert _segments(only_november.volume("members", "2026-11")) == {"archived_kept": 2, "deleted_from_archive": 1}


def test_a_category_without_an_archive_counts_rows_destroyed_directly_in_the_active_base(target):
    create_club(target)
    policy = club_policy(archive_period=None, archive_purpose=None)
    run_category(target, policy)
    report = _report(target, policy, period=NOVEMBER)
    # Members 1, 3, 4, 5 and 7 are past 3 years: destroyed where they are, never archived.
    assert _segments(report.volume("members", "2026-11")) == {"deleted_directly": 5}
    assert _bars(unescape(dpo_render.render(report))) == [(5, {"supprimés directement dans la base active": 5})]


def test_rows_archived_and_anonymised_in_the_same_run_are_counted_once(target):
    create_club(target)
    policy = club_policy(end_action="anonymize", tables=[_members_table_policy(anonymized=True)])
    run_category(target, policy)
    report = _report(target, policy, period=NOVEMBER)
    # Members 1, 3, 4, 5 and 7 are archived; member 4, past 8 years, is anonymised at once.
    assert _segments(report.volume("members", "2026-11")) == {"archived_kept": 4, "anonymized_same_run": 1}
    assert _bars(unescape(dpo_render.render(report))) == [
        (5, {"archivés et conservés": 4, "archivés puis anonymisés dans la même exécution": 1})
    ]


def test_the_volume_table_gives_each_table_archived_of_which_destroyed_and_rows_in_all(target):
    create_club(target, FOURTEEN_DUE)
    run_category(target, club_policy())
    page = unescape(dpo_render.render(_report(target, period=NOVEMBER)))
    table = page[page.index("<h2>2.") : page.index("<h2>3.")]
    assert "dont supprimés ou anonymisés dans la même exécution" in table
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    assert cells == ["Adhérents", "members", "novembre 2026", "14", "6", "0", "0", "14"]


def test_every_chart_adds_up_to_the_rows_it_counts_never_more(target):
    create_club(target, FOURTEEN_DUE)
    run_category(target, club_policy(), as_of=date(2026, 10, 15), run_id="october")
    run_category(target, club_policy(), run_id="november")
    report = _report(target)
    for lang in LANGUAGES:
        bars = _bars(unescape(dpo_render.render(report, lang)))
        assert [total for total, _ in bars] == [report.volume("members", m).rows for m in report.months]
        for total, segments in bars:
            assert sum(segments.values()) == total
    # October archives the 13 members due then and destroys the 5 past 8 years; November archives
    # member 27 and destroys member 15 (archived in October): 14 members archived, each once.
    assert [report.volume("members", m).rows for m in report.months] == [13, 2]
    assert sum(report.volume("members", m).archived for m in report.months) == 14


def test_the_chart_says_what_it_counts_over_which_period_with_a_legend(target):
    create_club(target, FOURTEEN_DUE)
    run_category(target, club_policy())
    report = _report(target, period=NOVEMBER)
    french, english = unescape(dpo_render.render(report)), unescape(dpo_render.render(report, "en"))
    assert "Adhérents : enregistrements traités par les exécutions de novembre 2026, chacun compté une fois" in french
    assert "Members: records handled by the runs of November 2026, each counted once" in english
    assert 'class="legend"' in french and "archivés puis supprimés dans la même exécution" in french
    assert "archived then destroyed in the same run" in english


def test_a_run_that_destroys_more_rows_it_archived_than_it_archived_is_refused_naming_it(target):
    create_club(target)
    policy = club_policy()
    run_category(target, policy, as_of=date(2026, 10, 15), run_id="october")  # creates the log where it lives
    trail = store.audit_table("archive", policy.audit_table)
    ctx = RunContext("run-x", "retention_members", AS_OF, policy.version)
    with target.engine.begin() as conn:
        audit.record(conn, trail, ctx, category="members", action="archive", table_name="members", row_count=1)
        audit.record(
            conn,
            trail,
            ctx,
            category="members",
            action="delete",
            table_name="members",
            row_count=3,
            details={"same_run": 3},
        )
    with pytest.raises(RetentionError, match="run run-x.*members.*members.*3 rows it archived.*archived 1"):
        _report(target, period=NOVEMBER)


@pytest.mark.parametrize(
    "order", [("customer_relationship", "prospection", "billing"), ("billing", "prospection", "customer_relationship")]
)
def test_after_a_first_day_of_runs_the_report_accounts_for_every_row_that_moved_once(target, order):
    """On an ERP schema: a partner table shared by two categories, and invoices that the customer
    run archives with their customer (audited under billing) - some already past billing's horizon."""
    create_erp(target)
    policy = parse_policy(erp_policy(), source="erp.yaml")
    roots = [(key, table) for key, category in policy.categories.items() for table in category.tables]
    active_before = {table.table: count(target, table.table, schema="erp") for _, table in roots}
    for key in order:
        run_category(target, policy, category=key, run_id=f"run-{key}")
    report = _report(target, policy, period=NOVEMBER)
    moved = {name: 0 for name in active_before}
    for key, table in roots:
        volume = report.volume(key, "2026-11", table.table)
        moved[table.table] += volume.archived + volume.deleted_directly
        # The archive was empty this morning: what it holds now is what the day archived, less
        # what the day destroyed from it - by the run that archived it or by a later one.
        in_archive = count(target, table.archive_name, archive=True, schema="erp")
        assert volume.archived - volume.ended_same_run - volume.ended_from_archive == in_archive, (key, table.table)
        assert volume.rows == volume.archived + volume.ended_from_archive + volume.deleted_directly
    # Every row that left the active base is archived (or destroyed directly) exactly once.
    assert moved == {name: n - count(target, name, schema="erp") for name, n in active_before.items()}
    assert (
        moved["invoices"] == 3
        and report.volume("billing", "2026-11").ended_same_run + report.volume("billing", "2026-11").ended_from_archive
        == 1
    )  # invoice 81, past 10 years
    for page in (dpo_render.render(report), dpo_render.render(report, "en")):  # counts and names, no row's content
        assert "example.fr" not in page and "Partenaire" not in page and "F-81" not in page


# -- the period, in words ------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, end, french, english",
    [
        (date(2026, 12, 1), date(2026, 12, 1), "le 1er décembre 2026", "1 December 2026"),
        (date(2026, 11, 1), date(2026, 11, 30), "novembre 2026", "November 2026"),
        (date(2026, 12, 1), date(2026, 12, 15), "du 1er au 15 décembre 2026", "1 to 15 December 2026"),
        (date(2026, 10, 1), date(2026, 11, 30), "du 1er octobre au 30 novembre 2026", "1 October to 30 November 2026"),
        (
            date(2025, 12, 15),
            date(2026, 1, 14),
            "du 15 décembre 2025 au 14 janvier 2026",
            "15 December 2025 to 14 January 2026",
        ),
    ],
)
def test_the_period_reads_as_words(start, end, french, english):
    assert words.period_words(start, end, "fr") == french
    assert words.period_words(start, end, "en") == english


def test_a_one_day_report_says_it_covers_one_day(target):
    create_club(target)
    run_category(target, club_policy())
    page = unescape(dpo_render.render(_report(target, period=(AS_OF, AS_OF))))
    assert "Période couverte : le 26 novembre 2026" in page and "les exécutions du 26 novembre 2026" in page
    assert "état compté le 26 novembre 2026" in page
    assert "2026-11-26 au 2026-11-26" not in page and "du 26 novembre 2026 au" not in page


def test_a_customer_kept_by_its_retained_invoices_is_not_counted_as_expired_in_the_archive(target):
    """After a first day on the ERP schema, customer 8 is past its own horizon but invoice 82
    keeps it in the archive until 2029-03-31: the purge rightly keeps it, so the report does
    not call it an expired row left behind."""
    create_erp(target)
    policy = parse_policy(erp_policy(), source="erp.yaml")
    for key in ("billing", "prospection", "customer_relationship"):
        run_category(target, policy, category=key, run_id=f"run-{key}")
    assert 8 in [r for r in _archived_partner_ids(target)]
    report = _report(target, policy, period=NOVEMBER)
    customers = [c for c in report.compliance if c.category == "customer_relationship"]
    assert customers and all(c.expired_in_archive == 0 for c in customers)


def _archived_partner_ids(target):
    from engine_helpers import archive_rows

    return [r["partner_id"] for r in archive_rows(target, "customer_partners")]


# --- Absurd periods: refused before anything is read or written -------------------------------


@pytest.mark.parametrize(
    "period, words",
    [
        ((date(1, 1, 1), date(9999, 12, 31)), "starts before 2000-01-01"),
        ((date(2000, 1, 1), date(2026, 11, 26)), "longer than 10 years"),
        ((date(2016, 1, 1), date(2026, 1, 1)), "longer than 10 years"),
        ((date(1, 1, 1), date(1, 1, 31)), "starts before 2000-01-01"),
        ((date(1999, 12, 31), date(2000, 1, 31)), "starts before 2000-01-01"),
        ((date(2027, 11, 1), date(2027, 11, 27)), "ends after 2027-11-26, a year after today"),
        ((date(9999, 1, 1), date(9999, 12, 31)), "ends after 2027-11-26, a year after today"),
    ],
)
def test_an_absurd_report_period_is_refused_naming_the_bound(target, period, words):
    create_club(target)
    with pytest.raises(ValueError, match=words) as info:
        _report(target, period=period, today=AS_OF)
    assert str(period[0]) in str(info.value) and str(period[1]) in str(info.value)


def test_a_report_over_ten_whole_years_up_to_a_year_after_today_is_accepted(target):
    create_club(target)
    report = _report(target, period=(date(2017, 11, 27), date(2027, 11, 26)), today=AS_OF)
    assert len(report.months) == 121 and report.months[0] == "2017-11" and report.months[-1] == "2027-11"
    assert "2017" in dpo_render.render(report, "en")


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31"])
def test_the_dag_trigger_form_refuses_a_report_day_outside_2000_to_2099(day):
    """The DPO learns it at trigger time; the task's check (above) catches the rest."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "dags" / "retention_dpo_report.py"
    spec = importlib.util.spec_from_file_location("dpo_report_dag_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = module.retention_dpo_report.params  # the default target's DAG, bound under its id
    for name in ("period_start", "period_end"):
        assert params.get_param(name).resolve("2026-11-01") == "2026-11-01"
        with pytest.raises(Exception, match="does not match"):
            params.get_param(name).resolve(day)


@pytest.mark.parametrize(
    "status, fr, en",
    [
        (
            dict(events=0, exists=False, mismatches=("anchor #7 names event 7; the log has none",)),
            "JOURNAL SUPPRIMÉ",
            "LOG REMOVED",
        ),
        (dict(events=0, mismatches=("anchor #7 names event 7; the log has none",)), "JOURNAL VIDÉ", "LOG EMPTIED"),
        (dict(events=5, reports_missing=True), "dossier des certificats", "certificates folder"),
        (
            dict(events=5, missing_certificates=("run-2 (retention_members)",)),
            "CERTIFICATS MANQUANTS",
            "CERTIFICATES MISSING",
        ),
    ],
)
def test_the_report_names_each_chain_verdict_as_the_daily_verification_does(status, fr, en):
    """Every failing verdict gets its own words: a missing folder or a deleted certificate is not
    'the certificates name another log' (which the report said for any failure it did not know)."""
    from include.retention.reports.certificate import ChainStatus
    from include.retention.reports.dpo_render import _chain_paragraph

    chain = ChainStatus(audit_log="sqlite:///x.db#archive.retention_audit", reports="/srv/reports", **status)
    assert not chain.intact
    assert fr in _chain_paragraph(chain, "fr") and en in _chain_paragraph(chain, "en")
    assert "another log" not in _chain_paragraph(chain, "en")

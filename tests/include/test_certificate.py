"""Each run's deletion certificate: exact counts per table, the checks with their results and
the run's first and last audit hashes - derived from the log, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from engine_helpers import AS_OF, PARIS, club_policy, create_club, run_category
from sqlalchemy import update

from include.retention.database import store
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.reports import certificate
from include.retention.schedule.context import StepContext
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.quality import QualityGateFailed, pre_archive_gate
from include.retention.schedule.summary import summarize_run

RUN = "scheduled__2026-11-26T01:00:00+00:00"


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _step(target, policy, run_id=RUN, dry_run=False):
    ctx = RunContext(
        run_id=run_id, dag_id="retention_members", as_of=AS_OF, policy_version=policy.version, dry_run=dry_run
    )
    return StepContext.build(target, policy, "members", ctx)


def _full_run(target, policy, run_id=RUN):
    """The DAG's order: pre-gate, plan/archive/purge/summary, post-gate, certificate."""
    step = _step(target, policy, run_id)
    pre_archive_gate(step)
    run_category(target, policy, run_id=run_id)
    post_run_gate(step)
    return step


def test_a_run_certificate_gives_exact_counts_per_table(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    step = _full_run(target, club_policy())
    json_path, html_path = certificate.issue(step)
    data = json.loads(json_path.read_text())
    assert (data["category"], data["policy_version"], data["as_of"], data["run_id"]) == (
        "members",
        "club-1",
        "2026-11-26",
        RUN,
    )
    # Members 1, 3, 4, 5 and 7 are due; 4 (exactly 8 years) is destroyed the same run; 6 has no date.
    assert {
        t["table"]: (t["archived"], t["deleted"], t["anonymized"], t["held"], t["quarantined"]) for t in data["tables"]
    } == {
        "members": (5, 1, 0, 0, 1),
        "member_events": (10, 2, 0, 0, 0),
        "member_event_files": (10, 2, 0, 0, 0),
    }
    assert html_path.parent == json_path.parent == tmp_path / "retention_members"
    assert json_path.name == f"scheduled__2026-11-26T01_00_00_00_00~{_sha256(RUN)[:16]}.certificate.json"
    assert html_path.name == json_path.name.replace(".json", ".html")


def test_the_certificate_names_the_runs_first_and_last_audit_hash_and_they_verify(target):
    create_club(target)
    _full_run(target, club_policy(), run_id="earlier")
    step = _full_run(target, club_policy())
    with target.read() as conn:
        cert = certificate.build(conn, step.audit_table, step.policy, RUN)
        mine = audit.events(conn, step.audit_table, run_id=RUN)
        assert audit.verify_chain(conn, step.audit_table).intact
    assert (cert.first_hash, cert.last_hash) == (mine[0]["event_hash"], mine[-1]["event_hash"])
    assert (cert.first_event, cert.last_event) == (mine[0]["event_id"], mine[-1]["event_id"])
    assert cert.first_event > 1  # not the earlier run's events


def test_the_certificate_lists_every_check_that_ran_with_its_result(target):
    create_club(target)
    step = _full_run(target, club_policy())
    with target.read() as conn:
        cert = certificate.build(conn, step.audit_table, step.policy, RUN)
    checked = {(c.table, c.check) for c in cert.checks}
    assert ("members", "expect_column_values_to_be_unique:member_id") in checked  # pre-archive gate
    assert ("members", "no_overdue_active_rows") in checked  # post-run gate
    assert cert.checks and all(c.success for c in cert.checks) and cert.completed


def test_a_run_stopped_by_a_failed_gate_gets_an_incomplete_certificate(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    tables = create_club(target)
    with target.engine.begin() as conn:  # a last contact in the future: the pre-archive gate fails
        conn.execute(
            update(tables["members"])
            .where(tables["members"].c.member_id == 8)
            .values(last_contact_at=datetime(2099, 1, 1, 10, tzinfo=PARIS))
        )
    step = _step(target, club_policy())
    with pytest.raises(QualityGateFailed):
        pre_archive_gate(step)
    summarize_run(step, {}, {}, incomplete=True)  # what the DAG's summary task does after a failure
    json_path, html_path = certificate.issue(step)
    data = json.loads(json_path.read_text())
    assert data["completed"] is False
    assert [c["check"] for c in data["checks"] if not c["success"]] == ["no_future_last_contact_at"]
    assert all(t["archived"] == t["deleted"] == 0 for t in data["tables"])
    assert "INCOMPLET :" in html_path.read_text()  # written in the policy's language, French


def test_a_dry_run_certificate_counts_nothing_as_done(target):
    create_club(target)
    run_category(target, club_policy(), dry_run=True, run_id="dry")
    with target.read() as conn:
        cert = certificate.build(conn, store.audit_table("archive", "retention_audit"), club_policy(), "dry")
    assert cert.dry_run and all(t.archived == t.deleted == t.anonymized == 0 for t in cert.tables)
    assert "dry run" in certificate.render(cert, "en")


def test_a_dry_run_with_due_rows_is_complete_and_says_what_an_executing_run_would_act_on(target):
    """A dry run moves nothing, so its post-run gate reports the overdue rows without failing:
    its certificate is complete and says so, instead of reading INCOMPLETE like a failed run."""
    create_club(target)
    policy = club_policy()
    step = _step(target, policy, "dry", dry_run=True)
    pre_archive_gate(step)
    run_category(target, policy, dry_run=True, run_id="dry")
    results = post_run_gate(step)
    assert any(not r.success and not r.blocking for r in results)  # the overdue members are reported
    with target.read() as conn:
        cert = certificate.build(conn, store.audit_table("archive", "retention_audit"), policy, "dry")
    assert cert.completed and cert.dry_run
    page = certificate.render(cert, "en")
    assert "INCOMPLETE" not in page and "dry run completed, nothing was changed" in page


def test_certificates_hold_no_personal_data(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    json_path, html_path = certificate.issue(_full_run(target, club_policy()))
    for text in (json_path.read_text(), html_path.read_text()):
        assert "example.fr" not in text and "Numéro" not in text and "secret note" not in text


def test_an_unknown_run_has_no_certificate(target):
    create_club(target)
    run_category(target, club_policy())
    with target.read() as conn, pytest.raises(certificate.NoSuchRun, match="no-such-run"):
        certificate.build(conn, store.audit_table("archive", "retention_audit"), club_policy(), "no-such-run")


def test_the_latest_runs_are_listed_newest_first(target):
    create_club(target)
    for run_id in ("first", "second"):
        run_category(target, club_policy(), run_id=run_id)
    with target.read() as conn:
        runs = certificate.latest_runs(conn, store.audit_table("archive", "retention_audit"))
    assert [r["run_id"] for r in runs] == ["second", "first"]


# -- file names: one per run id, bounded, and the certificates written before still checked ------


def test_run_ids_that_read_alike_get_certificates_of_their_own_and_both_anchor_the_log(target, tmp_path, monkeypatch):
    """``manual__2026-11-26T10:00:00+00:00`` and ``manual__2026-11-26T10_00_00_00_00`` gave one
    file name: the second certificate replaced the first, and its anchor was lost."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    run_ids = ("manual__2026-11-26T10:00:00+00:00", "manual__2026-11-26T10_00_00_00_00")
    written = [certificate.issue(_full_run(target, club_policy(), run_id))[0] for run_id in run_ids]
    assert written[0] != written[1] and all(p.parent == tmp_path / "retention_members" for p in written)
    assert [json.loads(p.read_text())["run_id"] for p in written] == list(run_ids)
    assert [p.name.startswith("manual__2026-11-26T10_00_00_00_00~") for p in written] == [True, True]
    with target.read() as conn:
        status = certificate.chain_status(conn, store.audit_table("archive", "retention_audit"))
    assert status.intact and status.certificates == 2


def test_a_run_id_of_250_characters_gets_a_certificate_with_a_bounded_name(target, tmp_path, monkeypatch):
    """Airflow allows run ids of 250 characters; a file name may hold 255 bytes (errno 36)."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    run_id = "manual__" + "é" * 2 + "x" * 240
    assert len(run_id) == 250
    json_path, html_path = certificate.issue(_full_run(target, club_policy(), run_id))
    assert json.loads(json_path.read_text())["run_id"] == run_id
    assert len(json_path.name.encode()) <= 100 and len(html_path.name.encode()) <= 100
    assert certificate.paths("retention_members", run_id) == (json_path, html_path)


def test_a_certificate_written_under_the_old_name_is_still_found_and_checked(target, tmp_path, monkeypatch):
    """Certificates written before names had a hash suffix (``<run id with _>.certificate.json``)
    are evidence too: verification reads them wherever they are, and a log that no longer
    matches them is not intact."""
    from test_audit_chain import _rewrite_whole_chain

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    step = _full_run(target, club_policy())
    with target.read() as conn:
        issued = certificate.build(conn, step.audit_table, step.policy, RUN)
    legacy = tmp_path / "retention_members" / "scheduled__2026-11-26T01_00_00_00_00.certificate.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps(issued.to_dict()), encoding="utf-8")
    with target.read() as conn:
        assert certificate.chain_status(conn, step.audit_table).certificates == 1
    _rewrite_whole_chain(target, issued.last_event, row_count=4242)
    with target.read() as conn:
        status = certificate.chain_status(conn, step.audit_table)
    assert not status.intact and status.mismatches == (
        f"event {issued.last_event} named in {legacy.name} has another hash in the log",
    )


def test_dag_ids_that_read_alike_get_folders_of_their_own(tmp_path, monkeypatch):
    """Airflow's dag ids may hold letters beyond ASCII: ``rétention`` and ``r_tention`` must not
    share a folder (their scheduled run ids are the same). Plain ids keep their folder."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    run_id = "scheduled__2026-11-26T01:00:00+00:00"
    folders = [certificate.paths(dag_id, run_id)[0].parent for dag_id in ("rétention", "r_tention")]
    assert folders[0] != folders[1] and folders[1] == tmp_path / "r_tention"
    assert folders[0].name.startswith("r_tention~")


AUDIT = store.audit_table("archive", "retention_audit")


def _written(tmp_path):
    return sorted(p.name for p in (tmp_path / "retention_members").iterdir())


def test_a_certificate_issued_again_unchanged_keeps_its_file(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    run_category(target, club_policy())
    with target.read() as conn:
        first = certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
        before = first[0].read_text()
        again = certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
    assert again == first and first[0].read_text() == before and len(_written(tmp_path)) == 2


def test_a_certificate_rebuilt_from_a_grown_run_never_replaces_the_earlier_one(target, tmp_path, monkeypatch):
    """Clearing an old run's summary task rebuilds its certificate from the log as it is now:
    the earlier file, with the hashes it copied, stays."""
    from include.retention.records.audit import RunContext, record

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    run_category(target, club_policy())
    with target.read() as conn:
        first_json, _ = certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
    before = first_json.read_text()
    with target.engine.begin() as conn:
        record(
            conn,
            AUDIT,
            RunContext("run-1", "retention_members", AS_OF, "club-1"),
            category="members",
            action="run_summary",
            row_count=0,
        )
    with target.read() as conn:
        second_json, second_html = certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
    assert first_json.read_text() == before and second_json != first_json
    assert second_json.name.endswith("-1.certificate.json") and second_html.exists()
    assert json.loads(second_json.read_text())["last_event"] > json.loads(before)["last_event"]
    assert len(_written(tmp_path)) == 4
    with target.read() as conn:
        assert certificate.chain_status(conn, AUDIT).intact

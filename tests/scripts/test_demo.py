"""`make demo` twice in a row: the second demo starts from a fresh target *and* from no
certificate of the first, so the daily verification passes after it and the demo prints the
same table. The demo's own steps (``DemoHome.reset``, ``chain_line``) are driven here; the
category runs are what the DAG's tasks do, without Airflow's scheduler (``make demo`` runs
them through ``dag.test``)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from datetime import date
from pathlib import Path

import pytest

from include.retention.database.store import audit_table
from include.retention.database.target import connect
from include.retention.policy.load import load_policy
from include.retention.records.audit import RunContext
from include.retention.reports import certificate
from include.retention.reports.summary import format_summary, summary_table
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts
from include.retention.schedule.plan import plan_category
from include.retention.schedule.purge import purge_category
from include.retention.schedule.summary import summarize_run

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 26)


def _demo_module():
    spec = importlib.util.spec_from_file_location("retention_demo", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """The demo script, its home in a temporary folder, and the environment it gives Airflow."""
    module = _demo_module()
    home = module.DemoHome(tmp_path / ".demo")
    for name, value in home.environment().items():
        monkeypatch.setenv(name, value)
    return module, home


def _one_demo(home, run: int) -> str:
    """The demo's reset, then every category's run with its certificate; return its table."""
    policy = load_policy()
    home.reset(AS_OF)
    target = connect(home.url, policy.archive_schema)
    try:
        run_ids = []
        for category in policy.categories:
            run_id = f"manual__demo-{run}-{category}"
            step = StepContext.build(
                target, policy, category, RunContext(run_id, f"retention_{category}", AS_OF, policy.version)
            )
            approved = approved_counts(plan_category(step))  # the demo approves the backlog
            summarize_run(step, archive_category(step, approved=approved), purge_category(step, approved=approved))
            certificate.issue(step)
            run_ids.append(run_id)
        with target.read() as conn:
            return format_summary(summary_table(conn, audit_table(target.archive_schema, policy.audit_table), run_ids))
    finally:
        target.dispose()


def test_a_second_demo_prints_the_same_table_and_the_daily_verification_passes_after_it(demo, airflow_db):
    module, home = demo
    first = _one_demo(home, 1)
    kept = home.folder.parent / "first-certificates"
    shutil.copytree(home.reports, kept)  # what the reseed used to leave behind
    second = _one_demo(home, 2)
    assert second == first
    from include.retention_airflow.evidence_tasks import verify_audit_chain
    from include.retention_airflow.targets import DEFAULT_SITE

    verified = verify_audit_chain(DEFAULT_SITE)  # what retention_audit_verify runs, on the demo's connection
    assert verified["intact"] and verified["certificates"] == len(load_policy().categories)
    assert module.chain_line(home, load_policy()).startswith("Audit log intact:")
    assert not list(home.reports.glob("*/*demo-1*")), "the first demo's certificates outlived its target"

    # The regression: the first demo's certificates, compared with the second demo's log.
    policy = load_policy()
    target = connect(home.url, policy.archive_schema)
    with target.read() as conn:
        stale = certificate.chain_status(conn, audit_table(target.archive_schema, policy.audit_table), kept)
    target.dispose()
    assert not stale.intact and stale.sentence().startswith("REWRITTEN")


def test_the_demo_removes_nothing_outside_its_own_folder(demo, tmp_path):
    module, home = demo
    beside = tmp_path / "reports" / "retention_x"
    beside.mkdir(parents=True)
    (beside / "run.certificate.json").write_text("{}")
    (home.folder / "reports" / "retention_x").mkdir(parents=True)
    home.reset(AS_OF)
    assert (beside / "run.certificate.json").exists()
    assert not (home.folder / "reports").exists() and home.target.exists()


def test_the_demo_writes_its_reports_in_its_own_folder_whatever_the_callers_setting(demo, monkeypatch, tmp_path):
    module, home = demo
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "production-reports"))
    monkeypatch.setattr(module, "HOME", home)
    module.configure_environment(home)
    from include.retention.files import reports_dir

    assert reports_dir() == home.reports


def test_after_a_demo_a_log_rewritten_consistently_is_not_intact_for_the_demo_nor_the_daily_verification(
    demo, airflow_db
):
    """The demo's line and retention_audit_verify's task give the same verdict: chain_status's."""
    from sqlalchemy import select, text

    from include.retention.records.audit import GENESIS, event_hash, verify_chain
    from include.retention_airflow.evidence_tasks import verify_audit_chain
    from include.retention_airflow.targets import DEFAULT_SITE

    module, home = demo
    _one_demo(home, 1)
    policy = load_policy()
    target = connect(home.url, policy.archive_schema)
    trail = audit_table(target.archive_schema, policy.audit_table)
    with target.engine.begin() as conn:  # an insider alters event 3 and re-hashes the whole chain
        for operation in ("update", "delete"):
            conn.execute(text(f'DROP TRIGGER "archive"."{trail.name}_no_{operation}"'))
        rows = [dict(r._mapping) for r in conn.execute(select(trail).order_by(trail.c.event_id))]
        conn.execute(trail.delete())
        previous = GENESIS
        for row in rows:
            row.update({"row_count": 4242} if row["event_id"] == 3 else {}, prev_hash=previous)
            row["event_hash"] = previous = event_hash(row)
            conn.execute(trail.insert().values(**row))
    with target.read() as conn:
        assert verify_chain(conn, trail).intact  # the chain alone is fooled
    target.dispose()
    assert module.chain_line(home, policy).startswith("Audit log REWRITTEN")
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="does not match the run certificates"):
        verify_audit_chain(DEFAULT_SITE)

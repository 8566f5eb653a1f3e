"""What `make demo` prints of each run as it goes: every task with its state and time, and the
rows archive and purge moved, per table (scripts/demo.py's print_tasks)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _demo_module():
    spec = importlib.util.spec_from_file_location("retention_demo", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_rows_a_run_moved_are_said_per_action_and_table_leaving_out_tables_where_nothing_moved():
    words = _demo_module().rows_words
    assert words({"archived": {"prospects": 120, "interactions": 300, "web_forms": 0}}) == (
        "archived: prospects 120, interactions 300"
    )
    assert words({"deleted": {"page_views": 5}, "anonymized": {}}) == "deleted: page_views 5; anonymized: no row"


def test_the_limits_an_approval_request_names_are_read_in_either_language():
    """The demo prints the limits a run passed from the approval request it answers; the request
    is in the policy's language, so they are read by its layout, not by its words."""
    from datetime import date

    from include.retention.database.reflect import Side
    from include.retention.schedule.plan import CategoryPlan, Excess, TablePlan
    from include.retention_airflow.approval import approval_body

    excess = Excess(table="prospects", side=Side.ACTIVE, rows=12, base=40, limit_rows=None, limit_fraction=0.1)
    table = TablePlan(
        table="prospects",
        active_rows=40,
        due_for_archive=12,
        due_for_end_of_life=0,
        missing_start=0,
        missing_start_means="defect",
        last_due_start=date(2023, 12, 2),
    )
    plan = CategoryPlan(
        category="prospection",
        as_of=date(2026, 12, 1),
        policy_version="v",
        has_archive=True,
        end_action="delete",
        tables=[table],
        over_limit=(excess,),
    )
    limits_passed = _demo_module().limits_passed
    french, english = (limits_passed(approval_body(plan, lang, {})) for lang in ("fr", "en"))
    assert len(french) == len(english) == 1
    assert "12" in french[0] and "prospects" in french[0] and "quitteraient" in french[0]
    assert "would leave" in english[0]

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

"""The Airflow environment of the project's own commands: ``make demo``, ``make airflow``, the tests.

Airflow reads its configuration once, when it is first imported: the settings are applied
before that - by ``scripts/demo.py`` and ``tests/conftest.py`` at their start, and by
``make airflow`` through this script, which runs the command it is given with them:

    python scripts/airflow_env.py airflow standalone

The command runs in a process group of its own, and Ctrl-C stops it whole, every process it
started included (``scripts/process_group.py``).

A deployment sets its own (the DAG and plugin folders of its image, its auth manager).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scripts import process_group

ROOT = Path(__file__).resolve().parents[1]
# The demo's Airflow home (SQLite metadata), shared by `make demo` and `make airflow`.
DEMO_AIRFLOW_HOME = ROOT / ".airflow"
# Users of Airflow's simple auth manager: an admin (who approves a run's removals), and the
# DPO as a read-only viewer (who reads the Retention view). Passwords are Airflow's to generate.
UI_USERS = "admin:admin,dpo:viewer"


def airflow_settings(home: Path) -> dict[str, str]:
    """Airflow in ``home`` with this project's DAGs and plugins, its UI users, no example DAGs."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": UI_USERS,
    }


def apply_demo_settings() -> None:
    """The demo's settings, under whatever the caller set already (``AIRFLOW_HOME=... make demo``)."""
    home = Path(os.environ.get("AIRFLOW_HOME") or DEMO_AIRFLOW_HOME)
    for name, value in airflow_settings(home).items():
        os.environ.setdefault(name, value)


def main(command: list[str]) -> None:
    """Run ``command`` (``airflow standalone``...) in the demo's Airflow environment; Ctrl-C
    stops it and every process it started (``process_group.run``)."""
    if not command:
        sys.exit(f"usage: {sys.argv[0]} COMMAND [ARG...]  (e.g. airflow standalone)")
    apply_demo_settings()
    sys.exit(process_group.run(command))


if __name__ == "__main__":
    main(sys.argv[1:])

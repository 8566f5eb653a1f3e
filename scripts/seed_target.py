"""Fill a target database with the demo CRM, once: docker-compose's ``target-seed`` service.

``make demo`` recreates its SQLite target on every run. A deployed target must not be seeded
twice: its audit log, its archive and its certificates describe the rows in it, and a new seed
would replace those rows under that evidence. So this seeds only a database where none of the
demo tables exists yet, and otherwise says so and leaves it alone (``docker compose up`` runs it
on every start).

The database is the one the Airflow components use, ``$AIRFLOW_CONN_RETENTION_TARGET`` (a URL),
or ``--url``; the demo tables go to the policy's ``source_schema`` on PostgreSQL (``crm``), to
the main database on SQLite. The seed is dated today in the policy's time zone, as the demo's.

    python scripts/seed_target.py
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, inspect  # noqa: E402

from include.demo.schema import build_metadata  # noqa: E402
from include.demo.seed import seed_demo  # noqa: E402
from include.retention.database.target import connect  # noqa: E402
from include.retention.policy.load import load_policy  # noqa: E402

URL_ENV_VAR = "AIRFLOW_CONN_RETENTION_TARGET"


def demo_tables_present(engine: Engine, schema: str | None) -> list[str]:
    """The demo tables already in the database (empty: never seeded)."""
    found = inspect(engine)
    return [table.name for table in build_metadata(schema).sorted_tables if found.has_table(table.name, schema)]


def seed_once(url: str) -> dict[str, int] | None:
    """Seed the demo CRM into ``url``'s database; None when a demo table is already there."""
    policy = load_policy()
    target = connect(url, policy.archive_schema)
    try:
        schema = policy.source_schema if target.engine.dialect.name == "postgresql" else None
        if demo_tables_present(target.engine, schema):
            return None
        return seed_demo(target.engine, schema, datetime.now(ZoneInfo(policy.timezone)).date())
    finally:
        target.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Seed the demo CRM into an empty target database, once.")
    parser.add_argument("--url", default=os.environ.get(URL_ENV_VAR), help=f"SQLAlchemy URL (default: ${URL_ENV_VAR})")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error(f"no database: give --url or set {URL_ENV_VAR}")
    seeded = seed_once(args.url)
    if seeded is None:
        print("Demo CRM already present: nothing seeded (its rows, archive and audit log are left as they are).")
    else:
        print(f"Demo CRM seeded: {sum(seeded.values())} rows in {len(seeded)} tables.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

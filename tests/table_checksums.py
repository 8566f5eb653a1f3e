"""A digest of every row of every table: to prove that a failed step changed nothing."""

from __future__ import annotations

import hashlib

from sqlalchemy import MetaData, Table, inspect, select

SYSTEM_SCHEMAS = {"information_schema", "pg_catalog", "pg_toast"}


# Written by every run, even one that changes no data: the audit log (a failed gate is
# logged) and the run leases (a run takes and gives back its category).
BOOKKEEPING = {"retention_audit", "retention_run_locks"}


def checksum(target) -> dict[str, str]:
    """``{schema.table: sha256 of its sorted rows}`` for active and archive tables (the
    bookkeeping tables excepted)."""
    digests = {}
    with target.read() as conn:
        inspector = inspect(conn)
        schemas = (
            [None, "archive"]
            if target.is_sqlite
            else [s for s in inspector.get_schema_names() if s not in SYSTEM_SCHEMAS]
        )
        for schema in schemas:
            for name in inspector.get_table_names(schema=schema):
                if name in BOOKKEEPING:
                    continue
                table = Table(name, MetaData(), schema=schema, autoload_with=conn)
                rows = sorted(repr(tuple(r)) for r in conn.execute(select(table)))
                digests[f"{schema}.{name}"] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests

"""What each database the engine runs on can do, in one place.

The engine asks "can this database do X" by reading a ``Capabilities`` (``Target.capabilities``,
or ``capabilities_of(conn.dialect.name)`` where only a connection is at hand), never by
comparing dialect names. Where a dialect name is still compared, it chooses how SQL is
SPELLED (a function's name, a trigger's syntax), not what the engine does: adding a database
(MariaDB next) means one more entry here, then the spellings it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Capabilities:
    """What one database can do, as far as the engine's choices depend on it."""

    dialect: str
    # Schemas inside one database. SQLite has none: active tables are in the main file, the
    # archive is a second file ATTACHed under the archive schema's name (target.py).
    separate_schemas: bool
    # Server-side advisory locks (pg_advisory_lock): one step at a time across deployments,
    # appends to the audit chain in turn, an erasure kept apart from running batches.
    # Without them, the database's single write lock serialises writers already.
    advisory_locks: bool
    # Several writers at once: batches side by side, and rows written by the application while
    # a batch runs (late children) to sweep. SQLite has one writer (BEGIN IMMEDIATE).
    concurrent_writers: bool
    # SELECT ... FOR UPDATE OF: a batch locks the rows it chose.
    row_locks: bool
    # DELETE ... RETURNING feeding an INSERT in one statement: a batch's copy and delete at once.
    returning: bool
    # Declarative partitions, detached and dropped whole when all their rows are due.
    partitions: bool
    # Timestamps with a time zone and zone arithmetic in SQL. SQLite stores text, dated by the
    # engine's functions in the policy's single wall-clock zone.
    time_zones: bool
    # Dates and instants stored as typed values. SQLite stores text, which may be unreadable
    # as a date: the pre-run gate checks that each date the clock reads can be read.
    typed_dates: bool
    # SECURITY DEFINER functions, by which the least-privilege roles script lets the pipeline
    # create an archive table or lift a hold without owning anything (roles.py).
    definer_functions: bool
    # Planner statistics refreshed on demand (ANALYZE) before walking a freshly grown archive.
    planner_statistics: bool
    # Temporary tables dropped at commit (ON COMMIT DROP); otherwise the engine drops them,
    # since pooled connections are reused.
    temporary_tables_drop_on_commit: bool


POSTGRESQL = Capabilities(
    dialect="postgresql",
    separate_schemas=True,
    advisory_locks=True,
    concurrent_writers=True,
    row_locks=True,
    returning=True,
    partitions=True,
    time_zones=True,
    typed_dates=True,
    definer_functions=True,
    planner_statistics=True,
    temporary_tables_drop_on_commit=True,
)

SQLITE = Capabilities(
    dialect="sqlite",
    separate_schemas=False,
    advisory_locks=False,
    concurrent_writers=False,
    row_locks=False,
    returning=False,
    partitions=False,
    time_zones=False,
    typed_dates=False,
    definer_functions=False,
    planner_statistics=False,
    temporary_tables_drop_on_commit=False,
)

_KNOWN = {c.dialect: c for c in (POSTGRESQL, SQLITE)}


def capabilities_of(dialect: str) -> Capabilities:
    """The capabilities of a SQLAlchemy dialect name. Another database is assumed to have
    schemas and typed, zoned timestamps, and none of the rest: the engine then takes its
    portable path everywhere."""
    return _KNOWN.get(dialect) or replace(
        SQLITE, dialect=dialect, separate_schemas=True, time_zones=True, typed_dates=True
    )

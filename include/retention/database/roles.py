"""Least-privilege PostgreSQL roles for a policy, as a SQL script an administrator runs.

* ``retention_pipeline`` - what the DAGs connect as: SELECT, INSERT, UPDATE and DELETE on
  the tables the policy names (SELECT only on those it merely reads) and on the archive
  tables, and may only INSERT into (and read) the audit log - never UPDATE, DELETE or
  TRUNCATE it, on top of the triggers that refuse it. It owns nothing and may create in no
  schema: an object it owned, where a privileged role looks, could be swapped for a view
  over a function of its own, run with the rights of whoever reads it next (a superuser
  counting the archive made the pipeline a superuser that way).
* ``dpo_reader`` - the DPO: reads the audit log and the archive, and nothing else.

The script creates the archive schema and the project's tables (audit log, legal holds,
suppression list, run leases, re-consent register) itself, owned by the administrator who
runs it, so that the pipeline is not their owner (an owner could grant itself back what was
revoked, drop or empty the table). Two SECURITY DEFINER functions, owned by the administrator
with a fixed ``search_path``, do for the pipeline the two things it may not do itself:

* ``retention_create_archive_table(name)`` creates one of the policy's archive tables - only
  those listed in it when the administrator ran the script - with the column types of its
  active table at the time of the call (the engine calls it when a run needs a missing one);
* ``retention_lift_hold(hold_id, lifted_by, reason)`` lifts a hold only when the transaction's
  audit log has its ``legal_hold`` "lifted" event (the pipeline may not UPDATE ``lifted_at``).

``include/sql/least_privilege_roles.sql`` is this module's output for the shipped policy; a
test keeps the two identical. Run it again after each policy change that adds an archive
table (or a column to one: that one is migrated by hand, see docs/explanation/policy-concepts.md).

    python -m include.retention.database.roles [policy.yaml] > roles.sql
"""

from __future__ import annotations

import sys

from sqlalchemy import MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from include.retention.database.archive_tables import (
    CREATE_ARCHIVE_FUNCTION,
    ArchiveLayout,
    archive_layout,
    archive_metadata_columns,
)
from include.retention.database.store import LIFT_FUNCTION, append_only_trigger_sql, hold_tables, project_tables
from include.retention.policy.load import load_policy
from include.retention.policy.model import RetentionPolicy

PIPELINE_ROLE = "retention_pipeline"
READER_ROLE = "dpo_reader"
# The re-consent register: an ask is recorded unanswered, with its id from the sequence (chosen
# by the pipeline, it could take the ids ahead); then only its delivery and its answer change.
_ASK_UPDATED = ("status", "failure", "sent_at", "answer", "answered_at", "answered_on")
_ASK_NOT_INSERTED = frozenset({"ask_id", "answer", "answered_at", "answered_on"})


def governed_tables(policy: RetentionPolicy) -> list[str]:
    """Every active table the policy moves, destroys or changes, schema-qualified and quoted."""
    return sorted(
        {
            _qualified(n.schema_name or policy.source_schema, n.table)
            for c in policy.categories.values()
            for root in c.tables
            for n in root.walk()
        }
    )


def read_only_tables(policy: RetentionPolicy) -> list[str]:
    """Tables the policy only reads, to date a row (``latest``/``earliest`` over a path) or to
    see that it is still open (``ongoing_if_open``): SELECT, nothing else."""
    found = set()
    for category in policy.categories.values():
        for root in category.tables:
            schema = root.schema_name or policy.source_schema
            paths = [agg.path for source in root.start_event.sources for agg in (source.latest, source.earliest) if agg]
            if root.start_event.ongoing_if_open:
                paths.append(root.start_event.ongoing_if_open.path)
            found |= {_qualified(step.schema_name or schema, step.table) for path in paths for step in path}
    return sorted(found - set(governed_tables(policy)))


def _qualified(schema: str, table: str) -> str:
    return f'"{schema}"."{table}"'


def archive_layouts(policy: RetentionPolicy) -> dict[str, tuple[str, ArchiveLayout]]:
    """Each archive table the policy may write, by name, with its active table (quoted).

    An archive table named like one of the project's tables is refused: the function would
    grant the pipeline UPDATE and DELETE on the existing table (the audit log, the holds)."""
    archive = policy.archive_schema
    reserved = {table.name for table in project_tables(archive, policy.audit_table).all()}
    found: dict[str, tuple[str, ArchiveLayout]] = {}
    for category in policy.categories.values():
        for root in category.tables:
            for node in root.walk():
                entry = (_qualified(node.schema_name or policy.source_schema, node.table), archive_layout(node))
                if entry[1].name in reserved:
                    raise ValueError(
                        f"archive table {entry[1].name!r} of {node.table} is one of the project's own "
                        "tables: give the policy's table another archive_name"
                    )
                if found.setdefault(entry[1].name, entry) != entry:
                    raise ValueError(
                        f"archive table {entry[1].name!r} is defined twice, differently: give one "
                        "of the policy's tables another archive_name"
                    )
    return dict(sorted(found.items()))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _names(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _array(values: list[str]) -> str:
    return f"ARRAY[{', '.join(_literal(v) for v in values)}]::text[]"


def create_archive_function_sql(policy: RetentionPolicy) -> list[str]:
    """The administrator's function that creates the policy's archive tables, and only them.

    Everything but the copied columns' types is fixed here, when the administrator runs the
    script: the list of tables, their columns, keys, indexes and grants. The types are read
    from the active table at the time of the call (the pipeline cannot alter that table).
    """
    archive, dialect = policy.archive_schema, postgresql.dialect()
    facts = ", ".join(
        str(CreateColumn(c).compile(dialect=dialect))
        for c in Table("facts", MetaData(), *archive_metadata_columns()).columns
    )
    rows = []
    for name, (source, layout) in archive_layouts(policy).items():
        table = _qualified(archive, name)
        create = f"CREATE TABLE IF NOT EXISTS {table} (%s, {facts}, PRIMARY KEY ({_names(layout.primary_key)}))"
        after = [
            f'CREATE INDEX IF NOT EXISTS "{index}" ON {table} ({_names(columns)})'
            for index, columns in layout.indexes()
        ]
        after += [
            f"REVOKE ALL ON {table} FROM PUBLIC",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {PIPELINE_ROLE}",
            f"GRANT SELECT ON {table} TO {READER_ROLE}",
        ]
        rows.append(
            f"    ({_literal(name)}, {_literal(source)}, {_array(layout.kept)},\n"
            f"     {_literal(create)},\n"
            f"     {_array(after)})"
        )
    function = f'"{archive}".{CREATE_ARCHIVE_FUNCTION}'
    return [
        f"CREATE OR REPLACE FUNCTION {function}(archive_table text) RETURNS void",
        "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$",
        "DECLARE",
        "  spec record;",
        "  copied text;",
        "  present integer;",
        "  statement text;",
        "BEGIN",
        "  SELECT * INTO spec FROM (VALUES",
        ",\n".join(rows),
        "  ) AS approved (name, source_table, kept, create_table, after) WHERE approved.name = archive_table;",
        "  IF NOT FOUND THEN",
        f"    RAISE EXCEPTION 'archive table %: not one the administrator approved for policy {policy.version} "
        "(run python -m include.retention.database.roles for the policy in force, as the administrator)',",
        "      quote_literal(left(archive_table, 128));",
        "  END IF;",
        "  SELECT string_agg(format('%I %s', k.name, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY k.position),",
        "         count(a.attnum)",
        "    INTO copied, present",
        "    FROM unnest(spec.kept) WITH ORDINALITY AS k (name, position)",
        "    LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(spec.source_table) AND a.attname = k.name",
        "                            AND a.attnum > 0 AND NOT a.attisdropped;",
        "  IF present < cardinality(spec.kept) THEN",
        "    RAISE EXCEPTION 'archive table %: its active table % lacks a column it keeps (one of %)',",
        "      spec.name, spec.source_table, spec.kept;",
        "  END IF;",
        "  EXECUTE format(spec.create_table, copied);",
        "  FOREACH statement IN ARRAY spec.after LOOP EXECUTE statement; END LOOP;",
        "END $fn$;",
        f"REVOKE ALL ON FUNCTION {function}(text) FROM PUBLIC;",
        f"GRANT EXECUTE ON FUNCTION {function}(text) TO {PIPELINE_ROLE};",
    ]


def lift_hold_function_sql(policy: RetentionPolicy) -> list[str]:
    """The administrator's function that lifts a hold, given the audit event that records it.

    It reads that one event only - never the whole log, where one unreadable ``details`` would
    stop every later lift - and wants it to be this hold's ``legal_hold`` "lifted" event, not a
    dry run's, written in the calling transaction (its row's ``xmin``), so an old event, another
    run's or another hold's lifts nothing."""
    archive = policy.archive_schema
    holds, trail = hold_tables(archive).holds, _qualified(archive, policy.audit_table)
    register = _qualified(archive, holds.name)
    function = f'"{archive}".{LIFT_FUNCTION}'
    return [
        f"DROP FUNCTION IF EXISTS {function}(integer, text, text);  -- the earlier one read every event",
        f"CREATE OR REPLACE FUNCTION {function}(p_hold integer, p_event integer, p_lifted_by text, p_reason text)",
        "RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$",
        "DECLARE",
        "  held text;",
        "  event record;",
        "  facts jsonb;",
        "BEGIN",
        f"  SELECT reference INTO held FROM {register} WHERE hold_id = p_hold AND lifted_at IS NULL FOR UPDATE;",
        "  IF NOT FOUND THEN",
        "    RAISE EXCEPTION 'legal hold number % is not in the register, or is already lifted', p_hold;",
        "  END IF;",
        "  IF coalesce(btrim(p_lifted_by), '') = '' OR coalesce(btrim(p_reason), '') = '' THEN",
        "    RAISE EXCEPTION 'lifting legal hold % needs who lifts it and why', held;",
        "  END IF;",
        "  SELECT e.action, e.dry_run, e.details, e.xmin::text::bigint = txid_current() % 4294967296 AS ours",
        f"    INTO event FROM {trail} e WHERE e.event_id = p_event;",
        "  BEGIN",
        "    facts := event.details::jsonb;",
        "  EXCEPTION WHEN data_exception THEN",
        "    facts := NULL;  -- not JSON: not a lift event",
        "  END;",
        "  IF event.action IS DISTINCT FROM 'legal_hold' OR event.dry_run IS DISTINCT FROM false",
        "     OR NOT coalesce(event.ours, false) OR jsonb_typeof(facts) IS DISTINCT FROM 'object'",
        "     OR facts ->> 'hold_reference' IS DISTINCT FROM held",
        "     OR facts ->> 'outcome' IS DISTINCT FROM 'lifted' THEN",
        "    RAISE EXCEPTION 'legal hold %: audit event % is not its legal_hold event with outcome lifted, written "
        "in this transaction and not by a dry run; write that event first, in the same transaction', held, p_event;",
        "  END IF;",
        f"  UPDATE {register} SET lifted_at = now(), lifted_by = p_lifted_by, lift_reason = p_reason",
        "   WHERE hold_id = p_hold;",
        "END $fn$;",
        f"REVOKE ALL ON FUNCTION {function}(integer, integer, text, text) FROM PUBLIC;",
        f"GRANT EXECUTE ON FUNCTION {function}(integer, integer, text, text) TO {PIPELINE_ROLE};",
    ]


def planted_objects_sql(policy: RetentionPolicy) -> list[str]:
    """Stop, before anything else runs, on whatever the pipeline owns in this database.

    The pipeline may own nothing; anything it owns (a function, operator, type, view, table,
    rule or trigger, in any schema) may have been planted to run with the administrator's
    rights: a ``public.format(text, regclass)`` is a better match than the built-in one for an
    unqualified call. ``pg_shdepend`` lists every object a role owns here, whatever its kind.
    Only tables of the archive schema made by an earlier version of this script (the pipeline
    created them) are allowed: they are taken back below, once their rules and triggers are
    seen to be none of the pipeline's."""
    archive = _literal(policy.archive_schema)
    pipeline = f"pg_catalog.to_regrole('{PIPELINE_ROLE}')"
    return [
        "DO $$ DECLARE planted text; BEGIN",
        "  SELECT pg_catalog.string_agg(what, ', ' ORDER BY what) INTO planted FROM (",
        "    SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS what",
        "      FROM pg_catalog.pg_shdepend d",
        "     WHERE d.deptype = 'o' AND d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass",
        f"       AND d.refobjid = {pipeline}",
        "       AND d.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())",
        "       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c",
        "                        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
        "                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = d.objid",
        f"                          AND ((n.nspname = {archive} AND c.relkind IN ('r', 'p', 'S'))",
        r"                               OR n.nspname LIKE 'pg\_temp\_%' OR n.nspname LIKE 'pg\_toast\_temp\_%'))",
        "    UNION ALL SELECT pg_catalog.format('rule %I on %s', r.rulename, r.ev_class::pg_catalog.regclass)",
        "      FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class",
        f"     WHERE c.relowner = {pipeline} AND r.rulename <> '_RETURN'",
        "    UNION ALL SELECT pg_catalog.format('trigger %I on %s', g.tgname, g.tgrelid::pg_catalog.regclass)",
        "      FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid",
        f"     WHERE c.relowner = {pipeline} AND NOT g.tgisinternal",
        "  ) AS found;",
        "  IF planted IS NOT NULL THEN",
        f"    RAISE EXCEPTION 'owned by {PIPELINE_ROLE}, which may own nothing: %. Nothing was changed. Look at each "
        "(it may have been planted to run with the rights of whoever uses it), drop it (DROP OWNED BY "
        f"{PIPELINE_ROLE} drops them all), then run this script again', planted;",
        "  END IF;",
        "END $$;",
    ]


def existing_archive_sql(policy: RetentionPolicy) -> list[str]:
    """Bring an archive made under the earlier scripts (the pipeline created and owned the
    archive tables) under the administrator; ``planted_objects_sql`` has refused the rest."""
    archive = policy.archive_schema
    names = _array(list(archive_layouts(policy)))
    return [
        "DO $$ DECLARE t regclass; archive_table text; BEGIN",
        f"  FOR t IN SELECT c.oid::regclass FROM pg_class c WHERE c.relowner = '{PIPELINE_ROLE}'::regrole",
        f"           AND c.relnamespace = '\"{archive}\"'::regnamespace AND c.relkind IN ('r', 'p') LOOP",
        "    EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I', t, current_user);",
        "  END LOOP;",
        f"  FOREACH archive_table IN ARRAY {names} LOOP",
        f"    t := to_regclass(pg_catalog.format('%I.%I', {_literal(archive)}, archive_table));",
        "    CONTINUE WHEN t IS NULL;",
        f"    EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC, {PIPELINE_ROLE}', t);",
        f"    EXECUTE pg_catalog.format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO {PIPELINE_ROLE}', t);",
        f"    EXECUTE pg_catalog.format('GRANT SELECT ON %s TO {READER_ROLE}', t);",
        "  END LOOP;",
        "END $$;",
    ]


def no_create_anywhere_sql() -> list[str]:
    """Take CREATE on ``public`` back from PUBLIC, then fail unless the pipeline may create in
    no schema (and no schema in the database)."""
    return [
        "-- Before PostgreSQL 15 every role may create in public (and pg_upgrade keeps that grant):",
        "-- the pipeline could plant there a function that a privileged role's unqualified call picks.",
        "-- PostgreSQL's own advice since CVE-2018-1058 is to revoke it. An application that creates",
        "-- objects in public as another role needs its own grant (GRANT CREATE ON SCHEMA public TO ...).",
        "DO $$ BEGIN",
        "  IF pg_catalog.to_regnamespace('public') IS NOT NULL THEN",
        "    REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
        "  END IF;",
        "END $$;",
        "DO $$ DECLARE open_to text; BEGIN",
        "  SELECT pg_catalog.string_agg(pg_catalog.quote_ident(nspname), ', ' ORDER BY nspname) INTO open_to",
        "    FROM pg_catalog.pg_namespace",
        f"   WHERE pg_catalog.has_schema_privilege('{PIPELINE_ROLE}', oid, 'CREATE')",
        r"     AND nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%';",
        "  IF open_to IS NOT NULL THEN",
        f"    RAISE EXCEPTION '{PIPELINE_ROLE} may create objects in schema %: nothing was changed. Revoke CREATE "
        f"there from PUBLIC or from the role that passes it to {PIPELINE_ROLE}, then run this script again', open_to;",
        "  END IF;",
        f"  IF pg_catalog.has_database_privilege('{PIPELINE_ROLE}', pg_catalog.current_database(), 'CREATE') THEN",
        f"    RAISE EXCEPTION '{PIPELINE_ROLE} may create schemas in this database: nothing was changed. Revoke "
        "CREATE ON DATABASE, then run this script again';",
        "  END IF;",
        "END $$;",
    ]


def unlogged_parameters_sql() -> list[str]:
    """The server's log never holds what the roles bind: with a slow-statement threshold or
    ``log_statement``, PostgreSQL logs each statement's parameters (the e-mail being erased,
    the subject key) unless ``log_parameter_max_length`` is 0 for the role. Only a superuser
    may set it; an administrator who is not one gets a warning saying what to ask for."""
    roles = (PIPELINE_ROLE, READER_ROLE)
    return [
        "-- Bound values (an e-mail being erased, the subject key) stay out of the server's log.",
        "DO $$ BEGIN",
        "  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER) THEN",
        *(f"    ALTER ROLE {role} SET log_parameter_max_length = 0;" for role in roles),
        "  ELSE",
        "    RAISE WARNING 'not a superuser: ask one to run ALTER ROLE ... SET log_parameter_max_length = 0 "
        f"for {' and '.join(roles)}, or statements logged as slow will show their values';",
        "  END IF;",
        *(f"  ALTER ROLE {role} SET log_parameter_max_length_on_error = 0;" for role in roles),
        "END $$;",
    ]


def least_privilege_sql(policy: RetentionPolicy) -> str:
    """The whole script, idempotent where PostgreSQL allows it."""
    archive = policy.archive_schema
    governed, read_only = governed_tables(policy), read_only_tables(policy)
    sources = sorted(
        {
            t.schema_name or policy.source_schema
            for c in policy.categories.values()
            for root in c.tables
            for t in root.walk()
        }
    )
    own = project_tables(archive, policy.audit_table)
    trail, holds = own.audit, own.holds
    # hold_id comes from its sequence: chosen by the pipeline, it could take the ids ahead.
    lift_columns = {"hold_id", "lifted_at", "lifted_by", "lift_reason", "expiry_recorded_at"}
    added = ", ".join(c.name for c in holds.holds.columns if c.name not in lift_columns)
    asked = ", ".join(c.name for c in own.reconsent.columns if c.name not in _ASK_NOT_INSERTED)
    project = [  # the project's own tables, with what the pipeline may do to each
        (trail, "SELECT, INSERT"),  # append-only: the triggers refuse the rest too
        # Added, never deleted; lifted only through retention_lift_hold (with its audit event);
        # an expiry is recorded once (the date, not this column, ends the hold).
        (holds.holds, f"SELECT, INSERT ({added}), UPDATE (expiry_recorded_at)"),
        (holds.items, "SELECT, INSERT"),
        (own.suppression, "SELECT, INSERT"),  # an opposition is for good
        (own.locks, "SELECT, INSERT, UPDATE, DELETE"),
        # Never deleted: an ask proves the person was asked, and the archive step waits for it.
        # Whose ask it is, its row, period end, token and expiry never change.
        (own.reconsent, f"SELECT, INSERT ({asked}), UPDATE ({', '.join(_ASK_UPDATED)})"),
    ]
    dialect = postgresql.dialect()

    def create(table: Table) -> list[str]:
        statements = [str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip()]
        statements += [
            str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip()
            for index in sorted(table.indexes, key=lambda i: str(i.name))
        ]
        return [f"{statement};" for statement in statements]

    lines = [
        f"-- Least-privilege roles for retention policy {policy.version}. Generated by",
        "-- `python -m include.retention.database.roles`; run it as an administrator of the target database,",
        "-- after the application's tables exist. Give the roles a way to log in afterwards, e.g.:",
        f"--   ALTER ROLE {PIPELINE_ROLE} LOGIN PASSWORD '...';  ALTER ROLE {READER_ROLE} LOGIN PASSWORD '...';",
        "-- One transaction: psql -f sends statement after statement, and any error rolls back all.",
        "-- The search_path holds pg_catalog only, so no call here resolves to another schema's",
        "-- function or operator (the pipeline may have planted one before this script took CREATE",
        "-- back), and the first block stops on anything the pipeline owns, before anything runs.",
        "BEGIN;",
        "SET LOCAL search_path = pg_catalog, pg_temp;",
        "",
        *planted_objects_sql(policy),
        "",
        *(
            f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
            for role in (PIPELINE_ROLE, READER_ROLE)
        ),
        "",
        "-- The pipeline reads and changes the tables the policy governs - those only - and reads the",
        "-- tables it dates rows by. It creates temporary tables (a batch's keys).",
        *(f'GRANT USAGE ON SCHEMA "{s}" TO {PIPELINE_ROLE};' for s in sources),
        *(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {PIPELINE_ROLE};" for t in governed),
        *(f"GRANT SELECT ON {t} TO {PIPELINE_ROLE};" for t in read_only),
        "-- Their id sequences (the rights-request register inserts rows).",
        "DO $$ DECLARE s regclass; BEGIN",
        "  FOR s IN SELECT seq.oid::regclass FROM pg_class seq JOIN pg_depend d ON d.objid = seq.oid",
        "           AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')",
        f"           WHERE seq.relkind = 'S' AND d.refobjid = ANY (ARRAY[{', '.join(repr(t) for t in governed)}]"
        "::regclass[])",
        f"  LOOP EXECUTE pg_catalog.format('GRANT USAGE, SELECT ON SEQUENCE %s TO {PIPELINE_ROLE}', s); END LOOP;",
        "END $$;",
        f"DO $$ BEGIN EXECUTE pg_catalog.format('GRANT TEMPORARY ON DATABASE %I TO {PIPELINE_ROLE}', "
        "pg_catalog.current_database()); "
        "END $$;",
        "",
        "-- Keyed hashes in SQL: the post-run check and legal holds on a person compare hashes.",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public;  -- where the engine's calls find it",
        "",
        "-- The archive schema, the project's tables (audit log, legal holds, suppression list, run",
        "-- leases, re-consent register) and the archive tables belong to the administrator, not to",
        "-- the pipeline: an owner could grant itself back what is revoked here, drop or empty the",
        "-- table, or swap it for a view over a function of its own that runs with the rights of",
        "-- whoever reads it next.",
        "-- The pipeline may create in no schema.",
        f'CREATE SCHEMA IF NOT EXISTS "{archive}";',
        *(statement for table, _ in project for statement in create(table)),
        *(f"{statement};" for statement in append_only_trigger_sql("postgresql", trail)),
        f'REVOKE ALL ON SCHEMA "{archive}" FROM PUBLIC, {PIPELINE_ROLE};',
        f'GRANT USAGE ON SCHEMA "{archive}" TO {PIPELINE_ROLE};',
        *(f'REVOKE ALL ON "{archive}"."{table.name}" FROM PUBLIC, {PIPELINE_ROLE};' for table, _ in project),
        *(f'GRANT {rights} ON "{archive}"."{table.name}" TO {PIPELINE_ROLE};' for table, rights in project),
        f'GRANT USAGE, SELECT ON SEQUENCE "{archive}"."{holds.holds.name}_hold_id_seq" TO {PIPELINE_ROLE};',
        f'GRANT USAGE, SELECT ON SEQUENCE "{archive}"."{own.reconsent.name}_ask_id_seq" TO {PIPELINE_ROLE};',
        "",
        "-- Archive tables made by an earlier version of this script belonged to the pipeline.",
        *existing_archive_sql(policy),
        "",
        "-- The archive tables: created on demand by the engine through this function, which creates",
        "-- only the tables listed in it, owned by the administrator. Run this script again when the",
        "-- policy gains an archive table.",
        *create_archive_function_sql(policy),
        "",
        "-- Lifting a hold: only with its audit event (the pipeline may not UPDATE lifted_at).",
        *lift_hold_function_sql(policy),
        "",
        "-- The DPO reads the audit log and the archive (the function grants it each new archive table).",
        f'GRANT USAGE ON SCHEMA "{archive}" TO {READER_ROLE};',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA "{archive}" TO {READER_ROLE};',
        "",
        *no_create_anywhere_sql(),
        "",
        *unlogged_parameters_sql(),
        "COMMIT;",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(least_privilege_sql(load_policy(sys.argv[1] if len(sys.argv) > 1 else None)), end="")

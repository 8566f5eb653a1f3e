"""Least-privilege roles on a real PostgreSQL: the pipeline can run the schedule but not
touch the audit log; the DPO can read the audit log and the archive, and nothing else.

The pipeline's credentials are the ones most exposed (every worker holds them), so each
test here acts as a hostile holder of them: it owns nothing a privileged role reads, creates
nothing where others look, cannot drop or empty an archive table, and lifts a hold only
with its audit event."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from crm_helpers import AS_OF, KEY
from engine_helpers import run_category
from reconsent_crash_run import notice_tokens
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

from include.demo.seed import seed_demo
from include.retention.database.identity import Subject
from include.retention.database.roles import PIPELINE_ROLE, READER_ROLE, least_privilege_sql
from include.retention.database.store import audit_table, reconsent_table, suppression_table
from include.retention.database.target import connect
from include.retention.dates import instants
from include.retention.errors import PolicyError
from include.retention.policy.load import load_policy
from include.retention.reconsent.answers import answer_token
from include.retention.reconsent.campaign import run_campaign
from include.retention.reconsent.mailer import SmtpMailer
from include.retention.records import audit
from include.retention.records.audit import RunContext, events
from include.retention.records.holds import NewHold, add_hold, lift_hold
from include.retention.records.locks import category_step, release_lease
from include.retention.reports import certificate, dpo_report
from include.retention.rights.requests import RequestRecord, handle
from include.retention.schedule.context import StepContext
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.quality import pre_archive_gate
from scripts.throwaway_postgres import find_bindir, fresh_postgres_database

SCRIPT = Path(__file__).resolve().parents[2] / "include" / "sql" / "least_privilege_roles.sql"
# One re-consent ask, as the campaign records it (ask_id from the sequence, no answer).
_ASK_COLUMNS = "category, table_name, row_key, period_end, token_id, expires_on, status, recorded_at"
_ASK_VALUES = "'prospection', 'prospects', '1', current_date, md5('forged'), current_date + 30, 'sent', now()"


@pytest.fixture
def secured(postgres_server):
    """A seeded demo database with the roles script applied by the administrator."""
    url = fresh_postgres_database(postgres_server)
    admin = connect(url)
    seed_demo(admin.engine, "crm", date(2026, 11, 26))
    with admin.engine.begin() as conn:  # a table of the same schema that the policy does not name
        conn.execute(text("CREATE TABLE crm.payroll (employee_id int PRIMARY KEY, salary numeric)"))
    raw = admin.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(SCRIPT.read_text())  # as a DBA would run it: no parameters, plain SQL
        cursor.execute(f"ALTER ROLE {PIPELINE_ROLE} LOGIN; ALTER ROLE {READER_ROLE} LOGIN;")
        raw.commit()
    finally:
        raw.close()
    as_role = {
        role: connect(make_url(url).set(username=role).render_as_string(hide_password=False))
        for role in (PIPELINE_ROLE, READER_ROLE)
    }
    yield {**as_role, "administrator": admin}
    for target in (*as_role.values(), admin):
        target.dispose()


def test_the_committed_script_is_what_the_code_generates():
    assert SCRIPT.read_text() == least_privilege_sql(load_policy())


def test_the_pipeline_role_runs_the_whole_pipeline(secured, tmp_path, monkeypatch):
    """Every category's run, its checks and lease, a legal hold added and lifted, an erasure
    request, the DPO report and the chain check - all as the pipeline's role."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    pipeline, policy = secured[PIPELINE_ROLE], load_policy()
    ctx = RunContext("manual__roles", "legal_hold", AS_OF, policy.version)
    add_hold(
        pipeline, policy, NewHold("RG-ROLES-1", "category", "Inquiry", "dpo", category="suppliers"), KEY, ctx, AS_OF
    )
    for category in policy.categories:
        run_id = f"scheduled__{category}"
        with category_step(pipeline, category, run_id, f"retention_{category}"):
            step = StepContext.build(
                pipeline, policy, category, RunContext(run_id, f"retention_{category}", AS_OF, policy.version), KEY
            )
            pre_archive_gate(step)
            result = run_category(pipeline, policy, category=category, run_id=run_id, subject_key=KEY)
            post_run_gate(step)
            certificate.issue(step)  # as the summary task does: the chain status wants each run's
        release_lease(pipeline, category, run_id)
        if category == "suppliers":
            assert result.archived == {}  # held
        elif category != "navigation_tracking":
            assert sum(result.archived.values()) > 0, category
    lift_hold(pipeline, policy, "RG-ROLES-1", "dpo", "closed", ctx, AS_OF)
    request = RequestRecord("DDP-ROLES-1", "erasure", AS_OF, True, requester_email="someone@example.org")
    with pipeline.read() as conn:
        email = conn.execute(text("SELECT email FROM crm.customers LIMIT 1")).scalar_one()
    handled = handle(
        pipeline,
        policy,
        KEY,
        request,
        Subject.of({"email": email}),
        RunContext("manual__erasure", "subject_request", AS_OF, policy.version),
        datetime(2026, 11, 26, tzinfo=UTC),
    )
    assert handled.status == "completed"
    report = dpo_report.build(pipeline, policy, date(2026, 11, 1), AS_OF, AS_OF, KEY)
    assert report.chain.intact and report.holds[0].status == "lifted"


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE archive.pipeline_notes (id int)",
        "CREATE VIEW archive.pipeline_view AS SELECT 1 AS one",
        "CREATE FUNCTION archive.pipeline_function() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE FUNCTION public.pipeline_function() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER TABLE archive.prospects RENAME TO prospects_kept",
        "ALTER TABLE archive.prospects ADD COLUMN note text",
        "DROP TABLE archive.prospects",
        "TRUNCATE archive.prospects",
        "DROP TABLE archive.retention_legal_holds",
        "TRUNCATE archive.retention_legal_holds CASCADE",
        "TRUNCATE archive.retention_suppression",
        "UPDATE archive.retention_legal_holds SET lifted_at = now(), lifted_by = 'x', lift_reason = 'x'",
        "UPDATE archive.retention_legal_holds SET expires_on = current_date",
        "INSERT INTO archive.retention_legal_holds (reference, scope, reason, created_by, created_at, lifted_at) "
        "VALUES ('RG-LIFTED', 'category', 'x', 'x', now(), now())",
        "UPDATE archive.retention_audit SET row_count = 0",
        "DELETE FROM archive.retention_audit",
        "TRUNCATE archive.retention_audit",
        "ALTER TABLE archive.retention_audit DISABLE TRIGGER ALL",
        "DROP TABLE archive.retention_audit",
        "DELETE FROM archive.retention_legal_holds",
        "DELETE FROM archive.retention_suppression",
        "SELECT count(*) FROM crm.payroll",
        "CREATE TABLE crm.pipeline_notes (id int)",
        "CREATE TABLE public.pipeline_notes (id int)",
        "CREATE SCHEMA pipeline_own",
        "ALTER TABLE crm.prospects ADD COLUMN score int",
        "DROP TABLE crm.prospects",
        # The re-consent register: an ask is never removed, and whose ask it is, its row, token
        # and expiry never change; nor is an ask recorded already answered (a forged yes).
        "DELETE FROM archive.retention_reconsent",
        "TRUNCATE archive.retention_reconsent",
        "DROP TABLE archive.retention_reconsent",
        "UPDATE archive.retention_reconsent SET expires_on = expires_on + 365",
        "UPDATE archive.retention_reconsent SET subject_hash = NULL",
        "UPDATE archive.retention_reconsent SET row_key = '1', period_end = current_date",
        "UPDATE archive.retention_reconsent SET token_id = md5('x')",
        f"INSERT INTO archive.retention_reconsent ({_ASK_COLUMNS}, answer, answered_on) "
        f"VALUES ({_ASK_VALUES}, 'yes', current_date)",
        f"INSERT INTO archive.retention_reconsent (ask_id, {_ASK_COLUMNS}) VALUES (999999, {_ASK_VALUES})",
    ],
)
def test_the_pipeline_role_can_do_nothing_else(secured, statement):
    """In particular, it can neither change nor remove audit events, nor create anything in any
    schema, nor drop, empty or rename an archive table, nor lift a hold behind the log's back."""
    pipeline = secured[PIPELINE_ROLE]
    run_category(pipeline, load_policy(), category="prospection")
    with (
        pytest.raises(ProgrammingError, match="permission denied|must be owner|privileges"),
        pipeline.engine.begin() as conn,
    ):
        conn.execute(text(statement))


def test_the_dpo_reads_the_audit_log_and_the_archive(secured):
    run_category(secured[PIPELINE_ROLE], load_policy(), category="prospection")
    with secured[READER_ROLE].read() as conn:
        assert conn.execute(text("SELECT count(*) FROM archive.retention_audit")).scalar_one() > 0
        assert conn.execute(text("SELECT count(*) FROM archive.prospects")).scalar_one() > 0


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM crm.prospects",
        "INSERT INTO archive.retention_audit (event_id) VALUES (999999)",
        "DELETE FROM archive.prospects",
        "DELETE FROM archive.retention_reconsent",
        "UPDATE archive.retention_reconsent SET answer = 'yes'",
        f"INSERT INTO archive.retention_reconsent ({_ASK_COLUMNS}) VALUES ({_ASK_VALUES})",
    ],
)
def test_the_dpo_can_do_nothing_else(secured, statement):
    run_category(secured[PIPELINE_ROLE], load_policy(), category="prospection")
    with pytest.raises(ProgrammingError, match="permission denied"), secured[READER_ROLE].engine.begin() as conn:
        conn.execute(text(statement))


def _as_pipeline(secured, statement: str) -> str | None:
    """Run one statement as the pipeline in its own transaction: None if it passed, else why not."""
    try:
        with secured[PIPELINE_ROLE].engine.begin() as conn:
            conn.execute(text(statement))
    except DBAPIError as refused:
        return str(refused.orig).splitlines()[0]
    return None


def _nightly(secured, *categories: str) -> None:
    policy = load_policy()
    for category in categories:
        run_category(
            secured[PIPELINE_ROLE], policy, category=category, run_id=f"scheduled__{category}", subject_key=KEY
        )


def test_the_pipeline_role_cannot_make_itself_superuser_through_an_archive_table(secured):
    """The observed attack: rename archive.suppliers, put a view over a function of the
    pipeline's in its place, and wait for a superuser to count the archive."""
    _nightly(secured, "suppliers")
    attack = [
        "ALTER TABLE archive.suppliers RENAME TO suppliers_kept",
        "CREATE FUNCTION archive.promote() RETURNS bigint LANGUAGE plpgsql AS "
        f"$$ BEGIN ALTER ROLE {PIPELINE_ROLE} SUPERUSER; RETURN 0; END $$",
        "CREATE FUNCTION public.promote() RETURNS bigint LANGUAGE plpgsql AS "
        f"$$ BEGIN ALTER ROLE {PIPELINE_ROLE} SUPERUSER; RETURN 0; END $$",
        "CREATE VIEW archive.suppliers AS SELECT archive.promote() AS supplier_id",
        "CREATE VIEW archive.suppliers AS SELECT public.promote() AS supplier_id",
        "CREATE OR REPLACE FUNCTION archive.retention_create_archive_table(archive_table text) RETURNS void "
        f"LANGUAGE plpgsql AS $$ BEGIN ALTER ROLE {PIPELINE_ROLE} SUPERUSER; END $$",
    ]
    outcomes = {statement: _as_pipeline(secured, statement) for statement in attack}
    admin = secured["administrator"]
    try:
        with admin.engine.begin() as conn:
            conn.execute(text("SELECT count(*) FROM archive.suppliers")).scalar_one()
            promoted = conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": PIPELINE_ROLE}
            ).scalar_one()
    finally:
        with admin.engine.begin() as conn:  # the role is cluster-wide: never leave it promoted
            conn.execute(text(f"ALTER ROLE {PIPELINE_ROLE} NOSUPERUSER"))
    assert not promoted
    assert [s for s, refusal in outcomes.items() if refusal is None] == []


def test_the_pipeline_role_owns_nothing_and_may_create_in_no_schema(secured):
    """The class of the attack above: no relation, view, function or type in any schema
    belongs to the pipeline, and it may create in none (its own temporary schema aside,
    which no other session reads)."""
    _nightly(secured, *load_policy().categories)
    with secured["administrator"].read() as conn:
        owned = (
            conn.execute(
                text(
                    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relowner = to_regrole(:r) AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%' "
                    "UNION ALL SELECT p.proname FROM pg_proc p WHERE p.proowner = to_regrole(:r) "
                    "UNION ALL SELECT n.nspname FROM pg_namespace n WHERE n.nspowner = to_regrole(:r)"
                ),
                {"r": PIPELINE_ROLE},
            )
            .scalars()
            .all()
        )
        creatable = (
            conn.execute(
                text(
                    "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(:r, oid, 'CREATE') "
                    "AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast%'"
                ),
                {"r": PIPELINE_ROLE},
            )
            .scalars()
            .all()
        )
    assert owned == [] and creatable == []


def test_archive_tables_are_created_by_the_administrators_function_only_from_its_list(secured):
    """The pipeline asks a SECURITY DEFINER function (fixed search_path) for a missing
    archive table; it creates only the policy's archive tables, owned by the administrator."""
    _nightly(secured, "prospection")
    with secured["administrator"].read() as conn:
        owner, readers = conn.execute(
            text(
                "SELECT tableowner, has_table_privilege(:reader, 'archive.prospects', 'SELECT') "
                "FROM pg_tables WHERE schemaname = 'archive' AND tablename = 'prospects'"
            ),
            {"reader": READER_ROLE},
        ).one()
        definer, settings = conn.execute(
            text(
                "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = to_regproc('archive.retention_create_archive_table')"
            )
        ).one()
    assert owner != PIPELINE_ROLE and readers
    assert definer and settings == ["search_path=pg_catalog, pg_temp"]
    for name in ("payroll", "retention_audit", "prospects; DROP TABLE archive.prospects", "../crm.payroll"):
        refusal = _as_pipeline(secured, f"SELECT archive.retention_create_archive_table('{name.replace(chr(39), '')}')")
        assert refusal is not None and "not one the administrator approved" in refusal, (name, refusal)


def test_a_missing_archive_table_the_pipeline_may_not_create_fails_naming_it_and_the_command(secured):
    with secured["administrator"].engine.begin() as conn:
        conn.execute(
            text(f"REVOKE EXECUTE ON FUNCTION archive.retention_create_archive_table(text) FROM {PIPELINE_ROLE}")
        )
    with pytest.raises(PolicyError) as refused:
        run_category(secured[PIPELINE_ROLE], load_policy(), category="prospection")
    message = str(refused.value)
    assert "archive.prospects" in message and "python -m include.retention.database.roles" in message
    with secured["administrator"].read() as conn:
        assert conn.execute(text("SELECT to_regclass('archive.prospects')")).scalar_one() is None


def test_a_hold_is_lifted_only_through_the_function_that_wants_its_audit_event(secured):
    """Without its ``legal_hold`` 'lifted' event (here: the last event, its 'added' one), the lift
    is refused and the hold stays."""
    pipeline, policy = secured[PIPELINE_ROLE], load_policy()
    ctx = RunContext("manual__roles", "legal_hold", AS_OF, policy.version)
    add_hold(
        pipeline, policy, NewHold("RG-ROLES-2", "category", "Inquiry", "dpo", category="suppliers"), KEY, ctx, AS_OF
    )
    with pipeline.read() as conn:
        hold_id = conn.execute(text("SELECT hold_id FROM archive.retention_legal_holds")).scalar_one()
    refusal = _as_pipeline(
        secured,
        f"SELECT archive.retention_lift_hold({hold_id}, "
        "(SELECT max(event_id) FROM archive.retention_audit), 'someone', 'no trace')",
    )
    assert refusal is not None and "legal_hold" in refusal
    with pipeline.read() as conn:
        assert conn.execute(text("SELECT lifted_at FROM archive.retention_legal_holds")).scalar_one() is None
    lift_hold(pipeline, policy, "RG-ROLES-2", "dpo", "closed", ctx, AS_OF)
    with pipeline.read() as conn:
        assert conn.execute(text("SELECT lifted_by FROM archive.retention_legal_holds")).scalar_one() == "dpo"
        lifted = [
            e["details"]["outcome"]
            for e in events(conn, audit_table("archive", policy.audit_table), action="legal_hold")
        ]
    assert lifted == ["added", "lifted"]


def _as_administrator(secured, sql: str) -> None:
    raw = secured["administrator"].engine.raw_connection()
    try:
        raw.cursor().execute(sql)
        raw.commit()
    finally:
        raw.close()


def test_running_the_script_again_takes_back_archive_tables_the_pipeline_made_and_refuses_what_it_planted(secured):
    """An archive made under the earlier script: the pipeline created (and owned) the archive
    tables, and may have planted a view over its own function. Running the script again stops
    on the planted objects, naming them; once they are gone it gives every archive table to the
    administrator, and the pipeline can no longer drop one."""
    _as_administrator(
        secured,
        f"GRANT CREATE ON SCHEMA archive TO {PIPELINE_ROLE}; "
        f"REVOKE EXECUTE ON FUNCTION archive.retention_create_archive_table(text) "
        f"FROM {PIPELINE_ROLE}",
    )
    _nightly(secured, "prospection")  # as the earlier script let it: the pipeline creates archive.prospects
    for statement in (
        "CREATE FUNCTION archive.promote() RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'",
        "CREATE VIEW archive.prospects_summary AS SELECT archive.promote() AS n",
    ):
        assert _as_pipeline(secured, statement) is None
    with pytest.raises(
        psycopg.Error,
        match="owned by retention_pipeline, which may own nothing: .*"
        "function archive.promote.*view archive.prospects_summary",
    ):
        _as_administrator(secured, SCRIPT.read_text())
    _as_administrator(secured, "DROP VIEW archive.prospects_summary; DROP FUNCTION archive.promote()")
    _as_administrator(secured, SCRIPT.read_text())
    with secured["administrator"].read() as conn:
        owner = conn.execute(
            text("SELECT tableowner FROM pg_tables WHERE schemaname = 'archive' AND tablename = 'prospects'")
        ).scalar_one()
    assert owner != PIPELINE_ROLE
    assert _as_pipeline(secured, "DROP TABLE archive.prospects") is not None
    assert _as_pipeline(secured, "CREATE TABLE archive.pipeline_notes (id int)") is not None
    _nightly(secured, "prospection", "web_forms")  # and the next nights still run


@pytest.mark.parametrize("name", ["retention_audit", "retention_legal_holds", "retention_suppression"])
def test_an_archive_table_named_like_a_project_table_is_refused_by_the_script(tmp_path, name):
    """The function would grant the pipeline UPDATE and DELETE on the existing table."""
    shipped = Path(load_policy().source).read_text()
    assert "      - table: suppliers\n" in shipped
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        shipped.replace("      - table: suppliers\n", f"      - table: suppliers\n        archive_table: {name}\n")
    )
    with pytest.raises(ValueError, match=f"archive table '{name}' of suppliers is one of the project's own tables"):
        least_privilege_sql(load_policy(str(policy)))


# --- The script as an administrator runs it: psql -f, on a database older than PostgreSQL 15 --

_PROMOTE = (
    f"BEGIN IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN "
    f"EXECUTE 'ALTER ROLE {PIPELINE_ROLE} SUPERUSER'; END IF; RETURN pg_catalog.format(fmt, x); END"
)
# Better matches than pg_catalog.format(text, VARIADIC "any") for the script's own format() calls.
PLANTED_FORMATS = [
    f"CREATE FUNCTION public.format(fmt text, x {kind}) RETURNS text LANGUAGE plpgsql AS $${_PROMOTE}$$"
    for kind in ("regclass", "name", "regrole", "text")
]


def _psql_file(url: str) -> subprocess.CompletedProcess:
    """``psql -f`` without ON_ERROR_STOP, psql's default: each statement is sent in turn and a
    failed one does not stop the rest."""
    u = make_url(url)
    return subprocess.run(
        [
            str(find_bindir() / "psql"),
            "-X",
            "-h",
            u.host,
            "-p",
            str(u.port),
            "-U",
            u.username,
            "-d",
            u.database,
            "-f",
            str(SCRIPT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def legacy(postgres_server):
    """A database made before PostgreSQL 15 (or pg_upgrade'd since): public grants CREATE to
    PUBLIC. The administrator applies the script with psql -f."""
    url = fresh_postgres_database(postgres_server)
    admin = connect(url)
    seed_demo(admin.engine, "crm", date(2026, 11, 26))
    with admin.engine.begin() as conn:
        conn.execute(text("GRANT CREATE ON SCHEMA public TO PUBLIC"))
    assert _psql_file(url).returncode == 0
    with admin.engine.begin() as conn:
        conn.execute(text(f"ALTER ROLE {PIPELINE_ROLE} LOGIN"))
    pipeline = connect(make_url(url).set(username=PIPELINE_ROLE).render_as_string(hide_password=False))
    yield {"url": url, "administrator": admin, PIPELINE_ROLE: pipeline}
    with admin.engine.begin() as conn:  # the role is cluster-wide: never leave it promoted
        conn.execute(text(f"ALTER ROLE {PIPELINE_ROLE} NOSUPERUSER"))
    pipeline.dispose()
    admin.dispose()


def _facts(admin) -> tuple[bool, bool, bool]:
    """(pipeline is superuser, pipeline may create in public, PUBLIC may create in public)."""
    with admin.engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT rolsuper, has_schema_privilege(rolname, 'public', 'CREATE'), "
                    "       coalesce((SELECT bool_or(a.grantee = 0 AND a.privilege_type = 'CREATE') "
                    "                 FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = 'public'), false) "
                    "FROM pg_roles WHERE rolname = :r"
                ),
                {"r": PIPELINE_ROLE},
            ).one()
        )


def test_the_script_takes_create_on_public_back_from_public_so_the_pipeline_plants_nothing_there(legacy):
    assert _facts(legacy["administrator"]) == (False, False, False)
    for statement in PLANTED_FORMATS[:1] + ["CREATE TABLE public.pipeline_notes (id int)"]:
        assert _as_pipeline(legacy, statement) is not None, statement


@pytest.mark.parametrize(
    "planted",
    [
        PLANTED_FORMATS,
        ["CREATE TYPE public.planted AS (a int)"],
        [
            "CREATE FUNCTION public.planted_eq(a text, b text) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
            "CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.planted_eq)",
        ],
        ["CREATE TABLE public.planted (id int)", "CREATE VIEW public.planted_view AS SELECT 1 AS one"],
    ],
    ids=["format-functions", "type", "operator", "table-and-view"],
)
def test_running_the_script_again_over_objects_the_pipeline_planted_runs_none_and_changes_nothing(legacy, planted):
    """The observed attack: on a database secured by the earlier script, public still granted
    CREATE to PUBLIC and the pipeline planted format() overloads that the script's own blocks
    called as a superuser. psql -f sends each statement in turn: the script is one transaction,
    with a fixed search_path, that first looks for anything the pipeline owns in any schema."""
    admin = legacy["administrator"]
    with admin.engine.begin() as conn:  # as the earlier script left it
        conn.execute(text("GRANT CREATE ON SCHEMA public TO PUBLIC"))
    for statement in planted:
        assert _as_pipeline(legacy, statement) is None, statement
    rerun = _psql_file(legacy["url"])
    assert "owned by retention_pipeline, which may own nothing" in rerun.stderr
    assert _facts(admin) == (False, True, True)  # never promoted; the refused run changed nothing
    with admin.engine.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {PIPELINE_ROLE}"))
    assert _psql_file(legacy["url"]).stderr.count("ERROR") == 0
    assert _facts(admin) == (False, False, False)


def test_the_script_refuses_to_finish_while_the_pipeline_may_create_in_a_schema(legacy):
    admin = legacy["administrator"]
    with admin.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA reports; GRANT CREATE ON SCHEMA reports TO PUBLIC"))
    rerun = _psql_file(legacy["url"])
    assert "may create objects in schema reports" in rerun.stderr


# --- Lifting a hold: only with this transaction's own audit event --------------------------


def _append(conn, *, details: str | None, action: str = "legal_hold", dry_run: bool = False) -> int:
    """Append a well-chained event, as the pipeline can; return its id."""
    trail = audit_table("archive", load_policy().audit_table)
    last = conn.execute(
        text("SELECT event_id, event_hash FROM archive.retention_audit ORDER BY event_id DESC LIMIT 1")
    ).first()
    event = {
        "event_id": last[0] + 1 if last else 1,
        "recorded_at": instants.utc_now(),
        "run_id": "manual__x",
        "dag_id": "legal_hold",
        "category": "suppliers",
        "table_name": None,
        "action": action,
        "row_count": 0,
        "policy_version": "x",
        "as_of": AS_OF,
        "dry_run": dry_run,
        "details": details,
        "subject_hash": None,
        "prev_hash": last[1] if last else audit.GENESIS,
    }
    event["event_hash"] = audit.event_hash(event)
    conn.execute(trail.insert().values(**event))
    return event["event_id"]


def _new_hold(secured, reference: str) -> int:
    policy = load_policy()
    add_hold(
        secured[PIPELINE_ROLE],
        policy,
        NewHold(reference, "category", "Inquiry", "dpo", category="suppliers"),
        KEY,
        RunContext("manual__roles", "legal_hold", AS_OF, policy.version),
        AS_OF,
    )
    with secured[PIPELINE_ROLE].read() as conn:
        return conn.execute(
            text("SELECT hold_id FROM archive.retention_legal_holds WHERE reference = :r"), {"r": reference}
        ).scalar_one()


def test_one_unreadable_legal_hold_event_does_not_stop_any_hold_from_being_lifted(secured):
    pipeline, policy = secured[PIPELINE_ROLE], load_policy()
    _new_hold(secured, "RG-ROLES-3")
    with pipeline.engine.begin() as conn:
        _append(conn, details="{not json")
    lift_hold(
        pipeline,
        policy,
        "RG-ROLES-3",
        "dpo",
        "closed",
        RunContext("manual__roles", "legal_hold", AS_OF, policy.version),
        AS_OF,
    )
    with pipeline.read() as conn:
        assert conn.execute(text("SELECT lifted_by FROM archive.retention_legal_holds")).scalar_one() == "dpo"


LIFTED = '{"hold_reference":"RG-ROLES-4","outcome":"lifted"}'


@pytest.mark.parametrize(
    "event",
    [
        {"details": LIFTED, "earlier": True},
        {"details": LIFTED, "dry_run": True},
        {"details": '{"hold_reference":"RG-OTHER","outcome":"lifted"}'},
        {"details": '{"hold_reference":"RG-ROLES-4","outcome":"added"}'},
        {"details": LIFTED, "action": "archive"},
        {"details": "{not json"},
        {"details": '["RG-ROLES-4", "lifted"]'},
        {"details": None},
    ],
    ids=[
        "another-transaction",
        "dry-run",
        "another-hold",
        "not-lifted",
        "not-legal-hold",
        "not-json",
        "not-object",
        "no-details",
    ],
)
def test_a_hold_is_lifted_only_with_its_own_lifted_event_written_in_the_same_transaction(secured, event):
    hold_id = _new_hold(secured, "RG-ROLES-4")
    event = dict(event)
    earlier = event.pop("earlier", False)
    pipeline = secured[PIPELINE_ROLE]
    if earlier:
        with pipeline.engine.begin() as conn:
            event_id = _append(conn, **event)
    with (
        pytest.raises(DBAPIError, match="legal hold RG-ROLES-4: audit event .* is not"),
        pipeline.engine.begin() as conn,
    ):
        if not earlier:
            event_id = _append(conn, **event)
        conn.execute(text("SELECT archive.retention_lift_hold(:h, :e, 'dpo', 'closed')"), {"h": hold_id, "e": event_id})
    with pipeline.engine.begin() as conn:  # the same event, right, in this transaction: lifted
        event_id = _append(conn, details=LIFTED)
        conn.execute(text("SELECT archive.retention_lift_hold(:h, :e, 'dpo', 'closed')"), {"h": hold_id, "e": event_id})
    with pipeline.read() as conn:
        assert conn.execute(text("SELECT lifted_by FROM archive.retention_legal_holds")).scalar_one() == "dpo"


def test_the_pipeline_may_not_choose_a_hold_id(secured):
    refusal = _as_pipeline(
        secured,
        "INSERT INTO archive.retention_legal_holds "
        "(hold_id, reference, scope, reason, created_by, created_at) "
        "VALUES (1000, 'RG-ID', 'category', 'x', 'x', now())",
    )
    assert refusal is not None and "permission denied" in refusal


def test_the_servers_log_never_shows_the_values_the_pipeline_binds(secured):
    """A slow-statement threshold (or log_statement) makes PostgreSQL log each statement with its
    bound parameters - an e-mail being erased, the subject key - unless the role says 0."""
    marker = "log.probe.4711@example.fr"
    _as_administrator(secured, f"ALTER ROLE {PIPELINE_ROLE} SET log_min_duration_statement = 0")
    pipeline = secured[PIPELINE_ROLE]
    pipeline.engine.dispose()  # role settings apply to new sessions
    with pipeline.engine.begin() as conn:
        conn.execute(text("SELECT count(*) FROM crm.prospects WHERE email = :email"), {"email": marker})
    with secured["administrator"].engine.begin() as conn:
        server_log = Path(conn.execute(text("SHOW data_directory")).scalar_one()).parent / "server.log"
    assert server_log.exists()
    logged = server_log.read_text(errors="replace")
    assert "SELECT count(*) FROM crm.prospects WHERE email" in logged  # the statement was logged
    assert marker not in logged


def test_the_pipeline_role_asks_for_re_consent_and_records_the_answers(secured, mail_sink):
    """The campaign records its asks and marks them sent, a yes and a no are recorded (the no as
    an opposition: erasure and suppression) - all with the pipeline's grants on the register."""
    pipeline, policy = secured[PIPELINE_ROLE], load_policy()
    ctx = RunContext("scheduled__reconsent", "retention_reconsent", AS_OF, policy.version)
    with SmtpMailer("127.0.0.1", mail_sink.port) as mailer:
        result = run_campaign(pipeline, policy, "prospection", KEY, ctx, mailer)
    assert result.sent >= 2 and len(mail_sink.messages) == result.sent
    register = reconsent_table("archive")
    with pipeline.read() as conn:
        asks = conn.execute(select(register.c.status, func.count()).group_by(register.c.status)).all()
    assert dict(asks)["sent"] == result.sent
    first, second = (notice_tokens(received, KEY) for received in mail_sink.messages[:2])
    answer_ctx = RunContext("manual__answer", "reconsent_answer", AS_OF, policy.version)
    assert answer_token(pipeline, policy, KEY, answer_ctx, first["yes"], AS_OF).answer == "yes"
    assert answer_token(pipeline, policy, KEY, answer_ctx, second["no"], AS_OF).answer == "no"
    replayed = answer_token(pipeline, policy, KEY, answer_ctx, first["no"], AS_OF)
    assert (replayed.answer, replayed.refused) == (None, "replayed")
    with pipeline.read() as conn:
        answered = dict(conn.execute(select(register.c.answer, func.count()).group_by(register.c.answer)).all())
        suppressed = conn.execute(select(func.count()).select_from(suppression_table("archive"))).scalar_one()
    assert (answered["yes"], answered["no"], suppressed) == (1, 1, 1)

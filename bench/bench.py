"""Benchmark: the engine against the database's own limit, on a throwaway PostgreSQL.

    python bench/bench.py [--rows 1000000 --rows 5000000] [--partition-rows 10000000] [--batch-size N]
                          [--out docs/benchmarks.md]
    python bench/bench.py --tonight [--rows 1000000]

For each N it seeds N prospects with three interactions each (generated in SQL), keeps the
seeded database as a template, and measures on a fresh copy each time:

- ``reference_archive``: one ``WITH moved AS (DELETE ... RETURNING *) INSERT INTO archive ...``
  statement per table (interactions, then prospects): the hand-written limit;
- ``engine_archive``: ``archive_category`` through the public API, default batch size;
- ``pandas_archive``: ``read_sql`` then ``to_sql`` then ``DELETE ... IN``, at most 1M parents;
- ``engine_dag``: a whole ``retention_prospection`` DAG run through Airflow (``dag.test``),
  every step of ``schedule.run.RUN_ORDER`` (gates, plan, approval, archive, purge, summary);
  compared with the reference archive and delete together;
- on the archived copy: ``reference_delete`` / ``engine_purge`` (one DELETE per table), and
  ``reference_anonymize`` / ``engine_anonymize`` (one UPDATE per table; the same category
  with ``end_action: anonymize``);
- ``sqlite_archive`` / ``sqlite_purge``: the engine on SQLite, at most 1M parents, to say
  how much slower the embedded default is than PostgreSQL;
- ``tonight`` / ``tonight_archived``: the Retention view's forecast of tonight's run
  (``schedule.tonight.forecast``, one per category), before any run and on the archived copy,
  with its seconds per category and the dry-run plan's time; its counts are checked against
  the plan's (they must be equal). ``--tonight`` measures only these and prints them (without
  writing ``--out``: the page keeps the figures of the last whole run).

``--partition-rows`` adds a page-views table range-partitioned by month (no children) and
compares, on the same table, whole partitions (``partitioned: true``) with the row path,
for a category without archive (drop) and one with an archive (move).

Each measured step runs in a process of its own, which reports its peak RSS. It prints
rows/s, the engine-to-reference ratios, peak RSS and per-batch latency p50/p95, and writes
them to ``--out`` with a chart (``benchmarks.svg`` beside it). Not part of ``make test``:
timings belong here, never in assertions.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

AS_OF = date(2026, 11, 26)
POLICY: dict[str, Any] = {
    "version": "bench-1",
    "source_schema": "crm",
    "archive_schema": "archive",
    "deletion_limit": {"rows": None, "fraction": 1.0},
    "categories": {
        "prospection": {
            "label": {"fr": "Prospects", "en": "Prospects"},
            "legal_basis": "Intérêt légitime",
            "archive_purpose": "Preuve",
            "schedule": "0 2 * * *",
            "active_period": "P3Y",
            "archive_period": "P5Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "prospects",
                    "primary_key": "prospect_id",
                    "start_event": {"column": "last_inbound_contact_at", "when_missing": "defect"},
                    "archive_columns": ["email", "full_name", "last_inbound_contact_at"],
                    "children": [
                        {
                            "table": "prospect_interactions",
                            "primary_key": "interaction_id",
                            "foreign_key": "prospect_id",
                            "archive_columns": ["happened_at", "channel"],
                        }
                    ],
                }
            ],
        }
    },
}
ANONYMIZE = {"end_action": "anonymize"}
ANONYMIZE_RULES = [
    {"email": "null", "full_name": "null", "last_inbound_contact_at": "year"},
    {"happened_at": "month", "channel": "keep"},
]
SEED = """
CREATE SCHEMA crm;
CREATE TABLE crm.prospects (prospect_id bigint PRIMARY KEY, email text, full_name text, phone text,
    company text, last_inbound_contact_at timestamptz, created_at timestamptz);
CREATE TABLE crm.prospect_interactions (interaction_id bigint PRIMARY KEY,
    prospect_id bigint NOT NULL REFERENCES crm.prospects, happened_at timestamptz, channel text, note text);
INSERT INTO crm.prospects
SELECT i, 'prospect' || i || '@example.fr', 'Prénom Nom ' || i, '06' || lpad((i % 100000000)::text, 8, '0'),
       'Société ' || (i % 5000), TIMESTAMPTZ '2026-11-26 10:00+01' - make_interval(days => ((i::bigint * 7919) % 3650)::int),
       TIMESTAMPTZ '2015-01-01 10:00+01'
FROM generate_series(1::bigint, :n) AS i;
INSERT INTO crm.prospect_interactions
SELECT p * 3 + k, p, TIMESTAMPTZ '2016-03-01 10:00+01', CASE k WHEN 0 THEN 'email' WHEN 1 THEN 'phone' ELSE 'form' END,
       'note ' || p
FROM generate_series(1, :n) AS p, generate_series(0, 2) AS k;
CREATE INDEX ON crm.prospect_interactions (prospect_id);
ANALYZE;
"""
# SQLite: the same rows (dates as Paris wall-clock text, which is how SQLite stores them).
SQLITE_SEED = """
CREATE TABLE prospects (prospect_id INTEGER PRIMARY KEY, email TEXT, full_name TEXT, phone TEXT, company TEXT,
    last_inbound_contact_at TIMESTAMP, created_at TIMESTAMP);
CREATE TABLE prospect_interactions (interaction_id INTEGER PRIMARY KEY,
    prospect_id INTEGER NOT NULL REFERENCES prospects, happened_at TIMESTAMP, channel TEXT, note TEXT);
WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < :n)
INSERT INTO prospects SELECT n, 'prospect' || n || '@example.fr', 'Prénom Nom ' || n, '06' || n, 'Société ' || (n % 5000),
    datetime('2026-11-26 10:00:00', '-' || ((n * 7919) % 3650) || ' days'), '2015-01-01 10:00:00' FROM i;
INSERT INTO prospect_interactions SELECT p.prospect_id * 3 + k.k, p.prospect_id, '2016-03-01 10:00:00',
    CASE k.k WHEN 0 THEN 'email' WHEN 1 THEN 'phone' ELSE 'form' END, 'note ' || p.prospect_id
FROM prospects p, (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2) k;
CREATE INDEX ix_interactions_prospect ON prospect_interactions (prospect_id);
ANALYZE;
"""
# The reference: what a DBA would write by hand for this one schema (no checks, no audit).
REFERENCE_ARCHIVE = """
WITH moved AS (
  DELETE FROM crm.prospect_interactions c USING crm.prospects p
  WHERE c.prospect_id = p.prospect_id AND p.last_inbound_contact_at < :horizon
  RETURNING c.*, p.last_inbound_contact_at AS started)
INSERT INTO archive.prospect_interactions (interaction_id, prospect_id, happened_at, channel, retention_start,
    retention_until, archived_at, policy_version, run_id, anonymized)
SELECT interaction_id, prospect_id, happened_at, channel, started::date, started::date + interval '8 years', now(),
    'bench-1', 'reference', false FROM moved;
WITH moved AS (DELETE FROM crm.prospects WHERE last_inbound_contact_at < :horizon RETURNING *)
INSERT INTO archive.prospects (prospect_id, email, full_name, last_inbound_contact_at, retention_start,
    retention_until, archived_at, policy_version, run_id, anonymized)
SELECT prospect_id, email, full_name, last_inbound_contact_at, last_inbound_contact_at::date,
    last_inbound_contact_at::date + interval '8 years', now(), 'bench-1', 'reference', false FROM moved;
"""
REFERENCE_DELETE = """
DELETE FROM archive.prospect_interactions WHERE prospect_id IN
  (SELECT prospect_id FROM archive.prospects WHERE retention_until <= :as_of);
DELETE FROM archive.prospects WHERE retention_until <= :as_of;
"""
REFERENCE_ANONYMIZE = """
UPDATE archive.prospect_interactions SET happened_at = date_trunc('month', happened_at, 'Europe/Paris'),
    retention_start = NULL, retention_until = NULL, archived_at = NULL, run_id = NULL, anonymized = true
WHERE prospect_id IN (SELECT prospect_id FROM archive.prospects WHERE retention_until <= :as_of AND NOT anonymized);
UPDATE archive.prospects SET email = NULL, full_name = NULL,
    last_inbound_contact_at = date_trunc('year', last_inbound_contact_at, 'Europe/Paris'),
    retention_start = NULL, retention_until = NULL, archived_at = NULL, run_id = NULL, anonymized = true
WHERE retention_until <= :as_of AND NOT anonymized;
"""
HORIZON = "2023-11-27 00:00+01"  # the engine's rule for P3Y on 26 Nov 2026, in Paris

# Partitions: page views over five years, one partition a month, no children.
PARTITION_SEED = """
CREATE SCHEMA web;
CREATE TABLE web.page_views (view_id bigint NOT NULL, viewed_at timestamptz NOT NULL, page text, visitor_key text,
    PRIMARY KEY (view_id, viewed_at)) PARTITION BY RANGE (viewed_at);
:partitions
CREATE TABLE web.page_views_default PARTITION OF web.page_views DEFAULT;
INSERT INTO web.page_views SELECT i, TIMESTAMPTZ '2022-01-01 00:00+01' + (i * (INTERVAL '1770 days' / :n)),
    '/offer/' || (i % 97), 'visitor-' || (i % 500000)
FROM generate_series(1::bigint, :n) AS i;
ANALYZE;
"""
PAGE_VIEWS: dict[str, Any] = {
    "version": "bench-1",
    "source_schema": "web",
    "archive_schema": "archive",
    "deletion_limit": {"rows": None, "fraction": 1.0},
    "categories": {
        "page_views": {
            "label": {"fr": "Pages vues", "en": "Page views"},
            "legal_basis": "Consentement",
            "schedule": "0 3 * * *",
            "active_period": "P13M",
            "end_action": "delete",
            "tables": [
                {
                    "table": "page_views",
                    "primary_key": ["view_id"],
                    "partitioned": True,
                    "start_event": {"column": "viewed_at", "when_missing": "defect"},
                    "archive_columns": ["page"],
                }
            ],
        }
    },
}
PAGE_VIEWS_ARCHIVED = {"archive_period": "P5Y", "archive_purpose": "Preuve"}


def policy_data(step: str) -> dict:
    """The policy a step runs under (the prospects one, or a page-views variant)."""
    if step.startswith("partition_") or step.startswith("rows_"):
        data = copy.deepcopy(PAGE_VIEWS)
        category = data["categories"]["page_views"]
        category["tables"][0]["partitioned"] = step.startswith("partition_")
        if step.endswith("_archive"):
            category.update(PAGE_VIEWS_ARCHIVED)
        return data
    data = copy.deepcopy(POLICY)
    if os.environ.get("BENCH_BATCH_SIZE"):  # --batch-size, handed to the worker processes
        data["batch_size"] = int(os.environ["BENCH_BATCH_SIZE"])
    if "anonymize" in step:
        category = data["categories"]["prospection"]
        category.update(ANONYMIZE)
        table = category["tables"][0]
        table["anonymize"], table["children"][0]["anonymize"] = ANONYMIZE_RULES
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="parents per run (repeatable); default 1000000")
    parser.add_argument("--partition-rows", type=int, default=0, help="page views for the partition comparison")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--render", type=Path, help="only rewrite --out from the figures of an earlier run (JSON)")
    parser.add_argument("--batch-size", type=int, help="the prospects policy's batch_size (default: the policy's)")
    parser.add_argument(
        "--tonight", action="store_true", help="only the Retention view's forecast; prints, writes nothing"
    )
    args = parser.parse_args()
    if args.batch_size:
        os.environ["BENCH_BATCH_SIZE"] = str(args.batch_size)
    if args.tonight:
        print(tonight_table(run_tonight(args.rows or [1_000_000])))
        return
    if args.render:
        results = json.loads(args.render.read_text(encoding="utf-8"))
    else:
        results = run_all(args.rows or [1_000_000], args.partition_rows)
    print(table(results))
    print(targets(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    chart_path = args.out.with_suffix(".svg")
    chart_path.write_text(chart(results), encoding="utf-8")
    args.out.write_text(document(results, chart_path.name), encoding="utf-8")
    print(f"\nwritten to {args.out} and {chart_path}")


def run_all(rows: list[int], partition_rows: int) -> list[dict]:
    from scripts.throwaway_postgres import throwaway_postgres

    results = []
    with throwaway_postgres() as server:
        for n in rows:
            results += measure(server, n)
        if partition_rows:
            results += measure_partitions(server, partition_rows)
    return results


def run_tonight(rows: list[int]) -> list[dict]:
    """The forecast alone: before any run, and once the reference has archived what was due."""
    from scripts.throwaway_postgres import throwaway_postgres

    results: list[dict] = []
    with throwaway_postgres() as server:
        for n in rows:
            template = _seed(server, n)
            _run(results, n, "tonight", _copy(server, template))
            archived = _copy(server, template)
            _sql(archived, REFERENCE_ARCHIVE, horizon=HORIZON)
            _run(results, n, "tonight_archived", archived)
    return results


def _seed(server: str, n: int) -> str:
    """A database holding the N prospects and their interactions, and the engine's empty archive tables."""
    from scripts.throwaway_postgres import fresh_postgres_database

    template = fresh_postgres_database(server)
    started = time.perf_counter()
    _sql(template, SEED.replace(":n", str(n)))
    _worker("create_archive", template)
    print(f"N={n:,}: seeded {4 * n:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    return template


def _copy(server: str, template: str) -> str:
    from scripts.throwaway_postgres import fresh_postgres_database

    return fresh_postgres_database(server, template=template.rsplit("/", 1)[1])


def _run(out: list[dict], n: int, step: str, url: str) -> None:
    out.append({"n": n, **_worker(step, url)})
    print(f"  {step}: {out[-1]['rows']:,} rows in {out[-1]['seconds']:.1f} s", flush=True)
    for category, seconds in out[-1].get("categories", {}).items():
        print(
            f"    {category}: {seconds:.2f} s (the dry-run plan: {out[-1]['plan_seconds'][category]:.2f} s)", flush=True
        )


def measure(server: str, n: int) -> list[dict]:
    template = _seed(server, n)
    out: list[dict] = []
    for step in ("tonight", "reference_archive", "engine_archive", "pandas_archive", "engine_dag"):
        if step == "pandas_archive" and n > 1_000_000:
            continue
        _run(out, n, step, _copy(server, template))
    archived = _copy(server, template)
    _worker("engine_archive", archived)  # then end of life for what is past its whole retention
    _run(out, n, "tonight_archived", _copy(server, archived))
    for step in ("reference_delete", "engine_purge", "reference_anonymize", "engine_anonymize"):
        _run(out, n, step, _copy(server, archived))
    if n <= 1_000_000:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            _sqlite_seed(url, n)
            for step in ("sqlite_archive", "sqlite_purge"):
                _run(out, n, step, url)
    return out


def measure_partitions(server: str, n: int) -> list[dict]:
    from scripts.throwaway_postgres import fresh_postgres_database

    template = fresh_postgres_database(server)
    started = time.perf_counter()
    months = [date(2022 + m // 12, 1 + m % 12, 1) for m in range(61)]
    partitions = "\n".join(
        f"CREATE TABLE web.page_views_{start:%Y_%m} PARTITION OF web.page_views "
        f"FOR VALUES FROM ('{start} 00:00 Europe/Paris') TO ('{end} 00:00 Europe/Paris');"
        for start, end in pairwise(months)
    )
    _sql(template, PARTITION_SEED.replace(":partitions", partitions).replace(":n", str(n)))
    print(f"partitions, N={n:,}: seeded in {time.perf_counter() - started:.0f} s", flush=True)
    out: list[dict] = []
    for step in ("partition_drop", "rows_drop", "partition_archive", "rows_archive"):
        _run(out, n, step, _copy(server, template))
    return out


def _sql(url: str, script: str, **params: object) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    total = 0
    with engine.begin() as conn:
        for statement in (s.strip() for s in script.split(";\n") if s.strip()):
            result = conn.execute(text(statement), params)
            total += max(result.rowcount, 0)
    engine.dispose()
    return total


def _sqlite_seed(url: str, n: int) -> None:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.executescript(SQLITE_SEED.replace(":n", str(n)))


def _worker(step: str, url: str) -> dict:
    """Run one step in a process of its own; it prints its figures as JSON."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", step, url],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def work(step: str, url: str) -> dict:
    from include.retention.database.target import connect
    from include.retention.policy.load import parse_policy
    from include.retention.records.audit import RunContext
    from include.retention.schedule.context import StepContext, open_step

    if step == "engine_dag":
        return _dag(url)
    policy = parse_policy(policy_data(step), "bench")
    target = connect(url, "archive")
    if step.startswith("tonight"):
        return _tonight(step, target, policy)
    category = next(iter(policy.categories))
    step_ctx = StepContext.build(
        target, policy, category, RunContext(f"bench-{step}", f"retention_{category}", AS_OF, policy.version)
    )
    batches: list[tuple[float, int]] = []
    started = time.perf_counter()
    if step == "create_archive":
        open_step(step_ctx, create_archive=True)
        rows = 0
    elif step.startswith("reference_"):
        script = {
            "reference_archive": REFERENCE_ARCHIVE,
            "reference_delete": REFERENCE_DELETE,
            "reference_anonymize": REFERENCE_ANONYMIZE,
        }[step]
        rows = _sql(url, script, horizon=HORIZON, as_of=AS_OF)
    elif step == "pandas_archive":
        rows = _pandas(url)
    else:
        batches, rows = _engine(step_ctx, "archive" if step.endswith("archive") else "purge")
    seconds = time.perf_counter() - started
    target.dispose()
    durations = [b[0] for b in batches]
    return {
        "step": step,
        "rows": rows,
        "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "batch_p50": statistics.median(durations) if durations else None,
        "batch_p95": _p95(durations) if durations else None,
    }


def _tonight(step: str, target, policy) -> dict:
    """Every category's forecast, as the Retention view asks for them (one after the other),
    then each category's dry-run plan, whose counts must be the forecast's. ``rows``: the
    rows the forecasts counted as due (for the archive or at end of life)."""
    from include.retention.records.audit import RunContext
    from include.retention.schedule.context import StepContext
    from include.retention.schedule.limits import flag_excesses
    from include.retention.schedule.plan import plan_category
    from include.retention.schedule.tonight import CategoryForecast, forecast

    started = time.perf_counter()
    forecasts = [forecast(target, policy, key, AS_OF) for key in policy.categories]
    seconds = time.perf_counter() - started
    plan_seconds = {}
    for tonight in forecasts:
        if tonight.problem:
            raise SystemExit(f"{tonight.category}: {tonight.problem}")
        ctx = RunContext(f"bench-{step}", f"retention_{tonight.category}", AS_OF, policy.version, dry_run=True)
        began = time.perf_counter()
        plan = flag_excesses(plan_category(StepContext.build(target, policy, tonight.category, ctx)), policy)
        plan_seconds[tonight.category] = time.perf_counter() - began
        planned = CategoryForecast.of(plan, list(plan.over_limit), tonight.seconds)
        if planned != tonight:
            raise SystemExit(f"{tonight.category}: the forecast differs from the plan:\n{tonight}\n{planned}")
    target.dispose()
    return {
        "step": step,
        "rows": sum(f.due_for_archive + f.due_for_end_of_life for f in forecasts),
        "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "batch_p50": None,
        "batch_p95": None,
        "categories": {f.category: f.seconds for f in forecasts},
        "plan_seconds": plan_seconds,
    }


def _engine(step_ctx, step: str) -> tuple[list[tuple[float, int]], int]:
    """Run archive or purge: the batches' durations and row counts (read from the engine's
    log), and the rows moved or destroyed (batches and whole partitions)."""
    from include.retention.schedule.archive import archive_category
    from include.retention.schedule.purge import purge_category

    seen: list[tuple[float, int]] = []

    class Batches(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if " batch " in record.msg and isinstance(record.args, tuple) and len(record.args) >= 4:
                seconds, counts = record.args[-2], record.args[-1]
                if isinstance(seconds, float) and isinstance(counts, dict):
                    seen.append((seconds, sum(counts.values())))

    for name in ("include.retention.schedule.archive", "include.retention.schedule.purge"):
        logging.getLogger(name).addHandler(Batches())
        logging.getLogger(name).setLevel(logging.INFO)
    if step == "archive":
        totals = archive_category(step_ctx)
    else:
        totals = {t: n for counts in purge_category(step_ctx).values() for t, n in counts.items()}
    return seen, sum(totals.values())


def _dag(url: str) -> dict:
    """A whole ``retention_prospection`` run through Airflow, gates included (``dag.test``)."""
    home = Path(tempfile.mkdtemp(prefix="bench-airflow-"))
    policy_file = home / "policy.json"  # JSON is YAML
    policy_file.write_text(json.dumps(POLICY), encoding="utf-8")
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "RETENTION_POLICY": str(policy_file),
            "RETENTION_REPORTS_DIR": str(home / "reports"),
            "AIRFLOW_CONN_RETENTION_TARGET": url.replace("postgresql+psycopg://", "postgresql://"),
        }
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    from airflow.dag_processing.dagbag import DagBag
    from sqlalchemy import create_engine, text

    dag = DagBag(dag_folder=str(ROOT / "dags" / "retention_dags.py")).get_dag("retention_prospection")
    started = time.perf_counter()
    dag_run = dag.test(run_conf={"mode": "execute", "as_of": AS_OF.isoformat()})
    seconds = time.perf_counter() - started
    if dag_run.state != "success":
        raise SystemExit(f"retention_prospection ended {dag_run.state}")
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT coalesce(sum(row_count), 0) FROM archive.retention_audit "
                "WHERE run_id = :r AND action IN ('archive', 'delete')"
            ),
            {"r": dag_run.run_id},
        ).scalar_one()
    engine.dispose()
    return {
        "step": "engine_dag",
        "rows": int(rows),
        "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "batch_p50": None,
        "batch_p95": None,
    }


def _pandas(url: str) -> int:
    """The approach the engine replaces: rows through Python, then a DELETE by key."""
    import pandas as pd
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    moved = 0
    with engine.begin() as conn:
        parents = pd.read_sql(
            text(
                "SELECT prospect_id, email, full_name, last_inbound_contact_at FROM crm.prospects "
                "WHERE last_inbound_contact_at < :h"
            ),
            conn,
            params={"h": HORIZON},
        )
        children = pd.read_sql(
            text(
                "SELECT c.interaction_id, c.prospect_id, c.happened_at, c.channel "
                "FROM crm.prospect_interactions c JOIN crm.prospects p USING (prospect_id) "
                "WHERE p.last_inbound_contact_at < :h"
            ),
            conn,
            params={"h": HORIZON},
        )
        for frame, name in ((parents, "prospects"), (children, "prospect_interactions")):
            frame["anonymized"] = False
            frame.to_sql(name, conn, schema="archive", if_exists="append", index=False, chunksize=10_000)
            moved += len(frame)
        ids = parents["prospect_id"].tolist()
        for start in range(0, len(ids), 10_000):
            chunk = ids[start : start + 10_000]
            conn.execute(text("DELETE FROM crm.prospect_interactions WHERE prospect_id = ANY(:ids)"), {"ids": chunk})
            conn.execute(text("DELETE FROM crm.prospects WHERE prospect_id = ANY(:ids)"), {"ids": chunk})
    engine.dispose()
    return moved


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


# What each measured step is compared with ("vs" column): a reference, or a list of them
# whose rows and seconds add up (a whole DAG run does the archive and the delete).
PAIRS = {
    "engine_archive": ["reference_archive"],
    "engine_purge": ["reference_delete"],
    "engine_anonymize": ["reference_anonymize"],
    "engine_dag": ["reference_archive", "reference_delete"],
    "sqlite_archive": ["engine_archive"],
    "sqlite_purge": ["engine_purge"],
    "partition_drop": ["rows_drop"],
    "partition_archive": ["rows_archive"],
}


def rate(r: dict) -> float:
    return r["rows"] / r["seconds"] if r["seconds"] else 0.0


def ratio(results: list[dict], r: dict) -> float | None:
    """``r``'s rows/s over what it is compared with (``PAIRS``); for pandas, the engine's over pandas'."""
    by = {(x["n"], x["step"]): x for x in results}
    if r["step"] == "pandas_archive":
        engine = by.get((r["n"], "engine_archive"))
        return rate(engine) / rate(r) if engine and rate(r) else None
    names = PAIRS.get(r["step"], [])
    refs = [by[(r["n"], name)] for name in names if (r["n"], name) in by]
    if not refs or len(refs) < len(names):
        return None
    ref_rate = sum(x["rows"] for x in refs) / sum(x["seconds"] for x in refs)
    return rate(r) / ref_rate if ref_rate else None


def _vs(results: list[dict], r: dict) -> str:
    value = ratio(results, r)
    if value is None:
        return ""
    if r["step"] == "pandas_archive":
        return f"engine {value:.1f}x faster"
    return f"{value:.2f}x {' + '.join(PAIRS[r['step']])}"


TONIGHT_STEPS = {"tonight": "before any run", "tonight_archived": "archive filled (the run's archive done)"}


def moving(results: list[dict]) -> list[dict]:
    """The steps that move or destroy rows (the forecast counts them: ``tonight_table``)."""
    return [r for r in results if r["step"] not in TONIGHT_STEPS]


def table(results: list[dict]) -> str:
    lines = [
        "| N | step | rows | seconds | rows/s | vs | peak RSS (MB) | batch p50 / p95 (s) |",
        "|---:|---|---:|---:|---:|---|---:|---|",
    ]
    for r in moving(results):
        batch = f"{r['batch_p50']:.3f} / {r['batch_p95']:.3f}" if r["batch_p50"] is not None else ""
        lines.append(
            f"| {r['n']:,} | {r['step']} | {r['rows']:,} | {r['seconds']:.1f} | {rate(r):,.0f} | "
            f"{_vs(results, r)} | {r['rss_mb']:.0f} | {batch} |"
        )
    return "\n".join(lines)


def tonight_table(results: list[dict]) -> str:
    """The Retention view's forecast: seconds per category and in all, against the dry-run plans."""
    lines = [
        "| N | database | rows due | seconds per category | total (s) | dry-run plans (s) | peak RSS (MB) |",
        "|---:|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        if r["step"] not in TONIGHT_STEPS:
            continue
        each = ", ".join(f"{key} {seconds:.2f}" for key, seconds in r["categories"].items())
        lines.append(
            f"| {r['n']:,} | {TONIGHT_STEPS[r['step']]} | {r['rows']:,} | {each} | {r['seconds']:.2f} | "
            f"{sum(r['plan_seconds'].values()):.2f} | {r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


ENGINE_STEPS = ("engine_archive", "engine_purge", "engine_anonymize")


def targets(results: list[dict]) -> str:
    """Issue 8's targets, each measured at every N the run covered: met or not."""
    lines = ["| target | N | measured | met |", "|---|---:|---|---|"]

    def add(name: str, n: int, measured: str, met: bool) -> None:
        lines.append(f"| {name} | {n:,} | {measured} | {'yes' if met else '**no**'} |")

    for r in results:
        value = ratio(results, r)
        goal = {
            "engine_archive": 1.0,
            "engine_purge": 0.9,
            "engine_anonymize": 0.9,
            "engine_dag": 0.7,
            "pandas_archive": 10.0,
        }.get(r["step"])
        if goal is not None and value is not None:
            what = "engine vs pandas" if r["step"] == "pandas_archive" else f"{r['step']} vs reference"
            add(f"{what} >= {goal:g}x", r["n"], f"{value:.2f}x", value >= goal)
        if r["step"] in ENGINE_STEPS and r["batch_p95"] is not None:
            add(f"{r['step']} batch p95 < 0.5 s", r["n"], f"{r['batch_p95']:.3f} s", r["batch_p95"] < 0.5)
        if r["step"] in ENGINE_STEPS:
            add(f"{r['step']} peak RSS < 250 MB", r["n"], f"{r['rss_mb']:.0f} MB", r["rss_mb"] < 250)
    return "\n".join(lines)


def chart(results: list[dict]) -> str:
    """A horizontal bar chart of rows/s per step and N, as a standalone SVG file."""
    from html import escape

    results = moving(results)
    bar, gap, left, width = 16, 4, 260, 420
    top = max((rate(r) for r in results), default=1) or 1
    height = 40 + len(results) * (bar + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<text x="8" y="20" font-size="14">rows/s per step (PostgreSQL 15 unless the step says sqlite)</text>',
    ]
    for i, r in enumerate(results):
        y = 34 + i * (bar + gap)
        length = max(1.0, width * rate(r) / top)
        colour = (
            "#7f8c8d"
            if r["step"].startswith(("reference", "rows_"))
            else "#c0392b"
            if r["step"].startswith(("pandas", "sqlite"))
            else "#3b6ea5"
        )
        parts += [
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(r["step"])} (N={r["n"]:,})</text>',
            f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="{colour}"/>',
            f'<text x="{left + length + 4:.1f}" y="{y + 12}">{rate(r):,.0f}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def document(results: list[dict], chart_name: str) -> str:
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `make bench` (`bench/bench.py`) on a throwaway PostgreSQL 15 started by the script, on",
            "this project's build machine (2 cores, noisy: quote the ratios, not the absolute figures).",
            "N is parents (prospects, three interactions each; rows are parents plus children), or page",
            "views for the partition steps. *vs*: the step's rows/s over that of the step(s) named. Peak",
            "RSS is the measuring process's. The engine ran with `batch_size`",
            f"{os.environ.get('BENCH_BATCH_SIZE') or 5000} parents and `batch_workers` 2 (the defaults: 5000 and 2).",
            "",
            table(results),
            "",
            f"![rows/s per step]({chart_name})",
            "",
            "## Targets (issue 8)",
            "",
            targets(results),
            "",
            "## Tonight (the Retention view's forecast)",
            "",
            "One `schedule.tonight.forecast` per category, as the page asks for them (the benchmark's",
            "policy has one category), read-only; its counts equal the dry-run plan's (checked).",
            "",
            tonight_table(results),
            "",
            "Where a target is not met, and why: `docs/performance.md`. The figures above are in",
            "`benchmarks.json`; `python bench/bench.py --render docs/benchmarks.json` rewrites this page",
            "from them.",
            "",
        ]
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(work(sys.argv[2], sys.argv[3])))
    else:
        main()

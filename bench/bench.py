"""Benchmark: the engine against the database's own limit, on a throwaway PostgreSQL.

    python bench/bench.py [--rows 1000000 ...] [--out docs/benchmarks.md]

For each N it seeds N prospects with three interactions each (generated in SQL), keeps the
seeded database as a template, and measures on a fresh copy each time:

- ``reference archive``: one ``WITH moved AS (DELETE ... RETURNING *) INSERT INTO archive ...``
  statement per table (interactions, then prospects): the hand-written limit;
- ``engine archive``: ``archive_category`` through the public API, default batch size;
- ``reference delete`` / ``engine purge``: the archive's expired rows destroyed, by one
  DELETE per table, and by ``purge_category``;
- ``pandas``: ``read_sql`` then ``to_sql`` then ``DELETE ... IN``, at most 1M parents.

Each measured step runs in a process of its own, which reports its peak RSS. It prints
rows/s, the engine-to-reference ratios, peak RSS and per-batch latency p50/p95, and writes
them to ``--out``. Not part of ``make test``: timings belong here, never in assertions.

(Issue 8, first step: the anonymisation path, a whole DAG run, 5M and partitioned tables
are still to come.)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

AS_OF = date(2026, 11, 26)
POLICY = {
    "version": "bench-1", "source_schema": "crm", "archive_schema": "archive",
    "deletion_limit": {"rows": None, "fraction": 1.0},
    "categories": {"prospection": {
        "label": {"fr": "Prospects", "en": "Prospects"}, "legal_basis": "Intérêt légitime",
        "archive_purpose": "Preuve", "schedule": "0 2 * * *", "active_period": "P3Y", "archive_period": "P5Y",
        "end_action": "delete",
        "tables": [{"table": "prospects", "primary_key": "prospect_id",
                    "start_event": {"column": "last_inbound_contact_at", "when_missing": "defect"},
                    "archive_columns": ["email", "full_name", "last_inbound_contact_at"],
                    "children": [{"table": "prospect_interactions", "primary_key": "interaction_id",
                                  "foreign_key": "prospect_id", "archive_columns": ["happened_at", "channel"]}]}],
    }},
}
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
HORIZON = "2023-11-27 00:00+01"  # the engine's rule for P3Y on 26 Nov 2026, in Paris


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="parents per run (repeatable); default 1000000")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    from throwaway_postgres import throwaway_postgres

    results = []
    with throwaway_postgres() as server:
        for n in args.rows or [1_000_000]:
            results += measure(server, n)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(document(results), encoding="utf-8")
    print(f"\nwritten to {args.out}")


def measure(server: str, n: int) -> list[dict]:
    from throwaway_postgres import fresh_postgres_database

    template = fresh_postgres_database(server)
    started = time.perf_counter()
    _sql(template, SEED.replace(":n", str(n)))
    _worker("create_archive", template)  # the engine's archive tables, empty, in the template
    print(f"N={n:,}: seeded {4 * n:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    template_name = template.rsplit("/", 1)[1]
    out = []
    for step in ("reference_archive", "engine_archive", "pandas_archive"):
        if step == "pandas_archive" and n > 1_000_000:
            continue
        url = fresh_postgres_database(server, template=template_name)
        out.append({"n": n, **_worker(step, url)})
        print(f"  {out[-1]['step']}: {out[-1]['rows']:,} rows in {out[-1]['seconds']:.1f} s", flush=True)
    archived = fresh_postgres_database(server, template=template_name)
    _worker("engine_archive", archived)  # then destroy what is past its whole retention
    archived_name = archived.rsplit("/", 1)[1]
    for step in ("reference_delete", "engine_purge"):
        url = fresh_postgres_database(server, template=archived_name)
        out.append({"n": n, **_worker(step, url)})
        print(f"  {out[-1]['step']}: {out[-1]['rows']:,} rows in {out[-1]['seconds']:.1f} s", flush=True)
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


def _worker(step: str, url: str) -> dict:
    """Run one step in a process of its own; it prints its figures as JSON."""
    done = subprocess.run([sys.executable, __file__, "--worker", step, url], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def work(step: str, url: str) -> dict:
    from include.retention.audit import RunContext
    from include.retention.policy import parse_policy
    from include.retention.steps import StepContext, open_step
    from include.retention.target import connect

    policy = parse_policy(POLICY, "bench")
    target = connect(url)
    step_ctx = StepContext.build(target, policy, "prospection",
                                 RunContext(f"bench-{step}", "retention_prospection", AS_OF, policy.version))
    batches: list[float] = []
    started = time.perf_counter()
    if step == "create_archive":
        open_step(step_ctx, create_archive=True)
        rows = 0
    elif step == "reference_archive":
        rows = _sql(url, REFERENCE_ARCHIVE, horizon=HORIZON)
    elif step == "reference_delete":
        rows = _sql(url, REFERENCE_DELETE, as_of=AS_OF)
    elif step in ("engine_archive", "engine_purge"):
        batches = _engine(step_ctx, step)
        rows = int(sum(b[1] for b in batches))
    elif step == "pandas_archive":
        rows = _pandas(url)
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = time.perf_counter() - started
    target.dispose()
    return {"step": step, "rows": rows, "seconds": seconds,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "batch_p50": statistics.median([b[0] for b in batches]) if batches else None,
            "batch_p95": _p95([b[0] for b in batches]) if batches else None}


def _engine(step_ctx, step: str) -> list[tuple[float, int]]:
    """Run archive or purge; the batches' durations and row counts, read from the engine's log."""
    from include.retention.archive import archive_category
    from include.retention.purge import purge_category

    seen: list[tuple[float, int]] = []

    class Batches(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "batch" in record.msg and isinstance(record.args, tuple) and len(record.args) >= 4:
                seconds, counts = record.args[-2], record.args[-1]
                if isinstance(seconds, float) and isinstance(counts, dict):
                    seen.append((seconds, sum(counts.values())))

    for name in ("include.retention.archive", "include.retention.purge"):
        logging.getLogger(name).addHandler(Batches())
        logging.getLogger(name).setLevel(logging.INFO)
    if step == "engine_archive":
        archive_category(step_ctx)
    else:
        purge_category(step_ctx)
    return seen


def _pandas(url: str) -> int:
    """The approach the engine replaces: rows through Python, then a DELETE by key."""
    import pandas as pd
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    moved = 0
    with engine.begin() as conn:
        parents = pd.read_sql(text("SELECT prospect_id, email, full_name, last_inbound_contact_at FROM crm.prospects "
                                   "WHERE last_inbound_contact_at < :h"), conn, params={"h": HORIZON})
        children = pd.read_sql(text("SELECT c.interaction_id, c.prospect_id, c.happened_at, c.channel "
                                    "FROM crm.prospect_interactions c JOIN crm.prospects p USING (prospect_id) "
                                    "WHERE p.last_inbound_contact_at < :h"), conn, params={"h": HORIZON})
        for frame, name in ((parents, "prospects"), (children, "prospect_interactions")):
            frame["anonymized"] = False
            frame.to_sql(name, conn, schema="archive", if_exists="append", index=False, chunksize=10_000)
            moved += len(frame)
        ids = parents["prospect_id"].tolist()
        for start in range(0, len(ids), 10_000):
            chunk = ids[start:start + 10_000]
            conn.execute(text("DELETE FROM crm.prospect_interactions WHERE prospect_id = ANY(:ids)"), {"ids": chunk})
            conn.execute(text("DELETE FROM crm.prospects WHERE prospect_id = ANY(:ids)"), {"ids": chunk})
    engine.dispose()
    return moved


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


PAIRS = {"engine_archive": "reference_archive", "engine_purge": "reference_delete", "pandas_archive": None}


def table(results: list[dict]) -> str:
    by = {(r["n"], r["step"]): r for r in results}
    lines = ["| N parents | step | rows | seconds | rows/s | vs reference | peak RSS (MB) | batch p50 / p95 (s) |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0
        ref = by.get((r["n"], PAIRS.get(r["step"]) or ""))
        ratio = f"{rate / (ref['rows'] / ref['seconds']):.2f}x" if ref and ref["rows"] else ""
        if r["step"] == "pandas_archive":
            engine = by.get((r["n"], "engine_archive"))
            ratio = f"engine {(engine['rows'] / engine['seconds']) / rate:.1f}x faster" if engine and rate else ""
        batch = f"{r['batch_p50']:.3f} / {r['batch_p95']:.3f}" if r["batch_p50"] is not None else ""
        lines.append(f"| {r['n']:,} | {r['step']} | {r['rows']:,} | {r['seconds']:.1f} | {rate:,.0f} | {ratio} | "
                     f"{r['rss_mb']:.0f} | {batch} |")
    return "\n".join(lines)


def document(results: list[dict]) -> str:
    return "\n".join([
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/bench.py`) on a throwaway PostgreSQL 15 started by the script, on",
        "this project's build machine (2 cores, noisy: quote the ratios, not the absolute figures).",
        "Rows are parents plus children (three interactions per prospect). *vs reference*: the engine's",
        "rows/s over the hand-written single statement's. Peak RSS is the measuring process's.",
        "",
        table(results),
        "",
        "Still to measure (issue 8): anonymisation against a single UPDATE, a whole DAG run with its",
        "gates, N = 5M, and partitioned tables.",
        "",
    ])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(work(sys.argv[2], sys.argv[3])))
    else:
        main()

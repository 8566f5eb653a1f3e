"""Airflow's production topology as processes on this machine (there is no Docker here).

``make cluster`` runs it in the foreground, and ``tests/cluster`` drives it:

- two PostgreSQL servers (``scripts/throwaway_postgres.py``): Airflow's metadata database, and
  the target, the demo CRM seeded as of today;
- ``redis-server`` (Debian's), the Celery broker, on a port and in a folder of its own, with
  no persistence;
- Airflow with the CeleryExecutor: ``airflow db migrate``, the target pools imported
  (``python -m include.retention_airflow.targets``), then the api-server (REST, UI and the
  Execution API the workers' tasks talk to), the scheduler, the dag-processor, the triggerer,
  and two ``airflow celery worker`` processes - each component in a process group and a
  working directory of its own, each worker with its own Celery host name, log-server port
  and task host name (``scripts/worker_name.py``), as two machines would have.

The components share what a deployment shares through volumes: ``AIRFLOW_HOME`` (the task
logs) and the reports folder. Every setting reaches them through their environment; this
process's own is left alone. ``Cluster.stop`` (run when the block ends, Ctrl-C included)
stops every process started, task processes included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from include.demo.seed import PARIS, seed_demo
from include.retention.settings import REPORTS_ENV_VAR
from include.retention_airflow.targets import sites
from scripts.airflow_env import UI_USERS, airflow_settings
from scripts.throwaway_postgres import free_port, fresh_postgres_database, throwaway_postgres
from scripts.worker_name import WORKER_NAME_ENV_VAR

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("worker1", "worker2")
WORKER_CONCURRENCY = 2  # task slots per worker
PARALLELISM = 4  # task slots of the whole deployment (the scheduler's limit)
CLI_TIMEOUT = 300  # seconds: an ``airflow`` command (``db migrate`` is the longest)
SUBJECT_SECRET_VAR = "AIRFLOW_VAR_RETENTION_SUBJECT_SECRET"
READY_TIMEOUT = 240  # seconds: every component up, the DAGs parsed, on a busy 2-core machine
STOP_GRACE = 20  # seconds between SIGTERM and SIGKILL when stopping


class ClusterError(RuntimeError):
    """A component exited, a command failed or the cluster was not ready in time."""


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (Airflow's task processes make process
    groups of their own: a group alone does not hold them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


Identity = tuple[int, int]  # (pid, start time): once a process is gone, the kernel may give its pid to another


def _identity(pid: int) -> Identity | None:
    """``pid`` with its start time (clock ticks after boot, /proc/<pid>/stat's 22nd field); None once gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return pid, int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return None


def _memory_kib(pid: int) -> int:
    """The process's proportional share of memory now (Pss, KiB: a page shared by N processes -
    a forked worker child and its parent - counts 1/N in each); 0 once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


class PeakMemory(threading.Thread):
    """Samples, every ``interval`` seconds, the memory of each component's process tree (tasks
    included, for a worker; shared pages counted once) and keeps the peak: what each machine of a
    deployment needs."""

    def __init__(self, roots: Mapping[str, int], interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="peak-memory")
        self.roots, self.interval = dict(roots), interval
        self.peak_kib: dict[str, int] = dict.fromkeys(self.roots, 0)
        self.processes: dict[str, int] = dict.fromkeys(self.roots, 0)
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            for name, root in self.roots.items():
                tree = process_tree(root)
                self.peak_kib[name] = max(self.peak_kib[name], sum(_memory_kib(p) for p in tree))
                self.processes[name] = max(self.processes[name], len(tree))

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)

    def table(self) -> str:
        """A Markdown table: each component's peak memory (Pss) and most processes at once."""
        lines = ["| component | peak memory, Pss (MiB) | processes (max) |", "|---|---:|---:|"]
        lines += [f"| {name} | {self.peak_kib[name] / 1024:.0f} | {self.processes[name]} |" for name in self.roots]
        lines.append(f"| **total** | {sum(self.peak_kib.values()) / 1024:.0f} | |")
        return "\n".join(lines)


@dataclass
class Cluster:
    """The running deployment: its URLs, users, databases and processes."""

    work: Path
    env: dict[str, str]
    api_url: str
    passwords: dict[str, str]
    metadata_url: str
    target_url: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    servers: dict[str, int] = field(default_factory=dict)  # PostgreSQL servers: name -> postmaster pid
    killed: set[str] = field(default_factory=set)  # components killed on purpose (``kill``)
    stop_grace: float = STOP_GRACE
    # Every process of a component ever seen (``remember``): a task process in a session of its own
    # whose parent died is no one's descendant any more, and ``stop`` must still reach it.
    seen: set[Identity] = field(default_factory=set)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _watching: threading.Event = field(default_factory=threading.Event, repr=False)

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"

    def airflow(self, *args: str) -> str:
        """Run an ``airflow`` CLI command against this deployment; ClusterError with its output."""
        try:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.work,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"airflow {' '.join(args)} took more than {CLI_TIMEOUT}s") from exc
        if done.returncode:
            raise ClusterError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self, name: str, command: list[str], env: Mapping[str, str] | None = None) -> None:
        """Start a component in a process group and a working directory of its own."""
        cwd = self.work / name
        cwd.mkdir(exist_ok=True)
        self.log(name).parent.mkdir(exist_ok=True)
        with self.log(name).open("w") as out:
            self.procs[name] = subprocess.Popen(
                command,
                env={**self.env, **(env or {})},
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def start_airflow(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.start(name, [sys.executable, "-m", "airflow", *args], env)

    def roots(self) -> dict[str, int]:
        """Each component's root process: the PostgreSQL servers, Redis and Airflow's."""
        return {**self.servers, **{name: proc.pid for name, proc in self.procs.items()}}

    def remember(self) -> set[Identity]:
        """Add every process now descended from a component to ``seen``; a copy of it. (A copy of
        ``procs`` is walked: the watch thread runs while components are still being started.)"""
        found = {i for proc in list(self.procs.values()) for p in process_tree(proc.pid) if (i := _identity(p))}
        with self._seen_lock:
            self.seen |= found
            return set(self.seen)

    def watch(self, interval: float = 1.0) -> None:
        """``remember`` every ``interval`` seconds until ``stop``, in a daemon thread: the task
        processes that come and go between two of the caller's looks are seen too."""

        def loop() -> None:
            while not self._watching.wait(interval):
                self.remember()

        threading.Thread(target=loop, daemon=True, name="cluster-watch").start()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and name not in self.killed:
                raise ClusterError(f"{name} exited with {proc.returncode}{self.diagnostics()}")

    def kill(self, name: str) -> None:
        """SIGKILL a component at once, as a machine that dies: its process group and every
        process descended from it (the task processes it supervises)."""
        tree = process_tree(self.procs[name].pid)
        self.killed.add(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def stop(self) -> None:
        """Stop every component and the processes each started: SIGTERM to each tree, a
        bounded wait, then SIGKILL to what is left of every process ever seen - the trees of
        now and of before (``seen``): an orphan that ignored SIGTERM is no one's descendant."""
        self._watching.set()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            seen = self.remember()  # before the signal: a parent that exits on it orphans its children
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            for pid, _ in filter(partial(_alive, procs=self.procs), seen):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + self.stop_grace
            while time.monotonic() < deadline and any(_alive(i, self.procs) for i in seen):
                time.sleep(0.2)
            if not any(_alive(i, self.procs) for i in seen):
                return

    def diagnostics(self, lines: int = 30) -> str:
        """The tail of each component's log, for an error message."""
        parts = []
        for name in self.procs:
            with contextlib.suppress(OSError):
                tail = self.log(name).read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"\n--- {name} ---\n" + "\n".join(tail))
        return "".join(parts)

    def wait_ready(self, dag_ids: list[str]) -> None:
        """Wait for the api-server and the components its health check reports, both workers,
        and ``dag_ids`` parsed; a DAG file that fails to import stops the wait at once."""
        metadata = create_engine(self.metadata_url)
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                if self._healthy() and self._workers_ready() and self._parsed(metadata, dag_ids):
                    return
                time.sleep(2)
        finally:
            metadata.dispose()
        raise ClusterError(f"not ready after {READY_TIMEOUT}s{self.diagnostics()}")

    def _healthy(self) -> bool:
        try:
            health = httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

    def _workers_ready(self) -> bool:
        """Celery prints ``<name>@<host> ready.`` once a worker consumes its queue."""
        return all(
            " ready." in self.log(name).read_text(errors="replace")
            for name in self.procs
            if name.startswith("worker") and self.log(name).exists()
        )

    def _parsed(self, metadata, dag_ids: list[str]) -> bool:  # noqa: ANN001 - an Engine
        with metadata.connect() as conn:
            errors = conn.execute(text("SELECT filename, stacktrace FROM import_error")).all()
            if errors:
                raise ClusterError(f"DAG import errors: {errors}")
            found = {r[0] for r in conn.execute(text("SELECT dag_id FROM dag WHERE NOT is_stale"))}
        return set(dag_ids) <= found


def _alive(identity: Identity, procs: Mapping[str, subprocess.Popen]) -> bool:
    """The process still runs: its pid is not free, nor another process's now, nor a zombie."""
    for proc in procs.values():
        proc.poll()  # reap the leaders, so that only live processes answer
    pid = identity[0]
    if _identity(pid) != identity:
        return False
    with contextlib.suppress(OSError):  # a zombie no one reaps yet is gone for our purpose
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _postmaster_pid(url: str) -> int:
    """The pid of the server behind ``url`` (the first line of its ``postmaster.pid``)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        datadir = conn.execute(text("SHOW data_directory")).scalar_one()
    engine.dispose()
    return int((Path(datadir) / "postmaster.pid").read_text().split()[0])


def seed_target(url: str, per_phase: int) -> None:
    """The demo CRM as of today (Paris), with pgcrypto, as include/sql/least_privilege_roles.sql has it."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    seed_demo(engine, "crm", datetime.now(PARIS).date(), per_phase=per_phase)
    engine.dispose()


def _libpq(url: str) -> str:
    """A SQLAlchemy URL of the throwaway server in the form Airflow connections take."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def base_environment(work: Path, ports: Mapping[str, int], metadata_url: str, target_url: str) -> dict[str, str]:
    """Every component's environment: Airflow on the metadata database with Celery on Redis,
    the project's DAGs, the demo target's connection, a shared reports folder."""
    home = work / "airflow"
    api_url = f"http://127.0.0.1:{ports['api']}"
    return {
        **os.environ,
        **airflow_settings(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scripts.worker_name.worker_name",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url.replace("+psycopg", ""),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["log"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["triggerer_log"]),
        "AIRFLOW_CONN_RETENTION_TARGET": _libpq(target_url),
        # The key of the subject hashes (suppression list, rights register): the caller's, else a new one.
        SUBJECT_SECRET_VAR: os.environ.get(SUBJECT_SECRET_VAR) or secrets.token_hex(32),
        REPORTS_ENV_VAR: str(work / "reports"),
    }


def _schedule_dag_ids(env: Mapping[str, str]) -> list[str]:
    """The ``retention_<category>`` DAG of every category of every target served."""
    return [site.dag_id(f"retention_{key}") for site in sites(dict(env)) for key in site.policy().categories]


@contextlib.contextmanager
def running_cluster(
    work: Path, settings: Mapping[str, str] | None = None, *, per_phase: int = 6, api_port: int | None = None
) -> Iterator[Cluster]:
    """The whole deployment, ready (DAGs parsed, workers up), with ``settings`` added to every
    component's environment; every process stopped when the block ends."""
    with throwaway_postgres() as metadata_server, throwaway_postgres() as target_server:
        metadata_url = fresh_postgres_database(metadata_server)
        target_url = fresh_postgres_database(target_server)
        seed_target(target_url, per_phase)
        ports = {"api": api_port or free_port(), "redis": free_port(), "log": free_port(), "triggerer_log": free_port()}
        env = {**base_environment(work, ports, metadata_url, target_url), **(settings or {})}
        passwords = {user.split(":")[0]: secrets.token_urlsafe(12) for user in UI_USERS.split(",")}
        (work / "airflow").mkdir(parents=True, exist_ok=True)
        Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).write_text(json.dumps(passwords))
        cluster = Cluster(
            work=work,
            env=env,
            api_url=f"http://127.0.0.1:{ports['api']}",
            passwords=passwords,
            metadata_url=metadata_url,
            target_url=target_url,
            servers={
                "postgres-metadata": _postmaster_pid(metadata_url),
                "postgres-target": _postmaster_pid(target_url),
            },
        )
        try:
            cluster.watch()
            _start(cluster, ports["redis"])
            yield cluster
        finally:
            cluster.stop()


def import_pools(airflow: Callable[..., str], env: Mapping[str, str], folder: Path) -> None:
    """Create the targets' pools that do not exist yet, as every deployment must after ``airflow db
    migrate`` (a task in a missing pool is never scheduled), leaving the existing ones as an operator
    sized them (``airflow pools import`` overwrites a pool): ``python -m
    include.retention_airflow.targets --except-existing`` with the deployment's environment (its
    ``RETENTION_TARGETS``) and ``airflow pools list -o json``, then ``airflow pools import``."""
    existing = folder / "pools_existing.json"
    existing.write_text(airflow("pools", "list", "-o", "json"))
    pools = folder / "pools.json"
    pools.write_text(
        subprocess.run(
            [sys.executable, "-m", "include.retention_airflow.targets", "--except-existing", str(existing)],
            env=dict(env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=CLI_TIMEOUT,
        ).stdout
    )
    airflow("pools", "import", str(pools))


def _start(cluster: Cluster, redis_port: int) -> None:
    """Redis, the metadata database migrated and the pools imported, then every component."""
    redis_dir = cluster.work / "redis"
    redis_dir.mkdir(exist_ok=True)
    redis = shutil.which("redis-server") or "/usr/bin/redis-server"
    cluster.start(
        "redis",
        [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(redis_dir)]
        + ["--save", "", "--appendonly", "no"],
    )
    cluster.airflow("db", "migrate")
    import_pools(cluster.airflow, cluster.env, cluster.work)
    port = cluster.api_url.rsplit(":", 1)[1]
    cluster.start_airflow("api-server", "api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1")
    for name in ("scheduler", "dag-processor", "triggerer"):
        cluster.start_airflow(name, name)
    for name in WORKERS:
        cluster.start_airflow(
            name,
            *("celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(WORKER_CONCURRENCY)),
            env={
                WORKER_NAME_ENV_VAR: name,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                # libpq's default application_name: pg_stat_activity shows which worker holds a connection.
                "PGAPPNAME": name,
            },
        )
    cluster.wait_ready(_schedule_dag_ids(cluster.env))


def _announce(cluster: Cluster) -> None:
    print(
        f"""
Airflow (CeleryExecutor) is up; Ctrl-C stops everything.
  UI and REST API : {cluster.api_url}   (users: {", ".join(f"{u} / {p}" for u, p in cluster.passwords.items())})
  target CRM      : {_libpq(cluster.target_url)}   (connection retention_target)
  metadata        : {_libpq(cluster.metadata_url)}
  broker          : {cluster.env["AIRFLOW__CELERY__BROKER_URL"]}
  logs            : {cluster.work / "logs"}   reports: {cluster.env[REPORTS_ENV_VAR]}
  components      : {", ".join(cluster.procs)}
The DAGs are paused: unpause one in the UI, or trigger it with mode "Exécuter" ({{"mode": "execute"}}) to change data.
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-port", type=int, default=8080, help="the UI's and REST API's port (default 8080)")
    parser.add_argument("--per-phase", type=int, default=6, help="demo rows per retention phase in the target")
    parser.add_argument("--workdir", type=Path, help="where logs, reports and Redis live (default: a new temp dir)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="retention-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop as on Ctrl-C: the block's cleanup runs
    print(f"Starting PostgreSQL x2, Redis and Airflow in {work} (about a minute)...", flush=True)
    with running_cluster(work, per_phase=args.per_phase, api_port=args.api_port) as cluster:
        memory = PeakMemory(cluster.roots())
        memory.start()
        _announce(cluster)
        try:
            while True:
                cluster.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            print("\nStopping every component...", flush=True)
        finally:
            memory.stop()
            print(memory.table(), flush=True)


if __name__ == "__main__":
    main()

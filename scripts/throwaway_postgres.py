"""A throwaway PostgreSQL server for the test suite, the bench and `make cluster` (never a mock).

PostgreSQL refuses to run as root, so under root the server runs as the ``postgres``
system user (``runuser``). It listens on 127.0.0.1 on a free port with ``fsync`` off,
lives in a temporary directory, and is stopped when the context ends; its directory is
removed then by a detached ``rm``, which nothing waits for: a session leaves a database per
test (hundreds of files each), and removing them took the last test's teardown 40 s and more.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text


def find_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live; a clear error when PostgreSQL is missing."""
    candidates = []
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates.append(Path(bindir))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install them with "
        "'apt-get install -y postgresql' (.ci/run does this on a fresh machine)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a server and yield a SQLAlchemy URL to its ``postgres`` database."""
    bindir = find_bindir()
    workdir = Path(tempfile.mkdtemp(prefix="retention-pg-"))
    datadir = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
    port = free_port()
    run = lambda cmd: subprocess.run(_as_server_user(cmd), check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run([str(bindir / "initdb"), "-A", "trust", "-U", "postgres", "--no-sync", "-D", str(datadir)])
        run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-w",
                "-l",
                str(workdir / "server.log"),
                "start",
                "-o",
                f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
            ]
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"throwaway PostgreSQL failed: {exc.cmd}: {exc.stderr}") from exc
    finally:
        subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "stop"]), capture_output=True
        )
        # In the background of a shell that exits at once: no child is left to this process, and
        # no output pipe is held open (a `make test | tee` would wait for the removal).
        subprocess.run(
            ["sh", "-c", 'rm -rf -- "$0" &', str(workdir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def fresh_postgres_database(server_url: str, template: str | None = None) -> str:
    """A new database on the test server - empty, or a copy of ``template`` - and its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"

"""Where the project's evidence files go (certificates, reports, exports), their names, and how
they are written.

Names come from run ids and request references, which hold ``:``, ``+`` and ``/``: every file
name is made here, so two texts that read alike never share a file.

A folder is a ``Location``: a local ``pathlib.Path``, or a place in object storage that every
worker and the UI see (``s3://<conn_id>@bucket/prefix``...). The engine never imports Airflow:
it opens plain paths and ``file://`` URLs itself, and any other URL through the opener the
Airflow layer registers (``include/retention_airflow/storage.py``: Airflow's
``ObjectStoragePath``). Evidence is written here only (``write_new``, ``write_whole``), so that a
local disk keeps its flushed, one-step writes and object storage its whole-object writes.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from include.retention.errors import RetentionError
from include.retention.settings import REPORTS_ENV_VAR

DEFAULT_REPORTS_DIR = Path(__file__).resolve().parents[2] / "reports"


def safe_name(text: str) -> str:
    """``text`` as one file-name part: run ids hold ``:`` and ``+``, references may hold ``/``.

    Readable, but not unique (``DDP/2026/0042`` and ``DDP:2026:0042`` both read
    ``DDP_2026_0042``) nor bounded: a name derived from a run id or a reference is made with
    ``unique_name``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


READABLE_PREFIX_LIMIT = 64
HASH_SUFFIX_DIGITS = 16


def unique_name(text: str) -> str:
    """``text`` as one file-name part of its own: a readable prefix (``safe_name``, leading dots
    removed, cut to 64 characters) and, after ``~``, 16 hex digits of the SHA-256 of the exact
    text. Two texts that read alike (``DDP/2026/0042``, ``DDP:2026:0042``) get different names,
    and a name is at most 81 characters whatever the text's length (Airflow allows run ids of
    250; a file name may hold 255 bytes)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_SUFFIX_DIGITS]
    readable = safe_name(text).lstrip(".")[:READABLE_PREFIX_LIMIT]
    return f"{readable}~{digest}"


# The folder of the target being served, under the reports root: one deployment may serve several
# databases (include/retention_airflow/targets.py), and each one's certificates and anchors are
# compared with its own audit log only. A ContextVar, so that the UI's concurrent requests for
# two targets never see each other's folder; None: the root itself (a single target).
_SITE_FOLDER: ContextVar[str | None] = ContextVar("retention_site_folder", default=None)


@contextmanager
def site_folder(name: str | None) -> Iterator[None]:
    """Within the block, evidence files go to (and are read from) the folder ``name`` under
    the reports root; None keeps the root (the default target)."""
    if name is not None and safe_name(name) != name:
        raise ValueError(f"a site folder is one plain file name, got {name!r}")
    token = _SITE_FOLDER.set(name)
    try:
        yield
    finally:
        _SITE_FOLDER.reset(token)


class Location(Protocol):
    """A file or folder of evidence: the operations of ``pathlib.Path`` that Airflow's
    ``ObjectStoragePath`` has too, and the only ones the engine uses on evidence files."""

    @property
    def name(self) -> str: ...

    @property
    def parent(self) -> Location: ...

    def __truediv__(self, key: str) -> Location: ...

    def exists(self) -> bool: ...

    def is_dir(self) -> bool: ...

    def mkdir(self, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None: ...

    def glob(self, pattern: str) -> Iterable[Location]: ...

    def read_text(self, encoding: str | None = None) -> str: ...

    def read_bytes(self) -> bytes: ...

    def write_bytes(self, data: bytes) -> int: ...


Opener = Callable[[str], Location]

# What opens a URL that is not ``file://``: None until the Airflow layer registers one.
_opener: Opener | None = None


def register_opener(opener: Opener) -> None:
    """Let ``$RETENTION_REPORTS_DIR`` and ``$RETENTION_EXPORTS_DIR`` be URLs of object storage:
    the Airflow layer registers Airflow's ``ObjectStoragePath`` (the engine cannot import it)."""
    global _opener
    _opener = opener


_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")

# URLs of the local disk: ``file://`` and fsspec's ``local://`` name the same folder, and both
# are opened here as a ``pathlib.Path``, never through object storage, which would lose the
# owner-only exports and the writes that never replace a file.
LOCAL_SCHEMES = frozenset({"file", "local"})


def location(text: str, variable: str) -> Location:
    """``text`` - the value of ``variable`` - as a folder: a plain path or a ``file://`` (or
    ``local://``) URL is a local ``pathlib.Path`` (a local disk keeps its owner-only, flushed, one-step writes), any
    other URL is opened by the registered opener (``register_opener``).

    Without an opener (the engine alone, outside Airflow), a URL is refused naming ``variable``;
    the URL itself is not repeated: it may hold a connection id or a key."""
    url = _URL.match(text)
    if url is None:
        return Path(text)
    scheme = url["scheme"].lower()
    if scheme in LOCAL_SCHEMES:
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise RetentionError(
                f"${variable} is a {scheme}:// URL without an absolute path: write {scheme}:///<folder>"
            )
        return Path(unquote(parts.path))
    if _opener is None:
        raise RetentionError(
            f"${variable} is a {scheme}:// URL, which only Airflow's ObjectStoragePath opens: it is "
            "read inside Airflow (include.retention_airflow registers it); outside Airflow, set "
            f"${variable} to a local folder or a file:// URL"
        )
    return _opener(text)


def served_folder(variable: str, default: Path) -> Location:
    """The folder ``$variable`` names (else ``default``), and the served target's folder under
    it when there is one (``site_folder``)."""
    text = os.environ.get(variable)
    root = location(text, variable) if text else default
    folder = _SITE_FOLDER.get()
    return root if folder is None else root / folder


def reports_dir() -> Location:
    """Where run reports go: ``$RETENTION_REPORTS_DIR`` (a folder or a URL), else ``reports/``
    (not committed); the served target's folder under it when there is one (``site_folder``)."""
    return served_folder(REPORTS_ENV_VAR, DEFAULT_REPORTS_DIR)


def folder_missing(folder: Location) -> bool:
    """Whether the reports folder ``folder`` is missing (unmounted, or the variable wrong): then
    a log with events is not verified (fail closed) and no anchor is written to a root made
    elsewhere.

    The served target's own folder (``site_folder``) is not missing while its root is there: it
    appears with the target's first certificate or export, and until then the target has no
    evidence yet, not lost evidence. On a local disk it is created (its root must exist); in
    object storage, where a prefix exists only through what it holds, it is taken as empty."""
    if folder.is_dir():
        return False
    if _SITE_FOLDER.get() is None or str(folder) != str(reports_dir()):
        return True
    if not isinstance(folder, Path):
        return False
    if not folder.parent.is_dir():
        return True
    folder.mkdir(exist_ok=True)
    return False


def write_new(where: Location, content: bytes) -> bool:
    """Write a file of evidence that never replaces one: False, and nothing written, if ``where``
    is taken.

    On a local disk the content goes to a temporary name, is flushed to disk, then linked to its
    name - a link fails rather than replace a file, and a reader never sees half of one - and the
    folder is flushed (the file outlives a crash of the worker right after). In object storage,
    where an object is written whole or not at all, it is written if the name is free when
    checked: two writers of one name in the same instant could both write (a name holds a run id
    or the instant: only one task run twice at once could)."""
    if not isinstance(where, Path):
        if where.exists():
            return False
        where.write_bytes(content)
        return True
    temporary = _local_temporary(where, content, private=False)
    try:
        try:
            os.link(temporary, where)
        except FileExistsError:
            return False
        _flush_folder(where.parent)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def write_whole(where: Location, content: bytes, private: bool = False) -> None:
    """Write or replace ``where`` in one step: a reader sees the file before or after, never half
    of it. On a local disk: a temporary name, flushed, then moved over ``where`` (``private``:
    readable by its owner only, 0600); in object storage: one whole object (who reads it is the
    bucket's policy)."""
    if not isinstance(where, Path):
        where.write_bytes(content)
        return
    temporary = _local_temporary(where, content, private)
    try:
        os.replace(temporary, where)
        _flush_folder(where.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _local_temporary(path: Path, content: bytes, private: bool) -> Path:
    """``content`` in a new hidden file beside ``path``, flushed to disk."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _flush_folder(folder: Path) -> None:
    """Flush a folder's entries to disk: a new name outlives a crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

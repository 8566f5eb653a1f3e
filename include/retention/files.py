"""Where the project's evidence files go (certificates, reports, exports), and their names.

Names come from run ids and request references, which hold ``:``, ``+`` and ``/``: every file
name is made here, so two texts that read alike never share a file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

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


def current_site_folder() -> str | None:
    """The served target's folder name (None: the root, for the default target)."""
    return _SITE_FOLDER.get()


def reports_dir() -> Path:
    """Where run reports go: ``$RETENTION_REPORTS_DIR``, else ``reports/`` (not committed);
    the served target's folder under it when there is one (``site_folder``)."""
    root = Path(os.environ.get(REPORTS_ENV_VAR) or DEFAULT_REPORTS_DIR)
    folder = _SITE_FOLDER.get()
    return root if folder is None else root / folder

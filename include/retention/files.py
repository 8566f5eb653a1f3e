"""Where the project's evidence files go (certificates, reports, exports), and their names.

Names come from run ids and request references, which hold ``:``, ``+`` and ``/``: every file
name is made here, so two texts that read alike never share a file.
"""

from __future__ import annotations

import hashlib
import os
import re
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


def reports_dir() -> Path:
    """Where run reports go: ``$RETENTION_REPORTS_DIR``, else ``reports/`` (not committed)."""
    return Path(os.environ.get(REPORTS_ENV_VAR) or DEFAULT_REPORTS_DIR)

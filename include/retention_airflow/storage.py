"""Evidence in object storage: ``$RETENTION_REPORTS_DIR`` and ``$RETENTION_EXPORTS_DIR`` may be
URLs that Airflow's ``ObjectStoragePath`` opens - ``s3://<conn_id>@bucket/prefix``,
``gs://...`` - so that the workers that write certificates, anchors, reports and exports and
the UI that reads them, on other hosts, see one place. Which store is configuration, not code.

The engine cannot import Airflow: importing this module registers the opener with it
(``files.register_opener``). ``hooks`` imports it, and every task module and the Retention
view import ``hooks``. A ``file://`` or ``local://`` URL or a plain path never comes here: the engine keeps a
local disk's owner-only, flushed, one-step writes.
"""

from __future__ import annotations

from airflow.sdk import ObjectStoragePath

from include.retention.errors import RetentionError
from include.retention.files import Location, register_opener

# fsspec stores that keep nothing beyond one process or one host: evidence written there would
# be lost when the worker ends, and the UI and the other workers never see it.
NOT_PERSISTENT_SCHEMES = frozenset({"memory", "simplecache", "filecache", "blockcache"})


def open_location(url: str) -> Location:
    """The folder at ``url``, through the Airflow connection the URL names
    (``s3://<conn_id>@bucket/prefix``; without one, the store's default credentials).

    A store that does not outlive the process (``memory://``, fsspec's caches) is refused,
    naming the scheme only (the URL may name a connection)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in NOT_PERSISTENT_SCHEMES:
        raise RetentionError(
            f"evidence cannot be kept in {scheme}://, which lives in one process or host only: set "
            "$RETENTION_REPORTS_DIR and $RETENTION_EXPORTS_DIR to a local folder or a bucket every worker shares"
        )
    return ObjectStoragePath(url)


register_opener(open_location)

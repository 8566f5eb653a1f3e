"""The host name a Celery worker of ``make cluster`` gives the tasks it runs.

Airflow records on each task instance the host that ran it (``[core] hostname_callable``,
the machine's name by default). The two workers of ``scripts/cluster.py`` share one machine,
so each is told its own name in ``$RETENTION_WORKER_NAME`` and reports it through this
callable: the task instance then says which worker ran it, as on two machines.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV_VAR = "RETENTION_WORKER_NAME"


def worker_name() -> str:
    """``$RETENTION_WORKER_NAME``, else the machine's name (a component that is no worker)."""
    return os.environ.get(WORKER_NAME_ENV_VAR) or socket.getfqdn()

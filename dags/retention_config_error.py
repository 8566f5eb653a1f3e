"""
# Configuration errors of targets

When this deployment serves several databases (`$RETENTION_TARGETS`), a target whose
configuration cannot be used - its policy file unreadable or invalid, or
`$RETENTION_APPROVAL_ALERT_HOURS` at or past its policy's `approval_timeout_hours` - has none of
its DAGs; the other targets keep theirs. In their place, `retention_config_error_<target>`: active
at creation, daily, one task that fails with what to fix, so the failure alert is sent. With the
one default target, such a mistake stays an import error of every DAG file, as before.

See `include/retention_airflow/site_dags.py`.
"""

from __future__ import annotations

from include.retention_airflow.site_dags import config_error_dags

globals().update(config_error_dags())

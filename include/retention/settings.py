"""Every environment variable the project reads, and every bound written in more than one place.

One constant each, so that the engine, the policy's validation, the DAGs' forms and the UI
cannot drift apart (a DAG form that accepts a batch size the engine then refuses).
Nothing here reads the environment: the modules that need a value read it by these names.
"""

from __future__ import annotations

# --- Environment variables ---------------------------------------------------------------

# The policy file, when no path is given (policy/load.py); else the shipped one.
POLICY_ENV_VAR = "RETENTION_POLICY"
# The folder every worker shares for certificates, run reports and audit anchors (files.py).
REPORTS_ENV_VAR = "RETENTION_REPORTS_DIR"
# The folder for access and portability exports (rights/export.py): personal data, keep it apart.
EXPORTS_ENV_VAR = "RETENTION_EXPORTS_DIR"
# The subject key, when the Airflow Variable is not set (database/identity.py): keyed hashes of
# identifiers in the audit log, the hold register and the suppression list all depend on it.
KEY_ENV_VAR = "RETENTION_SUBJECT_SECRET"

# --- Environment variables of the Airflow deployment (include/retention_airflow) ----------

# The target databases one deployment serves, ``name=policy_file,...`` (targets.py); unset: one.
TARGETS_ENV_VAR = "RETENTION_TARGETS"
# Seconds between a failed task and its retry (dag_defaults.py); unset: ten minutes.
RETRY_DELAY_ENV_VAR = "RETENTION_RETRY_DELAY_SECONDS"
# Alerts (alerts.py): who is mailed through Airflow's SMTP notifier, over which connection...
ALERT_EMAILS_ENV_VAR = "RETENTION_ALERT_EMAILS"
ALERT_SMTP_CONN_ENV_VAR = "RETENTION_ALERT_SMTP_CONN"
# ...and a Slack channel through the Slack provider's notifier, when its connection is named.
ALERT_SLACK_CONN_ENV_VAR = "RETENTION_ALERT_SLACK_CONN"
ALERT_SLACK_CHANNEL_ENV_VAR = "RETENTION_ALERT_SLACK_CHANNEL"
# Hours a run may wait (for an approval) before someone is told.
APPROVAL_ALERT_HOURS_ENV_VAR = "RETENTION_APPROVAL_ALERT_HOURS"
# The users who may answer a run's approval (approval.py); unset: anyone whose role may.
APPROVERS_ENV_VAR = "RETENTION_APPROVERS"

# --- Bounds --------------------------------------------------------------------------------

# Rows per transaction: the policy (top level and per category), the run's Param in the DAG
# form and the step itself all accept 1 to this. 0 would loop on nothing; a huge batch is
# one endless transaction holding its locks.
MIN_BATCH_SIZE = 1
MAX_BATCH_SIZE = 1_000_000

# A policy is a few kilobytes (the shipped one: 8 KB, about 500 YAML nodes). The bounds are
# generous for any real schedule and stop a hostile or broken file long before it costs
# seconds or memory: a "billion laughs" of a few hundred bytes expands to 10**12 nodes.
# policy/safe_yaml.py enforces them; the policy reference states them.
MAX_POLICY_BYTES = 1_000_000
MAX_POLICY_NODES = 50_000

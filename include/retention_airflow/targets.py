"""Which target databases one Airflow deployment serves, and what each one's name gives.

By default one target: the connection ``retention_target``, the policy ``$RETENTION_POLICY``
(else the shipped one), the DAG ids of the project (``retention_<category>``...). A deployment
that serves several CRM databases names them in ``$RETENTION_TARGETS``::

    RETENTION_TARGETS="paris=/opt/policies/paris.yaml,lyon=/opt/policies/lyon.yaml"

and then, for each target ``<name>``, without copying a DAG file:

- its connection is ``retention_target_<name>`` (``AIRFLOW_CONN_RETENTION_TARGET_PARIS``);
- its policy is the file given (a relative path is read from the project root);
- every DAG of the project exists once per target, its id suffixed ``_<name>``
  (``retention_prospection_paris``, ``subject_request_paris``...), tagged ``target:<name>``;
- its destructive tasks share the Airflow pool named like its connection, so that two runs
  on one database never hold more batch transactions than the pool allows;
- its certificates, reports and anchors go to a folder of their own under the reports root,
  next to the audit log in its own database: one target's evidence never mixes with another's.

Target names are short lower-case words (``[a-z][a-z0-9]*``, at most 20 characters): no
``_``, so a DAG id reads back to one (DAG, target) pair. A mistake in the variable fails the
parse of every DAG with a message naming the entry, rather than serving a target half-way.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from include.retention.policy.load import load_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.settings import TARGETS_ENV_VAR

DEFAULT_CONN_ID = "retention_target"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{0,19}")
# Pool slots a target gets when none is said: enough for the largest ``batch_workers`` (8).
DEFAULT_POOL_SLOTS = 8


class TargetsError(ValueError):
    """``$RETENTION_TARGETS`` cannot be read: the message names the entry and what is wrong."""


@dataclass(frozen=True)
class Site:
    """One target database as the deployment serves it. ``name`` is None for the default one."""

    name: str | None
    policy_path: Path | None  # None: $RETENTION_POLICY, else the shipped policy

    @property
    def conn_id(self) -> str:
        """The Airflow connection of its database."""
        return DEFAULT_CONN_ID if self.name is None else f"{DEFAULT_CONN_ID}_{self.name}"

    @property
    def pool(self) -> str:
        """The Airflow pool its destructive tasks share (named like the connection)."""
        return self.conn_id

    def dag_id(self, base: str) -> str:
        """The id of the project's DAG ``base`` for this target."""
        return base if self.name is None else f"{base}_{self.name}"

    @property
    def tags(self) -> list[str]:
        """Extra DAG tags: the target's name, for filtering the DAG list by database."""
        return [] if self.name is None else [f"target:{self.name}"]

    @property
    def reports_folder(self) -> str | None:
        """Its folder under the reports root (None: the root itself, for the default target)."""
        return self.name

    def policy(self) -> RetentionPolicy:
        """Its policy, loaded and validated (``PolicyError`` names the file)."""
        return load_policy(self.policy_path)


DEFAULT_SITE = Site(name=None, policy_path=None)


def sites(environ: dict[str, str] | None = None) -> list[Site]:
    """The targets this deployment serves, in the order ``$RETENTION_TARGETS`` gives them."""
    spec = (os.environ if environ is None else environ).get(TARGETS_ENV_VAR, "").strip()
    if not spec:
        return [DEFAULT_SITE]
    found: dict[str, Site] = {}
    for entry in (e.strip() for e in spec.split(",")):
        name, sep, path = (part.strip() for part in entry.partition("="))
        if not sep or not path:
            raise TargetsError(f"{TARGETS_ENV_VAR}: entry {entry!r} is not name=policy_file")
        if not NAME_PATTERN.fullmatch(name):
            raise TargetsError(
                f"{TARGETS_ENV_VAR}: target name {name!r} must be a lower-case letter then letters or digits "
                "(at most 20, no '_')"
            )
        if name in found:
            raise TargetsError(f"{TARGETS_ENV_VAR}: target {name!r} is named twice")
        policy_path = Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path
        found[name] = Site(name=name, policy_path=policy_path)
    return list(found.values())


def site_named(name: str | None, environ: dict[str, str] | None = None) -> Site:
    """The target ``name`` (None: the default one) among those served; KeyError if not served."""
    for site in sites(environ):
        if site.name == name:
            return site
    raise KeyError(f"target {name!r} is not in {TARGETS_ENV_VAR}")


def pools(environ: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    """The pools to create, in the form ``airflow pools import`` reads."""
    return {
        site.pool: {
            "slots": DEFAULT_POOL_SLOTS,
            "description": f"Batch transactions side by side on the database of connection {site.conn_id}",
            "include_deferred": False,
        }
        for site in sites(environ)
    }


def existing_pool_names(listing: str, source: str) -> set[str]:
    """The pool names in ``airflow pools list -o json`` output (a list of ``{"pool": name, ...}``).
    ``source`` names where it came from, for the message when it is not that."""
    try:
        rows = json.loads(listing)
        return {row["pool"] for row in rows}
    except (ValueError, TypeError, KeyError) as exc:
        raise TargetsError(f"{source} is not the output of 'airflow pools list -o json' ({exc})") from exc


def missing_pools(existing: set[str], environ: dict[str, str] | None = None) -> dict[str, dict[str, object]]:
    """The targets' pools that do not exist yet. A deployment imports only these at each start:
    ``airflow pools import`` overwrites a pool, so importing them all would undo every size an
    operator has set since (``airflow pools set``)."""
    return {name: pool for name, pool in pools(environ).items() if name not in existing}


def main(argv: list[str]) -> int:
    """``targets``: every target's pool; ``targets --except-existing FILE``: only those missing
    from FILE, the output of ``airflow pools list -o json``. Printed as ``airflow pools import`` reads."""
    if not argv:
        wanted = pools()
    elif len(argv) == 2 and argv[0] == "--except-existing":
        wanted = missing_pools(existing_pool_names(Path(argv[1]).read_text(), argv[1]))
    else:
        sys.stderr.write("usage: python -m include.retention_airflow.targets [--except-existing POOLS_LIST_JSON]\n")
        return 2
    json.dump(wanted, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    # At each start of a deployment, after ``airflow db migrate``:
    #   airflow pools list -o json > existing.json
    #   python -m include.retention_airflow.targets --except-existing existing.json > pools.json
    #   airflow pools import pools.json
    sys.exit(main(sys.argv[1:]))

"""
# Legal hold

Trigger it from the UI to **add**, **list** or **lift** a legal hold: data that must be kept
whatever the retention schedule says (litigation, a regulator's inquiry, a tax audit).

A hold protects, until it is lifted or its `expires_on` date:

- **subject**: every row about a person (give their e-mail, phone, customer number or
  visitor id; the register stores only the keyed hash);
- **category**: every row of one category of the schedule;
- **rows**: the listed primary keys (`keys`, e.g. `[1042, 1043]`; a composite key as a list)
  of one table of the policy; each key must name a row, active or archived.

Held rows are never archived, deleted or anonymised - by the nightly `retention_*` runs or by
a `subject_request` erasure - and plans, certificates and the DPO report count them. A hold
on a child row keeps its parent's whole tree. Adding, lifting and each expiry are written to
the audit log (reference, scope, counts; the reason stays in the register).

The hold's creator is the user who triggered the run, or `requested_by` when given.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from include.retention.language import N_, translator
from include.retention.records.holds import SCOPES
from include.retention_airflow import dag_defaults, rights_tasks
from include.retention_airflow.site_dags import for_each_site
from include.retention_airflow.targets import Site

# How the form names each scope (translated where shown).
SCOPE_LABELS: dict[str, str] = {
    "subject": N_("A person (by identifier)"),
    "category": N_("A whole category"),
    "rows": N_("Rows of a table (by key)"),
}

# The JSON Schema keywords of an optional identifier field, as Param takes them.
IDENTIFIER: dict[str, Any] = {"type": ["null", "string"], "maxLength": 200}


def build_dag(site: Site) -> DAG:
    """``legal_hold`` of one target: the register of holds in its database, its categories and tables."""
    policy = site.policy()
    _ = translator(policy.language, "airflow")
    tables = sorted({n.table for c in policy.categories.values() for t in c.tables for n in t.walk()})
    with DAG(
        dag_id=site.dag_id("legal_hold"),
        description="Add, list or lift a legal hold (data kept whatever the schedule says)",
        schedule=None,
        **dag_defaults.LEGAL_HOLD.arguments(doc_md=__doc__, timezone=policy.timezone, site=site, lang=policy.language),
        params={
            "action": Param(
                "list",
                enum=["add", "list", "lift"],
                values_display={"add": _("Add a hold"), "list": _("List the holds"), "lift": _("Lift a hold")},
                title=_("Action"),
                description=_("What to do. List changes nothing."),
            ),
            # "(?!\n)": in Python (which checks the form), "$" alone also matches before a final newline.
            "reference": Param(
                None,
                type=["null", "string"],
                maxLength=64,
                pattern=r"^[A-Za-z0-9_.:-]+$(?!\n)",
                title=_("Reference"),
                description=_(
                    "The hold's reference, e.g. a case number (RG-2026-0042). Never a name: it is written to the audit log."
                ),
            ),
            "scope": Param(
                "subject",
                enum=list(SCOPES),
                values_display={scope: _(label) for scope, label in SCOPE_LABELS.items()},
                title=_("Scope"),
                description=_("What the hold protects (add only)."),
            ),
            "category": Param(
                None,
                type=["null", "string"],
                enum=[None, *policy.categories],
                title=_("Category"),
                description=_("Scope 'category': the category held."),
            ),
            "table": Param(
                None,
                type=["null", "string"],
                enum=[None, *tables],
                title=_("Table"),
                description=_("Scope 'rows': the table whose rows are held."),
            ),
            "keys": Param(
                None,
                type=["null", "array"],
                maxItems=100_000,
                title=_("Keys"),
                description=_("Scope 'rows': the primary keys held, e.g. [1042, 1043]."),
            ),
            "email": Param(
                None, **IDENTIFIER, title=_("E-mail"), description=_("Scope 'subject': the person's e-mail address.")
            ),
            "phone": Param(
                None, **IDENTIFIER, title=_("Phone"), description=_("Scope 'subject': the person's phone number.")
            ),
            "customer_number": Param(
                None, **IDENTIFIER, title=_("Customer number"), description=_("Scope 'subject': the customer number.")
            ),
            "visitor_id": Param(
                None,
                **IDENTIFIER,
                title=_("Visitor id"),
                description=_("Scope 'subject': the web visitor's tracking id."),
            ),
            "reason": Param(
                None,
                type=["null", "string"],
                maxLength=2000,
                title=_("Reason"),
                description=_("Why (the proceedings, the inquiry): kept in the register, not in the log."),
            ),
            "expires_on": Param(
                None,
                type=["null", "string"],
                format="date",
                title=_("Expires on"),
                description=_("When the hold ends by itself (YYYY-MM-DD); empty: until lifted."),
            ),
            "lift_reason": Param(
                None, type=["null", "string"], maxLength=2000, title=_("Why lift"), description=_("Lift only: why.")
            ),
            "requested_by": Param(
                None,
                type=["null", "string"],
                maxLength=128,
                title=_("Requested by"),
                description=_("Who asks, when not the user triggering the run."),
            ),
        },
    ) as dag:
        # Adding or lifting a hold changes the target's data in one transaction: a slot of its pool.
        @task(pool=site.pool)
        def change_holds() -> dict:
            """Add or lift the hold (audited), record expiries, and list the register."""
            return rights_tasks.legal_hold(site)

        change_holds()
    return dag


# Each target on its own: one target's unusable configuration leaves the others' DAGs (site_dags).
globals().update(for_each_site(lambda site: [build_dag(site)]))

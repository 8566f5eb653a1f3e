"""
# Data-subject request

Trigger it from the UI with the form when a person exercises a right. The request is
recorded in the rights-request register (policy key `rights_register`) with its deadline:
one month from receipt, three months when extended (give the reason). The form has no
default type or identity check: the person filling it chooses both. A request whose identity
check is `pending` is recorded and waits for the verification (its deadline runs): its task
ends *skipped* with a message saying so; trigger it again with the same reference, type and
receipt date and `identity: verified` to carry it out. A reference is
handled once: a second run with the same reference is refused once the request is completed.
A request left `in progress` (its worker died: the handling is one transaction, so nothing of
it was done) is carried out by triggering it again with the same reference, type and receipt
date; it is recorded and audited as received only once, and two runs never carry it out twice.

What each type does once the identity is verified (the outcome per table is in the
register and the task log):

- **access** / **portability**: a zip (JSON + one CSV per table) in `$RETENTION_EXPORTS_DIR`,
  with each category's purpose, legal basis and periods; portability holds only the
  columns the person provided (`provided_columns`);
- **rectification**: `changes` (`{"table": {"column": "new value"}}`) applied to the person's
  active rows after every value is checked; a start date needs `correct_start_date`;
- **erasure**: the person's rows deleted in every category, active and archive, children
  included, in one transaction - except where a legal obligation keeps them
  (`on_erasure: keep`, e.g. invoices for 10 years), which the outcome says with the basis;
- **opposition** (to prospection): the prospection data deleted and the e-mail/phone put on
  the suppression list (keyed hashes), which imports and a post-run check honour;
- **consent_withdrawal**: the visitor's tracking data deleted at once, whatever its age.

Identifiers are validated before anything is written; a NUL byte or an over-long value in
any field is refused naming the field (never showing the value). The audit trail stores only their
keyed hashes (Variable `retention_subject_secret`); the task log shows counts, never an
identifier.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, task

from include.retention.language import N_, translator
from include.retention.rights.requests import REQUEST_TYPES
from include.retention_airflow import dag_defaults, rights_tasks
from include.retention_airflow.site_dags import for_each_site
from include.retention_airflow.targets import Site

# How the form names each request type (translated where shown).
REQUEST_LABELS: dict[str, str] = {
    "access": N_("Access (art. 15)"),
    "rectification": N_("Rectification (art. 16)"),
    "erasure": N_("Erasure (art. 17)"),
    "portability": N_("Portability (art. 20)"),
    "opposition": N_("Opposition (art. 21)"),
    "consent_withdrawal": N_("Consent withdrawal (art. 7(3))"),
}

# The JSON Schema keywords of an optional identifier field, as Param takes them.
IDENTIFIER: dict[str, Any] = {"type": ["null", "string"], "maxLength": 200}


def request_params(lang: str) -> dict[str, Param]:
    """The ``subject_request`` form, in ``lang``. The request type and the identity check have no
    default: a form left as it opens cannot start an erasure, nor stop at a pending identity
    that nobody chose."""
    _ = translator(lang, "airflow")
    return {
        "request_type": Param(
            type="string",
            enum=list(REQUEST_TYPES),
            values_display={kind: _(label) for kind, label in REQUEST_LABELS.items()},
            title=_("Request type"),
            description=_("What the person asks for."),
        ),
        "reference": Param(
            "",
            type="string",
            minLength=1,
            maxLength=64,
            pattern=r"^[A-Za-z0-9_.:/-]+$",
            title=_("Reference"),
            description=_("The request's reference (unique), e.g. DDP-2026-0042."),
        ),
        "received": Param(
            "",
            type="string",
            format="date",
            title=_("Received on"),
            description=_("Date the request was received (YYYY-MM-DD)."),
        ),
        "identity": Param(
            type="string",
            enum=["verified", "pending"],
            values_display={"verified": _("Verified: carry the request out"), "pending": _("Pending: record it only")},
            title=_("Identity check"),
            description=_(
                "Verified: the request is carried out now. Pending: it is recorded, its deadline runs, and "
                "the run ends saying it waits for the verification."
            ),
        ),
        "email": Param(None, **IDENTIFIER, title=_("E-mail"), description=_("The person's e-mail address, if given.")),
        "phone": Param(None, **IDENTIFIER, title=_("Phone"), description=_("The person's phone number, if given.")),
        "customer_number": Param(
            None, **IDENTIFIER, title=_("Customer number"), description=_("The person's customer number, if given.")
        ),
        "visitor_id": Param(
            None, **IDENTIFIER, title=_("Visitor id"), description=_("The web visitor's tracking id, if given.")
        ),
        "extension_reason": Param(
            None,
            type=["null", "string"],
            maxLength=500,
            title=_("Extension reason"),
            description=_("Why the deadline is extended by two months (complex request)."),
        ),
        "changes": Param(
            None,
            type=["null", "object"],
            title=_("Changes"),
            description=_('Rectification only: {"table": {"column": "new value"}}.'),
        ),
        "correct_start_date": Param(
            False,
            type="boolean",
            title=_("Corrects a start date"),
            description=_("Rectification only: the request corrects a retention start date."),
        ),
    }


def build_dag(site: Site) -> DAG:
    """``subject_request`` of one target: its register, its data, its folder of exports."""
    policy = site.policy()
    with DAG(
        dag_id=site.dag_id("subject_request"),
        description="Record and carry out a data-subject request (GDPR art. 15-21)",
        schedule=None,
        **dag_defaults.SUBJECT_REQUEST.arguments(
            doc_md=__doc__, timezone=policy.timezone, site=site, lang=policy.language
        ),
        params=request_params(policy.language),
    ) as dag:
        # It changes the target's data in one transaction: a slot of the target's pool.
        @task(pool=site.pool)
        def handle_request() -> dict:
            """Record the request, then carry it out once the identity is verified."""
            return rights_tasks.subject_request(site)

        handle_request()
    return dag


# Each target on its own: one target's unusable configuration leaves the others' DAGs (site_dags).
globals().update(for_each_site(lambda site: [build_dag(site)]))

"""The demo CRM: a small but realistic schema for the seven categories of the charter.

It lives in schema ``crm`` on PostgreSQL and in the main database on SQLite. Foreign keys
link children to parents within a category. Subscriptions carry the customer's business
number rather than a foreign key to ``customers``: billing records outlive the customer
relationship by years, and a foreign key across two categories with different clocks
would make one block the other (declared cross-category dependants come later).

The engine never imports this module: it only knows what the policy file names.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

from include.retention.database.store import register_table


def build_metadata(schema: str | None) -> MetaData:
    """All demo tables in ``schema`` (``None`` for SQLite's main database)."""
    md = MetaData(schema=schema)
    prefix = f"{schema}." if schema else ""

    def fk(target: str) -> ForeignKey:
        return ForeignKey(prefix + target)

    ts = DateTime(timezone=True)

    Table(
        "web_form_submissions",
        md,
        Column("submission_id", Integer, primary_key=True),
        Column("form_name", String(50), nullable=False),
        Column("full_name", String(120)),
        Column("email", String(200)),
        Column("phone", String(30)),
        Column("company", String(120)),
        Column("message", Text),
        Column("marketing_opt_in", Boolean, nullable=False, default=False),
        Column("submitted_at", ts),
        Column("last_inbound_contact_at", ts),
    )

    Table(
        "tracking_cookies",
        md,
        Column("cookie_id", Integer, primary_key=True),
        Column("visitor_key", String(64), nullable=False, unique=True),
        Column("first_set_at", ts),
        Column("last_seen_at", ts),
        Column("user_agent", String(200)),
        Column("ip_address", String(45)),
    )
    Table(
        "tracking_events",
        md,
        Column("event_id", Integer, primary_key=True),
        Column("cookie_id", Integer, fk("tracking_cookies.cookie_id"), nullable=False, index=True),
        Column("occurred_at", ts, nullable=False),
        Column("page_url", String(300)),
        Column("referrer", String(300)),
    )
    Table(
        "tracking_consents",
        md,
        Column("consent_id", Integer, primary_key=True),
        Column("cookie_id", Integer, fk("tracking_cookies.cookie_id"), nullable=False, index=True),
        Column("decision", String(20), nullable=False),
        Column("decided_at", ts, nullable=False),
    )

    Table(
        "prospects",
        md,
        Column("prospect_id", Integer, primary_key=True),
        Column("first_name", String(80)),
        Column("last_name", String(80)),
        Column("email", String(200)),
        Column("phone", String(30)),
        Column("company", String(120)),
        Column("job_title", String(120)),
        Column("marketing_notes", Text),
        Column("preferences", String(200)),
        Column("commercial_consent", Boolean),
        Column("created_at", ts, nullable=False),
        Column("last_inbound_contact_at", ts),
    )
    Table(
        "prospect_interactions",
        md,
        Column("interaction_id", Integer, primary_key=True),
        Column("prospect_id", Integer, fk("prospects.prospect_id"), nullable=False, index=True),
        Column("occurred_at", ts, nullable=False),
        Column("direction", String(10), nullable=False),  # inbound: from the person; outbound: from us
        Column("channel", String(20), nullable=False),
        Column("kind", String(30), nullable=False),
        Column("summary", Text),
    )

    Table(
        "customers",
        md,
        Column("customer_id", Integer, primary_key=True),
        Column("customer_number", String(20), nullable=False, unique=True),
        Column("company_name", String(120)),
        Column("contact_name", String(120)),
        Column("email", String(200)),
        Column("phone", String(30)),
        Column("billing_address", String(250)),
        Column("postcode", String(10)),
        Column("city", String(80)),
        Column("notes", Text),
        Column("created_at", ts, nullable=False),
        Column("relationship_ended_at", Date),
    )
    Table(
        "customer_contracts",
        md,
        Column("contract_id", Integer, primary_key=True),
        Column("customer_id", Integer, fk("customers.customer_id"), nullable=False, index=True),
        Column("reference", String(30), nullable=False),
        Column("product", String(80)),
        Column("signed_at", Date),
        Column("ended_at", Date),
        Column("amount", Numeric(12, 2)),
    )

    Table(
        "subscriptions",
        md,
        Column("subscription_id", Integer, primary_key=True),
        Column("customer_number", String(20), nullable=False),
        Column("plan", String(40)),
        Column("billing_email", String(200)),
        Column("payment_card_number", String(25)),  # never archived (see the policy)
        Column("started_at", Date, nullable=False),
        Column("ended_at", Date),
    )
    Table(
        "invoices",
        md,
        Column("invoice_id", Integer, primary_key=True),
        Column("subscription_id", Integer, fk("subscriptions.subscription_id"), nullable=False, index=True),
        Column("invoice_number", String(30), nullable=False),
        Column("issued_at", Date, nullable=False),
        Column("billing_name", String(120)),
        Column("billing_address", String(250)),
        Column("amount_excl_tax", Numeric(12, 2)),
        Column("vat_amount", Numeric(12, 2)),
        Column("amount_incl_tax", Numeric(12, 2)),
    )

    Table(
        "suppliers",
        md,
        Column("supplier_id", Integer, primary_key=True),
        Column("company_name", String(120), nullable=False),
        Column("siret", String(14)),
        Column("contact_name", String(120)),
        Column("contact_email", String(200)),
        Column("contact_phone", String(30)),
        Column("iban", String(34)),
        Column("created_at", ts, nullable=False),
        Column("relationship_ended_at", Date),
    )
    Table(
        "supplier_contracts",
        md,
        Column("supplier_contract_id", Integer, primary_key=True),
        Column("supplier_id", Integer, fk("suppliers.supplier_id"), nullable=False, index=True),
        Column("reference", String(30), nullable=False),
        Column("subject", String(200)),
        Column("signed_at", Date),
        Column("ended_at", Date),
        Column("amount", Numeric(12, 2)),
    )

    # The register of data-subject requests is the project's own table (include/retention/rights/requests.py).
    register_table(schema, "rights_requests").to_metadata(md)
    return md

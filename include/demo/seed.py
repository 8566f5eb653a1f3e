"""Synthetic French data for the demo CRM, spread over every phase of the schedule.

For each category the seed draws start events so that, on ``as_of``, some rows are still
active, some are due for the archive and some have reached end of life. It adds the
edge cases the charter cares about: a missing start date, a start on 29 February, a
start exactly on the boundary (due that very day) and one a day later (not yet due),
stamped 00:30 in Paris - still the previous day in UTC - to catch time-zone slips.

Everything is deterministic for a given ``seed`` and ``as_of``. Dates are relative to
``as_of``, so the demo shows all phases whatever day it runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from faker import Faker
from sqlalchemy import Engine, MetaData, Table, insert, text

from include.retention.database.identity import SubjectKey
from include.retention.dates.periods import Period
from include.retention.records.suppression import CONTACT_KINDS, refuse_suppressed
from include.retention.rights.requests import due_date

from .schema import build_metadata

PARIS = ZoneInfo("Europe/Paris")
PHASES = ("active", "archive", "end_of_life")


@dataclass(frozen=True)
class Clock:
    """One category's periods, to draw start dates in a chosen phase."""

    active: Period
    archive: Period
    as_of: date

    def phase(self, start: date) -> str:
        end_active = self.active.add_to(start)
        if end_active > self.as_of:
            return "active"
        return "archive" if self.archive.add_to(end_active) > self.as_of else "end_of_life"

    def boundary(self) -> date:
        """The latest start that is due on ``as_of`` - due exactly today."""
        return self.active.last_due_start(self.as_of)

    def draw(self, rng: random.Random, phase: str) -> date:
        span = (self.active.total_months + self.archive.total_months) * 31 + 800
        for _ in range(10_000):
            start = self.as_of - timedelta(days=rng.randint(0, span))
            if self.phase(start) == phase:
                return start
        raise RuntimeError(f"no start date found in phase {phase}")


def at_paris(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


def create_demo_schema(engine: Engine, schema: str | None) -> MetaData:
    """(Re)create the demo tables, dropping earlier demo data."""
    metadata = build_metadata(schema)
    with engine.begin() as conn:
        if schema:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        metadata.drop_all(conn)
        metadata.create_all(conn)
    return metadata


def seed_demo(
    engine: Engine,
    schema: str | None,
    as_of: date,
    seed: int = 42,
    per_phase: int = 6,
    suppression: tuple[Table, SubjectKey] | None = None,
) -> dict[str, int]:
    """Create and fill the demo CRM; returns rows inserted per table.

    With ``suppression`` (the list and the subject key), prospects are imported the way any
    import must be: a batch holding an address of someone who opposed prospection is
    refused before anything is written.
    """
    faker = Faker("fr_FR")
    faker.seed_instance(seed)
    rng = random.Random(seed)
    rows: dict[str, list[dict[str, Any]]] = {name.split(".")[-1]: [] for name in build_metadata(schema).tables}
    for build in (_web_forms, _tracking, _prospects, _customers, _subscriptions, _suppliers, _rights_requests):
        build(rows, faker, rng, as_of, per_phase)
    if suppression is not None:
        with engine.connect() as conn:
            for kind in CONTACT_KINDS:
                refuse_suppressed(conn, *suppression, kind, (r[kind] for r in rows["prospects"]))
    metadata = create_demo_schema(engine, schema)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            data = rows[table.name]
            if data:
                conn.execute(insert(table), data)
        if engine.dialect.name == "postgresql":
            _advance_sequences(conn, metadata)
    return {name: len(data) for name, data in rows.items()}


def _advance_sequences(conn: Any, metadata: MetaData) -> None:
    """Explicit ids were inserted; move each serial sequence past them."""
    for table in metadata.sorted_tables:
        (pk,) = table.primary_key.columns
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:t, :c), (SELECT coalesce(max({pk.name}), 1) FROM {table.fullname}))"
            ),
            {"t": table.fullname, "c": pk.name},
        )


def _starts(clock: Clock, rng: random.Random, per_phase: int, missing: int = 2) -> list[date | None]:
    """Start dates in every phase plus the edge cases, in a stable order."""
    phases = [p for p in PHASES if p != "archive" or not clock.archive.is_zero]
    starts: list[date | None] = [clock.draw(rng, p) for p in phases for _ in range(per_phase)]
    starts += [None] * missing
    starts += [date(2020, 2, 29), date(2024, 2, 29), clock.boundary(), clock.boundary() + timedelta(days=1)]
    return starts


def _stamp(day: date | None, rng: random.Random, edge: bool = False) -> datetime | None:
    if day is None:
        return None
    # Boundary rows are stamped 00:30 in Paris: the previous day in UTC.
    return at_paris(day, 0, 30) if edge else at_paris(day, rng.randint(8, 19), rng.choice((0, 15, 30, 45)))


def _is_edge(i: int, starts: list[Any]) -> bool:
    return i >= len(starts) - 2


def _web_forms(rows: dict, faker: Faker, rng: random.Random, as_of: date, n: int) -> None:
    clock = Clock(Period(3), Period(5), as_of)
    starts = _starts(clock, rng, n)
    for i, start in enumerate(starts, 1):
        contact = _stamp(start, rng, _is_edge(i - 1, starts))
        submitted = contact - timedelta(days=rng.randint(0, 60)) if contact else at_paris(as_of - timedelta(days=400))
        rows["web_form_submissions"].append(
            {
                "submission_id": i,
                "form_name": rng.choice(["contact", "devis", "newsletter", "formation"]),
                "full_name": faker.name(),
                "email": faker.email(),
                "phone": faker.phone_number(),
                "company": faker.company(),
                "message": faker.sentence(nb_words=12),
                "marketing_opt_in": rng.random() < 0.4,
                "submitted_at": submitted,
                "last_inbound_contact_at": contact,
            }
        )


def _tracking(rows: dict, faker: Faker, rng: random.Random, as_of: date, n: int) -> None:
    clock = Clock(Period(months=13), Period(), as_of)
    starts = _starts(clock, rng, n)
    event_id = 0
    for i, start in enumerate(starts, 1):
        first_set = _stamp(start, rng, _is_edge(i - 1, starts))
        rows["tracking_cookies"].append(
            {
                "cookie_id": i,
                "visitor_key": faker.sha1()[:32],
                "first_set_at": first_set,
                "last_seen_at": at_paris(as_of - timedelta(days=rng.randint(0, 30))),
                "user_agent": faker.user_agent()[:200],
                "ip_address": faker.ipv4(),
            }
        )
        base = first_set or at_paris(as_of - timedelta(days=30))
        for _ in range(rng.randint(1, 4)):
            event_id += 1
            rows["tracking_events"].append(
                {
                    "event_id": event_id,
                    "cookie_id": i,
                    "occurred_at": base + timedelta(days=rng.randint(0, 20)),
                    "page_url": faker.uri()[:300],
                    "referrer": rng.choice([None, "https://www.google.fr/"]),
                }
            )
        rows["tracking_consents"].append({"consent_id": i, "cookie_id": i, "decision": "granted", "decided_at": base})


def _prospects(rows: dict, faker: Faker, rng: random.Random, as_of: date, n: int) -> None:
    clock = Clock(Period(3), Period(5), as_of)
    starts = _starts(clock, rng, n)
    interaction_id = 0
    for i, start in enumerate(starts, 1):
        last_inbound = _stamp(start, rng, _is_edge(i - 1, starts))
        created = (last_inbound or at_paris(as_of - timedelta(days=900))) - timedelta(days=rng.randint(10, 200))
        rows["prospects"].append(
            {
                "prospect_id": i,
                "first_name": faker.first_name(),
                "last_name": faker.last_name(),
                "email": faker.email(),
                "phone": faker.phone_number(),
                "company": faker.company(),
                "job_title": faker.job()[:120],
                "marketing_notes": faker.sentence(nb_words=10),
                "preferences": rng.choice(["newsletter", "webinaires", "aucune"]),
                "commercial_consent": rng.choice([None, True]),
                "created_at": created,
                "last_inbound_contact_at": last_inbound,
            }
        )
        inbound = [last_inbound] if last_inbound else []
        # Our own e-mails come after the prospect's last contact: they never restart the clock.
        outbound = [(last_inbound or created) + timedelta(days=d) for d in sorted(rng.sample(range(5, 400), 2))]
        for occurred, direction in [(t, "inbound") for t in inbound] + [(t, "outbound") for t in outbound]:
            interaction_id += 1
            rows["prospect_interactions"].append(
                {
                    "interaction_id": interaction_id,
                    "prospect_id": i,
                    "occurred_at": occurred,
                    "direction": direction,
                    "channel": rng.choice(["email", "telephone", "salon"]),
                    "kind": "reply" if direction == "inbound" else "newsletter",
                    "summary": faker.sentence(nb_words=8),
                }
            )


def _customers(rows: dict, faker: Faker, rng: random.Random, as_of: date, n: int) -> None:
    clock = Clock(Period(3), Period(5), as_of)
    ends = _starts(clock, rng, n)
    contract_id = 0
    for i, end in enumerate(ends, 1):
        rows["customers"].append(
            {
                "customer_id": i,
                "customer_number": f"C{100000 + i}",
                "company_name": faker.company(),
                "contact_name": faker.name(),
                "email": faker.company_email(),
                "phone": faker.phone_number(),
                "billing_address": faker.street_address(),
                "postcode": faker.postcode(),
                "city": faker.city(),
                "notes": faker.sentence(nb_words=10),
                "created_at": at_paris((end or as_of) - timedelta(days=1500)),
                "relationship_ended_at": end,
            }
        )
        for k in range(rng.randint(1, 3)):
            contract_id += 1
            signed = (end or as_of) - timedelta(days=rng.randint(400, 1400))
            rows["customer_contracts"].append(
                {
                    "contract_id": contract_id,
                    "customer_id": i,
                    "reference": f"CT-{i:04d}-{k + 1}",
                    "product": rng.choice(["Licence ERP", "Maintenance", "Formation", "Support premium"]),
                    "signed_at": signed,
                    "ended_at": end,
                    "amount": round(rng.uniform(500, 50000), 2),
                }
            )


def _subscriptions(rows: dict, faker: Faker, rng: random.Random, as_of: date, n: int) -> None:
    clock = Clock(Period(), Period(10), as_of)
    ends: list[date | None] = [clock.draw(rng, p) for p in ("archive", "end_of_life") for _ in range(n)]
    ends += [as_of + timedelta(days=rng.randint(1, 300)) for _ in range(n // 2)]  # cancelled, ending later
    ends += [None] * n  # running contracts
    ends += [date(2016, 2, 29), as_of, as_of + timedelta(days=1)]
    invoice_id = 0
    for i, end in enumerate(ends, 1):
        started = (end or as_of) - timedelta(days=rng.randint(200, 1500))
        rows["subscriptions"].append(
            {
                "subscription_id": i,
                "customer_number": f"C{100000 + rng.randint(1, 40)}",
                "plan": rng.choice(["Essentiel", "Pro", "Entreprise"]),
                "billing_email": faker.company_email(),
                "payment_card_number": faker.credit_card_number(),
                "started_at": started,
                "ended_at": end,
            }
        )
        for k in range(rng.randint(1, 4)):
            invoice_id += 1
            net = round(rng.uniform(50, 2000), 2)
            rows["invoices"].append(
                {
                    "invoice_id": invoice_id,
                    "subscription_id": i,
                    "invoice_number": f"F{started.year}-{invoice_id:05d}",
                    "issued_at": started + timedelta(days=30 * k),
                    "billing_name": faker.name(),
                    "billing_address": faker.address().replace("\n", ", ")[:250],
                    "amount_excl_tax": net,
                    "vat_amount": round(net * 0.2, 2),
                    "amount_incl_tax": round(net * 1.2, 2),
                }
            )


def _suppliers(rows: dict, faker: Faker, rng: random.Random, as_of: date, n: int) -> None:
    clock = Clock(Period(3), Period(5), as_of)
    ends = _starts(clock, rng, n)
    contract_id = 0
    for i, end in enumerate(ends, 1):
        rows["suppliers"].append(
            {
                "supplier_id": i,
                "company_name": faker.company(),
                "siret": faker.siret().replace(" ", ""),
                "contact_name": faker.name(),
                "contact_email": faker.company_email(),
                "contact_phone": faker.phone_number(),
                "iban": faker.iban(),
                "created_at": at_paris((end or as_of) - timedelta(days=2000)),
                "relationship_ended_at": end,
            }
        )
        for k in range(rng.randint(1, 2)):
            contract_id += 1
            rows["supplier_contracts"].append(
                {
                    "supplier_contract_id": contract_id,
                    "supplier_id": i,
                    "reference": f"FO-{i:04d}-{k + 1}",
                    "subject": rng.choice(["Hébergement", "Matériel", "Prestations de formation"]),
                    "signed_at": (end or as_of) - timedelta(days=900),
                    "ended_at": end,
                    "amount": round(rng.uniform(1000, 90000), 2),
                }
            )


def _rights_requests(rows: dict, faker: Faker, rng: random.Random, as_of: date, n: int) -> None:
    clock = Clock(Period(), Period(5), as_of)
    closed: list[date | None] = [clock.draw(rng, p) for p in ("archive", "end_of_life") for _ in range(n)]
    closed += [None] * 3 + [date(2020, 2, 29), clock.boundary()]
    for i, day in enumerate(closed, 1):
        received = (day or as_of) - timedelta(days=rng.randint(2, 25))
        rows["rights_requests"].append(
            {
                "request_id": i,
                "reference": f"DDP-{received.year}-{i:04d}",
                "request_type": rng.choice(["access", "erasure", "rectification", "opposition", "portability"]),
                "requester_email": faker.email(),
                "received_at": at_paris(received),
                "due_at": due_date(received),
                "extended": False,
                "identity_verified": True,
                "status": "in_progress" if day is None else "completed",
                "closed_at": _stamp(day, rng),
                "outcome": None if day is None else '{"answered": true}',
            }
        )

"""A synthetic Dolibarr database in Dolibarr's real schema, and where every row must be after
one run of every category of ``examples/dolibarr/retention_policy.yaml`` on ``AS_OF``.

Tables and columns are Dolibarr's (``htdocs/install/mysql/tables/llx_*.sql``), cut down to the
columns the policy reads plus a few realistic ones (names, e-mails, amounts); the foreign keys
are those of the ``*.key.sql`` files between the tables kept (the ones to ``llx_user``,
``llx_product``, ``llx_projet``... are left out with those tables). ``examples/dolibarr/README.md``
names the files.

``EXPECTED`` is written by hand from the charter's schedule (docs: the retention schedule), never
by running the engine: each row's comment says why it is where it is. Dates are Paris wall-clock
time, as the policy sets no ``naive_timezone``.

The schedule on 2026-11-26, worked once here for all the comments below:

* prospects: 3 years active from the last e-mail they sent (``AC_EMAIL_IN``), else from their
  creation: due when that day <= 2023-11-26; destroyed when it is <= 2018-11-26 (3 + 5 years);
* customers: 3 years active from the latest line end (closing date, else planned end) over the
  lines of their signed contracts (``llx_contrat.statut`` 1 or 2): due when <= 2023-11-26,
  destroyed when <= 2018-11-26 unless an invoice still in the archive keeps them there; a line
  with neither date keeps them active;
* invoices: leave the active base as soon as their customer's relationship has ended (its end
  <= 2026-11-26, nothing open), whatever their own age; destroyed 10 years from ``datef``
  (<= 2016-11-26), in the run that moves them if they are already that old.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
)

from include.retention.policy.load import parse_policy
from include.retention.policy.model import RetentionPolicy

POLICY_FILE = Path(__file__).resolve().parents[2] / "examples" / "dolibarr" / "retention_policy.yaml"
AS_OF = date(2026, 11, 26)
SCHEMA = "public"
CATEGORIES = ("prospection", "customer_relationship", "billing")  # the crons' order

ACTIVE, DEFECT, DELETED = "active", "defect", "deleted"


def archived(table: str) -> tuple[str, str]:
    """The state of a row kept in the archive table ``table``."""
    return ("archived", table)


PROSPECT, CUSTOMER = "prospect_", "customer_"
BILLED = archived("llx_facture")
BILLED_LINE = archived("llx_facturedet")


def dolibarr_policy() -> RetentionPolicy:
    return parse_policy(yaml.safe_load(POLICY_FILE.read_text()), source=str(POLICY_FILE))


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """A Paris wall-clock moment on ``day`` (Dolibarr's datetime columns are naive)."""
    return datetime(day.year, day.month, day.day, hour, minute)


# --- The data ------------------------------------------------------------------------------
# llx_societe: rowid -> (client, fournisseur, datec, parent). client: 0 neither, 1 customer,
# 2 prospect, 3 customer and prospect (Societe::$client); fournisseur: 1 supplier.
SOCIETES: dict[int, tuple[int, int, datetime | None, int | None]] = {
    1: (2, 0, at(date(2019, 3, 1)), None),
    2: (2, 0, at(date(2019, 3, 1)), None),
    3: (2, 0, at(date(2019, 3, 1)), 20),  # llx_societe.parent: a subsidiary of customer 20 (no FK)
    4: (2, 0, at(date(2020, 2, 29)), None),
    5: (2, 0, at(date(2017, 1, 1)), None),
    6: (2, 0, at(date(2017, 1, 1)), None),
    7: (2, 0, at(date(2020, 1, 1)), None),
    8: (2, 0, at(date(2019, 1, 1)), None),
    9: (2, 0, None, None),
    10: (0, 1, at(date(2012, 1, 1)), None),  # a supplier only: no category governs it
    20: (1, 0, at(date(2014, 1, 1)), None),
    21: (1, 0, at(date(2013, 1, 1)), None),
    22: (1, 0, at(date(2020, 1, 1)), None),
    23: (1, 0, at(date(2011, 1, 1)), 5),  # parent 5 is a prospect destroyed today: left dangling, as Dolibarr does
    24: (1, 0, at(date(2015, 1, 1)), None),
    25: (1, 0, at(date(2014, 1, 1)), None),
    26: (1, 0, at(date(2012, 1, 1)), None),
    27: (1, 0, at(date(2012, 1, 1)), None),
    28: (1, 0, at(date(2015, 1, 1)), None),
    29: (1, 0, at(date(2014, 1, 1)), None),
    30: (3, 0, at(date(2018, 1, 1)), None),
    31: (1, 0, at(date(2019, 1, 1)), None),
    32: (1, 0, at(date(2018, 1, 1)), None),
    33: (1, 0, at(date(2010, 1, 1)), None),
}

# llx_actioncomm: id -> (fk_soc, code, datep, elementtype, fk_element). AC_EMAIL_IN: an e-mail
# received (the e-mail collector); AC_EMAIL: "Send Email"; AC_EMAIL_OUT: the collector reading
# our Sent folder; AC_COMPANY_SENTBYMAIL: the agenda trigger when we e-mail from the card.
ACTIONS: dict[int, tuple[int | None, str, datetime, str | None, int | None]] = {
    101: (1, "AC_EMAIL_IN", at(date(2023, 11, 26), 23, 30), None, None),
    102: (1, "AC_EMAIL", at(date(2024, 3, 1)), None, None),
    201: (2, "AC_EMAIL_IN", at(date(2023, 11, 27), 0, 30), None, None),
    301: (3, "AC_EMAIL_IN", at(date(2023, 11, 25)), None, None),
    401: (4, "AC_EMAIL", at(date(2025, 5, 5)), None, None),
    402: (4, "AC_EMAIL_OUT", at(date(2025, 6, 1)), None, None),
    403: (4, "AC_COMPANY_SENTBYMAIL", at(date(2024, 9, 9)), "societe", 4),
    501: (5, "AC_EMAIL_IN", at(date(2018, 11, 26)), None, None),
    601: (6, "AC_EMAIL_IN", at(date(2018, 11, 27)), None, None),
    701: (7, "AC_EMAIL_IN", at(date(2021, 3, 3)), None, None),
    702: (7, "AC_EMAIL", at(date(2026, 1, 10)), None, None),
    703: (7, "AC_TEL", at(date(2025, 10, 10)), None, None),
    801: (8, "AC_EMAIL_IN", at(date(2026, 2, 2)), None, None),
    901: (9, "AC_EMAIL", at(date(2020, 5, 5)), None, None),
    1001: (10, "AC_EMAIL_IN", at(date(2013, 1, 1)), None, None),
    # Customers' events: their clock is their contracts, so these never count; they carry the
    # polymorphic link fk_element + elementtype, with ids that collide with prospects' rowids.
    2001: (20, "AC_EMAIL_IN", at(date(2026, 5, 5)), "contrat", 1),
    2101: (21, "AC_EMAIL_IN", at(date(2026, 1, 1)), "facture", 2),
    2501: (25, "AC_BILL_SENTBYMAIL", at(date(2017, 4, 30)), "facture", 251),
    2601: (26, "AC_EMAIL_IN", at(date(2018, 1, 1)), None, None),
    3001: (30, "AC_EMAIL_IN", at(date(2026, 1, 1)), None, None),
    9901: (None, "AC_RDV", at(date(2015, 6, 6)), None, None),  # an internal meeting: no third party
}

# llx_socpeople: rowid -> fk_soc (None: a private contact attached to no third party)
CONTACTS: dict[int, int | None] = {
    11: 1,
    21: 2,
    41: 4,
    51: 5,
    52: 5,
    61: 6,
    91: 9,
    101: 10,
    201: 20,
    202: 20,
    211: 21,
    231: 23,
    251: 25,
    261: 26,
    281: 28,
    301: 30,
    901: None,
}

# llx_contrat: rowid -> (fk_soc, statut). statut: 0 draft, 1 validated, 2 closed.
CONTRACTS: dict[int, tuple[int, int]] = {
    41: (4, 0),  # a prospect's draft contract
    201: (20, 1),
    211: (21, 1),
    221: (22, 1),
    231: (23, 1),
    241: (24, 1),
    251: (25, 2),
    261: (26, 2),
    271: (27, 1),
    281: (28, 2),
    301: (30, 2),
    311: (31, 0),
    312: (31, 2),
    321: (32, 2),
    322: (32, 1),
    331: (33, 2),
}
# llx_contratdet: rowid -> (fk_contrat, statut, date_fin_validite (planned end), date_cloture (real end)).
# statut: 0 inactive, 4 active, 5 closed (ContratLigne::$statut).
LINES: dict[int, tuple[int, int, datetime | None, datetime | None]] = {
    411: (41, 0, at(date(2027, 1, 1)), None),
    2011: (201, 5, at(date(2027, 1, 1)), at(date(2022, 3, 15))),  # closed early: ends 2022-03-15, not 2027
    2012: (201, 4, at(date(2023, 11, 26)), None),  # expired, never closed: ends 2023-11-26
    2111: (211, 5, at(date(2024, 12, 31)), at(date(2023, 11, 27))),
    2211: (221, 4, at(date(2023, 11, 25)), None),
    2311: (231, 5, at(date(2019, 1, 1)), at(date(2019, 1, 1))),
    2312: (231, 4, None, None),  # open-ended
    2411: (241, 4, at(date(2027, 6, 30)), None),  # ends next year
    2511: (251, 5, at(date(2018, 1, 1)), at(date(2017, 5, 5))),
    2611: (261, 5, at(date(2019, 1, 1)), at(date(2018, 11, 26))),
    2711: (271, 4, at(date(2018, 11, 27)), None),
    2811: (281, 5, at(date(2021, 1, 1)), at(date(2020, 2, 29))),
    3011: (301, 5, at(date(2020, 6, 30)), at(date(2020, 6, 30))),
    3111: (311, 0, None, None),  # a draft contract's open line
    3121: (312, 5, at(date(2023, 1, 1)), at(date(2022, 1, 10))),
    3211: (321, 5, at(date(2022, 12, 31)), at(date(2021, 5, 5))),
    3221: (322, 4, at(date(2021, 9, 30)), None),
    3311: (331, 5, at(date(2017, 6, 30)), at(date(2017, 1, 1))),
}

# llx_facture: rowid -> (fk_soc, type, datef, fk_facture_source, number of llx_facturedet lines).
# type: 0 standard, 2 credit note (Facture::TYPE_CREDIT_NOTE), whose fk_facture_source is the invoice.
INVOICES: dict[int, tuple[int, int, date | None, int | None, int]] = {
    201: (20, 0, date(2015, 6, 30), None, 2),
    202: (20, 0, date(2023, 10, 1), None, 1),
    211: (21, 0, date(2023, 1, 15), None, 1),
    212: (21, 0, date(2014, 5, 5), None, 1),
    221: (22, 0, date(2023, 11, 25), None, 1),
    222: (22, 0, None, None, 1),
    231: (23, 0, date(2012, 1, 1), None, 1),
    241: (24, 0, date(2016, 1, 1), None, 1),
    251: (25, 0, date(2017, 4, 30), None, 1),
    252: (25, 0, date(2016, 11, 26), None, 1),
    253: (25, 0, date(2016, 11, 27), None, 1),
    254: (25, 2, date(2017, 5, 2), 251, 1),
    281: (28, 0, date(2016, 2, 29), None, 1),
    282: (28, 0, date(2020, 2, 29), None, 1),
    283: (28, 2, date(2020, 3, 15), 282, 1),
    291: (29, 0, date(2015, 1, 1), None, 1),
    301: (30, 0, date(2020, 6, 15), None, 1),
    321: (32, 0, date(2021, 9, 1), None, 1),
    331: (33, 0, None, None, 1),
}

# llx_categorie: rowid -> label (type 2: customer/prospect tags). Not personal data: never touched.
CATEGORIES_TAGS = {1: "Grands comptes", 2: "Salon 2023"}
# llx_categorie_societe (link table, primary key (fk_categorie, fk_soc)).
TAGS = [(1, 5), (2, 2), (1, 20), (2, 21), (1, 26), (2, 30)]
# llx_societe_commerciaux: rowid -> fk_soc (fk_user: a sales representative, not personal data here)
REPS = {1005: 5, 1008: 8, 1020: 20, 1025: 25, 1026: 26}


# --- Where every row must be on AS_OF, by hand ----------------------------------------------


def _with(soc: int, state: Any) -> dict[tuple[str, Any], Any]:
    """Every child row of third party ``soc`` (contacts, events, contracts and their lines, tags,
    sales representatives) in the place ``state`` names: children share their parent's fate.
    ``state`` is ACTIVE, DEFECT (a defective parent's children simply stay: ACTIVE), DELETED,
    or PROSPECT / CUSTOMER (the archive of that category)."""

    def place(table: str) -> Any:
        if state in (ACTIVE, DEFECT):
            return ACTIVE
        if state == DELETED:
            return DELETED
        return archived(state + table.removeprefix("llx_"))

    out: dict[tuple[str, Any], Any] = {
        ("llx_societe", soc): (archived(state + "societe") if state in (PROSPECT, CUSTOMER) else state)
    }
    out.update({("llx_socpeople", k): place("llx_socpeople") for k, s in CONTACTS.items() if s == soc})
    out.update({("llx_actioncomm", k): place("llx_actioncomm") for k, a in ACTIONS.items() if a[0] == soc})
    for contract, (owner, _) in CONTRACTS.items():
        if owner == soc:
            out[("llx_contrat", contract)] = place("llx_contrat")
            out.update(
                {("llx_contratdet", k): place("llx_contratdet") for k, line in LINES.items() if line[0] == contract}
            )
    out.update({("llx_categorie_societe", t): place("llx_categorie_societe") for t in TAGS if t[1] == soc})
    out.update({("llx_societe_commerciaux", k): place("llx_societe_commerciaux") for k, s in REPS.items() if s == soc})
    return out


def _invoice(rowid: int, state: Any) -> dict[tuple[str, Any], Any]:
    """An invoice and its lines (children: same fate)."""
    line_state = {BILLED: BILLED_LINE}.get(state, ACTIVE if state == DEFECT else state)
    out = {("llx_facture", rowid): state}
    out.update({("llx_facturedet", rowid * 10 + k): line_state for k in range(INVOICES[rowid][4])})
    return out


EXPECTED: dict[tuple[str, Any], Any] = {
    # --- Prospects (client = 2) ---
    # Last e-mail from them 2023-11-26 23:30: 3 years exactly today -> archived; our later e-mail
    # (102, AC_EMAIL) does not restart the clock. Until 2031-11-26.
    **_with(1, PROSPECT),
    # Last e-mail 2023-11-27 00:30: one day short of 3 years -> stays active.
    **_with(2, ACTIVE),
    # Last e-mail 2023-11-25: one day past -> archived (until 2031-11-25).
    **_with(3, PROSPECT),
    # Never wrote to us; we wrote three times (AC_EMAIL, AC_EMAIL_OUT, AC_COMPANY_SENTBYMAIL):
    # the clock is its creation, 2020-02-29 -> due 2023-02-28 -> archived until 2028-02-28.
    # Its draft contract 41 and line 411 move with it.
    **_with(4, PROSPECT),
    # Last e-mail 2018-11-26: 3 + 5 years exactly today -> archived and destroyed in this run.
    **_with(5, DELETED),
    # Last e-mail 2018-11-27: archived, one day short of its horizon (until 2026-11-27).
    **_with(6, PROSPECT),
    # Wrote 2021-03-03; our e-mail of 2026-01-10 and a phone call of 2025 (direction not
    # recorded) do not count -> due 2024-03-03 -> archived.
    **_with(7, PROSPECT),
    # Created 2019, wrote 2026-02-02 -> their e-mail restarted the clock: active.
    **_with(8, ACTIVE),
    # No e-mail from them and no creation date: cannot be aged -> stays, reported (defect).
    **_with(9, DEFECT),
    # A supplier only (client = 0): no category governs it; its old e-mail changes nothing.
    **_with(10, ACTIVE),
    # --- Customers (client = 1, or 3 by precedence) ---
    # Line 2011 closed early on 2022-03-15 (planned 2027: ignored), line 2012 expired on
    # 2023-11-26 without being closed -> the relationship ended 2023-11-26: archived today
    # (exact boundary), until 2031-11-26 - kept there anyway by invoice 202.
    **_with(20, CUSTOMER),
    **_invoice(201, DELETED),  # released today; 2015-06-30 + 10 years = 2025-06-30: destroyed
    **_invoice(202, BILLED),  # released today; kept until 2033-10-01
    # Line 2111 closed 2023-11-27: one day short of 3 years -> the customer stays active...
    **_with(21, ACTIVE),
    # ...but its relationship has ended: its invoices leave the active base now.
    **_invoice(211, BILLED),  # until 2033-01-15
    **_invoice(212, DELETED),  # 2014-05-05: already past 10 years when the relationship ended
    # Line 2211 expired 2023-11-25, never closed -> archived (one day past), until 2031-11-25.
    **_with(22, CUSTOMER),
    **_invoice(221, BILLED),  # until 2033-11-25
    **_invoice(222, BILLED),  # no datef: moved undated (a defect reported in the archive), kept
    # Line 2312 has neither date: open-ended, the relationship runs -> the customer and its
    # 2012 invoice (older than 10 years) stay active.
    **_with(23, ACTIVE),
    **_invoice(231, ACTIVE),
    # Line 2411 ends 2027-06-30: the relationship has not ended -> all active, invoice of 2016 too.
    **_with(24, ACTIVE),
    **_invoice(241, ACTIVE),
    # Line 2511 closed 2017-05-05 (planned 2018): the customer's horizon 2025-05-05 has passed,
    # but invoices still retained keep it in the archive.
    **_with(25, CUSTOMER),
    **_invoice(251, BILLED),  # until 2027-04-30
    **_invoice(252, DELETED),  # 2016-11-26: 10 years exactly today
    **_invoice(253, BILLED),  # 2016-11-27: one day short, until 2026-11-27
    **_invoice(254, BILLED),  # credit note of 251 (fk_facture_source), until 2027-05-02
    # Line 2611 closed 2018-11-26: 3 + 5 years exactly today, no invoice -> destroyed.
    **_with(26, DELETED),
    # Line 2711 expired 2018-11-27, never closed: archived, one day short of its horizon.
    **_with(27, CUSTOMER),
    # Line 2811 closed 2020-02-29 -> due 2023-02-28 -> archived until 2028-02-28.
    **_with(28, CUSTOMER),
    **_invoice(281, DELETED),  # 2016-02-29 + 10 years = 2026-02-28: destroyed
    **_invoice(282, BILLED),  # 2020-02-29: until 2030-02-28
    **_invoice(283, BILLED),  # credit note of 282: until 2030-03-15
    # A customer with no contract at all: no end date -> stays, reported (defect); its 2015
    # invoice stays active with it (the relationship is not known to have ended).
    **_with(29, DEFECT),
    **_invoice(291, ACTIVE),
    # client = 3 (customer and prospect): a customer by precedence, so its recent e-mail (which
    # would keep a prospect active) does not count; its contract ended 2020-06-30 -> archived
    # as a customer (until 2028-06-30), in the customer archive.
    **_with(30, CUSTOMER),
    **_invoice(301, BILLED),  # until 2030-06-15
    # Contract 311 is a draft (statut 0) with an open line: not a relationship. Contract 312
    # closed 2022-01-10 -> archived (until 2030-01-10); the draft and its line move with it.
    **_with(31, CUSTOMER),
    # Two contracts: lines closed 2021-05-05 and expired 2021-09-30 -> the latest, 2021-09-30:
    # archived (until 2029-09-30).
    **_with(32, CUSTOMER),
    **_invoice(321, BILLED),  # until 2031-09-01
    # Line closed 2017-01-01: past its horizon (2025-01-01), but its undated invoice is moved
    # undated and kept (a defect in the archive): it keeps the customer in the archive.
    **_with(33, CUSTOMER),
    **_invoice(331, BILLED),
    # --- Rows no category governs ---
    ("llx_socpeople", 901): ACTIVE,  # a private contact: fk_soc NULL
    ("llx_actioncomm", 9901): ACTIVE,  # an internal meeting: fk_soc NULL
    ("llx_categorie", 1): ACTIVE,
    ("llx_categorie", 2): ACTIVE,
}

# Retention dates of archived rows (retention_start, retention_until), from the schedule.
RETENTION = {
    ("prospect_societe", 1): (date(2023, 11, 26), date(2031, 11, 26)),
    ("prospect_societe", 4): (date(2020, 2, 29), date(2028, 2, 28)),
    ("prospect_societe", 7): (date(2021, 3, 3), date(2029, 3, 3)),
    ("customer_societe", 20): (date(2023, 11, 26), date(2031, 11, 26)),
    ("customer_societe", 28): (date(2020, 2, 29), date(2028, 2, 28)),
    ("customer_societe", 30): (date(2020, 6, 30), date(2028, 6, 30)),
    ("customer_societe", 32): (date(2021, 9, 30), date(2029, 9, 30)),
    ("llx_facture", 202): (date(2023, 10, 1), date(2033, 10, 1)),
    ("llx_facture", 211): (date(2023, 1, 15), date(2033, 1, 15)),
    ("llx_facture", 222): (None, None),
    ("llx_facture", 253): (date(2016, 11, 27), date(2026, 11, 27)),
    ("llx_facture", 282): (date(2020, 2, 29), date(2030, 2, 28)),
}
# Rows reported as defects (missing start date), per category and table.
DEFECTS = {("prospection", "llx_societe"): 1, ("customer_relationship", "llx_societe"): 1}
# Undated rows moved to the archive (invoices 222 and 331, no datef), reported by billing's
# post-run check ``archive_rows_have_a_start_date``.
UNDATED_IN_ARCHIVE = {("billing", "llx_facture"): 2}


# --- The schema, on PostgreSQL and SQLite ------------------------------------------------------


def create_schema(target: Any) -> dict[str, Table]:
    """Dolibarr's tables (the columns kept) with the foreign keys of its *.key.sql files."""
    if target.is_sqlite:
        md, prefix = MetaData(), ""
    else:
        with target.engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
        md, prefix = MetaData(schema=SCHEMA), f"{SCHEMA}."
    fk = lambda ref: ForeignKey(prefix + ref)  # noqa: E731
    tables = [
        Table(
            "llx_societe",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("nom", String(128)),
            Column("name_alias", String(128)),
            Column("entity", Integer, nullable=False, default=1),
            Column("statut", SmallInteger),
            Column("parent", Integer),
            Column("status", SmallInteger),
            Column("code_client", String(24)),
            Column("address", String(255)),
            Column("zip", String(25)),
            Column("town", String(50)),
            Column("phone", String(30)),
            Column("email", String(128)),
            Column("tva_intra", String(20)),
            Column("note_private", Text),
            Column("client", SmallInteger),
            Column("fournisseur", SmallInteger),
            Column("fk_prospectlevel", String(12)),
            Column("datec", DateTime),
            Column("tms", DateTime),
        ),
        Table(
            "llx_socpeople",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("datec", DateTime),
            Column("fk_soc", Integer, fk("llx_societe.rowid")),
            Column("civility", String(6)),
            Column("lastname", String(50)),
            Column("firstname", String(50)),
            Column("phone", String(30)),
            Column("phone_mobile", String(30)),
            Column("email", String(255)),
            Column("birthday", Date),
            Column("poste", String(80)),
            Column("note_private", Text),
            Column("statut", SmallInteger, nullable=False, default=1),
        ),
        Table(
            "llx_actioncomm",
            md,
            Column("id", Integer, primary_key=True),
            Column("datep", DateTime),
            Column("datep2", DateTime),
            Column("fk_action", Integer),
            Column("code", String(50)),
            Column("datec", DateTime),
            Column("fk_soc", Integer),
            Column("fk_contact", Integer),
            Column("percent", SmallInteger, nullable=False, default=0),
            Column("label", String(255), nullable=False),
            Column("note", Text),
            Column("email_subject", String(255)),
            Column("email_from", String(255)),
            Column("fk_element", Integer),
            Column("elementtype", String(255)),
        ),
        Table(
            "llx_contrat",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("ref", String(30)),
            Column("entity", Integer, nullable=False, default=1),
            Column("datec", DateTime),
            Column("date_contrat", DateTime),
            Column("statut", SmallInteger),
            Column("fk_soc", Integer, fk("llx_societe.rowid"), nullable=False),
            Column("note_private", Text),
        ),
        Table(
            "llx_contratdet",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("fk_contrat", Integer, fk("llx_contrat.rowid"), nullable=False),
            Column("statut", SmallInteger),
            Column("label", Text),
            Column("description", Text),
            Column("date_ouverture_prevue", DateTime),
            Column("date_ouverture", DateTime),
            Column("date_fin_validite", DateTime),
            Column("date_cloture", DateTime),
            Column("qty", Numeric(12, 2), nullable=False),
            Column("subprice", Numeric(24, 8)),
            Column("total_ht", Numeric(24, 8)),
        ),
        Table(
            "llx_facture",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("ref", String(30), nullable=False),
            Column("entity", Integer, nullable=False, default=1),
            Column("type", SmallInteger, nullable=False),
            Column("fk_soc", Integer, fk("llx_societe.rowid"), nullable=False),
            Column("datec", DateTime),
            Column("datef", Date),
            Column("paye", SmallInteger, nullable=False, default=0),
            Column("total_ttc", Numeric(24, 8)),
            Column("fk_statut", SmallInteger, nullable=False),
            # Dolibarr declares this self-reference ON DELETE NO ACTION (fk_facture_fk_facture_source);
            # the engine refuses that shape (a credit note would block its invoice's end of life),
            # so the example asks for ON DELETE SET NULL: see examples/dolibarr/README.md.
            Column("fk_facture_source", Integer, ForeignKey(prefix + "llx_facture.rowid", ondelete="SET NULL")),
            Column("note_private", Text),
        ),
        Table(
            "llx_facturedet",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("fk_facture", Integer, fk("llx_facture.rowid"), nullable=False),
            Column("label", String(255)),
            Column("description", Text),
            Column("qty", Numeric(12, 2)),
            Column("total_ht", Numeric(24, 8)),
            Column("total_ttc", Numeric(24, 8)),
        ),
        Table(
            "llx_categorie",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("label", String(180)),
            Column("type", Integer),
        ),
        Table(
            "llx_categorie_societe",
            md,
            Column("fk_categorie", Integer, nullable=False),
            Column("fk_soc", Integer, nullable=False),
            Column("import_key", String(14)),
            PrimaryKeyConstraint("fk_categorie", "fk_soc"),
            ForeignKeyConstraint(["fk_categorie"], [prefix + "llx_categorie.rowid"]),
            ForeignKeyConstraint(["fk_soc"], [prefix + "llx_societe.rowid"]),
        ),
        Table(
            "llx_societe_commerciaux",
            md,
            Column("rowid", Integer, primary_key=True),
            Column("fk_soc", Integer),
            Column("fk_user", Integer),
            Column("import_key", String(14)),
        ),
    ]
    md.create_all(target.engine)
    return {t.name: t for t in tables}


def seed(target: Any) -> None:
    """Create the schema and insert every row of this module's tables."""
    t = create_schema(target)
    rows: dict[str, list[dict[str, Any]]] = {
        "llx_societe": [
            {
                "rowid": k,
                "nom": f"Société {k}",
                "entity": 1,
                "client": client,
                "fournisseur": supplier,
                "datec": datec,
                "parent": parent,
                "email": f"contact{k}@example.fr",
                "phone": "0102030405",
                "zip": "75011",
                "town": "Paris",
                "tva_intra": f"FR{k:011d}",
                "status": 1,
                "code_client": f"CU{k:04d}" if client in (1, 3) else None,
                "note_private": "notes commerciales",
            }
            for k, (client, supplier, datec, parent) in SOCIETES.items()
        ],
        "llx_socpeople": [
            {
                "rowid": k,
                "fk_soc": soc,
                "lastname": f"Nom{k}",
                "firstname": "Camille",
                "email": f"camille{k}@example.fr",
                "phone_mobile": "0601020304",
                "datec": at(date(2019, 1, 1)),
                "statut": 1,
            }
            for k, soc in CONTACTS.items()
        ],
        "llx_actioncomm": [
            {
                "id": k,
                "fk_soc": soc,
                "code": code,
                "datep": when,
                "datec": when,
                "percent": -1,
                "label": code,
                "note": "corps du message",
                "elementtype": etype,
                "fk_element": element,
            }
            for k, (soc, code, when, etype, element) in ACTIONS.items()
        ],
        "llx_contrat": [
            {
                "rowid": k,
                "ref": f"CT{k}",
                "entity": 1,
                "fk_soc": soc,
                "statut": status,
                "date_contrat": at(date(2015, 1, 1)),
                "datec": at(date(2015, 1, 1)),
            }
            for k, (soc, status) in CONTRACTS.items()
        ],
        "llx_contratdet": [
            {
                "rowid": k,
                "fk_contrat": c,
                "statut": status,
                "label": "Maintenance",
                "date_ouverture": None if status == 0 else at(date(2015, 1, 1)),
                "date_fin_validite": planned,
                "date_cloture": closed,
                "qty": 1,
                "subprice": 100,
                "total_ht": 100,
            }
            for k, (c, status, planned, closed) in LINES.items()
        ],
        "llx_facture": [
            {
                "rowid": k,
                "ref": f"FA{k}",
                "entity": 1,
                "type": kind,
                "fk_soc": soc,
                "datef": datef,
                "fk_statut": 0 if datef is None else 2,
                "paye": 0 if datef is None else 1,
                "total_ttc": 120,
                "fk_facture_source": source,
            }
            for k, (soc, kind, datef, source, _) in INVOICES.items()
        ],
        "llx_facturedet": [
            {"rowid": k * 10 + n, "fk_facture": k, "label": "Licence", "qty": 1, "total_ht": 100, "total_ttc": 120}
            for k, inv in INVOICES.items()
            for n in range(inv[4])
        ],
        "llx_categorie": [{"rowid": k, "label": label, "type": 2} for k, label in CATEGORIES_TAGS.items()],
        "llx_categorie_societe": [{"fk_categorie": c, "fk_soc": s} for c, s in TAGS],
        "llx_societe_commerciaux": [{"rowid": k, "fk_soc": s, "fk_user": 1} for k, s in REPS.items()],
    }
    with target.engine.begin() as conn:
        for name in (
            "llx_societe",
            "llx_socpeople",
            "llx_actioncomm",
            "llx_contrat",
            "llx_contratdet",
            "llx_categorie",
            "llx_categorie_societe",
            "llx_societe_commerciaux",
        ):
            conn.execute(insert(t[name]), rows[name])
        # Invoices before the credit notes that point at them (fk_facture_source).
        invoices = sorted(rows["llx_facture"], key=lambda r: r["fk_facture_source"] is not None)
        conn.execute(insert(t["llx_facture"]), [r for r in invoices if r["fk_facture_source"] is None])
        conn.execute(insert(t["llx_facture"]), [r for r in invoices if r["fk_facture_source"] is not None])
        conn.execute(insert(t["llx_facturedet"]), rows["llx_facturedet"])


# --- Where the rows are -------------------------------------------------------------------------


def _keys(conn: Any, table: Table) -> list[Any]:
    columns = list(table.primary_key.columns)
    rows = conn.execute(select(*columns)).all()
    return [r[0] if len(columns) == 1 else tuple(r) for r in rows]


def actual_states(target: Any, archive_schema: str = "archive") -> dict[tuple[str, Any], Any]:
    """Where each row of ``EXPECTED`` is now: ACTIVE, ("archived", table), DELETED, or a list
    of places if a row is in more than one (which must never happen). DEFECT rows read ACTIVE."""
    source_schema = None if target.is_sqlite else SCHEMA
    archives: dict[str, list[str]] = {}
    for (table, _), state in EXPECTED.items():
        if isinstance(state, tuple):
            archives.setdefault(table, [])
            if state[1] not in archives[table]:
                archives[table].append(state[1])
    for prefix in (PROSPECT, CUSTOMER):  # every archive a child table could land in
        for table in (
            "llx_societe",
            "llx_socpeople",
            "llx_actioncomm",
            "llx_contrat",
            "llx_contratdet",
            "llx_categorie_societe",
            "llx_societe_commerciaux",
        ):
            name = prefix + table.removeprefix("llx_")
            archives.setdefault(table, [])
            if name not in archives[table]:
                archives[table].append(name)
    found: dict[tuple[str, Any], list[Any]] = {key: [] for key in EXPECTED}
    with target.read() as conn:
        inspector = inspect(conn)
        for table in sorted({t for t, _ in EXPECTED}):
            places = [(ACTIVE, table, source_schema)] + [
                (archived(a), a, archive_schema) for a in archives.get(table, [])
            ]
            for state, name, owner in places:
                if not inspector.has_table(name, schema=owner):
                    continue
                for key in _keys(conn, Table(name, MetaData(), schema=owner, autoload_with=conn)):
                    if (table, key) in found:
                        found[(table, key)].append(state)
    return {k: (v[0] if len(v) == 1 else (v if v else DELETED)) for k, v in found.items()}


def expected_state(key: tuple[str, Any]) -> Any:
    """The state ``actual_states`` reads for a row: a defect stays active."""
    state = EXPECTED[key]
    return ACTIVE if state == DEFECT else state

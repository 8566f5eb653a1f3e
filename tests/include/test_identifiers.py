"""One canonical identifier form, in Python and in SQL, on SQLite and PostgreSQL.

A corpus of identifiers as people write them (stored form, asked form): every pair is one
person. Erasure, a subject legal hold, the suppression list and the keyed hashes must all
match the stored row whatever form the request used - on both backends, where SQL computes
the stored side. Old keyed hashes (the form before the canonical one) keep matching, and the
migration adds the new-form hash for people who still have rows."""

from __future__ import annotations

import copy
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from crm_helpers import KEY
from engine_helpers import run_category
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    insert,
    literal,
    select,
    text,
)

from include.retention.database import store
from include.retention.database.identity import Subject, normalise, normalised_sql, subject_hash
from include.retention.database.reflect import Side, open_category
from include.retention.database.store import hold_tables, suppression_table
from include.retention.errors import RetentionError
from include.retention.policy.load import parse_policy
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.records.suppression import refuse_suppressed, suppress, suppressed_active_rows
from include.retention.rights.erasure import erase

PARIS = ZoneInfo("Europe/Paris")
AS_OF = date(2026, 11, 26)
CTX = RunContext("manual__identifiers-1", "subject_request", AS_OF, "contacts-1")

# (kind, as stored, as asked): each pair is a different person.
EMAILS = [
    ("zoe.tab@example.fr\t", "zoe.tab@example.fr"),
    ("\u00a0leading.nbsp@example.fr", "leading.nbsp@example.fr"),
    ("narrow.nbsp@example.fr\u202f", "Narrow.NBSP@example.fr"),
    ("zoe\u0301.e\u0301lodie@example.fr", "zoé.élodie@example.fr"),  # decomposed accents (NFD)
    ("noémie.nfc@example.fr", "NOE\u0301MIE.NFC@EXAMPLE.FR"),  # the reverse, upper case
    ("CHLOÉ.ÉLISE@EXAMPLE.FR", "chloé.élise@example.fr"),  # upper-case non-ASCII
    ("ÉMILE.ZOLA@EXAMPLE.FR", "émile.zola@example.fr"),  # SQLite's lower() is ASCII-only
    ("E\u0301TIENNE.NFD@EXAMPLE.FR", "étienne.nfd@example.fr"),
    ("\u200bzwsp@example.fr", "zwsp@example.fr"),
    ("bom@example.fr\ufeff", "bom@example.fr"),
    ("newline@example.fr\n", "newline@example.fr"),
    ("\r\ncrlf@example.fr ", "CRLF@example.fr"),
    ("ｆｕｌｌ．ｗｉｄｔｈ＠ｅｘａｍｐｌｅ．ｆｒ", "full.width@example.fr"),
    ("  Alice.Martin@Example.COM  ", "alice.martin@example.com"),
    ("ΑΘΗΝΑ@example.gr", "αθηνα@example.gr"),
    ("ΟΔΥΣΣΕΑΣ@example.gr", "οδυσσεας@example.gr"),  # a final sigma asked, a capital one stored
    ("\u3000ideographic@example.jp", "ideographic@example.jp"),
    ("line.separator@example.fr\u2028", "line.separator@example.fr"),
    ("soft\u00ad.hyphen@example.fr", "soft.hyphen@example.fr"),
    ("plain.asked.tab@example.fr", "\tPlain.Asked.Tab@Example.fr "),
    ("ÅSA.ÖBERG@EXAMPLE.SE", "åsa.öberg@example.se"),
    ("İLKER@EXAMPLE.COM.TR", "ilker@example.com.tr"),
    ("\u2003em.space@example.fr\u00a0", "\u00a0EM.SPACE@EXAMPLE.FR\u2003"),
    ("ẞTRASSE@EXAMPLE.DE", "ßtrasse@example.de"),
]
PHONES = [
    ("+33 (0)6 11 22 33 44", "06 11 22 33 44"),
    ("06 11 22 33 45", "+33 (0)6 11 22 33 45"),
    ("06.11.22.33.46", "+33 6 11 22 33 46"),
    ("06-11-22-33-47", "0033 6 11 22 33 47"),
    ("0611223348", "+33611223348"),
    ("06\u00a011\u00a022\u00a033\u00a049", "06 11 22 33 49"),  # no-break spaces
    ("06\u202f11\u202f22\u202f33\u202f50", "0611223350"),  # narrow no-break spaces
    ("+33 6 11 22 33 51", "0033 (0)6 11 22 33 51"),
    ("0033611223352", "06 11 22 33 52"),
    ("+33611223353", "(0)6 11 22 33 53"),
    ("+330611223354", "06 11 22 33 54"),
    ("612 345 678", "612345678"),  # a foreign (Spanish) national number: no French reading
    ("33 6 11 22 33 56", "06 11 22 33 56"),  # the country code without its +
    ("\t06 11 22 33 57\n", "06 11 22 33 57"),
    ("０６ １１ ２２ ３３ ５８", "0611223358"),  # full-width digits
    ("06 11 22 33 59 poste 12", "06 11 22 33 59"),  # an extension
    ("(+33) 6 11 22 33 60", "06/11/22/33/60"),
    ("+33 1 42 68 53 00", "01.42.68.53.00"),
    ("+44 (0)20 7946 0958", "+44 20 7946 0958"),  # United Kingdom
    ("0044 20 7946 0959", "+44 (0) 20 7946 0959"),
    ("+32 (0)2 123 45 67", "0032 2 123 45 67"),  # Belgium
    ("+32 470 12 34 56", "0032 (0)470 12 34 56"),
    ("+49 (0)30 123456", "0049 30 123456"),  # Germany
    ("+49 1512 3456789", "+49 (0)1512 3456789"),
    ("+1 (212) 555-0123", "001 212 555 0123"),  # United States
    ("+1 212.555.0124", "+1-212-555-0124"),
    ("+39 06 1234 5678", "0039 06 12345678"),  # Italy keeps its leading 0
    ("+39 (0)6 1234 5679", "+39 06 1234 5679"),
    ("+41 (0)44 668 18 00", "0041 44 668 18 00"),  # Switzerland
    ("+34 612 34 56 78", "0034 612345678"),  # Spain
]
CORPUS = [("email", s, a) for s, a in EMAILS] + [("phone", s, a) for s, a in PHONES]

CONTACTS_POLICY: dict[str, Any] = {
    "version": "contacts-1",
    "source_schema": "people",
    "archive_schema": "archive",
    "categories": {
        "contacts": {
            "label": {"fr": "Contacts", "en": "Contacts"},
            "legal_basis": "Intérêt légitime",
            "archive_purpose": "Probatoire",
            "schedule": "0 1 * * *",
            "active_period": "P3Y",
            "archive_period": "P5Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "contacts",
                    "primary_key": "contact_id",
                    "start_event": {"column": "last_contact_at", "when_missing": "defect"},
                    "archive_columns": ["email", "phone"],
                    "subject_identifiers": {"email": ["email"], "phone": ["phone"]},
                }
            ],
        },
    },
}
# A person outside the corpus, due for the archive like everyone: the run does archive.
OUTSIDER = 999


def _policy():
    return parse_policy(copy.deepcopy(CONTACTS_POLICY), source="contacts.yaml")


def _create_contacts(target, rows: list[dict[str, Any]]) -> Table:
    if target.is_sqlite:
        metadata = MetaData()
    else:
        with target.engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS people"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
        metadata = MetaData(schema="people")
    table = Table(
        "contacts",
        metadata,
        Column("contact_id", Integer, primary_key=True),
        Column("email", String(200)),
        Column("phone", String(60)),
        Column("last_contact_at", DateTime(timezone=True)),
    )
    metadata.create_all(target.engine)
    with target.engine.begin() as conn:
        conn.execute(insert(table), rows)
    return table


def _row(contact_id: int, kind: str | None, value: str | None) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "email": value if kind == "email" else None,
        "phone": value if kind == "phone" else None,
        "last_contact_at": datetime(2020, 1, 6, 10, tzinfo=PARIS),
    }  # due for the archive on AS_OF


@pytest.fixture
def contacts(target):
    """One row per corpus pair, holding its stored form, plus an outsider; all due for the archive."""
    rows = [_row(i, kind, stored) for i, (kind, stored, _) in enumerate(CORPUS)]
    _create_contacts(target, rows + [_row(OUTSIDER, "email", "outsider@example.fr")])
    return target


def _ids(target, archive=False) -> set[int]:
    table = Table(
        "contacts",
        MetaData(),
        schema="archive" if archive else (None if target.is_sqlite else "people"),
        autoload_with=target.engine,
    )
    with target.read() as conn:
        return set(conn.execute(select(table.c.contact_id)).scalars())


def test_the_corpus_has_at_least_40_pairs_each_a_different_person():
    assert len(CORPUS) >= 40 and len({(k, normalise(k, a)) for k, _, a in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("kind", "stored", "asked"), CORPUS)
def test_python_gives_the_stored_and_the_asked_form_one_canonical_form(kind, stored, asked):
    from include.retention.database.identifiers import canonical_form

    assert canonical_form(kind, stored) == normalise(kind, asked)


def test_sql_gives_every_stored_form_the_canonical_form_of_its_asked_form(target):
    with target.read() as conn:
        for kind, stored, asked in CORPUS:
            in_sql = conn.execute(select(normalised_sql(kind, literal(stored, Text)))).scalar_one()
            assert in_sql == normalise(kind, asked), (kind, stored)


def test_sql_and_python_agree_on_stored_values_read_from_a_table(contacts):
    from include.retention.database.identifiers import canonical_form

    table = Table(
        "contacts", MetaData(), schema=None if contacts.is_sqlite else "people", autoload_with=contacts.engine
    )
    with contacts.read() as conn:
        rows = conn.execute(
            select(
                table.c.email,
                normalised_sql("email", table.c.email),
                table.c.phone,
                normalised_sql("phone", table.c.phone),
            )
        ).all()
    for email, email_sql, phone, phone_sql in rows:
        if email is not None:
            assert email_sql == canonical_form("email", email), email
        if phone is not None:
            assert phone_sql == canonical_form("phone", phone), phone


def test_an_erasure_asked_in_any_written_form_erases_the_stored_row(contacts):
    policy = _policy()
    missed = []
    for kind, stored, asked in CORPUS:
        result = erase(contacts, policy, Subject.of({kind: asked}), KEY, CTX)
        if result.erased != 1:
            missed.append((kind, stored, asked, result.erased))
    assert missed == []
    assert _ids(contacts) == {OUTSIDER}


def test_a_subject_hold_asked_in_any_written_form_keeps_the_stored_row_out_of_the_nightly_archive(contacts):
    policy = _policy()
    asked = {"email": [a for k, _, a in CORPUS if k == "email"], "phone": [a for k, _, a in CORPUS if k == "phone"]}
    add_hold(
        contacts,
        policy,
        NewHold(
            reference="RG-IDENT-1",
            scope="subject",
            reason="Contentieux",
            created_by="dpo@example.fr",
            subject=Subject.of(asked),
        ),
        KEY,
        RunContext("manual__hold", "legal_hold", AS_OF, "contacts-1"),
        AS_OF,
    )
    run_category(contacts, policy, AS_OF, category="contacts", subject_key=KEY)
    archived = _ids(contacts, archive=True)
    assert archived == {OUTSIDER}, [CORPUS[i] for i in sorted(archived - {OUTSIDER})]


def _root(conn, target, policy):
    (root,) = open_category(
        conn, policy, policy.categories["contacts"], target.source_schema, "archive", target.dialect
    )
    return root


def test_the_suppression_list_recognises_every_written_form(contacts):
    policy = _policy()
    listed = suppression_table("archive")
    asked = {"email": [a for k, _, a in CORPUS if k == "email"], "phone": [a for k, _, a in CORPUS if k == "phone"]}
    contacts.ensure_archive_schema()
    with contacts.engine.begin() as conn:
        suppress(conn, listed, Subject.of(asked), KEY, AS_OF, "DDP-OPP-IDENT")
    with contacts.read() as conn:
        flagged = suppressed_active_rows(conn, listed, KEY, _root(conn, contacts, policy), contacts.dialect)
        assert flagged.rows == len(CORPUS)  # every stored form, the outsider not
        for kind, stored, _ in CORPUS:  # the stored form comes back through an import
            with pytest.raises(RetentionError, match="import refused: 1"):
                refuse_suppressed(conn, listed, KEY, kind, [stored])


@pytest.mark.parametrize(("kind", "stored", "asked"), CORPUS)
def test_the_keyed_hash_is_the_same_for_the_stored_and_the_asked_form(kind, stored, asked):
    from include.retention.database.identifiers import canonical_form

    assert KEY.digest(f"{kind}:{canonical_form(kind, stored)}") == subject_hash(KEY, kind, asked)


# --- Phone numbers of every country, against libphonenumber ----------------------------------------


def _example_numbers():
    types = [
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.TOLL_FREE,
    ]
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in types:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                yield region, number


def test_every_countrys_example_numbers_in_every_international_form_give_libphonenumbers_e164():
    from include.retention.database.identifiers import canonical_form, tables

    fmt = phonenumbers.PhoneNumberFormat
    wrong, checked = [], 0
    for region, number in _example_numbers():
        e164 = phonenumbers.format_number(number, fmt.E164)
        written = phonenumbers.format_number(number, fmt.INTERNATIONAL)
        code = str(number.country_code)
        forms = [
            e164,
            written,
            "00" + e164[1:],
            written.replace("+", "00", 1),
            written.replace(" ", "\u00a0"),
            written.replace(" ", "."),
            written.replace(" ", "-"),
        ]
        if code in tables().trunk_zero_codes:
            forms += [written.replace(f"+{code} ", f"+{code} (0)", 1), written.replace(f"+{code} ", f"+{code} 0", 1)]
        if region == "FR":
            national = phonenumbers.format_number(number, fmt.NATIONAL)
            forms += [national, national.replace(" ", "."), national.replace(" ", "")]
        for form in forms:
            checked += 1
            if canonical_form("phone", form) != e164:
                wrong.append((region, form, canonical_form("phone", form), e164))
    assert checked > 3000 and wrong == []


# --- National numbers: the French plan (0 + 9 digits) and no other -------------------------------

# (a foreign national number written without a trunk 0, the French number of the same digits)
FOREIGN_NATIONAL = [
    ("612 345 678", "06 12 34 56 78"),  # Spain, mobile
    ("912 345 678", "09 12 34 56 78"),  # Portugal, mobile
    ("512 345 678", "05 12 34 56 78"),  # Poland, mobile
    ("601 123 456", "06 01 12 34 56"),  # Czechia, mobile
]


@pytest.mark.parametrize(("foreign", "french"), FOREIGN_NATIONAL)
def test_a_foreign_national_number_without_trunk_0_is_never_read_as_a_french_one(target, foreign, french):
    from include.retention.database.identifiers import canonical_form

    digits = foreign.replace(" ", "")
    with target.read() as conn:
        in_sql = conn.execute(select(normalised_sql("phone", literal(foreign, Text)))).scalar_one()
    assert canonical_form("phone", foreign) == in_sql == normalise("phone", digits) == digits
    assert normalise("phone", french) == "+33" + digits


def test_a_french_persons_erasure_leaves_a_foreign_prospect_with_the_same_digits(target):
    """A Spanish prospect's 612 345 678 is not a French 06 12 34 56 78: erasing the French
    person (in any French writing) never deletes the Spanish row."""
    french = ["06 12 34 56 78", "+33 6 12 34 56 78", "0033 (0)6 12 34 56 78", "33 6 12 34 56 78"]
    _create_contacts(
        target, [_row(1, "phone", "612 345 678")] + [_row(10 + i, "phone", w) for i, w in enumerate(french)]
    )
    result = erase(target, _policy(), Subject.of({"phone": "06.12.34.56.78"}), KEY, CTX)
    assert result.erased == len(french) and _ids(target) == {1}


PLACEHOLDER_EMAILS = ["N/A", "-", "none", "inconnu", "?", "néant", "x@", "@", "pas d'e-mail", "n/a@na"]


def test_a_placeholder_email_does_not_make_the_row_holding_the_persons_phone_someone_elses(target):
    """An erasure by e-mail and phone erases the row holding the person's phone whose e-mail
    column holds a placeholder (N/A, -, inconnu...); a real other address still spares it."""
    phone = "06 12 34 56 78"
    rows = [{**_row(i, "phone", phone), "email": e} for i, e in enumerate(PLACEHOLDER_EMAILS)]
    rows.append({**_row(100, "phone", phone), "email": "sibling@example.fr"})  # a household's shared phone
    _create_contacts(target, rows)
    result = erase(target, _policy(), Subject.of({"email": "jeanne@example.fr", "phone": phone}), KEY, CTX)
    assert result.erased == len(PLACEHOLDER_EMAILS) and _ids(target) == {100}


def _overseas_examples():
    from include.retention.database.identifiers import FRENCH_PLAN_OVERSEAS_CODES

    types = [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]
    for code in FRENCH_PLAN_OVERSEAS_CODES:
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
            for kind in types:
                number = phonenumbers.example_number_for_type(region, kind)
                # Saint-Pierre-et-Miquelon's 6-digit numbers are outside the French national plan.
                if number is not None and len(str(number.national_number)) == 9:
                    yield region, number


def test_an_overseas_number_written_nationally_has_its_territorys_calling_code(target):
    """0692 12 34 56 (Réunion) is +262 692 12 34 56, not +33 692...: for every overseas
    region's example fixed and mobile numbers, the national and E.164 forms are one form."""
    from include.retention.database.identifiers import canonical_form

    fmt = phonenumbers.PhoneNumberFormat
    examples = list(_overseas_examples())
    assert {r for r, _ in examples} >= {"RE", "YT", "GP", "BL", "MF", "GF", "MQ"}
    wrong = []
    with target.read() as conn:
        for region, number in examples:
            e164 = phonenumbers.format_number(number, fmt.E164)
            for form in (
                phonenumbers.format_number(number, fmt.NATIONAL),
                e164,
                phonenumbers.format_number(number, fmt.INTERNATIONAL),
            ):
                in_sql = conn.execute(select(normalised_sql("phone", literal(form, Text)))).scalar_one()
                if not canonical_form("phone", form) == in_sql == e164:
                    wrong.append((region, form, canonical_form("phone", form), in_sql, e164))
    assert wrong == []


@pytest.mark.parametrize(
    ("value", "column_type"),
    [
        (612345678.0, Float),
        (33612345678.0, Float),
        (612345678, BigInteger),
        (336123456789012.0, Float),
        (612345678.5, Float),
        (Decimal("612345678.00"), Numeric(12, 2)),
        (Decimal("612345678.50"), Numeric(12, 2)),
    ],
)
def test_a_phone_stored_as_a_number_reads_alike_in_python_and_sql(target, value, column_type):
    """A spreadsheet import leaves phones in float columns: 612345678.0 is 612345678, on
    SQLite (Python's form) and PostgreSQL alike, not a 10-digit 6123456780."""
    from include.retention.database.identifiers import canonical_form

    table = Table("numbers", MetaData(), Column("id", Integer, primary_key=True), Column("phone", column_type))
    table.create(target.engine)
    with target.engine.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "phone": value}])
    with target.read() as conn:
        stored, in_sql = conn.execute(select(table.c.phone, normalised_sql("phone", table.c.phone))).one()
    assert in_sql == canonical_form("phone", stored)
    if value == int(value):
        assert in_sql == canonical_form("phone", str(int(value)))


# --- Python and SQL agree on any string, not only on the corpus -----------------------------------

_TRICKY = st.sampled_from(
    list(
        "0123456789+()./- aAzZéÉèßẞİıΣσςΩＡａ０９@\t\n\r\u00a0\u202f\u200b\ufeff\u00ad\u2028\u3000"
        "\u0301\u0308xXposte#,;"
    )
    + ["(0)", "00", "+33", "+44", "0033", "+39"]
)
_STRINGS = st.lists(_TRICKY, max_size=14).map("".join) | st.text(max_size=12).filter(lambda s: "\x00" not in s)


@pytest.mark.parametrize("kind", ["email", "phone", "customer_number"])
def test_python_and_sql_agree_on_arbitrary_strings(target, kind):
    from include.retention.database.identifiers import canonical_form

    with target.read() as conn:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(_STRINGS)
        def agree(value):
            assert conn.execute(select(normalised_sql(kind, literal(value, Text)))).scalar_one() == canonical_form(
                kind, value
            )

        agree()


def test_the_scanned_planes_hold_every_invisible_and_every_cased_character():
    """The tables scan planes 0-3 and plane 14 only (0.2 s per process); a scan of every code
    point (2 s) must find the same, or a new Unicode version needs the scan widened."""
    import sys

    from include.retention.database.identifiers import tables

    full = tables((range(0, sys.maxunicode + 1),))
    assert full.invisible == tables().invisible and full.lower == tables().lower


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("email", "not an address", "name@domain.tld"),
        ("email", "\u200b\u00a0", "name@domain.tld"),
        ("phone", "06 11 22 33 44 poste 12", "6 to 15 digits"),
        ("phone", "12345", "6 to 15 digits"),
        ("customer_number", "\u200b \t", "is empty"),
    ],
)
def test_a_malformed_asked_identifier_is_refused_without_repeating_it(kind, value, message):
    with pytest.raises(RetentionError, match=message) as refused:
        normalise(kind, value)
    assert value.strip() not in str(refused.value) or not value.strip()


# --- Hashes written in the former form: still matched, and migrated -------------------------------

# Two people, each stored twice: once as the former form read the request, once otherwise.
HELD = ("+33 (0)7 00 00 00 01", "07 00 00 00 01")
OPPOSED = ("+33 (0)7 00 00 00 02", "07.00.00.00.02")
GONE = "+33 (0)7 00 00 00 03"  # opposed, and no row left


def _legacy_hash(kind, value):
    from include.retention.database.identifiers import legacy_form

    return KEY.digest(f"{kind}:{legacy_form(kind, value)}")


def _former_entries(target):
    """A subject hold and suppression entries as the former form wrote them."""
    from include.retention.database.store import ensure_hold_tables

    policy = _policy()
    add_hold(
        target,
        policy,
        NewHold(
            reference="RG-OLD-1",
            scope="subject",
            reason="Contentieux",
            created_by="dpo@example.fr",
            subject=Subject.of({"phone": HELD[0]}),
        ),
        KEY,
        RunContext("manual__hold", "legal_hold", AS_OF, "contacts-1"),
        AS_OF,
    )
    items = hold_tables("archive").items
    listed = suppression_table("archive")
    with target.engine.begin() as conn:
        ensure_hold_tables(conn, hold_tables("archive"))
        conn.execute(items.update().where(items.c.kind == "subject").values(item=_legacy_hash("phone", HELD[0])))
        listed.create(conn, checkfirst=True)
        conn.execute(
            insert(listed),
            [
                {
                    "subject_hash": _legacy_hash("phone", value),
                    "kind": "phone",
                    "suppressed_on": AS_OF,
                    "request_reference": "DDP-OLD",
                }
                for value in (OPPOSED[0], GONE)
            ],
        )


def _held_and_suppressed(target) -> tuple[set[int], int]:
    from include.retention.records.held_rows import holds_in_force

    policy = _policy()
    with target.read() as conn:
        root = _root(conn, target, policy)
        holds = holds_in_force(conn, hold_tables("archive"), AS_OF, KEY, target.dialect)
        held = set(
            conn.execute(select(root.source.c.contact_id).where(holds.held(root, Side.ACTIVE, "contacts"))).scalars()
        )
        suppressed = suppressed_active_rows(conn, suppression_table("archive"), KEY, root, target.dialect).rows
    return held, suppressed


@pytest.fixture
def former(target):
    _create_contacts(
        target,
        [_row(1000 + i, "phone", v) for i, v in enumerate(HELD + OPPOSED)]
        + [_row(OUTSIDER, "email", "outsider@example.fr")],
    )
    _former_entries(target)
    return target


def test_entries_in_the_former_form_keep_matching_what_they_matched(former):
    held, suppressed = _held_and_suppressed(former)
    assert held == {1000} and suppressed == 1  # the rows written as the request was
    with former.read() as conn:
        for value in (OPPOSED[0], GONE):
            with pytest.raises(RetentionError, match="import refused: 1"):
                refuse_suppressed(conn, suppression_table("archive"), KEY, "phone", [value])


def test_the_migration_adds_the_new_form_so_every_written_form_matches_and_runs_once(former):
    from include.retention.rights.rehash import Rehashed, add_canonical_hashes

    assert add_canonical_hashes(former, _policy(), KEY) == Rehashed(suppression_entries=1, hold_items=1)
    assert add_canonical_hashes(former, _policy(), KEY) == Rehashed()
    held, suppressed = _held_and_suppressed(former)
    assert held == {1000, 1001} and suppressed == 2
    with former.read() as conn:
        with pytest.raises(RetentionError, match="import refused: 1"):
            refuse_suppressed(conn, suppression_table("archive"), KEY, "phone", ["07 00 00 00 02"])
        listed = conn.execute(select(suppression_table("archive"))).all()
    assert len(listed) == 3 and {r.request_reference for r in listed} == {"DDP-OLD"}


def test_was_erased_finds_events_logged_under_the_former_form(former):
    from include.retention.records import audit
    from include.retention.rights.erased import was_erased

    trail = store.audit_table("archive", _policy().audit_table)
    with former.engine.begin() as conn:
        store.ensure_audit_table(conn, trail)
        audit.record(
            conn,
            trail,
            CTX,
            category="subject_request",
            action="rights_request",
            row_count=0,
            details={"request_type": "erasure", "outcome": "completed"},
            subject_hash=_legacy_hash("phone", GONE),
        )
    answer = was_erased(former, _policy(), KEY, "phone", GONE)
    assert [e["action"] for e in answer.events] == ["rights_request"] and answer.erased_on is not None


def test_the_migration_script_adds_the_hashes_and_prints_counts_only(former, tmp_path, monkeypatch, capsys):
    import yaml

    from scripts.rehash_identifiers import main

    policy_file = tmp_path / "contacts.yaml"
    policy_file.write_text(yaml.safe_dump(CONTACTS_POLICY, allow_unicode=True))
    monkeypatch.setenv("RETENTION_SUBJECT_SECRET", "erasure-test-key-" + "k" * 30)  # crm_helpers.KEY
    url = former.engine.url.render_as_string(hide_password=False)
    assert main([url, "--policy", str(policy_file)]) == 0
    printed = capsys.readouterr().out
    assert printed == "canonical-form hashes added: 1 suppression entries, 1 subject hold items\n"
    assert _held_and_suppressed(former) == ({1000, 1001}, 2)

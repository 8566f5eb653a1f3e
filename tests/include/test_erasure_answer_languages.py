"""The answer to "was person X erased?" in the reader's language: French on the French
Retention view, English for the engineer's console; dates in words in both."""

from __future__ import annotations

from datetime import date

from include.retention.policy.model import Label
from include.retention.rights.erased import (
    KEPT_BY_OBLIGATION,
    REQUEST_EVIDENCE,
    RETAINED_DEPENDANT,
    ErasureAnswer,
    Horizon,
    Presence,
)

AFTER = Label(fr="5 ans après la clôture de la demande", en="5 years after the closure of the request")
TODAY = date(2026, 12, 1)
LABELS = {
    "customers": Label(fr="Clients", en="Customers"),
    "billing": Label(fr="Facturation", en="Billing"),
    "requests": Label(fr="Demandes de droits", en="Rights requests"),
}


def _erased_but_invoices_kept() -> ErasureAnswer:
    until = Horizon(date(2029, 3, 31), 0, AFTER, TODAY)
    return ErasureAnswer(
        "0" * 64,
        presence=[
            Presence("customers", "partners", 0, 6, KEPT_BY_OBLIGATION, until, kept_for="billing"),
            Presence("billing", "invoices", 0, 3, RETAINED_DEPENDANT, until),
            Presence("requests", "rights_requests", 1, 0, REQUEST_EVIDENCE, Horizon(date(2031, 12, 1), 0, AFTER)),
        ],
        events=[{"action": "rights_request"}],
        erased_on=date(2026, 12, 1),
        labels=LABELS,
    )


def test_the_answer_reads_in_french_with_its_dates_in_words():
    assert _erased_but_invoices_kept().sentence("fr") == (
        "Effacement effectué le 1er décembre 2026, sauf ce qu'une obligation légale conserve : Clients (6 ligne(s), "
        "archive, conservées jusqu'au 31 mars 2029, nécessaires à des enregistrements que « Facturation » conserve "
        "pour son obligation légale), Facturation (3 ligne(s), archive, enregistrements rattachés aux siens, "
        "conservés jusqu'au 31 mars 2029) ; l'enregistrement de la demande est conservé comme preuve jusqu'au "
        "1er décembre 2031."
    )


def test_the_same_answer_in_english_without_a_language():
    assert _erased_but_invoices_kept().sentence() == (
        "Erased on 1 December 2026, except what a legal obligation keeps: Customers (6 row(s), archive, kept until "
        "31 March 2029, needed by records Billing keeps for its legal obligation), Billing (3 row(s), archive, "
        "records attached to theirs, kept until 31 March 2029); the request record is kept as evidence until "
        "1 December 2031."
    )


def test_rows_waiting_for_their_start_event_say_what_they_wait_for_in_french():
    assert Horizon(None, 2, AFTER, TODAY).text("fr") == "jusqu'à 5 ans après la clôture de la demande"
    assert Horizon(date(2026, 11, 30), 0, AFTER, TODAY).text("fr") == (
        "au-delà de leur fin de vie (30 novembre 2026) : la prochaine exécution les détruira"
    )
    nobody = ErasureAnswer("0" * 64)
    assert nobody.sentence("fr").startswith("Aucune donnée sur cette personne n'est conservée")

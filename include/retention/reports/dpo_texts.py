"""The words the DPO report gives the engine's values: a request type, a hold's scope and
status, an end action, a refused token's reason, a segment of the volumes.

The engine stores these as codes (``opposition``, ``in_force``, ``anonymize``); a DPO reads
words. Each code's words are written here once, in English, and translated by the ``report``
catalog like every other text of the report (``value_words``). The headings and sentences
live where they are laid out (dpo_render.py); the dates in words in ``dates.words``.
"""

from __future__ import annotations

from collections.abc import Mapping

from include.retention.language import N_, Translate

# What happened to a record in one run (``dpo_report.SEGMENTS``): a chart's legend and tooltips.
SEGMENT_WORDS = {
    "archived_kept": N_("archived and kept"),
    "deleted_same_run": N_("archived then destroyed in the same run"),
    "anonymized_same_run": N_("archived then anonymised in the same run"),
    "deleted_from_archive": N_("destroyed from the archive (archived by an earlier run)"),
    "anonymized_from_archive": N_("anonymised in the archive (archived by an earlier run)"),
    "deleted_directly": N_("destroyed directly in the active base"),
}
# A rights request's type (``rights.requests.REQUEST_TYPES``).
REQUEST_TYPE_WORDS = {
    "access": N_("access"),
    "portability": N_("portability"),
    "rectification": N_("rectification"),
    "erasure": N_("erasure"),
    "opposition": N_("opposition"),
    "consent_withdrawal": N_("consent withdrawal"),
}
# What a legal hold covers (``records.holds.SCOPES``).
HOLD_SCOPE_WORDS = {
    "subject": N_("a person"),
    "category": N_("a category"),
    "rows": N_("rows"),
}
# Where a legal hold stands on the report's day (``records.holds.HoldView.status``).
HOLD_STATUS_WORDS = {
    "in_force": N_("in force"),
    "lifted": N_("lifted"),
    "expired": N_("lapsed"),  # not "expired": a refused token's reason, translated otherwise
}
# What happens to a record at the end of its retention (``Category.end_action``).
END_ACTION_WORDS = {
    "delete": N_("deletion"),
    "anonymize": N_("anonymisation"),
}
# Why an answer token was refused (``reconsent.tokens.RefusalReason``).
REFUSAL_WORDS = {
    "forged": N_("forged"),
    "expired": N_("expired"),
    "replayed": N_("replayed"),
    "unknown": N_("unknown"),
    "closed": N_("closed (the row had left the active base)"),
}


def value_words(words: Mapping[str, str], value: str, _: Translate) -> str:
    """The reader's words for a stored code, translated by ``_``; a code this version does not
    know (a register written by a newer one) is shown as stored rather than hidden."""
    return _(words[value]) if value in words else value

"""The trigger forms of ``subject_request`` and ``legal_hold``, read into the engine's objects.

Identifiers are normalised (and so checked) here, before anything is written. Which form
fields hold personal data is said here too: an error text never shows them (``errors.py``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from include.retention.database.identifiers import IDENTIFIER_KINDS
from include.retention.database.identity import Subject
from include.retention.errors import RetentionError
from include.retention.records.holds import NewHold
from include.retention.rights.requests import RequestRecord

# Trigger-form fields whose values are personal data (or free text that may hold some), or
# credentials (the re-consent answer tokens of ``reconsent_answer``): an error text that quotes
# one of them is scrubbed of it (``errors.scrubbing``).
PERSONAL_PARAMS = (*IDENTIFIER_KINDS, "reason", "lift_reason", "extension_reason", "changes", "tokens", "bounces")


def subject_of(params: dict[str, Any]) -> Subject:
    """The person the form names, by every identifier given."""
    return Subject.of({kind: params[kind] for kind in IDENTIFIER_KINDS if params.get(kind)})


def request_record(params: dict[str, Any]) -> RequestRecord:
    """The data-subject request the ``subject_request`` form describes."""
    return RequestRecord(
        params["reference"],
        params["request_type"],
        date.fromisoformat(params["received"]),
        params["identity"] == "verified",
        requester_email=params.get("email"),
        extension_reason=params.get("extension_reason") or None,
    )


def new_hold(params: dict[str, Any], who: str | None) -> NewHold:
    """The hold the ``legal_hold`` form describes, asked for by ``who``."""
    if not who:
        raise RetentionError("say who asks for the hold: requested_by (the run was not triggered by a named user)")
    return NewHold(
        reference=params.get("reference") or "",
        scope=params.get("scope") or "",
        reason=params.get("reason") or "",
        created_by=who,
        expires_on=date.fromisoformat(params["expires_on"]) if params.get("expires_on") else None,
        category=params.get("category"),
        table=params.get("table"),
        keys=list(params.get("keys") or []),
        subject=subject_of(params) if params.get("scope") == "subject" else None,
    )

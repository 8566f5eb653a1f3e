"""The signed answer tokens a re-consent notice carries in its yes and no links.

A token is ``{token_id}.{y|n}.{expires YYYYMMDD}.{signature}``: the ask it answers (32 hex
characters, the register's ``token_id``), the answer the link stands for, the last day it is
accepted, and ``HMAC-SHA256(project key, "reconsent-token:" + the first three parts)``. The
signature makes the answer and the deadline tamper-proof without a server-side secret per
link; the register row (found by ``token_id``) says whether it was already answered.

A token is a credential (whoever holds it answers for the person): it is never logged, audited
or put in an error message. ``TokenRefused`` carries a reason word only.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from include.retention.database.identity import SubjectKey
from include.retention.errors import RetentionError

Answer = Literal["yes", "no"]
RefusalReason = Literal["forged", "expired", "replayed", "unknown", "closed"]

_SIGNING_CONTEXT = "reconsent-token:"
_ANSWER_LETTERS: dict[Answer, str] = {"yes": "y", "no": "n"}
_LETTER_ANSWERS: dict[str, Answer] = {"y": "yes", "n": "no"}
_TOKEN = re.compile(r"(?P<token_id>[0-9a-f]{32})\.(?P<letter>[yn])\.(?P<expires>\d{8})\.(?P<sig>[0-9a-f]{64})")


class TokenRefused(RetentionError):
    """A token that is not honoured, and why: forged (bad signature or malformed), expired,
    replayed (its ask is already answered), unknown (well signed, no such ask) or closed (a yes
    whose row has left the active base: no clock left to restart)."""

    def __init__(self, reason: RefusalReason) -> None:
        self.reason: RefusalReason = reason
        super().__init__(f"re-consent token refused: {reason}")


@dataclass(frozen=True)
class Token:
    """What a verified token says: which ask, which answer, accepted until when (inclusive)."""

    token_id: str
    answer: Answer
    expires_on: date


def new_token_id() -> str:
    """A fresh, unguessable ask identifier (32 hex characters)."""
    return secrets.token_hex(16)


def sign(key: SubjectKey, token_id: str, answer: Answer, expires_on: date) -> str:
    """The token text for one link of one ask."""
    payload = f"{token_id}.{_ANSWER_LETTERS[answer]}.{expires_on:%Y%m%d}"
    return f"{payload}.{key.digest(_SIGNING_CONTEXT + payload)}"


def read(key: SubjectKey, text: str) -> Token:
    """The token's content if its signature is the project's, else ``TokenRefused("forged")``.

    Only the signature is checked here; expiry and replay need the date and the register
    (``answers.answer_token``)."""
    match = _TOKEN.fullmatch(text.strip())
    if match is None:
        raise TokenRefused("forged")
    payload = text.strip().rsplit(".", 1)[0]
    if not hmac.compare_digest(match["sig"], key.digest(_SIGNING_CONTEXT + payload)):
        raise TokenRefused("forged")
    try:
        expires_on = datetime.strptime(match["expires"], "%Y%m%d").date()
    except ValueError as invalid_date:
        raise TokenRefused("forged") from invalid_date
    return Token(match["token_id"], _LETTER_ANSWERS[match["letter"]], expires_on)

"""The re-consent notice: the message that asks one person, before their active period ends,
whether they still want to hear from the company.

It says which data (the category's label), when it leaves the active base, what a yes and a
no do, what happens without an answer (archived as evidence, then destroyed), and until when
the two links work. French by default, English on ``language: en``, or the policy's own
``subject``/``body`` (``str.format`` with the placeholders of ``RECONSENT_PLACEHOLDERS`` only;
the policy check refuses any other). The message is plain text with an HTML alternative in
which everything inserted is escaped.

The Message-ID is derived from the ask's token id, so a notice sent again after a crash
(``campaign``) is the same message to the person's mail client, with the same links.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import urlencode

from include.retention.database.identity import SubjectKey, normalise
from include.retention.dates.words import day_words
from include.retention.errors import RetentionError
from include.retention.language import N_, translator
from include.retention.policy.model import Category, Reconsent
from include.retention.reconsent.tokens import sign

# The identifier kind an address is keyed under (``identity.subject_hash``, the suppression list).
ADDRESS_KIND = "email"

# The built-in texts, written in English and translated by the engine catalog (French: the
# charter's own words). The subject and body are ``str.format`` templates.
_SUBJECT = N_("Do you wish to keep receiving our commercial messages?")
_BODY = N_(
    "Hello,\n\n"
    "We hold data about you, under: “{label}”. Under our retention policy, it is due to leave our active "
    "database from {period_end}. Before then, we would like to know whether you wish to keep receiving our commercial "
    "messages.\n\n"
    "Yes, I wish to keep receiving them:\n{yes_url}\n\n"
    "No, I no longer wish to; my data will be erased and I will not be contacted again:\n{no_url}\n\n"
    "These links work until {expires_on} inclusive. {without_answer}\n\n"
    "Kind regards,{signature}"
)
# What happens without an answer: the category's own end of life, said before the links expire.
_WITHOUT_ANSWER = {
    ("archive", "delete"): N_(
        "Without an answer, this data will be archived, kept only as evidence for the legal period, and then destroyed."
    ),
    ("archive", "anonymize"): N_(
        "Without an answer, this data will be archived, kept only as evidence for the legal period, and then "
        "anonymised."
    ),
    ("no archive", "delete"): N_("Without an answer, this data will be destroyed."),
}


@dataclass(frozen=True)
class Notice:
    """One composed notice, ready to hand to a ``Mailer``: both bodies and the envelope's words."""

    to: str
    sender: str
    subject: str
    text: str
    html: str
    message_id: str
    language: str

    def as_email(self) -> EmailMessage:
        """The MIME message: plain text first, the HTML alternative second."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Message-ID"] = self.message_id
        message["Date"] = formatdate(localtime=True)
        message["Content-Language"] = self.language
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


def usable_address(address: str | None) -> bool:
    """Whether a notice can be written to this text AND the register can key it: one bare
    address (``local@domain.tld``) that the keyed hash's canonical form accepts
    (``identity.normalise``, which ``subject_hash`` applies: the one test of the campaign, so an
    address it calls usable always hashes) and that the e-mail library accepts as a header, with
    no name, no comment, no line break."""
    if address is None or not address.strip():
        return False
    bare = address.strip()
    try:
        normalise(ADDRESS_KIND, bare)
    except RetentionError:
        return False
    if parseaddr(bare)[1] != bare or bare.count("@") != 1 or any(c.isspace() for c in bare):
        return False
    try:
        parsed = Address(addr_spec=bare)
    except (HeaderParseError, ValueError, IndexError):
        return False
    return bool(parsed.username and parsed.domain and "." in parsed.domain)


def message_id(token_id: str, sender: str) -> str:
    """``<reconsent-{token_id}@{sender's domain}>``: the same for every send of one ask."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<reconsent-{token_id}@{domain}>"


def answer_link(block: Reconsent, token: str) -> str:
    """The answer page with the token as its query (``?token=...``, URL-encoded)."""
    return f"{block.answer_url}?{urlencode({'token': token})}"


def compose(
    category: Category, *, to: str, token_id: str, key: SubjectKey, period_end: date, expires_on: date
) -> Notice:
    """The notice for one ask of ``category`` (which must have a ``reconsent`` block)."""
    block = category.reconsent
    if block is None:
        raise ValueError(f"category {category.key!r} asks nobody: it has no reconsent block")
    language = block.language
    values = {
        "label": getattr(category.label, language),
        "period_end": day_words(period_end, language),
        "expires_on": day_words(expires_on, language),
        "yes_url": answer_link(block, sign(key, token_id, "yes", expires_on)),
        "no_url": answer_link(block, sign(key, token_id, "no", expires_on)),
    }
    body = block.body or _built_in_body(category, block, language)
    subject = (block.subject or translator(language, "engine")(_SUBJECT)).format_map(values)
    return Notice(
        to=to.strip(),
        sender=block.sender,
        subject=subject,
        text=body.format_map(values),
        html=_html(body, values, language),
        message_id=message_id(token_id, block.sender),
        language=language,
    )


def _built_in_body(category: Category, block: Reconsent, language: str) -> str:
    """The built-in template with the category's own end of life and the sender's name filled
    in (escaped braces: they are text, not placeholders)."""
    _ = translator(language, "engine")
    kept = "archive" if category.has_archive else "no archive"
    name = parseaddr(block.sender)[0]
    fixed = {
        "{without_answer}": _(_WITHOUT_ANSWER[(kept, category.end_action)]),
        "{signature}": f"\n{name}" if name else "",
    }
    body = _(_BODY)
    for placeholder, words in fixed.items():
        body = body.replace(placeholder, words.replace("{", "{{").replace("}", "}}"))
    return body


def _html(body: str, values: dict[str, str], language: str) -> str:
    """The body as HTML: the template's own text and every inserted value escaped, the two
    answer links as anchors, blank lines as paragraphs and single line breaks kept."""
    escaped = {name: html.escape(value) for name, value in values.items()}
    for link in ("yes_url", "no_url"):
        escaped[link] = f'<a href="{escaped[link]}">{escaped[link]}</a>'
    filled = html.escape(body).format_map(escaped)
    paragraphs = "".join(f"<p>{part.strip().replace(chr(10), '<br>')}</p>" for part in filled.split("\n\n"))
    return f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8"></head><body>{paragraphs}</body></html>'

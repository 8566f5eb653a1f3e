"""What a ``reconsent`` block must say before anyone is written to.

A re-consent notice goes to real people, from the company's name, with links that carry a
signed token; a mistake in the block is a mistake in thousands of mailboxes at once. So the
block is checked when the policy loads, like every other key: which rows are asked (a root
table with a clock of its own), which address (one the suppression list and requests hash
too), the windows (an answer awaited no longer than the notice, a notice shorter than the
active period), the template (known placeholders only, both links in a custom body, no line
break in the subject), the sender (one address) and the answer page (https, no query).

No problem quotes the sender, the answer page or the template: they may hold a person's
name, and the answer page may hold credentials. Table and column names are the policy's own.
"""

from __future__ import annotations

import re
from email.utils import getaddresses, parseaddr
from string import Formatter
from urllib.parse import SplitResult, urlsplit

from include.retention.errors import Problem
from include.retention.policy.model import RECONSENT_PLACEHOLDERS, Category, Reconsent, TablePolicy

# The links carry the token, a credential: it has no place in a subject line, which inbox
# lists, notifications and mail server logs show to whoever looks.
_SUBJECT_PLACEHOLDERS = tuple(p for p in RECONSENT_PLACEHOLDERS if p not in ("yes_url", "no_url"))
_LINKS = ("yes_url", "no_url")
# Answer pages over plain http are only for a test or the demo on this machine.
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
_ADDRESS = re.compile(
    r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN_PLACEHOLDER = 40  # characters of an unknown placeholder named in a problem
# The shortest a month can be, and a year: an active period is at least this many days long.
_SHORTEST_MONTH, _SHORTEST_YEAR = 28, 365


def reconsent_problems(key: str, category: Category, rights_register: str | None) -> list[Problem]:
    """Everything wrong with the category's ``reconsent`` block, each at its key path
    (``rights_register``: the policy's register of requests, where a "no" is recorded)."""
    block = category.reconsent
    if block is None:
        return []
    base = f"categories.{key}.reconsent"
    return (
        _opposition_problems(base, category)
        + _register_problems(base, rights_register)
        + _asked_table_problems(base, category, block)
        + _window_problems(base, category, block)
        + _template_problems(base, block)
        + _sender_problems(base, block)
        + _answer_url_problems(base, block)
    )


def _opposition_problems(base: str, category: Category) -> list[Problem]:
    """A "no" to the notice is an opposition to prospection: it must delete the category's rows,
    or the person who said no would keep the very data they were asked about."""
    if "opposition" in category.deleted_on:
        return []
    return [
        Problem(
            base,
            "a 'no' to the re-consent notice is an opposition: add `opposition` to the category's `deleted_on`, "
            "so that the answer deletes the rows it was asked about",
        )
    ]


def _register_problems(base: str, rights_register: str | None) -> list[Problem]:
    """A "no" is recorded as an opposition request in the rights register, as ``subject_request``
    records one: without a register, every "no" would fail when it arrives, not when the policy loads."""
    if rights_register:
        return []
    return [
        Problem(
            base,
            "a 'no' to the re-consent notice is recorded as an opposition request: set the policy's "
            "`rights_register` (the table of data-subject requests)",
        )
    ]


def _asked_table_problems(base: str, category: Category, block: Reconsent) -> list[Problem]:
    """The asked rows are a root table's, with a clock of their own, and the address is one of
    its hashed e-mail identifiers."""
    roots = {table.table: table for table in category.tables}
    if block.table is None and len(roots) > 1:
        return [Problem(f"{base}.table", f"required when the category has several tables (one of: {', '.join(roots)})")]
    name = block.table or category.tables[0].table
    root = roots.get(name)
    if root is None:
        return [
            Problem(
                f"{base}.table",
                "must be one of the category's tables (tables[], not a child: a child has no active period of its "
                f"own to announce); one of: {', '.join(roots)}",
                name,
            )
        ]
    return _clock_problems(base, root) + _address_problems(base, root, block)


def _clock_problems(base: str, root: TablePolicy) -> list[Problem]:
    """A row must leave the active base at the end of its own active period, so the archive step
    can keep it back while the person is asked."""
    problems = []
    if root.archived_with is not None:
        problems.append(
            Problem(
                f"{base}.table",
                f"table {root.table} is archived_with {root.archived_with.table}: its rows leave with that row, not "
                "at the end of their own active period, so there is no end to announce and the archive step cannot "
                "keep them back for the answer",
                root.table,
            )
        )
    if root.partitioned:
        problems.append(
            Problem(
                f"{base}.table",
                f"table {root.table} is partitioned: whole partitions move at once, and a row waiting for its "
                "answer cannot stay behind; ask from a table that is not partitioned",
                root.table,
            )
        )
    return problems


def _address_problems(base: str, root: TablePolicy, block: Reconsent) -> list[Problem]:
    emails = root.subject_identifiers.get("email", [])
    if block.address_column in emails:
        return []
    listed = f"one of: {', '.join(emails)}" if emails else f"table {root.table} declares none"
    return [
        Problem(
            f"{base}.address_column",
            f"must be one of table {root.table}'s subject_identifiers.email columns ({listed}): the keyed hash of "
            "the address is what the suppression list and data-subject requests use, so an opposed person is "
            "never written to and a 'no' reaches the rows it is about",
            block.address_column,
        )
    ]


def _window_problems(base: str, category: Category, block: Reconsent) -> list[Problem]:
    """An answer awaited no longer than the notice; a notice shorter than the active period,
    which must have an end to announce."""
    problems = []
    if block.answer_days is not None and block.answer_days > block.notice_days:
        problems.append(
            Problem(
                f"{base}.answer_days",
                f"must be at most notice_days ({block.notice_days}): the archive step waits for the answer at most "
                "notice_days past the end of the active period, so a later answer would find the row gone",
                block.answer_days,
            )
        )
    period = category.active_period
    if period.is_zero:
        problems.append(
            Problem(
                f"categories.{category.key}.reconsent",
                "needs an active period: P0D has no end to announce (its rows leave when the relationship "
                "or the request ends, not at a date the person can be told in advance)",
                str(period),
            )
        )
        return problems
    shortest = period.years * _SHORTEST_YEAR + period.months * _SHORTEST_MONTH + period.days
    if block.notice_days >= shortest:
        problems.append(
            Problem(
                f"{base}.notice_days",
                f"must be shorter than the active period {period} (at least {shortest} days long): a person would be "
                "asked before, or the day, their data was collected, and the archive could be kept waiting for as "
                "long again as the period the charter promises",
                block.notice_days,
            )
        )
    return problems


def _template_problems(base: str, block: Reconsent) -> list[Problem]:
    """Placeholders only by name and only the known ones; both links in a custom body; one line
    of subject (a line break would start a header of its own)."""
    problems = []
    if block.subject is not None:
        problems += _placeholder_problems(f"{base}.subject", block.subject, _SUBJECT_PLACEHOLDERS)
        if _CONTROL.search(block.subject):
            problems.append(
                Problem(
                    f"{base}.subject",
                    "must be one line without control characters: a line break in a mail header starts another "
                    "header (a hidden recipient, another sender)",
                )
            )
    if block.body is not None:
        problems += _placeholder_problems(f"{base}.body", block.body, RECONSENT_PLACEHOLDERS)
        missing = [name for name in _LINKS if f"{{{name}}}" not in block.body]
        if missing:
            problems.append(
                Problem(
                    f"{base}.body",
                    f"must contain {' and '.join(f'{{{n}}}' for n in missing)}: without both links the person "
                    "cannot answer, and a notice that cannot be answered keeps no promise",
                )
            )
    return problems


def _placeholder_problems(path: str, template: str, allowed: tuple[str, ...]) -> list[Problem]:
    """Each ``{...}`` of ``template`` is a bare allowed name (``{{`` and ``}}`` are literal braces).

    A format spec, conversion, attribute or index (``{label.__class__}``, ``{label!r}``) is refused:
    the template is filled with ``str.format``, and those reach past the value."""
    known = ", ".join(f"{{{name}}}" for name in allowed)
    try:
        fields = [
            (name, spec, conversion) for _, name, spec, conversion in Formatter().parse(template) if name is not None
        ]
    except ValueError as malformed:
        return [Problem(path, f"is not a valid template ({malformed}); write a literal brace as {{{{ or }}}}")]
    problems = []
    for name, spec, conversion in fields:
        if name in allowed and not spec and conversion is None:
            continue
        written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        shown = written if len(written) <= _SHOWN_PLACEHOLDER else written[: _SHOWN_PLACEHOLDER - 4] + "...}"
        problems.append(
            Problem(path, f"placeholder {shown} is not one of {known} (write a literal brace as {{{{ or }}}})")
        )
    return problems


def _sender_problems(base: str, block: Reconsent) -> list[Problem]:
    """One address, ``name@domain``, optionally with a display name; no line break."""
    found = getaddresses([block.sender])
    _, address = parseaddr(block.sender)
    # Written as parsed: the parser drops what it cannot read (``a@exa mple.fr`` reads ``a@example.fr``).
    readable = len(found) == 1 and _ADDRESS.fullmatch(address) and address in block.sender
    if readable and not _CONTROL.search(block.sender):
        return []
    return [
        Problem(
            f"{base}.sender",
            "must be one e-mail address with a domain, alone or as Name <address> "
            '("Service données personnelles <rgpd@example.fr>"), on one line',
        )
    ]


def _answer_url_problems(base: str, block: Reconsent) -> list[Problem]:
    """The yes/no links are ``{answer_url}?token=...``: an absolute https address of the company's
    page, without a query or fragment of its own, nor credentials (every person would get them)."""
    why = _answer_url_fault(block.answer_url)
    if why is None:
        return []
    return [
        Problem(
            f"{base}.answer_url",
            f"must be an absolute https address (https://www.example.fr/consentement): {why}",
        )
    ]


def _answer_url_fault(url: str) -> str | None:
    """What is wrong with the answer page's address, if anything."""
    if _CONTROL.search(url) or " " in url:
        return "it holds spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a valid address"
    if not _valid_port(parts):
        return "its port is not a number from 1 to 65535"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "it has no https:// scheme and host"
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        return "plain http sends the signed links in the clear (allowed only for localhost and 127.0.0.1)"
    if parts.username is not None or parts.password is not None:
        return "it holds credentials, which every person asked would receive"
    if "?" in url or "#" in url:
        return "it has a query or fragment of its own; the links add ?token=..."
    return None


def _valid_port(parts: SplitResult) -> bool:
    """No port, or one from 1 to 65535 (``SplitResult.port`` raises on anything else)."""
    try:
        return parts.port != 0
    except ValueError:
        return False

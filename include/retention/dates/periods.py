"""Calendar periods (ISO-8601 ``PnYnMnD``) and the arithmetic the schedule relies on.

The charter speaks in calendar periods ("3 years", "13 months"), not in fixed numbers of
days, so a period is kept as years, months and days and added the way a person counts:
months first, clamping to the last day of the month, then days. 29 February plus one year
is therefore 28 February of a non-leap year. The SQL twin of ``add_to`` lives in
``clock.py`` and is tested against this one.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from include.retention.language import checked, translations

# ASCII digits only: ``\d`` alone also matches other scripts' digits (``P٣Y``), which ``int``
# then reads. At most 9 digits a part: ``int`` refuses 4,300 and more, with a message that
# says nothing about periods, and no retention period needs more.
_ISO_PERIOD = re.compile(r"P(?!\Z)(?:([0-9]{1,9})Y)?(?:([0-9]{1,9})M)?(?:([0-9]{1,9})W)?(?:([0-9]{1,9})D)?\Z", re.ASCII)


@dataclass(frozen=True, order=True)
class Period:
    """A calendar period. Only date parts are allowed: retention is counted in days."""

    years: int = 0
    months: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse ``P3Y``, ``P13M``, ``P1Y6M``, ``P30D``, ``P2W`` or ``P0D``.

        Time parts (``PT12H``), negative or fractional values, digits other than ASCII
        ``0-9`` and parts of more than 9 digits are refused: a retention period shorter
        than a day has no meaning in the charter.
        """
        match = _ISO_PERIOD.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"{text!r} is not an ISO-8601 calendar period such as P3Y, P13M, P1Y6M or P30D")
        years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
        return cls(years=years, months=months, days=days + 7 * weeks)

    @property
    def total_months(self) -> int:
        return self.years * 12 + self.months

    @property
    def is_zero(self) -> bool:
        return self.total_months == 0 and self.days == 0

    def add_to(self, start: date) -> date:
        """``start`` + this period, clamping the day to the end of the target month."""
        month_index = start.year * 12 + (start.month - 1) + self.total_months
        year, month = divmod(month_index, 12)
        day = min(start.day, calendar.monthrange(year, month + 1)[1])
        return date(year, month + 1, day) + timedelta(days=self.days)

    def last_due_start(self, as_of: date) -> date:
        """The latest start date whose period has ended on ``as_of``.

        A record is past its period when ``start + period <= as_of``. Because ``add_to``
        never decreases as ``start`` grows, the due records are exactly those that
        started on or before the date returned here, which lets SQL compare the raw
        column with a bound parameter (and use an index) instead of doing calendar
        arithmetic on every row.
        """
        # add_to works with negative parts too; this first guess is off by a few days at most.
        guess = Period(-self.years, -self.months, -self.days).add_to(as_of)
        while self.add_to(guess + timedelta(days=1)) <= as_of:
            guess += timedelta(days=1)
        while self.add_to(guess) > as_of:
            guess -= timedelta(days=1)
        return guess

    def is_longer_than(self, other: Period) -> bool:
        """Whether this period, counted from 1 January 2001, ends after ``other`` does.

        Calendar periods have no single length (P1M is 28 to 31 days), so they are compared
        from one date; 2001 starts a century with the fewest leap days (2100 is not a leap
        year), so a period in days is held to the shortest 100 years. Parts are first
        compared as numbers, so that a huge period is answered without date overflow.
        """
        if self.total_months > other.total_months + (other.days // 28 + 1):
            return True
        if self.days > other.days + 31 * (other.total_months + 1):
            return True
        start = date(2001, 1, 1)
        return self.add_to(start) > other.add_to(start)

    def __str__(self) -> str:
        if self.is_zero:
            return "P0D"
        parts = [(self.years, "Y"), (self.months, "M"), (self.days, "D")]
        return "P" + "".join(f"{n}{unit}" for n, unit in parts if n)

    def in_words(self, lang: str = "en") -> str:
        """ "3 years", "1 year 6 months", "3 ans" (the engine catalog's words, plural by the
        language's rule) - used in DAG docs and reports."""
        ngettext = translations(checked(lang, "period in words"), "engine").ngettext
        parts = [
            ngettext("{count} year", "{count} years", self.years).format(count=self.years) if self.years else "",
            ngettext("{count} month", "{count} months", self.months).format(count=self.months) if self.months else "",
            ngettext("{count} day", "{count} days", self.days).format(count=self.days) if self.days else "",
        ]
        return " ".join(part for part in parts if part) or ngettext("{count} day", "{count} days", 0).format(count=0)

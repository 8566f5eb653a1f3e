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

_ISO_PERIOD = re.compile(r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


@dataclass(frozen=True, order=True)
class Period:
    """A calendar period. Only date parts are allowed: retention is counted in days."""

    years: int = 0
    months: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> "Period":
        """Parse ``P3Y``, ``P13M``, ``P1Y6M``, ``P30D``, ``P2W`` or ``P0D``.

        Time parts (``PT12H``) and negative or fractional values are refused: a
        retention period shorter than a day has no meaning in the charter.
        """
        match = _ISO_PERIOD.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ValueError(
                f"{text!r} is not an ISO-8601 calendar period such as P3Y, P13M, P1Y6M or P30D"
            )
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

    def __str__(self) -> str:
        if self.is_zero:
            return "P0D"
        parts = [(self.years, "Y"), (self.months, "M"), (self.days, "D")]
        return "P" + "".join(f"{n}{unit}" for n, unit in parts if n)

    def in_words(self, lang: str = "en") -> str:
        """"3 years", "13 months", "3 ans" - used in DAG docs and reports."""
        names = {
            "en": {"Y": ("year", "years"), "M": ("month", "months"), "D": ("day", "days")},
            "fr": {"Y": ("an", "ans"), "M": ("mois", "mois"), "D": ("jour", "jours")},
        }[lang]
        parts = [
            f"{n} {names[unit][n != 1]}"
            for n, unit in [(self.years, "Y"), (self.months, "M"), (self.days, "D")]
            if n
        ]
        return " ".join(parts) if parts else ("0 days" if lang == "en" else "0 jour")

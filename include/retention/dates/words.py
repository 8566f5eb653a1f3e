"""Dates and periods in words, as a reader says them, in French and English: ``1er décembre 2026``,
``du 1er au 15 décembre 2026``, ``November 2026``.

Kept with the dates (not with a report) because more than one text says a date: the DPO report
and the re-consent notice (``reconsent.notice``) both read them from here.
"""

from __future__ import annotations

from datetime import date

_MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_SHORT_MONTHS = {
    "fr": ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}


def _day_number(day: date, lang: str) -> str:
    return "1er" if lang == "fr" and day.day == 1 else str(day.day)


def day_words(day: date, lang: str) -> str:
    """``1er décembre 2026`` / ``1 December 2026``."""
    return f"{_day_number(day, lang)} {_MONTHS[lang][day.month - 1]} {day.year}"


def _whole_month(start: date, end: date) -> bool:
    return (
        start.day == 1
        and (start.year, start.month) == (end.year, end.month)
        and date.fromordinal(end.toordinal() + 1).month != end.month
    )


def span_words(start: date, end: date, lang: str) -> str:
    """A span as a label: ``1er décembre 2026``, ``novembre 2026``, ``1er-15 décembre 2026``..."""
    if start == end:
        return day_words(start, lang)
    if _whole_month(start, end):
        return f"{_MONTHS[lang][start.month - 1]} {start.year}"
    if (start.year, start.month) == (end.year, end.month):
        return f"{_day_number(start, lang)}-{day_words(end, lang)}"
    return f"{day_words(start, lang)} - {day_words(end, lang)}"


def period_words(start: date, end: date, lang: str) -> str:
    """The reported period as a reader says it: one day, one calendar month, or from ... to ...

    ``le 1er décembre 2026``, ``novembre 2026``, ``du 1er au 15 décembre 2026``,
    ``du 1er octobre au 30 novembre 2026`` (``1 December 2026``, ``November 2026``,
    ``1 to 15 December 2026``, ``1 October to 30 November 2026`` in English)."""
    if start == end:
        return f"le {day_words(start, lang)}" if lang == "fr" else day_words(start, lang)
    if _whole_month(start, end):
        return span_words(start, end, lang)
    if start.year != end.year:
        first = day_words(start, lang)
    elif start.month != end.month:
        first = f"{_day_number(start, lang)} {_MONTHS[lang][start.month - 1]}"
    else:
        first = _day_number(start, lang)
    return f"du {first} au {day_words(end, lang)}" if lang == "fr" else f"{first} to {day_words(end, lang)}"


def during_words(start: date, end: date, lang: str) -> str:
    """The period after "the runs ...": ``de novembre 2026``, ``du 1er décembre 2026``, ``from 1 to 15 ...``."""
    words = period_words(start, end, lang)
    if lang == "en":
        return f"of {words}" if start == end or _whole_month(start, end) else f"from {words}"
    if start == end:
        return f"du {day_words(start, lang)}"
    if _whole_month(start, end):
        return f"d'{words}" if words[0] in "aeiou" else f"de {words}"
    return words


def bar_label(first: date, last: date, lang: str) -> tuple[str, str]:
    """Two short lines under a bar: ``nov.`` / ``2026``, or ``1er-15 déc.`` / ``2026`` for part of a month."""
    month = _SHORT_MONTHS[lang][first.month - 1]
    if _whole_month(first, last):
        return month, str(first.year)
    days = _day_number(first, lang) if first == last else f"{_day_number(first, lang)}-{last.day}"
    return f"{days} {month}", str(first.year)

"""Dates, periods and instants in words, as a reader says them, in French and English:
``1er décembre 2026``, ``du 1er au 15 décembre 2026``, ``November 2026``,
``1er décembre 2026 à 00:12 (heure de Paris)``.

Kept with the dates (not with a report) because every document says dates: the DPO report,
the run certificates, the re-consent notice and the Retention view all read them from here.
Month and zone names come from CLDR through Babel; the few words around them (``à``,
``heure de``) from the ``engine`` catalog. What stays in code is grammar a catalog cannot
hold: French says ``1er`` for the first of a month, ``le`` before a single day, and elides
``de`` before a vowel.

An instant is always shown in the policy's zone, with the zone named, never in UTC: a DPO in
Paris reads the run that ended at 23:12 UTC on 30 November as one of 1 December. In the hour
the clocks repeat when they go back, the time also names its offset (``02:30 UTC+2``, then
``02:30 UTC+1``): two instants are never written alike.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, get_month_names, get_timezone_location

from include.retention.language import N_, Language, checked, translator

# A table cell's date and time, as a CLDR pattern each language translates (a French reader
# writes 01/12/2026; an English one reads "1 Dec 2026" without wondering which is the month).
_SHORT_MOMENT = N_("d MMM y HH:mm")
_FRENCH_ELISION = re.compile(r"\bde (?=[aeiouyàâéèêëîïôûAEIOUYÀÂÉÈÊËÎÏÔÛ])")


def _language(lang: str) -> Language:
    return checked(lang, "date in words")


def _month(day: date, lang: str, width: Literal["abbreviated", "narrow", "wide"] = "wide") -> str:
    return get_month_names(width, locale=_language(lang))[day.month]


def _day_number(day: date, lang: str) -> str:
    return "1er" if lang == "fr" and day.day == 1 else str(day.day)


def _elided(text: str, lang: str) -> str:
    """French ``de`` before a vowel becomes ``d'`` (``d'avril``, ``heure d'Amsterdam``)."""
    return _FRENCH_ELISION.sub("d'", text) if lang == "fr" else text


def day_words(day: date, lang: str) -> str:
    """``1er décembre 2026`` / ``1 December 2026``."""
    return f"{_day_number(day, lang)} {_month(day, lang)} {day.year}"


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
        return f"{_month(start, lang)} {start.year}"
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
        first = f"{_day_number(start, lang)} {_month(start, lang)}"
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
        return _elided(f"de {words}", lang)
    return words


def bar_label(first: date, last: date, lang: str) -> tuple[str, str]:
    """Two short lines under a bar: ``nov.`` / ``2026``, or ``1er-15 déc.`` / ``2026`` for part of a month."""
    month = _month(first, lang, "abbreviated")
    if _whole_month(first, last):
        return month, str(first.year)
    days = _day_number(first, lang) if first == last else f"{_day_number(first, lang)}-{last.day}"
    return f"{days} {month}", str(first.year)


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    """``instant`` on the clocks of ``zone``; a naive datetime is refused (which zone would it be in?)."""
    if instant.tzinfo is None or instant.tzinfo.utcoffset(instant) is None:
        raise ValueError(
            f"naive datetime {instant.isoformat()} refused: an instant shown to a reader must be aware "
            "(the project records every timestamp with its zone)"
        )
    return instant.astimezone(zone)


def _repeated_hour_offset(local: datetime) -> str:
    """`` UTC+2`` / `` UTC+1`` when the clocks show ``local``'s time twice (the hour the clocks
    go back in autumn: 02:30 in Paris comes at 00:30 and at 01:30 UTC on 25 October 2026),
    else nothing: only there does the time alone not say which instant it is."""
    offset = local.utcoffset()
    if offset is None or local.replace(fold=1 - local.fold).utcoffset() == offset:
        return ""
    minutes = int(offset.total_seconds()) // 60
    sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
    return f" UTC{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def zone_words(zone: ZoneInfo, lang: str) -> str:
    """The zone as a reader names it, by its city: ``heure de Paris`` / ``Paris time``."""
    _ = translator(lang, "engine")
    city = get_timezone_location(zone, locale=_language(lang), return_city=True)
    return _elided(_("{city} time").format(city=city), lang)


def moment_words(instant: datetime, lang: str, zone: ZoneInfo) -> str:
    """``1er décembre 2026 à 00:12 (heure de Paris)`` / ``1 December 2026 at 00:12 (Paris time)``:
    the instant on the policy's clocks, with the zone said."""
    local = _local(instant, zone)
    _ = translator(lang, "engine")
    return _("{day} at {time} ({zone})").format(
        day=day_words(local.date(), lang),
        time=local.strftime("%H:%M") + _repeated_hour_offset(local),
        zone=zone_words(zone, lang),
    )


def short_moment_words(instant: datetime, lang: str, zone: ZoneInfo) -> str:
    """A table cell: ``01/12/2026 00:12`` / ``1 Dec 2026 00:12``, in ``zone`` (the column's
    heading names it, with ``zone_words``); in the hour the clocks repeat, with its offset
    (``25/10/2026 02:30 UTC+1``)."""
    _ = translator(lang, "engine")
    local = _local(instant, zone)
    return format_datetime(local, _(_SHORT_MOMENT), locale=_language(lang)) + _repeated_hour_offset(local)

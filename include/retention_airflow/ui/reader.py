"""Who reads a page: the target served, its policy, the language - and links that keep them.

French by default (the policy's ``language``), English on request (``?lang=en``). A page's
links keep the ``?target=`` of a deployment that serves several targets, and the ``?lang=`` a
reader asked for, so that a click never drops them. Times are shown on the policy's clocks
(``dates.words``), never in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Query, Request

from include.retention.dates.words import moment_words, short_moment_words, zone_words
from include.retention.errors import RetentionError
from include.retention.language import Language, checked
from include.retention.policy.model import RetentionPolicy
from include.retention_airflow.targets import Site
from include.retention_airflow.ui.served import SERVED_SITE

LANG_PARAMETER = Query(None, max_length=10, description="fr or en; the policy's language when left out")


def language(lang: str | None, default: str) -> Language:
    """``lang`` if given (400 naming the parameter when it is not a language we write in), else ``default``."""
    try:
        return checked(default if lang is None else lang, "lang")
    except RetentionError as exc:
        raise HTTPException(400, f"bad parameter {exc}") from exc


@dataclass(frozen=True)
class Reader:
    """One request's reader: where the view is mounted, the target and its policy, the language."""

    root: str  # where the app is mounted (``/retention``)
    site: Site
    policy: RetentionPolicy
    lang: Language
    lang_asked: bool  # ``?lang=`` was given: links keep it
    path: str  # this page's path, for the language switch
    query: tuple[tuple[str, str], ...]  # this page's query, for the language switch

    def href(self, path: str, **params: object) -> str:
        """A link to the view's page ``path`` (``/audit``; ``""`` is the overview) with ``params``,
        keeping the target and the language asked for."""
        query = {name: str(value) for name, value in params.items() if value is not None and value != ""}
        if self.site.name is not None:
            query["target"] = self.site.name
        if self.lang_asked:
            query["lang"] = self.lang
        return self.root + (path or "/") + (f"?{urlencode(query)}" if query else "")

    def switch_href(self, lang: str) -> str:
        """This very page in ``lang``: every other parameter kept."""
        kept = [(name, value) for name, value in self.query if name != "lang"]
        return f"{self.path}?{urlencode([*kept, ('lang', lang)])}"

    def moment(self, instant: datetime) -> str:
        """``1er décembre 2026 à 00:12 (heure de Paris)``: the instant on the policy's clocks."""
        return moment_words(instant, self.lang, self.policy.zone)

    def short_moment(self, instant: datetime) -> str:
        """A table cell: ``01/12/2026 00:12``; the column's heading names the zone (``zone``)."""
        return short_moment_words(instant, self.lang, self.policy.zone)

    def category(self, key: str) -> str:
        """A category's name as the charter words it, in the reader's language (its key when the
        policy has no such category any more: an old event)."""
        category = self.policy.categories.get(key)
        return key if category is None else str(getattr(category.label, self.lang))

    @property
    def zone(self) -> str:
        """The policy's zone as a reader names it: ``heure de Paris``."""
        return zone_words(self.policy.zone, self.lang)


def reader_from(request: Request, site: Site, lang: str | None) -> Reader:
    """The reader of ``request`` about ``site``: its policy, and the language asked or the policy's."""
    policy = site.policy()
    return Reader(
        root=request.scope.get("root_path", ""),
        site=site,
        policy=policy,
        lang=language(lang, policy.language),
        lang_asked=lang is not None,
        path=request.url.path,
        query=tuple(request.query_params.multi_items()),
    )


def reader_of(request: Request, site: Site = SERVED_SITE, lang: str | None = LANG_PARAMETER) -> Reader:
    """The ``reader`` dependency of every page about one target."""
    return reader_from(request, site, lang)


# The ``reader`` parameter of every page about one target.
READER = Depends(reader_of)

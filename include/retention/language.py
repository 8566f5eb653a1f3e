"""What a person reads, in their language: gettext catalogs (French by default, English on request).

The texts are written in English in the code (``_("Run certificate")``) and translated by the
French catalogs under ``include/retention/locale/fr/LC_MESSAGES/<domain>.po``, read with Babel
and compiled in memory when first used: no build step, no binary file to keep in step, and
every Airflow component (scheduler, workers, API server) reads the same text files.

One catalog per domain, and every source file belongs to exactly one domain by where it lives
(``DOMAINS``): the Retention view, the DPO report, the engine's other documents (certificates,
notices, dates in words), and the Airflow glue (trigger forms, alerts). ``make messages`` extracts
the texts of each domain and adds the new ones to its catalog; a test fails while a text the
code uses has no French translation, or a placeholder differs between the two.

Placeholders are ``str.format`` fields (``{count}``), filled after translation.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Literal, Protocol

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from include.retention.errors import RetentionError

Language = Literal["fr", "en"]
# The languages a person may read; the first is the default (the charter is French).
LANGUAGES: tuple[Language, ...] = ("fr", "en")
DEFAULT_LANGUAGE: Language = "fr"
# The language the texts are written in, in the code: it needs no catalog.
SOURCE_LANGUAGE: Language = "en"

LOCALE_DIR = Path(__file__).parent / "locale"
PROJECT_ROOT = Path(__file__).parents[2]
Domain = Literal["ui", "report", "engine", "airflow"]
# Domain -> the source paths (relative to the project root) whose texts its catalog holds.
# A file belongs to the first domain that names it or a folder above it.
DOMAINS: dict[Domain, tuple[str, ...]] = {
    # The Retention view in the Airflow UI (a module or a package) and its plugin.
    "ui": ("include/retention_airflow/ui.py", "include/retention_airflow/ui", "plugins"),
    # The DPO report: its words, its HTML, its charts.
    "report": (
        "include/retention/reports/dpo_texts.py",
        "include/retention/reports/dpo_render.py",
        "include/retention/reports/dpo_report.py",
        "include/retention/reports/charts.py",
        "include/retention/reports/summary.py",
        "include/retention/reports/describe.py",
    ),
    # The engine's other documents: run certificates, the chain status, notices, dates in words.
    "engine": ("include/retention",),
    # The Airflow glue: trigger forms, approvals, alerts, DAG documentation.
    "airflow": ("include/retention_airflow", "dags"),
}
# Gettext keywords the extraction knows: ``_`` and ``gettext`` translate now; ``N_`` marks a
# text kept in a constant and translated where it is shown (``_(CONSTANT)``); ``ngettext``
# (``translations(lang, domain).ngettext(singular, plural, n)``) chooses the plural by the
# language's own rule (French: 0 and 1 are singular).
KEYWORDS = ("_", "gettext", "N_", "ngettext")


class Translate(Protocol):
    def __call__(self, message: str, /) -> str: ...


def checked(lang: str, where: str = "language") -> Language:
    """``lang`` if it is a language we write in; else an error naming ``where`` and the choices."""
    for known in LANGUAGES:
        if lang == known:
            return known
    raise RetentionError(f"{where}: language {lang!r} is not one we write in; use one of {', '.join(LANGUAGES)}")


def catalog_path(domain: Domain, lang: Language) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"


@cache
def translations(lang: Language, domain: Domain) -> gettext.NullTranslations:
    """The domain's catalog for ``lang`` (English: the texts as written). Fuzzy entries are
    not used: a text someone has not checked stays in English rather than half-right."""
    if lang == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    path = catalog_path(domain, checked(lang))
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang, domain=domain)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translator(lang: str, domain: Domain) -> Translate:
    """The ``_`` of one language and domain: ``_ = translator(lang, "engine")``."""
    return translations(checked(lang), domain).gettext


def N_(message: str) -> str:  # noqa: N802 - the gettext convention the extraction looks for
    """Marks a text kept in a constant for the catalog; translate it where it is shown."""
    return message


def domain_of(relative_path: str) -> Domain:
    """The domain a source file's texts belong to (``DOMAINS``)."""
    for domain, roots in DOMAINS.items():
        if any(relative_path == root or relative_path.startswith(root.rstrip("/") + "/") for root in roots):
            return domain
    raise RetentionError(f"{relative_path}: no text domain covers this file; add it to language.DOMAINS")

"""Keep the French catalogs in step with the code: ``make messages`` (or ``--check``).

For each text domain (``include.retention.language.DOMAINS``) the texts marked in its source
files (``_("...")``, ``N_("...")``, ``ngettext``) are extracted with Babel; the domain's
French catalog then gains the new ones (empty: to translate) and loses those the code no
longer uses. ``--check`` changes nothing and lists what is missing (the test suite runs it).
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

from include.retention.language import (
    DOMAINS,
    KEYWORDS,
    LANGUAGES,
    PROJECT_ROOT,
    SOURCE_LANGUAGE,
    Domain,
    catalog_path,
    domain_of,
)

TRANSLATED = tuple(lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE)


def sources(domain: Domain) -> Iterator[Path]:
    """The Python files whose texts belong to ``domain``."""
    seen: set[Path] = set()
    for root in DOMAINS[domain]:
        start = PROJECT_ROOT / root
        files = [start] if start.is_file() else sorted(start.rglob("*.py")) if start.is_dir() else []
        for path in files:
            relative = path.relative_to(PROJECT_ROOT).as_posix()
            if path not in seen and domain_of(relative) == domain:
                seen.add(path)
                yield path


def template(domain: Domain) -> Catalog:
    """Every text the domain's code marks, with where it is used."""
    catalog = Catalog(domain=domain, project="retention", fuzzy=False)
    keywords = {k: None for k in KEYWORDS} | {"ngettext": (1, 2)}
    for path in sources(domain):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        for line, message, comments, context in extract_from_file("python", str(path), keywords=keywords):
            catalog.add(message, locations=[(relative, line)], auto_comments=comments, context=context)
    return catalog


HEADER = """\
# {lang} translations of the retention project's "{domain}" texts.
# Written by `make messages` (scripts/messages.py): translate each empty msgstr; keep the
# {{placeholders}} as they are. A test fails while one is missing."""


def read(domain: Domain, lang: str) -> Catalog:
    path = catalog_path(domain, lang)  # type: ignore[arg-type]
    if not path.exists():
        catalog = Catalog(locale=lang, domain=domain, project="retention", version="1", fuzzy=False)
        catalog.header_comment = HEADER.format(lang=lang, domain=domain)
        return catalog
    with path.open("rb") as po:
        return read_po(po, locale=lang, domain=domain)


def update(domain: Domain, lang: str) -> Catalog:
    """The catalog with the template's texts: translations kept, new texts empty, unused ones dropped."""
    catalog = read(domain, lang)
    wanted = template(domain)
    wanted.creation_date = catalog.creation_date  # a rerun that changes no text changes no file
    catalog.update(wanted, no_fuzzy_matching=True, update_header_comment=False)
    catalog.obsolete.clear()
    return catalog


def write(domain: Domain, lang: str, catalog: Catalog) -> Path:
    path = catalog_path(domain, lang)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as po:
        write_po(po, catalog, width=100, sort_output=True, omit_header=False, include_lineno=False)
    return path


def _fields(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        return {f"<unparseable: {exc}>"}


def _texts(value: object) -> tuple[str, ...]:
    """A message's id or string as a tuple of texts (a plural has several; missing is empty)."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    return tuple(v if isinstance(v, str) else "" for v in values)


def _ids(message: Message) -> tuple[str, ...]:
    return _texts(message.id)


def _strings(message: Message) -> tuple[str, ...]:
    return _texts(message.string)


def problems(domain: Domain, lang: str) -> list[str]:
    """What keeps the catalog from matching the code: untranslated, fuzzy or unused texts, and
    translations whose ``{placeholders}`` differ from the text's."""
    found: list[str] = []
    path = catalog_path(domain, lang)  # type: ignore[arg-type]
    current = read(domain, lang)
    wanted = template(domain)
    for message in wanted:
        if not message.id:
            continue
        where = ", ".join(f"{file}:{line}" for file, line in message.locations[:2])
        have = current.get(message.id, message.context)
        if have is None or not all(_strings(have)):
            found.append(f"{path}: no translation of {_ids(message)[0]!r} ({where})")
        elif have.fuzzy:
            found.append(f"{path}: fuzzy (unchecked) translation of {_ids(message)[0]!r} ({where})")
        elif any(_fields(s) != _fields(_ids(message)[0]) for s in _strings(have) if s):
            found.append(f"{path}: placeholders differ in the translation of {_ids(message)[0]!r} ({where})")
    for message in current:
        if message.id and wanted.get(message.id, message.context) is None:
            found.append(f"{path}: {_ids(message)[0]!r} is translated but no code uses it (run make messages)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; list what the catalogs lack")
    args = parser.parse_args(argv)
    if args.check:
        listed = [p for domain in DOMAINS for lang in TRANSLATED for p in problems(domain, lang)]
        print("\n".join(listed) or "the catalogs match the code")
        return 1 if listed else 0
    for domain in DOMAINS:
        for lang in TRANSLATED:
            catalog = update(domain, lang)
            missing = sum(1 for m in catalog if m.id and not all(_strings(m)))
            print(f"{write(domain, lang, catalog)}: {len(catalog)} texts, {missing} to translate")
    return 0


if __name__ == "__main__":
    sys.exit(main())

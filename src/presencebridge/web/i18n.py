"""The console's languages: gettext catalogues (.po) compiled in memory on first use.

The catalogues live next to this file (`locale/<lang>/LC_MESSAGES/messages.po`);
there is no separate compile step, so a fresh clone works as it is. Each language
gets its own Jinja2 environment with its translations installed, so rendering
never switches translations under a concurrent request.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from presencebridge.core.texts import LANGUAGES, pick_language

HERE = Path(__file__).parent
LOCALE_DIR = HERE / "locale"
TEMPLATE_DIR = HERE / "templates"
DOMAIN = "messages"
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch"}
LANG_COOKIE = "pb_lang"
TZ_COOKIE = "pb_tz"


@functools.cache
def translations(language: str) -> NullTranslations:
    """The catalogue of `language`, compiled from its .po file in memory."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.is_file():
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def _shown(value: object) -> object:
    """What `{{ value }}` prints: nothing for None (never the word "None" on a page)."""
    return "" if value is None else value


def _environment(language: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    catalogue = translations(language)
    env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = language
    env.globals["language_names"] = LANGUAGE_NAMES
    return env


@functools.cache
def environment(language: str) -> Environment:
    return _environment(language if language in LANGUAGES else "en")


def gettext(language: str) -> Callable[[str], str]:
    """A plain `_` for Python code (messages extracted from `web/*.py` too)."""
    return translations(language).gettext


def choose_language(cookie: str | None, accept_language: str | None, default: str) -> str:
    """The switch (cookie) wins, then the browser's Accept-Language, then the server default."""
    if cookie in LANGUAGES:
        return str(cookie)
    if accept_language:
        return pick_language(accept_language)
    return default if default in LANGUAGES else "en"


def zone(name: str | None) -> dt.tzinfo:
    """The browser's time zone (cookie set by console.js), UTC when unknown or invalid."""
    if name and len(name) <= 64:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


class Formats:
    """Dates and numbers the way the reader's language writes them."""

    def __init__(self, language: str, tz: dt.tzinfo) -> None:
        self.language = language
        self.tz = tz

    def datetime(self, value: dt.datetime | None, fmt: str = "short") -> str:
        if value is None:
            return "–"
        return format_datetime(value, fmt, tzinfo=self.tz, locale=self.language)

    def time(self, value: dt.datetime | None) -> str:
        if value is None:
            return "–"
        return format_datetime(value, "HH:mm:ss", tzinfo=self.tz, locale=self.language)

    def number(self, value: float, digits: int = 0) -> str:
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, pattern, locale=self.language)

    def duration(self, seconds: float) -> str:
        return format_timedelta(
            dt.timedelta(seconds=seconds),
            threshold=1.1,
            add_direction=False,
            format="short",
            locale=self.language,
        )

    def local_input(self, value: dt.datetime) -> str:
        """For an <input type=datetime-local>."""
        return value.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M")

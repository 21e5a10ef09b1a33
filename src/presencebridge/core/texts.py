"""Presence texts the hub itself writes, in German and English.

Built-in texts travel through the core as `Text` keys and are rendered at the
edge in the reader's language; texts an administrator or user typed stay as
they were typed.
"""

from __future__ import annotations

from enum import StrEnum


class Text(StrEnum):
    AVAILABLE = "text.available"
    ON_THE_PHONE = "text.on_the_phone"
    ON_THE_PHONE_MEETING = "text.on_the_phone_meeting"
    ON_THE_PHONE_TEAMS = "text.on_the_phone_teams"
    OUT_OF_OFFICE_TEAMS = "text.out_of_office_teams"
    APPOINTMENT = "text.appointment"
    DO_NOT_DISTURB = "text.do_not_disturb"


LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"

CATALOGUE: dict[Text, dict[str, str]] = {
    Text.AVAILABLE: {"en": "Available", "de": "Verfügbar"},
    Text.ON_THE_PHONE: {"en": "On the phone", "de": "Am Telefon"},
    Text.ON_THE_PHONE_MEETING: {"en": "On the phone (meeting)", "de": "Am Telefon (Meeting)"},
    Text.ON_THE_PHONE_TEAMS: {"en": "On the phone (MS Teams)", "de": "Am Telefon (MS Teams)"},
    Text.OUT_OF_OFFICE_TEAMS: {"en": "Out of office (MS Teams)", "de": "Abwesend (MS Teams)"},
    Text.APPOINTMENT: {"en": "Appointment", "de": "Termin"},
    Text.DO_NOT_DISTURB: {"en": "Do not disturb", "de": "Nicht stören"},
}


def render(text: str, language: str) -> str:
    """A built-in key in `language`; any other text unchanged."""
    try:
        key = Text(text)
    except ValueError:
        return text
    entry = CATALOGUE[key]
    return entry.get(language, entry[DEFAULT_LANGUAGE])


def pick_language(accept_language: str | None) -> str:
    """The best of our languages for an Accept-Language header (q-values honoured)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        params = params.strip().lower()
        quality = 1.0
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE

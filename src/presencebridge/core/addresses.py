"""How a user is reached on the PBX: extensions and phone numbers (issue 12).

Pure: the default country is passed in. Numbers are kept in E.164 (`+49301234567`),
parsed with Google's libphonenumber (`phonenumbers`), so `030 1234567`,
`+49 30 1234567` and `0049 30 1234567` (default country DE) are one number.
"""

from __future__ import annotations

import re

import phonenumbers

# Digits, and the `*` and `#` some PBXs use in short codes; at most 16 characters.
EXTENSION_PATTERN = re.compile(r"^[0-9*#]{1,16}$")
EXTENSION_RULE = "digits, * and # only, 1 to 16 characters"
NUMBER_MAX = 64


class AddressError(ValueError):
    """An extension or number that cannot be used; the message names the value."""


def extension(raw: str) -> str:
    """An extension as stored: surrounding whitespace removed, then checked."""
    value = raw.strip()
    if not EXTENSION_PATTERN.match(value):
        raise AddressError(f"{raw!r} is not a valid extension ({EXTENSION_RULE})")
    return value


def number(raw: str, default_country: str) -> str:
    """A phone number in E.164; national numbers are read in `default_country`."""
    if len(raw) > NUMBER_MAX:
        raise AddressError(f"{raw[:NUMBER_MAX]!r}… is too long for a phone number")
    try:
        parsed = phonenumbers.parse(raw, default_country)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise AddressError(
            f"{raw!r} is not a valid phone number (national numbers are read as {default_country})"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def unique(values: list[str]) -> tuple[str, ...]:
    """In the order given, each value once (two spellings of one number are one)."""
    return tuple(dict.fromkeys(values))


def is_region(code: str) -> bool:
    return code in phonenumbers.SUPPORTED_REGIONS

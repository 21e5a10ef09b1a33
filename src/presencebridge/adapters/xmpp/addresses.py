"""A hub user's XMPP address, and the presence stanza's content for a publication.

Local parts are escaped per XEP-0106 (`first last` -> `first\\20last`), so any user id
or e-mail local part makes a valid JID instead of being dropped; lower-cased, since
servers compare local parts case-folded (RFC 7622 nodeprep) and a probe for
`Alice@…` must find `alice`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from presencebridge.core.ports import OutwardUser
from presencebridge.core.publication import Publication, XmppShow

log = logging.getLogger(__name__)

# XEP-0106 §4.2: the characters a local part cannot hold, and their escapes. The
# backslash is escaped only where it would be read as an escape (§4.3); escaping it
# always keeps the mapping one-to-one and is what the XEP's examples do for `\5c`.
_ESCAPES = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
    "\\": "\\5c",
}
# RFC 7622 §3.3: a local part is at most 1023 octets.
_MAX_LOCAL = 1023


def escape_local(text: str) -> str | None:
    """The XEP-0106 form of `text` as a local part, None when it cannot be one."""
    text = text.strip().lower()
    if not text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return None
    escaped = "".join(_ESCAPES.get(c, c) for c in text)
    return escaped if len(escaped.encode()) <= _MAX_LOCAL else None


def local_part(user: OutwardUser, address: Literal["email-local", "user-id"]) -> str | None:
    """`email-local`: the e-mail's local part (users without one: the user id)."""
    if address == "email-local" and user.email and "@" in user.email:
        return escape_local(user.email.rpartition("@")[0])
    return escape_local(user.user_id)


def bare_jid(
    user: OutwardUser, address: Literal["email", "email-local", "user-id"], domain: str | None
) -> str | None:
    """The user's own account: the e-mail address itself, or a local part at `domain`."""
    if address == "email":
        if not user.email or "@" not in user.email:
            return None
        local, _, host = user.email.rpartition("@")
        escaped = escape_local(local)
        return None if escaped is None or not host else f"{escaped}@{host.lower()}"
    found = local_part(user, address)
    return None if found is None or domain is None else f"{found}@{domain.lower()}"


@dataclass(frozen=True, slots=True)
class Shown:
    """One presence stanza's content: `available` with an optional `<show/>`, or
    `unavailable`; `status` is the presence text."""

    type: Literal["available", "unavailable"]
    show: str | None
    status: str


OFFLINE = Shown("unavailable", None, "")


def shown(found: Publication) -> Shown:
    """The stanza for a publication: the OUTWARD table's XMPP column and the note."""
    show = found.outward.xmpp
    if show is XmppShow.UNAVAILABLE:
        return Shown("unavailable", None, found.note)
    return Shown("available", show.value or None, found.note)


class Unshown:
    """The users an outlet cannot show, and why (`unaddressable`: no valid JID,
    `address_taken`: another user has the JID, `over_cap`: too many accounts). Logged
    once per user and reason, not at every presence change of theirs."""

    def __init__(self, outlet: str) -> None:
        self.outlet = outlet
        self._why: dict[str, str] = {}  # user id -> reason

    def mark(self, user_id: str, reason: str, detail: str) -> None:
        if self._why.get(user_id) != reason:
            self._why[user_id] = reason
            log.warning("%s: %s is not shown: %s", self.outlet, user_id, detail)

    def clear(self, user_id: str) -> None:
        self._why.pop(user_id, None)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self._why.values()))

"""The XML bodies: dialog-info read (RFC 4235) and written, PIDF with RPID written
(RFC 3863, RFC 4480).

Reading is defensive: a body is bytes from a PBX, so it is size-checked first, a
DOCTYPE (the door to entity expansion) is refused before the parser sees it, and every
failure is one `MalformedBody`. Dialog states are compared case-insensitively
(Kamailio's pua_dialoginfo writes `Trying`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from presencebridge.core.model import CallState

DIALOG_INFO = "urn:ietf:params:xml:ns:dialog-info"
PIDF = "urn:ietf:params:xml:ns:pidf"
DATA_MODEL = "urn:ietf:params:xml:ns:pidf:data-model"
RPID = "urn:ietf:params:xml:ns:pidf:rpid"
DIALOG_INFO_TYPE = "application/dialog-info+xml"
PIDF_TYPE = "application/pidf+xml"

# RFC 4235 §3.7.1 states; `trying`, `proceeding` and `early` all ring (a BLF key
# blinks for each), `confirmed` talks, `terminated` ended.
CALL_STATES: dict[str, CallState] = {
    "trying": CallState.RINGING,
    "proceeding": CallState.RINGING,
    "early": CallState.RINGING,
    "confirmed": CallState.CONNECTED,
    "terminated": CallState.ENDED,
}
# The id prefix of the dialogs the hub PUBLISHes itself (sip-presence). A watcher
# (sip-dialog) at the same server skips them: else a Teams call published as a
# confirmed dialog would come back as a PBX call, and the two would chase each other.
OWN_DIALOG_PREFIX = "presencebridge-"
MAX_DIALOGS = 256  # per body: more is not a phone line, it is an attack or a bug


class MalformedBody(ValueError):
    """A body that is not dialog-info we can read."""


@dataclass(frozen=True, slots=True)
class DialogInfo:
    version: int
    full: bool  # state="full": every dialog of the entity is listed
    calls: dict[str, CallState]  # dialog id -> state; dialogs in unknown states left out


def parse_dialog_info(body: bytes, limit: int) -> DialogInfo:
    """A dialog-info document; `MalformedBody` for anything else. An empty body (the
    first NOTIFY of a subscription to an extension without state, as Kamailio sends
    it) is a full document without dialogs."""
    if len(body) > limit:
        raise MalformedBody(f"body of {len(body)} bytes is over the limit of {limit}")
    if not body.strip():
        return DialogInfo(version=-1, full=True, calls={})
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MalformedBody("DOCTYPE or ENTITY in a dialog-info body")
    try:
        root = ET.fromstring(body)  # noqa: S314 - no DOCTYPE, so no entities to expand
    except ET.ParseError as error:
        raise MalformedBody(f"not XML: {error}") from None
    if root.tag != f"{{{DIALOG_INFO}}}dialog-info":
        raise MalformedBody(f"root element is {root.tag}, not dialog-info")
    try:
        version = int(root.get("version", ""))
    except ValueError:
        raise MalformedBody("dialog-info without a numeric version") from None
    state = (root.get("state") or "").lower()
    if state not in ("full", "partial"):
        raise MalformedBody("dialog-info state is neither full nor partial")
    return DialogInfo(version=version, full=state == "full", calls=_calls(root))


def _calls(root: ET.Element) -> dict[str, CallState]:
    dialogs = root.findall(f"{{{DIALOG_INFO}}}dialog")
    if len(dialogs) > MAX_DIALOGS:
        raise MalformedBody(f"{len(dialogs)} dialogs in one body")
    calls: dict[str, CallState] = {}
    for dialog in dialogs:
        ident = dialog.get("id")
        text = dialog.findtext(f"{{{DIALOG_INFO}}}state")
        if not ident or text is None:
            raise MalformedBody("a dialog without id or state")
        found = CALL_STATES.get(text.strip().lower())
        if found is not None and not ident.startswith(OWN_DIALOG_PREFIX):
            calls[ident] = found
    return calls


def dialog_info(
    entity: str,
    version: int,
    dialog_id: str,
    state: Literal["confirmed", "terminated"],
) -> bytes:
    """A full dialog-info document with one dialog (the hub's call, as a BLF key shows
    it)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<dialog-info xmlns="{DIALOG_INFO}" version="{version}" state="full" '
        f"entity={quoteattr(entity)}>\n"
        f'  <dialog id={quoteattr(dialog_id)} direction="recipient">'
        f"<state>{state}</state></dialog>\n"
        "</dialog-info>\n"
    ).encode()


def pidf(entity: str, basic: str, activity: str | None, note: str, tuple_id: str) -> bytes:
    """PIDF with an RPID person. The `rpid:` prefix is kept literally: baresip (and
    other phones) look for the text `<rpid:busy/>` / `<rpid:on-the-phone/>` rather than
    reading namespaces."""
    activities = f"<rpid:{activity}/>" if activity else ""
    text = escape(note)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<presence xmlns="{PIDF}" xmlns:dm="{DATA_MODEL}" xmlns:rpid="{RPID}" '
        f"entity={quoteattr(entity)}>\n"
        f"  <tuple id={quoteattr(tuple_id)}><status><basic>{basic}</basic></status>"
        f"<note>{text}</note></tuple>\n"
        f'  <dm:person id="p-{tuple_id}"><rpid:activities>{activities}</rpid:activities>'
        f"<dm:note>{text}</dm:note></dm:person>\n"
        "</presence>\n"
    ).encode()

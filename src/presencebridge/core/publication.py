"""What the hub publishes outward: one literal table from a user's situation to each
outside format (issue 13, docs/rules.md "Publishing presence").

A user's effective presence is first reduced to a *situation* (`situation`): a call
the PBX cannot see (Teams, an audio meeting, another app holding the microphone), a
PBX call, or the status. `OUTWARD` then says, per situation, what SIP presence
(PIDF basic status and RPID activity, RFC 3863 / 4480), the dialog event package
(RFC 4235, what BLF keys show), XMPP (RFC 6121 `<show/>`) and an Asterisk custom
device state carry. The text (PIDF `note`, XMPP status) is the presence text in the
outlet's language.

Why a PBX call is `terminated` in dialog-info and `NOT_INUSE` for Asterisk: the PBX
already shows its own calls on the BLF key; publishing them again would show a
second, phantom dialog. Only what the PBX cannot see is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from presencebridge.core.effective import EffectivePresence
from presencebridge.core.model import Status, Telephony, TelephonySource
from presencebridge.core.pbx_features import Feature, wanted
from presencebridge.core.texts import render


class Situation(StrEnum):
    HUB_CALL = "hub_call"  # in a call the PBX does not see: Teams, meeting, microphone
    PBX_CALL = "pbx_call"
    DND = "dnd"
    BUSY = "busy"
    AWAY = "away"
    AVAILABLE = "available"
    OFFLINE = "offline"


class PidfBasic(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class DialogState(StrEnum):
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class XmppShow(StrEnum):
    """RFC 6121 §4.7.2.1; AVAILABLE is "no <show/> element", UNAVAILABLE the presence
    of type `unavailable`."""

    AVAILABLE = ""
    CHAT = "chat"
    AWAY = "away"
    XA = "xa"
    DND = "dnd"
    UNAVAILABLE = "unavailable"


class DeviceState(StrEnum):
    """Asterisk's device states, as `DEVICE_STATE(Custom:…)` takes them."""

    NOT_INUSE = "NOT_INUSE"
    INUSE = "INUSE"
    BUSY = "BUSY"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class Outward:
    """One row of the table: how a situation looks in each outside format."""

    basic: PidfBasic
    activity: str | None  # RPID activity element, None: no activity
    dialog: DialogState
    xmpp: XmppShow
    device: DeviceState


OUTWARD: dict[Situation, Outward] = {
    Situation.HUB_CALL: Outward(
        PidfBasic.OPEN, "on-the-phone", DialogState.CONFIRMED, XmppShow.DND, DeviceState.INUSE
    ),
    Situation.PBX_CALL: Outward(
        PidfBasic.OPEN, "on-the-phone", DialogState.TERMINATED, XmppShow.DND, DeviceState.NOT_INUSE
    ),
    Situation.DND: Outward(
        PidfBasic.OPEN, "busy", DialogState.TERMINATED, XmppShow.DND, DeviceState.BUSY
    ),
    Situation.BUSY: Outward(
        PidfBasic.OPEN, "busy", DialogState.TERMINATED, XmppShow.DND, DeviceState.NOT_INUSE
    ),
    Situation.AWAY: Outward(
        PidfBasic.OPEN, "away", DialogState.TERMINATED, XmppShow.AWAY, DeviceState.NOT_INUSE
    ),
    Situation.AVAILABLE: Outward(
        PidfBasic.OPEN, None, DialogState.TERMINATED, XmppShow.AVAILABLE, DeviceState.NOT_INUSE
    ),
    Situation.OFFLINE: Outward(
        PidfBasic.CLOSED,
        None,
        DialogState.TERMINATED,
        XmppShow.UNAVAILABLE,
        DeviceState.UNAVAILABLE,
    ),
}

_BY_STATUS: dict[Status, Situation] = {
    Status.DND: Situation.DND,
    Status.BUSY: Situation.BUSY,
    Status.AWAY: Situation.AWAY,
    Status.AVAILABLE: Situation.AVAILABLE,
    Status.OFFLINE: Situation.OFFLINE,
}


def situation(presence: EffectivePresence) -> Situation:
    """The row of `OUTWARD` for a user's effective presence."""
    if presence.telephony is Telephony.ON_THE_PHONE:
        if presence.telephony_source is TelephonySource.PBX:
            return Situation.PBX_CALL
        return Situation.HUB_CALL
    if presence.microphone is not None:
        return Situation.HUB_CALL
    return _BY_STATUS[presence.status]


@dataclass(frozen=True, slots=True)
class Publication:
    """What an outlet sends for one user: the table's row and the text."""

    situation: Situation
    outward: Outward
    note: str
    # What the PBX should have for each of the user's extensions (core.pbx_features),
    # for an outlet that applies the profile there; pairs, so the row stays hashable.
    pbx: tuple[tuple[Feature, str | None], ...] = ()


def publication(
    presence: EffectivePresence, language: str, note_from_teams: bool = False
) -> Publication:
    """`note_from_teams` (`teams_status_message = both`): a status message the user set in
    Teams is the note; the hub's own message there is only the UC text again."""
    found = situation(presence)
    features = tuple(wanted(presence).items())
    note = render(presence.text, language)
    teams = presence.teams
    if note_from_teams and teams.message_held_by_user and teams.status_message:
        note = teams.status_message
    return Publication(found, OUTWARD[found], note, features)

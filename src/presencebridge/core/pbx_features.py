"""The profile's telephony settings applied at the PBX (issue 17 parts 1 and 2): one
table from the effective presence to what the PBX should have for each of the
user's extensions, and the rule that gives the user back exactly what they had.

`WANTED` is the table: unconditional call forwarding to the effective presence's
`call_forwarding` (a Teams call with the `MS Teams` profile, a chosen profile or
appointment with forwarding, Microphone Sync's template), and do-not-disturb while
the status is DnD. A PBX call that outranks the chosen profile lifts neither (the
chosen side's forwarding and DnD stay): the PBX's own call is no reason to change
the PBX's forwarding for its length.

`step` is the restore rule, per extension and feature, as a pure function of three
values: what the PBX has now (read before every write), what the hub remembers
(`Held`: the user's own value from before the hub set anything, and what the hub
wrote last) and what the table wants. When the PBX no longer has what the hub
wrote, the user changed it on the phone meanwhile: the hub leaves it alone until
its own reason ends and says so (`user_changed`), so the service can write it into
the user's history. docs/rules.md "PBX connectors and published presence" has the
table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from presencebridge.core.effective import CandidateKind, EffectivePresence
from presencebridge.core.model import Status, TelephonySource


class Feature(StrEnum):
    """A PBX feature, named like FreePBX's AstDB family for it."""

    FORWARD = "CF"  # unconditional call forwarding: the target number
    DND = "DND"  # do-not-disturb: "YES" while on


DND_ON = "YES"  # FreePBX's value for DnD on; no key means off


def _forward(presence: EffectivePresence) -> str | None:
    if presence.source is CandidateKind.TELEPHONY and presence.telephony_source is (
        TelephonySource.PBX
    ):
        # A PBX call outranks the chosen profile for the status, but the PBX's own call
        # is no reason to lift that profile's forwarding for its length.
        return presence.chosen_call_forwarding or None
    return presence.call_forwarding or None


def _dnd(presence: EffectivePresence) -> str | None:
    on = Status.DND in (presence.status, presence.chosen_status)
    return DND_ON if on else None


# The table: per feature, the value the PBX should have (None: the hub wants nothing,
# the user's own value applies).
WANTED = {Feature.FORWARD: _forward, Feature.DND: _dnd}


def wanted(presence: EffectivePresence | None) -> dict[Feature, str | None]:
    """What the PBX should have for each of the user's extensions; a user withdrawn
    (None: deleted or gone from this hub) wants nothing, which restores."""
    return {f: None if presence is None else rule(presence) for f, rule in WANTED.items()}


@dataclass(frozen=True, slots=True)
class Held:
    """What the hub remembers of one feature on one extension while it has set it.

    `before`: the user's own value (None: none); `written`: what the hub wrote last;
    `yielded`: the user changed it meanwhile, and the hub keeps its hands off until
    the profile that wanted it ends."""

    before: str | None
    written: str | None
    yielded: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """What to do now: `write` the PBX value `value` (None: delete the key), remember
    `held` from now on (None: forget), and whether the user's own change was kept."""

    write: bool
    value: str | None
    held: Held | None
    user_changed: bool = False


def _none(value: str | None) -> str | None:
    return value or None  # an empty AstDB value is no value (FreePBX deletes the key)


def step(current: str | None, held: Held | None, want: str | None) -> Step:
    """The restore rule, for one feature on one extension (docs/rules.md)."""
    current = _none(current)
    if held is None:
        if want is None:
            return Step(False, None, None)
        # First time: remember the user's own value, then set ours.
        return Step(current != want, want, Held(current, want))
    if held.yielded:
        # The user's change stands until our reason ends; then we forget it.
        return Step(False, None, held if want is not None else None)
    if current != held.written:
        # Not what we wrote: the user set it on the phone meanwhile. Leave it.
        return Step(False, None, Held(held.before, held.written, True) if want else None, True)
    if want is not None:
        return Step(want != current, want, Held(held.before, want))
    return Step(held.before != current, held.before, None)


def encode_held(held: Held) -> str:
    """`Held` as one stored text (the AstDB value under the hub's own family)."""
    return json.dumps(
        {"before": held.before, "written": held.written, "yielded": held.yielded},
        separators=(",", ":"),
    )


def decode_held(text: str | None) -> Held | None:
    """The stored text back; None for none or for anything not written by
    `encode_held` (then the hub acts as if it had set nothing)."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, Mapping):
        return None
    before, written, yielded = data.get("before"), data.get("written"), data.get("yielded")
    if not all(v is None or isinstance(v, str) for v in (before, written)):
        return None
    if not isinstance(yielded, bool):
        return None
    return Held(before, written, yielded)

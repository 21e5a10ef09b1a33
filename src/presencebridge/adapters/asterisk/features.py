"""The profile's call forwarding and DnD at an Asterisk / FreePBX (issue 17 part 2),
for an `asterisk-ami` outlet with `apply_profile = true`.

FreePBX keeps both in AstDB: `CF/<ext>` holds the target of the unconditional
forwarding (its feature codes *72 / *73 write and delete it), `DND/<ext>` is `YES`
while do-not-disturb is on (*78 / *79), and the hint of each extension ORs in
`Custom:DND<ext>` so BLF keys show DnD as busy. A plain Asterisk honours the same
keys with the dialplan in docs/pbx-asterisk.md. The outlet reads and writes them
with AMI `DBGet` / `DBPut` / `DBDel`, and sets `Custom:DND<ext>` with each DnD it
writes.

Per extension and feature, `core.pbx_features.step` decides from what Asterisk has
now (always read right before writing), what the hub remembers and what the profile
wants. The memory (the user's own value from before, what the hub wrote last) is
kept in AstDB itself, under the hub's own family (`presencebridge/CF/<ext>`): it
survives a restart of the hub and of Asterisk, needs no table or migration in the
hub's store, and any hub node that takes the user over finds it where the values
are. It is written before the value it protects, so a hub that dies in between
finds its memory and not a value it can no longer attribute.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from presencebridge.adapters.asterisk.client import AmiClient, AmiError
from presencebridge.adapters.asterisk.protocol import AmiMessage
from presencebridge.core.pbx_features import (
    DND_ON,
    Feature,
    decode_held,
    encode_held,
    step,
    wanted,
)
from presencebridge.core.ports import OutletUnavailable, OutwardUser, UserNotes
from presencebridge.core.publication import DeviceState

log = logging.getLogger(__name__)

# What may become an AstDB key or part of a device name, and a forwarding target:
# no `/` (a key level), no parenthesis or comma (DEVICE_STATE(...) arguments).
_EXTENSION = re.compile(r"^[A-Za-z0-9_.+*#-]{1,40}$")
_TARGET = re.compile(r"^[A-Za-z0-9_.+*#@:-]{1,80}$")
_NOT_FOUND = "not found"  # DBGet's error for a missing key: "Database entry not found"

_LABELS = {Feature.FORWARD: "call forwarding", Feature.DND: "do-not-disturb"}


def kept_note(extension: str, feature: Feature, value: str | None) -> str:
    """The history line when the user's own change at the phone was kept."""
    shown = value if value is not None else "off"
    return f"pbx: {_LABELS[feature]} on {extension} changed at the phone to {shown}; kept"


class AmiProfileFeatures:
    """Applies `core.pbx_features.WANTED` for each extension of a published user."""

    def __init__(
        self,
        client: AmiClient,
        family: str,
        timeout: float,
        notes: UserNotes | None,
        count: Callable[[str], None],
    ) -> None:
        self.client = client
        self.family = family
        self.timeout = timeout
        self.notes = notes
        self.count = count
        self._gets: dict[str, asyncio.Future[str]] = {}

    async def on_event(self, event: AmiMessage) -> None:
        """DBGet answers with an event carrying the value under the action's id."""
        if (event.event or "").lower() != "dbgetresponse":
            return
        answer = self._gets.get(event.action_id or "")
        if answer is not None and not answer.done():
            answer.set_result(event.get("Val") or "")

    async def apply(self, user: OutwardUser) -> None:
        want = wanted(None) if user.publication is None else dict(user.publication.pbx)
        target = want.get(Feature.FORWARD)
        if target is not None and not _TARGET.match(target):
            self.count("invalid_target")  # never a line break or key level into AstDB
            want[Feature.FORWARD] = None
        for extension in user.extensions:
            if not _EXTENSION.match(extension):
                self.count("skipped")
                continue
            for feature, value in want.items():
                await self._apply(user.user_id, extension, feature, value)

    async def _apply(
        self, user_id: str, extension: str, feature: Feature, want: str | None
    ) -> None:
        memory = f"{feature.value}/{extension}"
        current = await self._get(feature.value, extension)
        held = decode_held(await self._get(self.family, memory))
        done = step(current, held, want)
        if done.held is not None and done.held != held:
            await self._put(self.family, memory, encode_held(done.held))
        if done.write:
            await self._set(feature, extension, done.value)
        if done.held is None and held is not None:
            await self._delete(self.family, memory)
        if done.user_changed:
            self.count("kept_user_change")
            if self.notes is not None:
                await self.notes.note(user_id, kept_note(extension, feature, current or None))

    async def _set(self, feature: Feature, extension: str, value: str | None) -> None:
        if value is None:
            await self._delete(feature.value, extension)
        else:
            await self._put(feature.value, extension, value)
        self.count("features_written")
        if feature is Feature.DND:
            # FreePBX's DnD feature codes set this device too; its hints name it.
            state = DeviceState.BUSY if value == DND_ON else DeviceState.NOT_INUSE
            await self._action(
                "Setvar", {"Variable": f"DEVICE_STATE(Custom:DND{extension})", "Value": state}
            )

    async def _get(self, family: str, key: str) -> str | None:
        action_id = self.client.new_action_id()
        value: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._gets[action_id] = value
        try:
            fields = {"Family": family, "Key": key}
            try:
                answer = await self.client.action("DBGet", fields, action_id)
            except AmiError as error:
                raise OutletUnavailable(str(error)) from None
            if not answer.succeeded:
                message = answer.get("Message") or ""
                if _NOT_FOUND in message.lower():
                    return None
                self.count("refused")  # e.g. no `system` in the manager user's write
                raise OutletUnavailable(f"DBGet {family}/{key} refused: {message}")
            try:
                return await asyncio.wait_for(value, self.timeout) or None
            except TimeoutError:
                raise OutletUnavailable(f"DBGet {family}/{key}: no value came") from None
        finally:
            self._gets.pop(action_id, None)

    async def _put(self, family: str, key: str, value: str) -> None:
        await self._action("DBPut", {"Family": family, "Key": key, "Val": value})

    async def _delete(self, family: str, key: str) -> None:
        # A key gone already is what the delete wanted.
        await self._action("DBDel", {"Family": family, "Key": key}, missing_ok=True)

    async def _action(self, name: str, fields: dict[str, str], missing_ok: bool = False) -> None:
        try:
            answer = await self.client.action(name, fields)
        except AmiError as error:
            raise OutletUnavailable(str(error)) from None
        if missing_ok and _NOT_FOUND in (answer.get("Message") or "").lower():
            return
        if not answer.succeeded:
            self.count("refused")
            raise OutletUnavailable(f"{name} refused: {answer.get('Message')}")

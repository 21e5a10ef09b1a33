"""`[[publish]] kind = "asterisk-ami"`: each user's outward state as a `Custom:`
device state, so that a hint naming it lights the BLF key during a Teams call:

    exten => 2101,hint,PJSIP/2101&Custom:2101-teams

The value is the `device` column of `core.publication.OUTWARD` (INUSE in a call the
PBX cannot see, BUSY for do-not-disturb, NOT_INUSE otherwise), written with AMI
`Setvar DEVICE_STATE(Custom:…)` on a connection that takes no events. A withdrawn
user gets NOT_INUSE.

A write that fails (no link, refused) raises `OutletUnavailable`, and the hub's feed
sends the user's newest state again later, so nothing written while the link was
down is lost. Asterisk keeps custom device states in its database (astdb) across its
own restarts, and the hub writes every user's state at its start. What the outlet
does *not* do is write again from memory after a reconnect or clear on stop: with
several hub nodes a user's state may have moved to another node meanwhile, and the
one value per device in Asterisk would be overwritten with an outdated one (the last
writer wins; SIP PUBLISH has one document per publisher, this has not).
`clear_on_stop = true` sets the devices this outlet raised back to NOT_INUSE when
the hub stops; for a single node only. `apply_profile = true` also applies the
profile's call forwarding and DnD in the PBX's AstDB (`features`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from presencebridge import metrics
from presencebridge.adapters.asterisk.client import AmiClient, AmiError
from presencebridge.adapters.asterisk.features import AmiProfileFeatures
from presencebridge.adapters.asterisk.protocol import AmiMessage
from presencebridge.adapters.asterisk.settings import KIND, AmiOutletSettings
from presencebridge.core.ports import ConnectorHealth, OutletUnavailable, OutwardUser, UserNotes
from presencebridge.core.publication import DeviceState

log = logging.getLogger(__name__)


class AmiDeviceStateOutlet:
    """`core.ports.PresenceOutlet` writing Asterisk custom device states."""

    kind = KIND
    language = "en"  # device states carry no text

    def __init__(self, settings: AmiOutletSettings, notes: UserNotes | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.client = AmiClient(
            settings,
            events="off",  # DBGet's answer event comes all the same: it is the response
            on_event=self._event,
            on_malformed=lambda: self._count("malformed"),
        )
        self._written: dict[str, DeviceState] = {}  # device name -> state Asterisk has
        self.counts = {"written": 0, "skipped": 0, "refused": 0, "malformed": 0}
        self.features: AmiProfileFeatures | None = None
        if settings.apply_profile:
            self.features = AmiProfileFeatures(
                self.client,
                settings.profile_family,
                settings.action_timeout_seconds,
                notes,
                self._count,
            )
            self.counts |= {"features_written": 0, "kept_user_change": 0, "invalid_target": 0}

    async def start(self) -> None:
        self.client.start()
        # The hub publishes everyone right after start: a moment's wait for the login
        # spares a first round of failures and retries when Asterisk is there.
        await self.client.wait_logged_in(self.settings.connect_timeout_seconds)

    async def stop(self) -> None:
        if self.settings.clear_on_stop and self.client.logged_in:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._withdraw_all(), self.settings.action_timeout_seconds)
        await self.client.stop()

    def health(self) -> ConnectorHealth:
        address = self.settings.address
        if self.client.logged_in:
            detail = f"logged in at {address} as {self.settings.username}"
        else:
            detail = self.client.last_error or f"connecting to {address}"
        counts = {
            **self.counts,
            "devices_set": sum(s is not DeviceState.NOT_INUSE for s in self._written.values()),
            "logins": self.client.counts.logins,
            "connection_failures": self.client.counts.connection_failures,
        }
        return ConnectorHealth(self.name, self.kind, self.client.logged_in, detail, counts)

    async def publish(self, user: OutwardUser) -> None:
        device = self.settings.device_for(user.user_id, user.extensions)
        if device is None:
            self._count("skipped")  # no extension for the device name (or no valid name)
        else:
            if user.publication is None:
                state = DeviceState.NOT_INUSE
            else:
                state = user.publication.outward.device
            await self._write(device, state)
        if self.features is not None:
            await self.features.apply(user)

    async def _event(self, event: AmiMessage) -> None:
        if self.features is not None:
            await self.features.on_event(event)

    async def _write(self, device: str, state: DeviceState) -> None:
        fields = {"Variable": f"DEVICE_STATE({device})", "Value": state.value}
        try:
            answer = await self.client.action("Setvar", fields)
        except AmiError as error:
            raise OutletUnavailable(str(error)) from None
        if not answer.succeeded:
            self._count("refused")
            # e.g. "Permission denied": the manager.conf user lacks `write = call`
            raise OutletUnavailable(f"Setvar {device} refused: {answer.get('Message')}")
        self._written[device] = state
        self._count("written")

    async def _withdraw_all(self) -> None:
        held = [d for d, s in self._written.items() if s is not DeviceState.NOT_INUSE]
        for device in held:
            with contextlib.suppress(OutletUnavailable):
                await self._write(device, DeviceState.NOT_INUSE)

    def _count(self, result: str) -> None:
        self.counts[result] += 1
        if result == "malformed":  # the metric counts what came in; the feed counts writes
            metrics.CONNECTOR_MESSAGES.labels(self.name, result).inc()

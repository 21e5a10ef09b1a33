"""The AMI client, the PBX source and the outlet against a scripted AMI server in
the test process: keepalive finds a dead link, malformed input is counted and the
connector goes on, the state read at each login settles what ended meanwhile, a
refused login is reported without the secret, and the outlet writes again after a
reconnect. (The same against a real Asterisk: tests/connectors.)"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

import pytest

from presencebridge.adapters.asterisk.client import AmiClient
from presencebridge.adapters.asterisk.features import kept_note
from presencebridge.adapters.asterisk.outlet import AmiDeviceStateOutlet
from presencebridge.adapters.asterisk.settings import parse_outlet, parse_source
from presencebridge.adapters.asterisk.source import AmiPbxSource
from presencebridge.core.model import CallState
from presencebridge.core.pbx_features import Feature, Held, decode_held
from presencebridge.core.ports import OutletUnavailable, OutwardUser
from presencebridge.core.publication import OUTWARD, Publication, Situation

SECRET = "fake-ami-secret-42"
BOUND = 20.0  # seconds; every wait ends as soon as its condition holds


class FakeAmi:
    """A scripted AMI server: MD5 login, Ping, the two list actions, Setvar."""

    def __init__(self) -> None:
        self.hints = {"2101": "PJSIP/2101&Custom:2101-teams", "2102": "PJSIP/2102"}
        self.devices = {"PJSIP/2101": "NOT_INUSE", "PJSIP/2102": "NOT_INUSE"}
        self.answer_pings = True
        self.logins = 0
        self.setvars: list[tuple[str, str]] = []
        self.astdb: dict[str, str] = {}  # "family/key" -> value
        self.astdb_allowed = True  # False: DBGet/DBPut/DBDel answer "Permission denied"
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.drop()
        self.server.close()

    def drop(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []

    def send(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)

    def event(self, name: str, **fields: str) -> None:
        self.send(_message({"Event": name, **fields}))

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        self.writers.append(writer)
        buffer = b""
        try:
            while data := await reader.read(4096):
                buffer += data
                while b"\r\n\r\n" in buffer:
                    raw, buffer = buffer.split(b"\r\n\r\n", 1)
                    lines = [line.split(": ", 1) for line in raw.decode().split("\r\n")]
                    writer.write(self._answer({k: v for k, v in lines}))
        except ConnectionError:
            pass

    def _answer(self, action: dict[str, str]) -> bytes:
        name, action_id = action["Action"], action["ActionID"]
        ok = {"Response": "Success", "ActionID": action_id}
        if name == "Challenge":
            return _message({**ok, "Challenge": "1234"})
        if name == "Login":
            key = hashlib.md5(("1234" + SECRET).encode()).hexdigest()  # noqa: S324
            if action.get("Key") != key:
                return _message({"Response": "Error", "ActionID": action_id,
                                 "Message": "Authentication failed"})  # fmt: skip
            self.logins += 1
            return _message(ok)
        if name == "Ping":
            return _message({**ok, "Ping": "Pong"}) if self.answer_pings else b""
        if name == "ExtensionStateList":
            items = [{"Event": "ExtensionStatus", "ActionID": action_id, "Exten": ext,
                      "Context": "office", "Hint": hint, "Status": "0"}
                     for ext, hint in self.hints.items()]  # fmt: skip
            return _list(ok, items, "ExtensionStateListComplete")
        if name == "DeviceStateList":
            items = [{"Event": "DeviceStateChange", "ActionID": action_id, "Device": d,
                      "State": s} for d, s in self.devices.items()]  # fmt: skip
            return _list(ok, items, "DeviceStateListComplete")
        if name == "Setvar":
            self.setvars.append((action["Variable"], action["Value"]))
            return _message(ok)
        if name in ("DBGet", "DBPut", "DBDel"):
            return self._astdb(name, action, ok)
        return _message({"Response": "Error", "ActionID": action_id, "Message": "?"})

    def _astdb(self, name: str, action: dict[str, str], ok: dict[str, str]) -> bytes:
        """As Asterisk 22 answers: DBGet's value comes in an event after the response."""
        error = {"Response": "Error", "ActionID": ok["ActionID"]}
        if not self.astdb_allowed:
            return _message({**error, "Message": "Permission denied"})
        path = f"{action['Family']}/{action['Key']}"
        if name == "DBPut":
            self.astdb[path] = action["Val"]
            return _message({**ok, "Message": "Updated database successfully"})
        if path not in self.astdb:
            return _message({**error, "Message": "Database entry not found"})
        if name == "DBDel":
            del self.astdb[path]
            return _message({**ok, "Message": "Key deleted successfully"})
        value = {"Event": "DBGetResponse", "Family": action["Family"], "Key": action["Key"],
                 "Val": self.astdb[path], "ActionID": ok["ActionID"]}  # fmt: skip
        return _list(ok, [value], "DBGetComplete")


def _message(fields: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"


def _list(ok: dict[str, str], items: list[dict[str, str]], complete: str) -> bytes:
    done = {"Event": complete, "ActionID": ok["ActionID"], "EventList": "Complete"}
    return b"".join(_message(m) for m in [{**ok, "EventList": "start"}, *items, done])


class Lines:
    """`TelephonyLines` that records what it is told."""

    def __init__(self, extensions: Sequence[str] = ("2101", "2102")) -> None:
        self.extensions = list(extensions)
        self.reports: list[tuple[str, str, CallState]] = []
        self.settled: list[tuple[str, list[str]]] = []
        self.listeners: list[Callable[[], None]] = []

    def lines(self) -> Sequence[str]:
        return self.extensions

    def add_lines_listener(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    async def report(self, extension: str, call_id: str, state: CallState) -> None:
        self.reports.append((extension, call_id, state))

    async def settle(self, extension: str, active: Collection[str]) -> None:
        self.settled.append((extension, list(active)))


def settings(port: int, **changes: Any) -> dict[str, Any]:
    found = {"name": "fake", "host": "127.0.0.1", "port": port, "username": "hub",
            "secret": SECRET, "context": "office", "keepalive_seconds": 1,
            "action_timeout_seconds": 1, "reconnect_min_seconds": 0.05,
            "reconnect_max_seconds": 0.2, **changes}  # fmt: skip
    return {k: v for k, v in found.items() if v is not None}


async def until(condition: Callable[[], bool]) -> None:
    """Polls: the conditions are spread over the connector's state, with no event
    to wait on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def run(test: Callable[[FakeAmi], Awaitable[None]]) -> None:
    async def main() -> None:
        fake = FakeAmi()
        await fake.start()
        try:
            await test(fake)
        finally:
            await fake.close()

    asyncio.run(main())


def test_the_state_read_at_each_login_settles_what_ended_while_the_link_was_down() -> None:
    async def scenario(fake: FakeAmi) -> None:
        fake.devices["PJSIP/2101"] = "INUSE"
        lines = Lines()
        source = AmiPbxSource(parse_source(settings(fake.port)), lines)
        await source.start()
        try:
            await until(lambda: source.health().up)
            [(ext, call_id, state)] = lines.reports
            assert (ext, state) == ("2101", CallState.CONNECTED)
            assert ("2101", [call_id]) in lines.settled and ("2102", []) in lines.settled

            fake.drop()  # the link goes; the call ends meanwhile
            fake.devices["PJSIP/2101"] = "NOT_INUSE"
            await until(lambda: fake.logins == 2 and source.health().up)
            assert lines.reports[-1] == ("2101", call_id, CallState.ENDED)
            assert lines.settled[-2:] == [("2101", []), ("2102", [])]
        finally:
            await source.stop()

    run(scenario)


def test_live_device_changes_map_to_one_call_per_busy_period() -> None:
    async def scenario(fake: FakeAmi) -> None:
        lines = Lines()
        source = AmiPbxSource(parse_source(settings(fake.port)), lines)
        await source.start()
        try:
            await until(lambda: source.health().up)
            for state in ("RINGING", "INUSE", "ONHOLD", "RINGINUSE", "RINGING", "NOT_INUSE"):
                fake.event("DeviceStateChange", Device="PJSIP/2101", State=state)
            # The outlet's own device and devices of no watched hint do not count.
            fake.event("DeviceStateChange", Device="Custom:2101-teams", State="INUSE")
            fake.event("DeviceStateChange", Device="PJSIP/9999", State="INUSE")
            await until(lambda: len(lines.reports) == 5)
            first, second = lines.reports[0][1], lines.reports[3][1]
            assert first != second
            assert lines.reports == [
                ("2101", first, CallState.RINGING),
                ("2101", first, CallState.CONNECTED),
                ("2101", first, CallState.ENDED),  # connected, then only ringing: a new call
                ("2101", second, CallState.RINGING),
                ("2101", second, CallState.ENDED),
            ]
            assert source.health().counts["ignored"] >= 2
        finally:
            await source.stop()

    run(scenario)


def test_malformed_input_is_counted_and_the_connector_goes_on() -> None:
    async def scenario(fake: FakeAmi) -> None:
        lines = Lines()
        source = AmiPbxSource(parse_source(settings(fake.port)), lines)
        await source.start()
        try:
            await until(lambda: source.health().up)
            fake.send(b"this is no AMI line\r\n\xff\xfe\r\n\r\n")
            fake.event("DeviceStateChange", Device="PJSIP/2101", State="SOMETHING")
            fake.event("ExtensionStatus", Exten="2101", Context="office")  # no Hint
            fake.event("DeviceStateChange", Device="PJSIP/2101", State="INUSE")
            await until(lambda: len(lines.reports) == 1)
            health = source.health()
            assert health.up and health.counts["malformed"] == 3, health
            assert fake.logins == 1  # nothing made it reconnect
        finally:
            await source.stop()

    run(scenario)


def test_keepalive_finds_a_link_that_died_without_closing() -> None:
    async def scenario(fake: FakeAmi) -> None:
        source = AmiPbxSource(parse_source(settings(fake.port)), Lines())
        await source.start()
        try:
            await until(lambda: source.health().up)
            fake.answer_pings = False  # the peer is gone, TCP has not noticed
            await until(lambda: source.client.counts.keepalive_failures == 1)
            fake.answer_pings = True
            await until(lambda: fake.logins == 2 and source.health().up)
        finally:
            await source.stop()

    run(scenario)


def test_a_refused_login_is_reported_without_the_secret() -> None:
    async def scenario(fake: FakeAmi) -> None:
        wrong = "wrong-secret-value-99"
        source = AmiPbxSource(parse_source(settings(fake.port, secret=wrong)), Lines())
        await source.start()
        try:
            await until(lambda: source.health().counts["connection_failures"] >= 2)
            health = source.health()
            assert not health.up
            assert health.detail == f"login refused at 127.0.0.1:{fake.port}: Authentication failed"
            assert wrong not in repr(health) and SECRET not in repr(health)
        finally:
            await source.stop()

    run(scenario)


def test_backoff_doubles_up_to_the_bound_with_jitter() -> None:
    client = AmiClient(
        parse_source(settings(1, reconnect_min_seconds=0.5, reconnect_max_seconds=30)),
        events="off",
        dice=random.Random(7),
    )
    waits = [client._backoff(n) for n in range(12)]
    for n, wait in enumerate(waits):
        ceiling = min(30.0, 0.5 * 2**n)
        assert ceiling / 2 <= wait <= ceiling
    assert max(waits) <= 30.0


def publication(situation: Situation) -> Publication:
    return Publication(situation, OUTWARD[situation], "")


def test_the_outlet_writes_device_states_and_after_a_reconnect_goes_on() -> None:
    async def scenario(fake: FakeAmi) -> None:
        table = settings(fake.port, context=None, clear_on_stop=True)
        outlet = AmiDeviceStateOutlet(parse_outlet(table))
        anna = OutwardUser("anna", "Anna", None, ("2101",), publication(Situation.HUB_CALL))
        ben = OutwardUser("ben", "Ben", None, ("2102",), publication(Situation.AVAILABLE))
        nobody = OutwardUser("carl", "Carl", None, (), publication(Situation.DND))
        with pytest.raises(OutletUnavailable, match="not connected"):
            await outlet.publish(anna)
        await outlet.start()
        try:
            for user in (anna, ben, nobody):
                await outlet.publish(user)
            assert fake.setvars == [
                ("DEVICE_STATE(Custom:2101-teams)", "INUSE"),
                ("DEVICE_STATE(Custom:2102-teams)", "NOT_INUSE"),
            ]
            assert outlet.health().counts["skipped"] == 1  # no extension to name a device
            fake.drop()
            with pytest.raises(OutletUnavailable):  # the hub's feed tries again later
                await outlet.publish(ben)
            await until(lambda: fake.logins == 2 and outlet.health().up)
            await outlet.publish(ben)
            # Nothing written again from memory (another node may own anna by now).
            assert len(fake.setvars) == 3
        finally:
            await outlet.stop()
        # clear_on_stop: what this outlet raised goes back to NOT_INUSE.
        assert fake.setvars[-1] == ("DEVICE_STATE(Custom:2101-teams)", "NOT_INUSE")

    run(scenario)


def test_new_watched_extensions_are_read_at_once() -> None:
    async def scenario(fake: FakeAmi) -> None:
        lines = Lines(["2101"])
        source = AmiPbxSource(parse_source(settings(fake.port)), lines)
        await source.start()
        try:
            await until(lambda: source.health().up)
            fake.hints["2103"] = "PJSIP/2103"
            fake.devices["PJSIP/2103"] = "RINGING"
            lines.extensions.append("2103")
            for listener in lines.listeners:
                listener()
            await until(lambda: source.health().counts["reads"] == 2)
            [(ext, call_id, state)] = lines.reports
            assert (ext, state) == ("2103", CallState.RINGING)
            assert ("2103", [call_id]) in lines.settled
            assert source.health().counts["watched"] == 2
        finally:
            await source.stop()

    run(scenario)


class Notes:
    """`UserNotes` that records what it is told."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []

    async def note(self, user_id: str, change: str) -> None:
        self.notes.append((user_id, change))


def wanting(forward: str | None, dnd: bool = False) -> Publication:
    situation = Situation.DND if dnd else Situation.BUSY
    pbx = ((Feature.FORWARD, forward), (Feature.DND, "YES" if dnd else None))
    return Publication(situation, OUTWARD[situation], "", pbx)


def test_apply_profile_sets_forwarding_and_dnd_and_gives_back_the_users_own() -> None:
    async def scenario(fake: FakeAmi) -> None:
        table = settings(fake.port, context=None, apply_profile=True)
        notes = Notes()
        outlet = AmiDeviceStateOutlet(parse_outlet(table), notes)
        fake.astdb["CF/2101"] = "2100"  # the user's own forwarding
        anna = OutwardUser("anna", "Anna", None, ("2101",), wanting("2199", dnd=True))
        await outlet.start()
        try:
            await outlet.publish(anna)
            assert (fake.astdb["CF/2101"], fake.astdb["DND/2101"]) == ("2199", "YES")
            assert decode_held(fake.astdb["presencebridge/CF/2101"]) == Held("2100", "2199")
            assert ("DEVICE_STATE(Custom:DND2101)", "BUSY") in fake.setvars
            await outlet.publish(replace(anna, publication=wanting(None)))
            assert fake.astdb == {"CF/2101": "2100"}  # exactly as before, nothing kept
            assert fake.setvars[-1] == ("DEVICE_STATE(Custom:DND2101)", "NOT_INUSE")

            await outlet.publish(anna)
            fake.astdb["CF/2101"] = "2198"  # the user, at the phone
            await outlet.publish(anna)
            await outlet.publish(replace(anna, publication=None))  # deleted: restore
            assert fake.astdb == {"CF/2101": "2198"}
            assert notes.notes == [("anna", kept_note("2101", Feature.FORWARD, "2198"))]
            counts = outlet.health().counts
            assert (counts["kept_user_change"], counts["refused"]) == (1, 0)

            bad = replace(anna, publication=wanting("2199\r\nAction: Originate"))
            await outlet.publish(bad)  # never into AMI; the rest still applies
            assert fake.astdb["CF/2101"] == "2198"
            assert outlet.health().counts["invalid_target"] == 1

            fake.astdb_allowed = False  # a manager user without `system`
            with pytest.raises(OutletUnavailable, match="Permission denied"):
                await outlet.publish(anna)
            assert outlet.health().counts["refused"] == 1
        finally:
            await outlet.stop()

    run(scenario)


def test_without_apply_profile_the_outlet_leaves_astdb_alone() -> None:
    async def scenario(fake: FakeAmi) -> None:
        outlet = AmiDeviceStateOutlet(parse_outlet(settings(fake.port, context=None)))
        await outlet.start()
        try:
            anna = OutwardUser("anna", "Anna", None, ("2101",), wanting("2199", dnd=True))
            await outlet.publish(anna)
            assert fake.astdb == {}
        finally:
            await outlet.stop()

    run(scenario)

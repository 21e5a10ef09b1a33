"""The AMI wire format and the asterisk-ami settings, without a server: framing
across reads, malformed input dropped and counted (never an exception), encoding
that refuses line breaks, and table errors that name the field but not the secret."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from presencebridge.adapters.asterisk.protocol import MAX_LINE, AmiParser, encode_action
from presencebridge.adapters.asterisk.settings import SettingsError, parse_outlet, parse_source
from presencebridge.adapters.asterisk.source import call_state, hint_devices
from presencebridge.adapters.connectors import OUTLET_KINDS, PBX_KINDS
from presencebridge.config import ConnectorConfig
from presencebridge.core.model import CallState

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
STATUS = b"Event: DeviceStateChange\r\nDevice: PJSIP/2101\r\nState: INUSE\r\n\r\n"
SECRET = "s3cr3t-never-echoed"


def test_messages_are_framed_whatever_the_reads_cut() -> None:
    data = BANNER + b"Response: Success\r\nActionID: pb-1\r\nMessage: ok\r\n\r\n" + STATUS
    parser = AmiParser()
    found = [m for i in range(len(data)) for m in parser.feed(data[i : i + 1])]
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert [(m.response, m.event) for m in found] == [
        ("Success", None),
        (None, "DeviceStateChange"),
    ]
    assert found[0].action_id == "pb-1"
    assert found[1]["device"] == "PJSIP/2101"  # names compare case-insensitively
    assert parser.malformed == 0


def test_bare_newlines_values_with_colons_and_repeated_names() -> None:
    parser = AmiParser()
    [message] = parser.feed(b"Event: VarSet\nValue: a: b\nChanVariable: x=1\nChanVariable: y=2\n\n")
    assert message["Value"] == "a: b"
    assert message["ChanVariable"] == "x=1"  # the first of a repeated name
    assert len(message.fields) == 4


@pytest.mark.parametrize(
    "bad",
    [
        b"Event: X\r\nno colon here\r\n\r\n",
        b"Event: X\r\n: no name\r\n\r\n",
        b"Event: X\r\nName: \xff\xfe\r\n\r\n",
        b"Message: neither an event nor a response\r\n\r\n",
        b"Event: X\r\n" + b"Field: 1\r\n" * 600 + b"\r\n",
        b"Event: X\r\nLong: " + b"x" * (MAX_LINE + 10) + b"\r\n\r\n",
    ],
    ids=["no-colon", "no-name", "not-utf8", "no-event", "too-many-fields", "long-line"],
)
def test_a_malformed_message_is_counted_once_and_the_next_one_read(bad: bytes) -> None:
    parser = AmiParser()
    found = parser.feed(BANNER + bad + STATUS)
    assert parser.malformed == 1
    assert [m.event for m in found] == ["DeviceStateChange"]


def test_a_line_that_never_ends_is_dropped_without_growing_the_buffer() -> None:
    parser = AmiParser()
    for _ in range(10):
        parser.feed(b"y" * MAX_LINE)
    assert parser.malformed == 1
    assert len(parser._buffer) <= MAX_LINE
    assert [m.event for m in parser.feed(b"\r\n\r\n" + STATUS)] == ["DeviceStateChange"]


@given(st.binary(max_size=4000), st.integers(min_value=1, max_value=64))
def test_any_bytes_in_any_pieces_never_raise(data: bytes, piece: int) -> None:
    parser = AmiParser()
    for i in range(0, len(data), piece):
        parser.feed(data[i : i + piece])
    # Whatever came before, a blank line and a good message are read again.
    found = parser.feed(b"\r\n\r\n" + STATUS)
    assert found[-1].event == "DeviceStateChange"


def test_encoding_refuses_line_breaks_and_bad_names() -> None:
    assert encode_action("Ping", "pb-1", {}) == b"Action: Ping\r\nActionID: pb-1\r\n\r\n"
    for fields in ({"Value": "INUSE\r\nAction: Originate"}, {"Bad:Name": "x"}, {"": "x"}):
        with pytest.raises(ValueError, match="line break or is not a valid name"):
            encode_action("Setvar", "pb-2", fields)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((), CallState.ENDED),
        (("NOT_INUSE",), CallState.ENDED),
        (("UNAVAILABLE", "UNKNOWN", "INVALID"), CallState.ENDED),
        (("RINGING", "NOT_INUSE"), CallState.RINGING),
        (("INUSE",), CallState.CONNECTED),
        (("BUSY",), CallState.CONNECTED),
        (("ONHOLD",), CallState.CONNECTED),
        (("RINGINUSE",), CallState.CONNECTED),
        (("RINGING", "INUSE"), CallState.CONNECTED),  # a second call ringing: still a call
    ],
)
def test_device_states_sum_up_as_asterisk_sums_up_a_hint(
    states: tuple[str, ...], expected: CallState
) -> None:
    assert call_state(states) is expected


def test_hint_devices() -> None:
    assert hint_devices("PJSIP/2101&Custom:2101-teams") == ("pjsip/2101", "custom:2101-teams")
    assert hint_devices("SIP/2101,CustomPresence:2101") == ("sip/2101",)
    assert hint_devices("") == ()


# -- settings ----------------------------------------------------------------------------


def table(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": "asterisk-ami",
        "name": "pbx1",
        "host": "pbx.example",
        "username": "presence",
        "secret": SECRET,
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def error(parse: Any, **changes: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        parse(table(**changes))
    message = str(caught.value)
    assert SECRET not in message
    return message


def test_defaults() -> None:
    source = parse_source(table())
    assert (source.port, source.context, source.ignore_devices) == (5038, "default", ("Custom:*",))
    assert source.address == "pbx.example:5038"
    assert SECRET not in repr(source)
    outlet = parse_outlet(table())
    assert outlet.device == "Custom:{extension}-teams"
    assert outlet.device_for("anna", ("2101", "2102")) == "Custom:2101-teams"
    assert outlet.device_for("anna", ()) is None
    named = parse_outlet(table(device="Custom:{user}-teams"))
    assert named.device_for("anna.b", ()) == "Custom:anna.b-teams"
    assert named.device_for("anna b", ()) is None  # no valid device name
    assert (outlet.apply_profile, outlet.profile_family) == (False, "presencebridge")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"secret": None}, "secret: missing: set secret_env or secret_file"),
        ({"secret": ""}, "secret: is empty"),
        ({"secret": SECRET + "\r\nAction: Originate"}, "secret: is empty or has a line break"),
        ({"host": "pbx example"}, "host:"),
        ({"port": 70000}, "port:"),
        ({"username": "a\r\nb"}, "username:"),
        ({"keepalive_seconds": 0}, "keepalive_seconds:"),
        ({"colour": "red"}, "colour:"),
    ],
)
def test_errors_name_the_field_and_never_the_secret(changes: dict[str, Any], field: str) -> None:
    assert field in error(parse_source, **changes)


def test_the_tables_differ_by_role() -> None:
    assert "device:" in error(parse_source, device="Custom:{extension}")
    assert "context:" in error(parse_outlet, context="office")
    assert "context:" in error(parse_source, context="bad context")
    for device in ("PJSIP/{extension}", "Custom:teams", "Custom:{extension}(x)"):
        assert "device:" in error(parse_outlet, device=device)
    # The hub's memory must not land in FreePBX's own families, nor split a key.
    for family in ("CF", "DND", "pb/mem", ""):
        assert "profile_family:" in error(parse_outlet, profile_family=family)
    assert "apply_profile:" in error(parse_source, apply_profile=True)


def test_the_kind_is_registered_for_both_roles_and_checked_when_the_file_is_read() -> None:
    assert "asterisk-ami" in PBX_KINDS
    assert "asterisk-ami" in OUTLET_KINDS
    good = ConnectorConfig.model_validate(
        {"kind": "asterisk-ami", "host": "pbx", "username": "u", "secret_env": "AMI_SECRET"}
    )
    good.check("pbx", PBX_KINDS)
    bad = ConnectorConfig.model_validate(
        {"kind": "asterisk-ami", "host": "pbx", "username": "u", "port": "x"}
    )
    with pytest.raises(ValueError, match="port:"):
        bad.check("pbx", PBX_KINDS)

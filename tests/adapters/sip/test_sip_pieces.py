"""The SIP user agent's own pieces: digest answers (RFC vectors), message framing and
parsing, dialog-info and PIDF bodies, and the connectors' settings."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from presencebridge.adapters.connectors import OUTLET_KINDS, PBX_KINDS
from presencebridge.adapters.sip import digest
from presencebridge.adapters.sip.bodies import (
    MalformedBody,
    dialog_info,
    parse_dialog_info,
    pidf,
)
from presencebridge.adapters.sip.message import MAX_MESSAGE, StreamFramer, parse
from presencebridge.adapters.sip.settings import parse_dialog, parse_presence
from presencebridge.core.model import CallState

NS = "urn:ietf:params:xml:ns:dialog-info"


# -- digest -------------------------------------------------------------------------------


def _response_of(header: str) -> str:
    return header.split('response="')[1].split('"')[0]


def test_digest_md5_with_qop_matches_rfc_2617() -> None:
    challenge = digest.pick(
        ['Digest realm="testrealm@host.com", qop="auth,auth-int", '
         'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"']
    )  # fmt: skip
    header = digest.answer(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle Of Life", cnonce="0a4f113b",
    )  # fmt: skip
    assert _response_of(header) == "6629fae49393a05397450978507c4ef1"
    # Tokens unquoted (RFC 3261 §25.1), strings quoted.
    assert "qop=auth," in header and "nc=00000001" in header and "algorithm=MD5" in header
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_digest_sha256_preferred_and_matches_rfc_7616() -> None:
    offers = [
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    ]
    challenge = digest.pick(offers)
    assert challenge.algorithm == "SHA-256"
    header = digest.answer(
        challenge, method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle of Life", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )  # fmt: skip
    assert _response_of(header) == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    md5 = digest.answer(
        digest.pick(offers[:1]), method="GET", uri="/dir/index.html", username="Mufasa",
        password="Circle of Life", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )  # fmt: skip
    assert _response_of(md5) == "8ca523f5e9506fed4657c9700eebdbec"


def test_digest_refuses_what_it_cannot_answer() -> None:
    with pytest.raises(digest.DigestError):
        digest.pick(['Basic realm="x"', 'Digest realm="x", nonce="n", algorithm=SHA-512-256'])
    only_int = digest.pick(['Digest realm="x", nonce="n", qop="auth-int"'])
    with pytest.raises(digest.DigestError):
        digest.answer(only_int, method="PUBLISH", uri="sip:a@b", username="u", password="p")


# -- messages -----------------------------------------------------------------------------

NOTIFY = (
    b"NOTIFY sip:presencebridge@127.0.0.1:5070 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
    b"f: <sip:201@example.com>;tag=a\r\n"
    b"t: <sip:presencebridge@example.com>\r\n"
    b" ;tag=b\r\n"  # a folded line
    b"i: x@y\r\nCSeq: 2 NOTIFY\r\no: dialog\r\nl: 4\r\n\r\nbodyPADDING"
)


def test_compact_and_folded_headers_and_the_body_cut_at_content_length() -> None:
    message = parse(NOTIFY)
    assert message.headers.get("Call-ID") == "x@y" and message.headers.get("Event") == "dialog"
    assert message.to_address.parameters.get("tag") == "b"
    assert message.body == b"body"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"NOT SIP\r\n\r\n",
        NOTIFY.replace(b"CSeq: 2 NOTIFY", b"CSeq: two"),
        NOTIFY.replace(b"i: x@y\r\n", b""),
        NOTIFY.replace(b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n", b""),
        NOTIFY.replace(b"f: <sip:201@example.com>;tag=a", b"f: <<not an address"),
        NOTIFY.replace(b"l: 4", b"l: 400"),
        NOTIFY.replace(b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1", b"v: nonsense"),
        b"\xff\xfe" + NOTIFY,
        NOTIFY + b"x" * MAX_MESSAGE,
    ],
)
def test_bad_messages_are_value_errors(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse(raw)


def test_stream_framing_splits_by_content_length_and_skips_keepalives() -> None:
    one = NOTIFY.replace(b"PADDING", b"")
    framer = StreamFramer()
    stream = b"\r\n\r\n" + one + one + b"\r\n"
    found = []
    for i in range(0, len(stream), 7):  # arrives in small pieces
        found += framer.feed(stream[i : i + 7])
    assert found == [one, one]
    # Content-Length anywhere among the headers (Kamailio puts it before others).
    middle = one.replace(b"o: dialog\r\nl: 4\r\n", b"Content-Length: 4\r\no: dialog\r\n")
    assert StreamFramer().feed(middle + middle) == [middle, middle]
    assert parse(middle + b"PADDING").body == b"body"
    with pytest.raises(ValueError):
        StreamFramer().feed(one.replace(b"l: 4\r\n", b""))
    with pytest.raises(ValueError):
        StreamFramer().feed(b"X" * 20_000)


# -- bodies -------------------------------------------------------------------------------


def dialogs(*items: tuple[str, str], state: str = "full", version: int = 3) -> bytes:
    inner = "".join(f"<dialog id='{i}'><state>{s}</state></dialog>" for i, s in items)
    head = f"<dialog-info xmlns='{NS}' version='{version}' state='{state}'>"
    return f"{head}{inner}</dialog-info>".encode()


def test_dialog_info_several_dialogs_states_in_any_case() -> None:
    info = parse_dialog_info(
        dialogs(("a", "Trying"), ("b", "EARLY"), ("c", "proceeding"), ("d", "confirmed"),
                ("e", "terminated"), ("f", "unknown-state")),
        65536,
    )  # fmt: skip
    assert info.full and info.version == 3
    assert info.calls == {
        "a": CallState.RINGING,
        "b": CallState.RINGING,
        "c": CallState.RINGING,
        "d": CallState.CONNECTED,
        "e": CallState.ENDED,
    }
    partial = parse_dialog_info(dialogs(("a", "confirmed"), state="partial", version=4), 65536)
    assert not partial.full and partial.version == 4
    empty = parse_dialog_info(b"  \r\n", 65536)
    assert empty.full and empty.calls == {}


@pytest.mark.parametrize(
    "body",
    [
        b"<dialog-info",
        b"<other xmlns='urn:x' version='1' state='full'/>",
        dialogs(("a", "confirmed")).replace(b"version='3'", b"version='v'"),
        dialogs(("a", "confirmed")).replace(b"state='full'", b"state='some'"),
        dialogs(("a", "confirmed")).replace(b"<dialog id='a'>", b"<dialog>"),
        b"<!DOCTYPE lol [<!ENTITY lol 'lol'>]><dialog-info>&lol;</dialog-info>",
        dialogs(*[(str(i), "confirmed") for i in range(300)]),  # too many dialogs
        dialogs(("a", "confirmed")) + b" " * 70_000,  # too large
    ],
)
def test_malformed_dialog_info_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse_dialog_info(body, 65536)


def test_written_bodies_read_back() -> None:
    body = dialog_info("sip:201@pbx", 7, "hub-call", "confirmed")
    assert parse_dialog_info(body, 65536).calls == {"hub-call": CallState.CONNECTED}
    # The hub's own published dialogs are not read back as PBX calls.
    own = dialog_info("sip:201@pbx", 8, "presencebridge-1", "confirmed")
    assert parse_dialog_info(own, 65536).calls == {}
    document = pidf("sip:201@pbx", "open", "on-the-phone", "Am <Telefon> & Co", "pb1")
    assert b"<rpid:on-the-phone/>" in document  # the literal prefix baresip looks for
    root = ET.fromstring(document)  # noqa: S314 - our own output
    assert root.findtext(
        "{urn:ietf:params:xml:ns:pidf}tuple/{urn:ietf:params:xml:ns:pidf}note"
    ) == ("Am <Telefon> & Co")
    closed = pidf("sip:201@pbx", "closed", None, "Offline", "pb1")
    assert b"<basic>closed</basic>" in closed and b"<rpid:activities></rpid:activities>" in closed


# -- settings -----------------------------------------------------------------------------


def test_settings_name_the_field_and_never_echo_the_secret() -> None:
    assert "sip-dialog" in PBX_KINDS and "sip-presence" in OUTLET_KINDS
    good = parse_dialog({"name": "pbx", "server": "pbx.example.com", "secret": "hunter2!"})
    assert good.address == ("pbx.example.com", 5060) and good.sip_domain == "pbx.example.com"
    assert "hunter2" not in repr(good) and good.target(extension="201") == (
        "sip:201@pbx.example.com"
    )
    tls = parse_presence({"name": "p", "server": "ps.example.com:5081", "transport": "tls"})
    assert tls.address == ("ps.example.com", 5081)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"server": "a b"}, "server"),
        ({"server": "pbx", "transport": "sctp"}, "transport"),
        ({"server": "pbx", "uri": "sip:{nope}@x"}, "uri"),
        ({"server": "pbx", "subscribe_rate": 0}, "subscribe_rate"),
        ({"server": "pbx", "colour": "red"}, "colour"),
    ]
    for table, field in cases:
        with pytest.raises(ValueError) as caught:
            parse_dialog({"name": "pbx", "secret": "hunter2!", **table})
        assert field in str(caught.value) and "hunter2" not in str(caught.value)

"""The XMPP outlets' tables, addresses and stanza contents, without a server."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from presencebridge.adapters.connectors import OUTLET_KINDS
from presencebridge.adapters.xmpp import (
    account_settings,
    component_settings,
)
from presencebridge.adapters.xmpp.account import XmppAccountOutlet
from presencebridge.adapters.xmpp.addresses import bare_jid, escape_local, local_part, shown
from presencebridge.adapters.xmpp.component import XmppComponentOutlet
from presencebridge.adapters.xmpp.settings import SettingsError
from presencebridge.config import Settings
from presencebridge.core.ports import OutwardUser
from presencebridge.core.publication import OUTWARD, Publication, Situation

SECRET = "component-secret-not-to-be-echoed"


def user(user_id: str = "u1", email: str | None = "Alice.Smith@Example.com") -> OutwardUser:
    return OutwardUser(user_id, "Alice", email, ("201",), None)


def component(**fields: Any) -> dict[str, Any]:
    return {"name": "chat", "domain": "presence.example.com", "secret": SECRET, **fields}


def test_both_kinds_are_registered_and_make_their_outlets() -> None:
    made = OUTLET_KINDS["xmpp-component"].make(OUTLET_KINDS["xmpp-component"].parse(component()))
    assert isinstance(made, XmppComponentOutlet)
    assert (made.name, made.kind, made.language) == ("chat", "xmpp-component", "en")
    table = {"name": "acc", "secret": SECRET}
    account = OUTLET_KINDS["xmpp-account"].make(OUTLET_KINDS["xmpp-account"].parse(table))
    assert isinstance(account, XmppAccountOutlet)
    assert account.kind == "xmpp-account"


def test_component_defaults() -> None:
    s = component_settings(component())
    assert (s.host, s.port, s.address, s.approve_subscriptions) == (
        "127.0.0.1",
        5347,
        "email-local",
        True,
    )
    assert s.watcher_domains() == {"example.com"}
    assert component_settings(component(allowed_domains=["A.org", "b.org"])).watcher_domains() == {
        "a.org",
        "b.org",
    }
    assert SECRET not in repr(s)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"domain": "not a domain"}, "domain"),
        ({"port": 0}, "port"),
        ({"language": "fr"}, "language"),
        ({"address": "phone"}, "address"),
        ({"approve_subscriptions": "sometimes"}, "approve_subscriptions"),
        ({"colour": "red"}, "colour"),
        ({"domain": SECRET + " x"}, "domain"),
    ],
)
def test_a_wrong_component_field_is_named_and_no_value_echoed(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(SettingsError) as error:
        component_settings(component(**fields))
    assert named in str(error.value)
    assert SECRET not in str(error.value)
    assert "[[publish]] chat" in str(error.value)


def test_roster_provisioning_needs_its_api() -> None:
    with pytest.raises(SettingsError, match="roster_api: needed"):
        component_settings(component(roster="ejabberd"))
    with pytest.raises(SettingsError, match="roster_api"):
        component_settings(component(roster="ejabberd", roster_api="ftp://x"))
    s = component_settings(component(roster="ejabberd", roster_api="http://127.0.0.1:5280/api"))
    assert (s.roster_group, s.roster_max_users, s.roster_host) == ("Telefonie", 300, None)


def test_a_missing_secret_or_domain_is_named() -> None:
    with pytest.raises(SettingsError, match="secret"):
        component_settings({"name": "chat", "domain": "presence.example.com"})
    with pytest.raises(SettingsError, match="domain"):
        component_settings({"name": "chat", "secret": SECRET})


def test_account_settings() -> None:
    s = account_settings({"name": "acc", "secret": SECRET})
    assert (s.port, s.address, s.resource, s.priority, s.max_accounts, s.tls) == (
        5222,
        "email",
        "presencebridge",
        -1,
        500,
        "starttls",
    )
    with pytest.raises(SettingsError, match="domain: needed"):
        account_settings({"name": "acc", "secret": SECRET, "address": "user-id"})
    with pytest.raises(SettingsError, match="max_accounts"):
        account_settings({"name": "acc", "secret": SECRET, "max_accounts": 100_000})
    with pytest.raises(SettingsError, match="resource"):
        account_settings({"name": "acc", "secret": SECRET, "resource": "a/b"})
    with pytest.raises(SettingsError, match="tls: 'none' only with a loopback host"):
        account_settings({"name": "acc", "secret": SECRET, "host": "xmpp.example.com",
                          "tls": "none"})  # fmt: skip
    for host in ("127.0.0.1", "::1", "localhost"):
        assert account_settings({"name": "a", "secret": SECRET, "host": host, "tls": "none"})


def test_the_config_file_checks_publish_tables(tmp_path: Path) -> None:
    """A `[[publish]]` table is checked when the file is read; a secret in it is refused."""
    good = {"kind": "xmpp-component", "domain": "presence.example.com", "secret_env": "X"}
    assert Settings(admin_token="t" * 20, publish=[good]).publish[0].kind == "xmpp-component"
    with pytest.raises(ValueError, match="domain"):
        Settings(admin_token="t" * 20, publish=[{**good, "domain": "bad domain"}])
    with pytest.raises(ValueError, match="use secret_env or secret_file"):
        Settings(admin_token="t" * 20, publish=[{**good, "component_secret": "x"}])


def test_local_parts_are_escaped_and_lowercased() -> None:
    assert escape_local("Alice.Smith") == "alice.smith"
    assert escape_local("first last") == "first\\20last"
    assert escape_local("a@b/c:d") == "a\\40b\\2fc\\3ad"
    assert escape_local("back\\slash") == "back\\5cslash"
    assert escape_local("") is None
    assert escape_local("tab\there") is None
    assert escape_local("x" * 2000) is None


def test_addresses() -> None:
    assert local_part(user(), "email-local") == "alice.smith"
    assert local_part(user(email=None), "email-local") == "u1"
    assert local_part(user(), "user-id") == "u1"
    assert bare_jid(user(), "email", None) == "alice.smith@example.com"
    assert bare_jid(user(email=None), "email", None) is None
    assert bare_jid(user(), "email-local", "chat.example.com") == "alice.smith@chat.example.com"
    assert bare_jid(user(), "user-id", "Chat.Example.com") == "u1@chat.example.com"


EXPECTED = {
    Situation.HUB_CALL: ("available", "dnd"),
    Situation.PBX_CALL: ("available", "dnd"),
    Situation.DND: ("available", "dnd"),
    Situation.BUSY: ("available", "dnd"),
    Situation.AWAY: ("available", "away"),
    Situation.AVAILABLE: ("available", None),
    Situation.OFFLINE: ("unavailable", None),
}


@pytest.mark.parametrize("situation", list(Situation))
def test_each_situation_becomes_its_stanza(situation: Situation) -> None:
    found = shown(Publication(situation, OUTWARD[situation], "Text"))
    assert (found.type, found.show) == EXPECTED[situation]
    assert found.status == "Text"


def test_the_tables_in_docs_xmpp_md_are_valid() -> None:
    """Every `[[publish]]` example of docs/xmpp.md, commented fields switched on."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "xmpp.md").read_text()
    blocks = [b.split("```")[0] for b in text.split("```toml\n")[1:]]
    assert len(blocks) == 2
    for block in blocks:
        lines = [line.removeprefix("# ") for line in block.splitlines()]
        table = tomllib.loads("\n".join(lines))["publish"][0]
        table.pop("secret_file", None)
        table.pop("ca_file", None)  # a file of the reader's machine
        found = Settings(admin_token="t" * 20, publish=[table]).publish[0]
        assert found.kind.startswith("xmpp-")

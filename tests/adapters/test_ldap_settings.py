"""The LDAP source's settings and attribute mapping, without a server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from presencebridge.adapters.ldap import AttributeMap, LdapSettings, SettingsError
from presencebridge.adapters.ldap.mapping import (
    Entry,
    entry_key,
    invert_groups,
    is_disabled,
    normal_dn,
    parent_dn,
    to_person,
)
from presencebridge.adapters.ldap.settings import ACTIVE_DIRECTORY_MAP, OPENLDAP_MAP

SECRET = "Tr0ub4dor&3-not-for-logs"


def table(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": "ldap",
        "name": "corp",
        "url": "ldaps://dc1.corp.example",
        "bind_dn": "CN=svc-presence,OU=Service,DC=corp,DC=example",
        "bind_password": SECRET,
        "base_dn": "DC=corp,DC=example",
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def error(**changes: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        LdapSettings.from_mapping(table(**changes))
    return str(caught.value)


def test_a_config_table_gives_settings_with_the_dialects_defaults() -> None:
    settings = LdapSettings.from_mapping(table())
    assert settings.dialect == "active_directory"
    assert settings.attributes() == ACTIVE_DIRECTORY_MAP
    assert settings.person_filter() == "(&(objectClass=user)(!(objectClass=computer)))"
    assert not settings.searches_groups()
    assert settings.page_size == 500 and settings.scope == "subtree"
    openldap = LdapSettings.from_mapping(table(dialect="openldap"))
    assert openldap.attributes() == OPENLDAP_MAP
    assert openldap.person_filter() == "(objectClass=inetOrgPerson)"
    assert openldap.searches_groups()


def test_the_password_is_in_no_repr() -> None:
    settings = LdapSettings.from_mapping(table())
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in str(settings.model_dump())
    assert settings.bind_password.get_secret_value() == SECRET


def test_missing_fields_are_named() -> None:
    message = error(url=None, bind_dn=None, bind_password=None, base_dn=None)
    assert message.startswith("LDAP directory 'corp': ")
    for name in ("url: Field required", "bind_dn", "bind_password", "base_dn"):
        assert name in message


@pytest.mark.parametrize("wrong", [12345678, ["x", SECRET], {"value": SECRET}])
def test_a_wrong_password_value_is_never_echoed(wrong: object) -> None:
    message = error(bind_password=wrong)
    assert "bind_password" in message
    assert SECRET not in message and "12345678" not in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bind_password": ""}, "bind_password: is empty (that would be an unauthenticated bind)"),
        ({"url": "ldap://dc1"}, "url: plain ldap:// without start_tls"),
        ({"url": "ldaps://dc1", "start_tls": True}, "start_tls: the url is ldaps://"),
        ({"url": "https://dc1"}, "url: must start with ldaps:// or ldap://"),
        ({"url": "ldaps://dc1:99999"}, "url: has a port that is no number"),
        ({"url": "ldaps://dc1/dc=x"}, "url: must be ldaps://host[:port]"),
        ({"ca_file": "/no/such/ca.pem"}, "ca_file: Path does not point to a file"),
        ({"page_size": 0}, "page_size: Input should be greater than or equal to 1"),
        ({"scope": "base"}, "scope: Input should be 'subtree' or 'one_level'"),
        ({"dialect": "novell"}, "dialect: Input should be 'active_directory' or 'openldap'"),
        ({"filter": "objectClass=user"}, "filter: must be an LDAP filter in parentheses"),
        ({"attribute_map": {"phone": ["x"]}}, "attribute_map: no such entry phone"),
        ({"attribute_map": {"extensions": ["ip phone"]}}, "'ip phone' is not an LDAP attribute"),
        (
            {"extra_attributes": ["dept!"]},
            "extra_attributes: 'dept!' is not an LDAP attribute name",
        ),
        ({"bindpassword": "x"}, "bindpassword: Extra inputs are not permitted"),
        ({"kind": "entra"}, "kind: 'entra' is not an LDAP directory"),
    ],
)
def test_wrong_settings_are_named(changes: dict[str, Any], expected: str) -> None:
    assert expected in error(**changes)


def test_plain_ldap_is_allowed_only_when_said(tmp_path: Path) -> None:
    assert "allow_plain = true" in error(url="ldap://dc1")
    assert LdapSettings.from_mapping(table(url="ldap://dc1", start_tls=True))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    plain = LdapSettings.from_mapping(table(url="ldap://dc1:3268", allow_plain=True, ca_file=ca))
    assert plain.ca_file == ca


def test_the_attribute_map_overrides_single_entries() -> None:
    settings = LdapSettings.from_mapping(
        table(
            dialect="openldap",
            attribute_map={"extensions": ["pager"], "disabled": "employeeStatus"},
        )
    )
    attributes = settings.attributes()
    assert attributes.extensions == ("pager",)
    assert attributes.disabled == "employeeStatus"
    assert attributes.key == "entryUUID"  # the rest stays the dialect's
    assert attributes.requested()[0] == "entryUUID"


# -- mapping --------------------------------------------------------------------------------


def entry(dn: str, **values: str | bytes | list[str]) -> Entry:
    raw: dict[str, list[bytes]] = {}
    for name, value in values.items():
        items = value if isinstance(value, list) else [value]
        raw[name] = [v if isinstance(v, bytes) else v.encode() for v in items]
    return Entry.of(dn, raw)


def test_objectguid_bytes_become_the_standard_guid_string() -> None:
    # MS-DTYP 2.3.4: Data1..Data3 little-endian, Data4 as bytes.
    raw = bytes.fromhex("67452301ab89efcd0123456789abcdef")
    assert entry_key(entry("cn=a", objectGUID=raw), "objectGUID") == (
        "01234567-89ab-cdef-0123-456789abcdef"
    )
    assert entry_key(entry("cn=a", objectGUID=b"short"), "objectGUID") is None
    assert entry_key(entry("cn=a"), "objectGUID") is None
    text = str(uuid.uuid4())
    assert entry_key(entry("cn=a", entryUUID=text), "entryUUID") == text


@pytest.mark.parametrize(
    ("value", "disabled"),
    [("512", False), ("514", True), ("66050", True), ("66048", False), ("2", True), ("x", False)],
)
def test_the_disabled_bit_of_useraccountcontrol(value: str, disabled: bool) -> None:
    assert is_disabled(entry("cn=a", userAccountControl=value), ACTIVE_DIRECTORY_MAP) is disabled


def test_a_disabled_attribute_by_presence_or_by_value() -> None:
    assert is_disabled(entry("cn=a", pwdAccountLockedTime="000001010000Z"), OPENLDAP_MAP)
    assert not is_disabled(entry("cn=a"), OPENLDAP_MAP)
    by_value = OPENLDAP_MAP.model_copy(
        update={"disabled": "employeeStatus", "disabled_values": ("left", "Inactive")}
    )
    assert is_disabled(entry("cn=a", employeeStatus="inactive"), by_value)
    assert not is_disabled(entry("cn=a", employeeStatus="active"), by_value)


def test_the_ou_is_the_parent_dn_also_with_escaped_commas() -> None:
    assert parent_dn("CN=Müller\\, Jörg,OU=Berlin,DC=corp,DC=example") == (
        "OU=Berlin,DC=corp,DC=example"
    )
    assert parent_dn("dc=example") is None


def test_groups_are_inverted_whatever_the_dn_spelling() -> None:
    groups = [
        entry("cn=devs,ou=groups,dc=x", member=["uid=a, ou=People,dc=x", "uid=b,ou=people,dc=x"]),
        entry("cn=ops,ou=groups,dc=x", uniqueMember="UID=a,ou=people,dc=x#'0101'B"),
    ]
    memberships = invert_groups(groups, ("member", "uniqueMember"))
    assert memberships[normal_dn("uid=a,ou=people,dc=x")] == [
        "cn=devs,ou=groups,dc=x",
        "cn=ops,ou=groups,dc=x",
    ]
    person = entry(
        "uid=a,ou=people,dc=x",
        entryUUID="k1",
        cn="A",
        memberOf="CN=devs,ou=groups,dc=x",  # the memberof overlay too: counted once
    )
    mapped = to_person(person, "k1", OPENLDAP_MAP, ("cn",), memberships)
    assert mapped.groups == ("CN=devs,ou=groups,dc=x", "cn=ops,ou=groups,dc=x")
    assert mapped.display_name == "A" and mapped.attributes == (("cn", "A"),)


def test_a_person_without_any_name_is_shown_by_upn_mail_or_key() -> None:
    bare = AttributeMap(key="entryUUID", upn=("userPrincipalName",), display_name=("cn",))
    person = to_person(entry("x=1", userPrincipalName="a@b"), "k", bare, (), {})
    assert person.display_name == "a@b" and person.ou is None
    assert to_person(entry("x=1,dc=y"), "k", bare, (), {}).display_name == "k"

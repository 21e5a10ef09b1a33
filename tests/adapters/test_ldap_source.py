"""The LDAP / AD directory source against a real OpenLDAP server (Debian's slapd).

`tests.support.slapd` seeds an AD-shaped tree and a plain inetOrgPerson tree and
computes what a correct read returns for every person; these tests compare with it.
The server refuses searches of more than 50 entries without paging, so every read
here pages.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from ldap3 import SIMPLE, Connection, Server
from ldap3.utils.log import EXTENDED, OFF, set_library_log_detail_level

from presencebridge.adapters.ldap import LdapSettings
from presencebridge.adapters.ldap.source import LdapDirectorySource
from presencebridge.core.ports import DirectoryRead, DirectoryUnavailable
from tests.support.ports import free_port
from tests.support.slapd import (
    AD_LIMITED,
    AD_READER,
    AD_SUFFIX,
    LIMITED_TOTAL,
    OL_READER,
    OL_SUFFIX,
    SIZE_LIMIT,
    Slapd,
    throwaway_slapd,
)
from tests.support.tls import make_certificate

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    with throwaway_slapd() as server:
        yield server


def ad(server: Slapd, **changes: Any) -> LdapSettings:
    fields: dict[str, Any] = {
        "name": "corp-ad",
        "url": server.ldap_url,
        "start_tls": True,
        "ca_file": server.certificate.ca_file,
        "bind_dn": AD_READER,
        "bind_password": server.reader_password,
        "base_dn": AD_SUFFIX,
        "page_size": 40,
    }
    return LdapSettings.model_validate({**fields, **changes})


def openldap(server: Slapd, **changes: Any) -> LdapSettings:
    fields: dict[str, Any] = {
        "name": "openldap",
        "dialect": "openldap",
        "url": server.ldaps_url,
        "ca_file": server.certificate.ca_file,
        "bind_dn": OL_READER,
        "bind_password": server.reader_password,
        "base_dn": OL_SUFFIX,
        "page_size": 30,
        "attribute_map": {"extensions": ["pager"]},
    }
    return LdapSettings.model_validate({**fields, **changes})


def read(settings: LdapSettings, source: LdapDirectorySource | None = None) -> DirectoryRead:
    source = source or LdapDirectorySource(settings)

    async def run() -> DirectoryRead:
        try:
            return await source.read(None)
        finally:
            await source.aclose()

    return asyncio.run(run())


def failure(settings: LdapSettings, source: LdapDirectorySource | None = None) -> str:
    with pytest.raises(DirectoryUnavailable) as caught:
        read(settings, source)
    return str(caught.value)


# -- what a read returns --------------------------------------------------------------------


def test_a_full_ad_read_returns_every_person_with_the_mapped_fields(slapd: Slapd) -> None:
    pages: list[int] = []
    result = read(ad(slapd), LdapDirectorySource(ad(slapd), after_page=pages.append))
    assert result.full and result.cursor is None and result.removed == ()
    people = {p.key: p for p in result.people}
    assert len(people) == len(result.people) == 300  # the 5 computers are not people
    assert people == slapd.seed.ad  # every field of every person, as seeded
    assert len(pages) == 8  # 300 people in pages of 40
    assert all(GUID.match(key) for key in people)
    assert all(p.teams_user_id is None for p in people.values())  # found in Graph later

    disabled = [p for p in people.values() if not p.enabled]
    assert 0 < len(disabled) < 60  # 514 and 66050 both disable; 66048 does not
    by_upn = {p.upn: p for p in people.values()}
    jorg = by_upn["u007@ad.test"]  # cn=Müller\, Jörg: an escaped comma in the RDN
    assert jorg.ou == "ou=Munich,ou=Staff,dc=ad,dc=test"
    assert by_upn["u001@ad.test"].numbers == ("030 12345001",)  # spelt as in the directory
    assert by_upn["u004@ad.test"].numbers == ("030 12345004", "+49 171 0000004")
    assert by_upn["u004@ad.test"].extensions == ("2004",)
    assert by_upn["u006@ad.test"].groups == (
        "cn=All Berlin,ou=Groups,dc=ad,dc=test",
        "cn=Engineering,ou=Groups,dc=ad,dc=test",
    )
    assert sum(p.upn is None for p in people.values()) == 6  # found by mail, if at all

    again = read(ad(slapd))
    assert {p.key: p for p in again.people} == people  # keys (and all else) stable


def test_the_guid_is_given_in_ads_own_string_form(slapd: Slapd) -> None:
    """objectGUID's first three fields are little-endian: the form AD tools show."""
    connection = Connection(
        Server("127.0.0.1", port=slapd.ldap_port),
        user=AD_READER,
        password=slapd.reader_password,
        authentication=SIMPLE,
        auto_bind=True,
    )
    connection.search(AD_SUFFIX, "(sAMAccountName=u010)", attributes=["objectGUID"])
    response = connection.response or []
    raw = bytes(response[0]["raw_attributes"]["objectGUID"][0])
    connection.unbind()
    expected = "{:08x}-{:04x}-{:04x}-{}-{}".format(
        int.from_bytes(raw[0:4], "little"),
        int.from_bytes(raw[4:6], "little"),
        int.from_bytes(raw[6:8], "little"),
        raw[8:10].hex(),
        raw[10:16].hex(),
    )
    people = {p.upn: p for p in read(ad(slapd)).people}
    assert people["u010@ad.test"].key == expected


@pytest.mark.parametrize("page_size", [7, SIZE_LIMIT - 1, 1000])
def test_paging_returns_everyone_whatever_the_page_size(slapd: Slapd, page_size: int) -> None:
    pages: list[int] = []
    settings = ad(slapd, page_size=page_size)
    result = read(settings, LdapDirectorySource(settings, after_page=pages.append))
    assert {p.key for p in result.people} == set(slapd.seed.ad)
    assert len(pages) == -(-300 // page_size)


def test_the_server_refuses_a_search_without_paging(slapd: Slapd) -> None:
    """What makes the tests above prove paging: a plain search stops at the size limit."""
    connection = Connection(
        Server("127.0.0.1", port=slapd.ldap_port),
        user=AD_READER,
        password=slapd.reader_password,
        authentication=SIMPLE,
        auto_bind=True,
    )
    connection.search(AD_SUFFIX, "(objectClass=user)", attributes=["cn"])
    assert connection.result["description"] == "sizeLimitExceeded"
    assert len(connection.response or []) == SIZE_LIMIT
    connection.unbind()


def test_a_limit_hit_while_paging_fails_the_read(slapd: Slapd) -> None:
    """The server ends the paged search early with sizeLimitExceeded, which ldap3 does
    not raise: the entries so far must not pass for everyone."""
    pages: list[int] = []
    settings = ad(slapd, bind_dn=AD_LIMITED, page_size=25)
    message = failure(settings, LdapDirectorySource(settings, after_page=pages.append))
    assert f"search of {AD_SUFFIX} failed: sizeLimitExceeded" in message
    assert "size limit for this account was hit, even with paging" in message
    assert len(pages) == LIMITED_TOTAL // 25  # the full pages got through, then it stopped


def test_the_openldap_map_reads_inetorgperson_and_inverts_the_groups(slapd: Slapd) -> None:
    settings = openldap(slapd, extra_attributes=("uid",))
    people = {p.key: p for p in read(settings).people}
    expected = {
        key: replace(person, attributes=(("uid", slapd.seed.openldap_uids[key]),))
        for key, person in slapd.seed.openldap.items()
    }
    assert people == expected
    assert any(not p.enabled for p in people.values())  # pwdAccountLockedTime
    assert all(p.upn is None for p in people.values())  # inetOrgPerson has no UPN
    assert all(p.groups for p in people.values() if p.numbers)  # from groupOfNames


def test_extra_attributes_reach_the_rules(slapd: Slapd) -> None:
    people = read(ad(slapd, extra_attributes=("department", "sAMAccountName"))).people
    for person in people:
        names = dict(person.attributes)
        assert names["department"] == slapd.seed.ad_departments[person.key]
        assert re.fullmatch(r"u\d{3}", names["sAMAccountName"])


def test_a_filter_and_a_one_level_scope_narrow_the_read(slapd: Slapd) -> None:
    settings = ad(slapd, base_dn=f"ou=Munich,ou=Staff,{AD_SUFFIX}", scope="one_level")
    people = read(settings).people
    expected = [p for p in slapd.seed.ad.values() if p.ou == f"ou=Munich,ou=Staff,{AD_SUFFIX}"]
    assert sorted(p.key for p in people) == sorted(p.key for p in expected)
    sales = read(ad(slapd, filter="(&(objectClass=user)(department=Sales))")).people
    assert sales and all(slapd.seed.ad_departments[p.key] == "Sales" for p in sales)


# -- TLS and binding ------------------------------------------------------------------------


def test_ldaps_works_with_the_ca(slapd: Slapd) -> None:
    settings = ad(slapd, url=slapd.ldaps_url, start_tls=False)
    assert {p.key for p in read(settings).people} == set(slapd.seed.ad)


@pytest.mark.parametrize("transport", ["start_tls", "ldaps"])
def test_a_wrong_ca_fails_clearly(slapd: Slapd, tmp_path: Path, transport: str) -> None:
    other = make_certificate(tmp_path / "other-ca")
    changes: dict[str, Any] = {"ca_file": other.ca_file}
    if transport == "ldaps":
        changes |= {"url": slapd.ldaps_url, "start_tls": False}
    message = failure(ad(slapd, **changes))
    assert "TLS certificate is not trusted by" in message
    assert str(other.ca_file) in message
    assert ("StartTLS failed" if transport == "start_tls" else "connecting (TLS) failed") in message


def test_without_a_ca_file_the_systems_cas_do_not_trust_a_private_ca(slapd: Slapd) -> None:
    message = failure(ad(slapd, url=slapd.ldaps_url, start_tls=False, ca_file=None))
    assert "not trusted by the system's CA certificates" in message


def test_a_wrong_password_fails_naming_the_problem_never_the_password(
    slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wrong-Passw0rd-" + slapd.reader_password[:6]
    caplog.set_level(logging.DEBUG)
    set_library_log_detail_level(EXTENDED)  # ldap3's own logging at its most talkative
    try:
        with pytest.raises(DirectoryUnavailable) as caught:
            read(ad(slapd, bind_password=wrong))
    finally:
        set_library_log_detail_level(OFF)
    message = str(caught.value)
    assert f"bind as {AD_READER} failed: invalidCredentials" in message
    assert "wrong bind DN or password" in message
    assert "corp-ad" in message and slapd.ldap_url in message
    shown = "".join(traceback.format_exception(caught.value)) + caplog.text
    shown += repr(ad(slapd, bind_password=wrong)) + str(ad(slapd, bind_password=wrong))
    for secret in (wrong, slapd.reader_password):
        assert secret not in shown
    assert caplog.records  # something was logged, and checked


def test_a_read_logs_no_password(slapd: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    set_library_log_detail_level(EXTENDED)
    try:
        read(ad(slapd, page_size=100))
    finally:
        set_library_log_detail_level(OFF)
    assert "read 300 people (3 pages)" in caplog.text
    assert slapd.reader_password not in caplog.text


def test_plain_ldap_only_when_allowed_explicitly(slapd: Slapd) -> None:
    with pytest.raises(ValueError, match=r"allow_plain = true"):
        ad(slapd, start_tls=False)
    plain = ad(slapd, start_tls=False, allow_plain=True, ca_file=None)
    assert len(read(plain).people) == 300


def test_a_server_that_is_not_there_fails_the_read() -> None:
    settings = LdapSettings(
        url=f"ldaps://127.0.0.1:{free_port()}",
        bind_dn="cn=x",
        bind_password="x",
        base_dn="dc=x",
        timeout_seconds=5,
    )
    assert "connecting (TLS) failed" in failure(settings)


# -- a read that breaks half-way -------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "kill_after"),
    # AD: 155 entries in pages of 30, killed after page 2 of 6. OpenLDAP: 50 people in
    # pages of 20, killed after the last one, before the group search's first page.
    [("active_directory", 2), ("openldap", 3)],
)
def test_the_server_dying_between_pages_fails_the_whole_read(dialect: str, kill_after: int) -> None:
    with throwaway_slapd(users=150) as server:
        settings = (
            ad(server, page_size=30)
            if dialect == "active_directory"
            else openldap(server, page_size=20)
        )
        seen: list[int] = []

        def after_page(page: int) -> None:
            seen.append(page)
            if page == kill_after:
                server.kill()

        source = LdapDirectorySource(settings, after_page=after_page)
        message = failure(settings, source)
        assert seen == list(range(1, kill_after + 1))  # it got that far, and no further
        assert f"(page {1 if dialect == 'openldap' else kill_after + 1}) failed" in message
        assert f"search of {AD_SUFFIX if dialect == 'active_directory' else OL_SUFFIX}" in message
        assert server.reader_password not in message


def test_a_base_dn_that_does_not_exist_fails_the_read(slapd: Slapd) -> None:
    message = failure(ad(slapd, base_dn=f"ou=Nowhere,{AD_SUFFIX}"))
    assert f"search of ou=Nowhere,{AD_SUFFIX} (page 1) failed: noSuchObject" in message
    assert "base_dn does not exist" in message

"""`LdapDirectorySource`: people from Active Directory or another LDAP server.

Why `ldap3` and not `python-ldap`: `ldap3` is pure Python (no libldap / libsasl
headers to build against, a wheel on every platform the hub and its Windows agent
run on), has RFC 2696 paged results, StartTLS and LDAPS with Python's own `ssl`
(the CA and the certificate check are the ones the rest of the hub uses), AD's ranged
attribute retrieval built in, and type stubs (`types-ldap3`). It is synchronous,
which suits a directory read: one read runs on one worker thread
(`asyncio.to_thread`) with its own connection, every few minutes at most, so the
event loop never waits on the directory. `python-ldap` would be faster for huge
trees but ties the install to C libraries for no gain at the hub's sizes.

Every read is a full read (`DirectoryRead.full`, no cursor): bind, a paged search of
the people, for servers without `memberOf` a paged search of the groups, unbind. It
either returns everyone or raises `DirectoryUnavailable`: a refused bind, a TLS
failure, a server that stops answering between two pages, a size or time limit hit,
or any result other than success fails the whole read, so a partial read can never
look complete. Messages name the server, the step and the reason, never the password
(it is handed to ldap3 for the bind only and taken back right after, since ldap3's
connection repr would show it).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

from ldap3 import LEVEL as ONE_LEVEL
from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPOperationResult

from presencebridge.adapters.ldap.mapping import Entry, entry_key, invert_groups, to_person
from presencebridge.adapters.ldap.settings import LdapSettings
from presencebridge.core.ports import DirectoryPerson, DirectoryRead, DirectoryUnavailable

log = logging.getLogger(__name__)

PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696 simple paged results control
_HINTS = {
    "invalidCredentials": "wrong bind DN or password",
    "sizeLimitExceeded": "the server's size limit for this account was hit, even with paging",
    "timeLimitExceeded": "the server's time limit for this account was hit",
    "referral": "base_dn is not held by this server",
    "noSuchObject": "base_dn does not exist, or the account may not see it",
    "unavailableCriticalExtension": "the server does not support paged results",
    "confidentialityRequired": "the server requires TLS",
}

PageHook = Callable[[int], None]


class LdapDirectorySource:
    """A `DirectorySource` reading an LDAP directory (AD, OpenLDAP, …) in full.

    `after_page`, for tests, is called on the worker thread after each page read with
    the number of pages read so far.
    """

    def __init__(self, settings: LdapSettings, *, after_page: PageHook | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self._attributes = settings.attributes()
        self._after_page = after_page
        parts = urlsplit(settings.url)
        self._host = parts.hostname or ""
        self._ldaps = parts.scheme == "ldaps"
        self._port = parts.port or (636 if self._ldaps else 389)

    def __repr__(self) -> str:
        return f"LdapDirectorySource(name={self.name!r}, url={self.settings.url!r})"

    async def read(self, cursor: str | None) -> DirectoryRead:
        """Everyone in scope; `cursor` is ignored (LDAP reads are always full)."""
        people = await asyncio.to_thread(self._read)
        return DirectoryRead(people=people, full=True, cursor=None)

    async def aclose(self) -> None:
        """Nothing stays open between reads: each read has its own connection."""

    # -- one read, on a worker thread ----------------------------------------------------

    def _read(self) -> tuple[DirectoryPerson, ...]:
        started = time.monotonic()
        settings = self.settings
        requested = (*self._attributes.requested(), *settings.extra_attributes)
        memberships: dict[str, list[str]] = {}
        with self._connection() as connection:
            entries, pages = self._search(
                connection, settings.base_dn, settings.person_filter(), requested
            )
            if settings.searches_groups():
                groups, more = self._search(
                    connection,
                    settings.group_base_dn or settings.base_dn,
                    settings.group_filter,
                    settings.group_member_attributes,
                )
                pages += more
                memberships = invert_groups(groups, settings.group_member_attributes)
        people = self._convert(entries, memberships)
        log.info(
            "LDAP directory %r: read %d people (%d pages) in %.1f s",
            self.name,
            len(people),
            pages,
            time.monotonic() - started,
        )
        return people

    def _tls(self) -> Tls | None:
        if not (self._ldaps or self.settings.start_tls):
            return None
        ca_file = self.settings.ca_file
        return Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(ca_file) if ca_file else None,
            sni=self._host,
        )

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """An open, bound connection (TLS started when configured); unbound afterwards."""
        settings = self.settings
        server = Server(
            self._host,
            port=self._port,
            use_ssl=self._ldaps,
            tls=self._tls(),
            get_info=NONE,
            connect_timeout=settings.timeout_seconds,
        )
        connection = Connection(
            server,
            user=settings.bind_dn,
            authentication=SIMPLE,
            raise_exceptions=True,
            receive_timeout=settings.timeout_seconds,
            auto_referrals=False,
            read_only=True,
        )
        try:
            with self._step("connecting" + (" (TLS)" if self._ldaps else "")):
                connection.open(read_server_info=False)
            if settings.start_tls:
                with self._step("StartTLS"):
                    connection.start_tls(read_server_info=False)
            with self._step(f"bind as {settings.bind_dn}"):
                # The password lives on the connection only for the bind (its repr shows it).
                connection.password = settings.bind_password.get_secret_value()
                try:
                    connection.bind(read_server_info=False)
                finally:
                    connection.password = None
            yield connection
        finally:
            with suppress(LDAPException, OSError):  # a broken connection needs no goodbye
                connection.unbind()

    def _search(
        self, connection: Connection, base: str, search_filter: str, attributes: tuple[str, ...]
    ) -> tuple[list[Entry], int]:
        """Every entry of a paged search, and the number of pages; all pages or an error."""
        scope = SUBTREE if self.settings.scope == "subtree" else ONE_LEVEL
        entries: list[Entry] = []
        cookie: bytes | None = None
        pages = 0
        while True:
            with self._step(f"search of {base} (page {pages + 1})"):
                connection.search(
                    base,
                    search_filter,
                    search_scope=scope,
                    attributes=list(attributes),
                    paged_size=self.settings.page_size,
                    paged_criticality=True,
                    paged_cookie=cookie,
                )
                result: dict[str, Any] = connection.result
                if result.get("result") != 0:
                    # ldap3 does not raise for sizeLimitExceeded, timeLimitExceeded or a
                    # referral; their entries are only part of the answer.
                    reason = _reason(result.get("description"), result.get("message"))
                    raise DirectoryUnavailable(self._message(f"search of {base}", reason))
            pages += 1
            entries += [
                Entry.of(item["dn"], item["raw_attributes"])
                for item in connection.response or ()
                if item.get("type") == "searchResEntry"
            ]
            cookie = _cookie(result)
            if self._after_page is not None:
                self._after_page(pages)
            if not cookie:
                return entries, pages

    def _convert(
        self, entries: list[Entry], memberships: dict[str, list[str]]
    ) -> tuple[DirectoryPerson, ...]:
        attributes, extra = self._attributes, self.settings.extra_attributes
        people: dict[str, DirectoryPerson] = {}
        keyless: list[str] = []
        for entry in entries:
            key = entry_key(entry, attributes.key)
            if key is None:
                keyless.append(entry.dn)
            elif key in people:
                log.warning(
                    "LDAP directory %r: %s has the %s of another entry; kept the first",
                    self.name,
                    entry.dn,
                    attributes.key,
                )
            else:
                people[key] = to_person(entry, key, attributes, extra, memberships)
        if keyless:
            log.warning(
                "LDAP directory %r: left out %d entries without a usable %s, e.g. %s",
                self.name,
                len(keyless),
                attributes.key,
                keyless[0],
            )
        return tuple(people.values())

    # -- errors ------------------------------------------------------------------------

    def _message(self, step: str, reason: str) -> str:
        message = f"LDAP directory {self.name!r} at {self.settings.url}: {step} failed: {reason}"
        secret = self.settings.bind_password.get_secret_value()
        return message.replace(secret, "********") if secret else message

    @contextmanager
    def _step(self, step: str) -> Iterator[None]:
        """Turns whatever ldap3 or the network raise during `step` into DirectoryUnavailable."""
        try:
            yield
        except DirectoryUnavailable:
            raise
        except LDAPOperationResult as error:
            reason = _reason(error.description, error.message)
            raise DirectoryUnavailable(self._message(step, reason)) from None
        except (LDAPException, OSError) as error:
            raise DirectoryUnavailable(self._message(step, self._reason(error))) from None

    def _reason(self, error: BaseException) -> str:
        text = _text(error) or type(error).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text or "doesn't match" in text:
            trusted = self.settings.ca_file or "the system's CA certificates"
            text = (
                f"the server's TLS certificate is not trusted by {trusted} "
                f"or does not name {self._host}: {text}"
            )
        return text


def _text(value: object) -> str:
    """An exception's words: ldap3 wraps messages in tuples, sometimes twice."""
    if isinstance(value, BaseException):
        return _text(value.args) if value.args else ""
    if isinstance(value, tuple | list):
        return "; ".join(t for t in (_text(v) for v in value) if t)
    text = str(value)
    if text.startswith("(") and text.endswith(",)"):  # a tuple already made a string
        return text[1:-2].strip("'\"")
    return text


def _reason(description: object, message: object) -> str:
    """An LDAP result as words: its name, the server's message, a hint where there is one."""
    reason = str(description)
    if message:
        reason += f" ({message})"
    hint = _HINTS.get(reason.split(" ", 1)[0])
    return f"{reason}; {hint}" if hint else reason


def _cookie(result: dict[str, Any]) -> bytes | None:
    control = (result.get("controls") or {}).get(PAGED_RESULTS) or {}
    cookie = (control.get("value") or {}).get("cookie")
    return bytes(cookie) if cookie else None

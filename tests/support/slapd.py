"""A throw-away OpenLDAP server for tests, from Debian's `slapd` package.

One `slapd` process on two free loopback ports (`ldap://` with StartTLS, `ldaps://`),
TLS from a private CA made for the run (`tests.support.tls`), a generated `slapd.conf`
(`slapd -f`) and two databases seeded offline with `slapadd` before the start (a few
hundred entries load in well under a second):

* `dc=ad,dc=test`, shaped like Active Directory: a small schema subset with AD's own
  OIDs (`objectGUID` binary, `userPrincipalName`, `userAccountControl`, `ipPhone`,
  `sAMAccountName`, `department`, and `memberOf` as a stored attribute written
  consistently with the groups' `member`; AD computes it, a reader sees the same),
  classes `user`, `computer` (a `user`, as in AD) and `group`; users in nested OUs,
  disabled ones (`userAccountControl` with 0x2), computers the default filter leaves out.
* `dc=example,dc=org`, a plain OpenLDAP tree: `inetOrgPerson` people with explicit
  `entryUUID`s, `groupOfNames` groups (no `memberOf` on the people: the source has to
  search the groups and invert them), locked accounts marked by `pwdAccountLockedTime`
  (the `ppolicy` overlay defines it).

Each database has a reader account that is not the rootdn, so the size limit
(`SIZE_LIMIT` entries, paged searches unlimited in total) applies to it: a search
without paging fails, which is what forces paging. A second AD account, `AD_LIMITED`,
may read only `LIMITED_TOTAL` entries even when paging, as AD's MaxResultSetSize or a
stricter OpenLDAP `limits` line would do. What the source should read for
every seeded person is computed here alongside the LDIF (`Seed`), so tests compare
against it. Everything lives in one temporary folder removed afterwards.
"""

from __future__ import annotations

import base64
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from presencebridge.core.ports import DirectoryPerson
from tests.support.ports import free_port
from tests.support.tls import Certificate, make_certificate
from tests.support.waiting import eventually

INSTALL_HINT = "slapd was not found: install Debian's `slapd` and `ldap-utils` packages"
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
AD_SUFFIX = "dc=ad,dc=test"
OL_SUFFIX = "dc=example,dc=org"
AD_READER = f"cn=reader,ou=Service,{AD_SUFFIX}"
AD_LIMITED = f"cn=limited,ou=Service,{AD_SUFFIX}"  # paged searches stop at LIMITED_TOTAL
LIMITED_TOTAL = 120
OL_READER = f"cn=reader,{OL_SUFFIX}"
SIZE_LIMIT = 50

AD_SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.721 NAME 'ipPhone'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
  MAY ( objectGUID $ userPrincipalName $ userAccountControl $ ipPhone $ sAMAccountName
      $ department $ memberOf $ mail $ displayName $ mobile ) )
objectclass ( 1.2.840.113556.1.3.30 NAME 'computer' SUP user STRUCTURAL )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL
  MUST cn MAY ( member $ objectGUID $ sAMAccountName $ description ) )
"""

CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {folder}/ad.schema
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
TLSCACertificateFile {ca}
TLSCertificateFile {chain}
TLSCertificateKeyFile {key}

database mdb
maxsize 67108864
suffix "{ad}"
rootdn "cn=admin,{ad}"
directory {folder}/ad
limits dn.exact="{limited}" size.soft={limit} size.hard={limit} size.prtotal={total}
sizelimit size.soft={limit} size.hard={limit} size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none

database mdb
maxsize 67108864
suffix "{ol}"
rootdn "cn=admin,{ol}"
directory {folder}/ol
overlay ppolicy
sizelimit size.soft={limit} size.hard={limit} size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
"""

FIRST = ("Anna", "Ben", "Clara", "Jörg", "Emma", "Fatma", "Hannes", "Ida", "Lukas", "Zoë")
LAST = ("Schmidt", "Müller", "Wagner", "Koch", "Yılmaz", "Becker", "Hoffmann", "Ng", "O'Neil")
AD_OUS = ("ou=Berlin,ou=Staff", "ou=Munich,ou=Staff", "ou=Sales,ou=Munich,ou=Staff")
AD_GROUPS = ("Sales", "Support", "Engineering", "Management", "All Berlin", "Phones")
OL_GROUPS = ("devs", "ops", "sales", "everyone-with-a-phone")
DEPARTMENTS = ("Sales", "Support", "R&D", "Finance")


@dataclass
class Seed:
    """What a correct source reads: every person in scope, by key, and their DNs."""

    ad: dict[str, DirectoryPerson] = field(default_factory=dict)
    ad_departments: dict[str, str] = field(default_factory=dict)  # key -> department
    openldap: dict[str, DirectoryPerson] = field(default_factory=dict)
    openldap_uids: dict[str, str] = field(default_factory=dict)  # key -> uid
    ad_computers: int = 0


def _line(name: str, value: str | bytes) -> str:
    """One LDIF line; base64 when the value is binary or not plain ASCII."""
    if isinstance(value, bytes):
        return f"{name}:: {base64.b64encode(value).decode()}"
    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _entry(dn: str, *pairs: tuple[str, str | bytes]) -> str:
    return "\n".join([_line("dn", dn), *(_line(n, v) for n, v in pairs)]) + "\n\n"


def _ad_phone(i: int) -> str | None:
    if i % 11 == 0:
        return None
    return (f"+49 30 12345-{i:03}", f"030 12345{i:03}", f"(089) 555 {i:04}")[i % 3]


def _ad_uac(i: int) -> int:
    if i % 37 == 0:
        return 0x10202  # disabled, password never expires
    if i % 10 == 5:
        return 0x202  # disabled
    return 0x10200 if i % 17 == 0 else 0x200


def _ad_groups(i: int) -> tuple[str, ...]:
    names = [AD_GROUPS[i % 4]] if i % 7 else []
    if i % 3 == 0:
        names.append("All Berlin")
    if i % 5 == 0:
        names.append("Phones")
    return tuple(sorted(f"cn={n},ou=Groups,{AD_SUFFIX}" for n in set(names)))


def _ad_user(rng: random.Random, i: int, seed: Seed) -> tuple[str, str, tuple[str, ...]]:
    """One AD user: DN, LDIF entry and groups; what the source should read goes to `seed`."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    cn = "Müller\\, Jörg" if i == 7 else f"{first} {last} {i:03}"
    ou = f"{AD_OUS[i % len(AD_OUS)]},{AD_SUFFIX}"
    dn = f"cn={cn},{ou}"
    guid = rng.randbytes(16)
    upn = None if i % 50 == 3 else f"u{i:03}@ad.test"
    mail = None if i % 9 == 0 else f"{first.lower()}.{i}@example.com".replace("ö", "oe")
    display = None if i % 25 == 0 else f"{first} {last}"
    phone, mobile = _ad_phone(i), (f"+49 171 {i:07}" if i % 4 == 0 else None)
    extension = None if i % 13 == 0 else f"2{i:03}"
    groups, uac = _ad_groups(i), _ad_uac(i)
    department = DEPARTMENTS[i % len(DEPARTMENTS)]
    pairs: list[tuple[str, str | bytes]] = [
        ("objectClass", "top"),
        ("objectClass", "person"),
        ("objectClass", "organizationalPerson"),
        ("objectClass", "user"),
        ("cn", cn.replace("\\", "")),
        ("sn", last),
        ("objectGUID", guid),
        ("sAMAccountName", f"u{i:03}"),
        ("userAccountControl", str(uac)),
        ("department", department),
    ]
    optional = (
        ("userPrincipalName", upn),
        ("mail", mail),
        ("displayName", display),
        ("telephoneNumber", phone),
        ("mobile", mobile),
        ("ipPhone", extension),
    )
    pairs += [(n, v) for n, v in optional if v is not None]
    pairs += [("memberOf", g) for g in groups]
    key = str(uuid.UUID(bytes_le=guid))
    seed.ad[key] = DirectoryPerson(
        key=key,
        display_name=display or cn.replace("\\", ""),
        upn=upn,
        mail=mail,
        enabled=not uac & 2,
        extensions=(extension,) if extension else (),
        numbers=tuple(n for n in (phone, mobile) if n),
        groups=groups,
        ou=ou,
    )
    seed.ad_departments[key] = department
    return dn, _entry(dn, *pairs), groups


def _ad_computer(rng: random.Random, number: int, seed: Seed) -> str:
    """A computer: a `user` in AD's schema too, which the default filter must leave out."""
    seed.ad_computers += 1
    return _entry(
        f"cn=PC{number:02},ou=Computers,{AD_SUFFIX}",
        ("objectClass", "top"),
        ("objectClass", "person"),
        ("objectClass", "organizationalPerson"),
        ("objectClass", "user"),
        ("objectClass", "computer"),
        ("cn", f"PC{number:02}"),
        ("sn", f"PC{number:02}"),
        ("objectGUID", rng.randbytes(16)),
        ("userAccountControl", "4096"),
    )


def ad_ldif(users: int, rng: random.Random, seed: Seed, reader_password: str) -> str:
    """The AD-like tree: OUs, a reader, `users` users, computers, groups."""
    parts = [
        _entry(
            AD_SUFFIX,
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("dc", "ad"),
            ("o", "AD test"),
        )
    ]
    for ou in ("ou=Staff", "ou=Berlin,ou=Staff", "ou=Munich,ou=Staff", *AD_OUS[2:]):
        parts.append(
            _entry(
                f"{ou},{AD_SUFFIX}",
                ("objectClass", "organizationalUnit"),
                ("ou", ou[3:].split(",")[0]),
            )
        )
    for ou in ("ou=Groups", "ou=Service", "ou=Computers"):
        parts.append(
            _entry(f"{ou},{AD_SUFFIX}", ("objectClass", "organizationalUnit"), ("ou", ou[3:]))
        )
    for reader in (AD_READER, AD_LIMITED):
        parts.append(
            _entry(
                reader,
                ("objectClass", "organizationalRole"),
                ("objectClass", "simpleSecurityObject"),
                ("cn", reader[3:].split(",")[0]),
                ("userPassword", reader_password),
            )
        )
    members: dict[str, list[str]] = {f"cn={n},ou=Groups,{AD_SUFFIX}": [] for n in AD_GROUPS}
    for i in range(users):
        dn, text, groups = _ad_user(rng, i, seed)
        parts.append(text)
        for group in groups:
            members[group].append(dn)
    parts += [_ad_computer(rng, c, seed) for c in range(5)]
    for group, dns in members.items():
        name = group[3:].split(",")[0]
        pairs = [("objectClass", "group"), ("cn", name), *(("member", dn) for dn in dns)]
        parts.append(_entry(group, *pairs))
    return "".join(parts)


def _ol_person(rng: random.Random, i: int, seed: Seed) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    ou = f"ou=engineering,ou=people,{OL_SUFFIX}" if i % 4 == 0 else f"ou=people,{OL_SUFFIX}"
    uid = f"p{i:03}"
    dn = f"uid={uid},{ou}"
    key = str(uuid.UUID(bytes=rng.randbytes(16), version=4))
    display = None if i % 6 == 0 else f"{first} {last}"
    mail = None if i % 10 == 1 else f"{uid}@example.org"
    phone = None if i % 7 == 0 else f"+49 40 9876-{i:03}"
    mobile = f"0172 {i:06}" if i % 5 == 0 else None
    pager = None if i % 9 == 0 else f"3{i:03}"
    locked = i % 8 == 3
    pairs: list[tuple[str, str | bytes]] = [
        ("objectClass", "inetOrgPerson"),
        ("uid", uid),
        ("cn", f"{first} {last}"),
        ("sn", last),
        ("entryUUID", key),
    ]
    optional = (
        ("displayName", display),
        ("mail", mail),
        ("telephoneNumber", phone),
        ("mobile", mobile),
        ("pager", pager),
        ("pwdAccountLockedTime", "20240101000000Z" if locked else None),
    )
    pairs += [(n, v) for n, v in optional if v is not None]
    groups = tuple(
        sorted(
            f"cn={g},ou=groups,{OL_SUFFIX}"
            for n, g in enumerate(OL_GROUPS)
            if (n < 3 and i % 3 == n) or (n == 3 and phone)
        )
    )
    seed.openldap[key] = DirectoryPerson(
        key=key,
        display_name=display or f"{first} {last}",
        mail=mail,
        enabled=not locked,
        extensions=(pager,) if pager else (),
        numbers=tuple(n for n in (phone, mobile) if n),
        groups=groups,
        ou=ou,
    )
    seed.openldap_uids[key] = uid
    return _entry(dn, *pairs)


def openldap_ldif(people: int, rng: random.Random, seed: Seed, reader_password: str) -> str:
    """The plain OpenLDAP tree: people, groupOfNames groups, a reader."""
    parts = [
        _entry(
            OL_SUFFIX,
            ("objectClass", "dcObject"),
            ("objectClass", "organization"),
            ("dc", "example"),
            ("o", "Example"),
        ),
        _entry(
            OL_READER,
            ("objectClass", "organizationalRole"),
            ("objectClass", "simpleSecurityObject"),
            ("cn", "reader"),
            ("userPassword", reader_password),
        ),
    ]
    for ou in ("ou=people", "ou=engineering,ou=people", "ou=groups"):
        name = ou[3:].split(",")[0]
        parts.append(
            _entry(f"{ou},{OL_SUFFIX}", ("objectClass", "organizationalUnit"), ("ou", name))
        )
    parts += [_ol_person(rng, i, seed) for i in range(people)]
    for group in OL_GROUPS:
        dn = f"cn={group},ou=groups,{OL_SUFFIX}"
        members = [
            f"uid={seed.openldap_uids[k]},{p.ou}"
            for k, p in seed.openldap.items()
            if dn in p.groups
        ]
        pairs = [("objectClass", "groupOfNames"), ("cn", group)]
        parts.append(_entry(dn, *pairs, *(("member", m) for m in members or [OL_READER])))
    return "".join(parts)


@dataclass
class Slapd:
    """A running throw-away slapd; `seed` is what its directories hold."""

    process: subprocess.Popen[bytes]
    ldap_port: int
    ldaps_port: int
    certificate: Certificate
    reader_password: str
    seed: Seed
    folder: Path

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash or a pulled cable would."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def log(self) -> str:
        return (self.folder / "slapd.log").read_text(errors="replace")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _load(folder: Path, suffix: str, name: str, ldif: str) -> None:
    (folder / f"{name}.ldif").write_text(ldif)
    conf, data = str(folder / "slapd.conf"), str(folder / f"{name}.ldif")
    done = subprocess.run(
        [SLAPADD, "-q", "-f", conf, "-b", suffix, "-l", data], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"slapadd of {suffix} failed:\n{done.stdout}{done.stderr}")


def _configure(
    folder: Path, certificate: Certificate, users: int, seed: Seed, password: str
) -> None:
    (folder / "ad.schema").write_text(AD_SCHEMA)
    conf = CONF.format(
        folder=folder,
        ca=certificate.ca_file,
        chain=certificate.chain_file,
        key=certificate.key_file,
        ad=AD_SUFFIX,
        ol=OL_SUFFIX,
        limit=SIZE_LIMIT,
        limited=AD_LIMITED,
        total=LIMITED_TOTAL,
    )
    (folder / "slapd.conf").write_text(conf)
    for name in ("ad", "ol"):
        (folder / name).mkdir()
    rng = random.Random(12)  # the same directory on every run
    _load(folder, AD_SUFFIX, "ad", ad_ldif(users, rng, seed, password))
    _load(folder, OL_SUFFIX, "ol", openldap_ldif(max(users // 3, 40), rng, seed, password))


@contextmanager
def throwaway_slapd(users: int = 300) -> Iterator[Slapd]:
    """A seeded slapd on 127.0.0.1 (StartTLS and LDAPS); stopped and removed afterwards."""
    if not Path(SLAPD).exists() or not shutil.which("slapadd", path="/usr/sbin"):
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="pbslapd-") as name:
        folder = Path(name)
        certificate = make_certificate(folder / "tls")
        password = secrets.token_urlsafe(18)
        seed = Seed()
        _configure(folder, certificate, users, seed, password)
        ldap_port, ldaps_port = free_port(), free_port()
        urls = f"ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
        with (folder / "slapd.log").open("wb") as log:
            process = subprocess.Popen(
                [SLAPD, "-f", str(folder / "slapd.conf"), "-h", urls, "-d", "0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            server = Slapd(process, ldap_port, ldaps_port, certificate, password, seed, folder)
            try:
                up = eventually(
                    lambda: (
                        process.poll() is None and _listening(ldap_port) and _listening(ldaps_port)
                    ),
                    lambda ready: ready or process.poll() is not None,
                    timeout=20,
                )
                if not up:
                    raise RuntimeError("slapd did not start:\n" + server.log())
                yield server
            finally:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(10)

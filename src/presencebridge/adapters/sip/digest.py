"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616 / RFC 8760).

Answers a 401 `WWW-Authenticate` or 407 `Proxy-Authenticate` challenge with MD5 or
SHA-256 (also their `-sess` forms), with `qop=auth` when offered (auth-int is not: it
would hash the body, and no PBX we know asks for it), else RFC 2069 style. A server
may offer several challenges (SHA-256 and MD5, RFC 8760 §2.4): the strongest known
wins. The password is passed in at the moment of answering and never kept here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")
# name=token or name="quoted string" (with \\-escapes), separated by commas. Parsed
# here, not by sipmessage 0.7: it splits at every comma, also inside quotes, and so
# refuses the common `qop="auth,auth-int"`.
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(?:,|$)')


class DigestError(ValueError):
    """A challenge we cannot answer (unknown scheme, algorithm or qop)."""


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str  # upper case, e.g. "SHA-256" or "MD5-SESS"
    qop: tuple[str, ...]
    opaque: str | None
    stale: bool


def pick(values: Sequence[str]) -> Challenge:
    """The strongest digest challenge among the header values offered."""
    found: list[Challenge] = []
    for value in values:
        params = _params(value)
        if params is None:
            continue
        algorithm = (params.get("algorithm") or "MD5").upper()
        if algorithm not in _PREFERENCE:
            continue
        qop = tuple(q.strip().lower() for q in (params.get("qop") or "").split(",") if q.strip())
        found.append(
            Challenge(
                realm=params.get("realm") or "",
                nonce=params.get("nonce") or "",
                algorithm=algorithm,
                qop=qop,
                opaque=params.get("opaque"),
                stale=(params.get("stale") or "").lower() == "true",
            )
        )
    if not found:
        raise DigestError("no digest challenge with a known algorithm")
    return min(found, key=lambda c: _PREFERENCE.index(c.algorithm))


def _params(value: str) -> dict[str, str] | None:
    """A Digest challenge's parameters (names lower case); None for another scheme or
    a header that does not parse."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        found = _PARAM.match(rest, position)
        if found is None or found.end() == position:
            return None
        quoted, plain = found.group(2), found.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
        params[found.group(1).lower()] = value
        position = found.end()
    return params


def answer(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nonce_count: int = 1,
    cnonce: str | None = None,
) -> str:
    """The `Authorization` / `Proxy-Authorization` header value for one request."""
    if challenge.qop and "auth" not in challenge.qop:
        raise DigestError("only qop=auth is supported")
    base = challenge.algorithm.removesuffix("-SESS")
    digest = _HASHES[base]

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()

    cnonce = cnonce or secrets.token_hex(8)
    ha1 = h(f"{username}:{challenge.realm}:{password}")
    if challenge.algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    params = {
        "username": username,
        "realm": challenge.realm,
        "nonce": challenge.nonce,
        "uri": uri,
        "algorithm": challenge.algorithm if challenge.algorithm != "MD5-SESS" else "MD5-sess",
    }
    if challenge.qop:
        nc = f"{nonce_count:08x}"
        params |= {"qop": "auth", "nc": nc, "cnonce": cnonce}
        params["response"] = h(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:auth:{ha2}")
    else:
        params["response"] = h(f"{ha1}:{challenge.nonce}:{ha2}")
    if challenge.opaque is not None:
        params["opaque"] = challenge.opaque
    # Quoting by RFC 3261 §25.1 (qop, nc and algorithm are tokens): some servers refuse
    # a quoted qop, so the header is written here rather than by sipmessage.
    return "Digest " + ", ".join(
        f"{key}={value}" if key in _TOKENS else f'{key}="{_escape(value)}"'
        for key, value in params.items()
    )


_TOKENS = frozenset({"algorithm", "qop", "nc"})


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')

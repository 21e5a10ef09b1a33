"""A small HTTP/1.1 keep-alive client for load generation.

The load generator shares two cores with the server and the emulator; httpx spends
several times the CPU per request that this does, and that CPU would be taken from
the server being measured. It speaks just enough HTTP/1.1 for JSON APIs: keep-alive,
Content-Length and chunked answers, TLS with a given CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode


class HttpError(RuntimeError):
    pass


class Connection:
    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, limit=2**24
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: bytes | None, headers: bytes, json_body: bool = True
    ) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n".encode() + headers
        if body is not None:
            if json_body:
                head += b"Content-Type: application/json\r\n"
            head += b"Content-Length: %d\r\n" % len(body)
        self.writer.write(head + b"\r\n" + (body or b""))
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = await _read_headers(self.reader)
        content, until_close = await _read_body(self.reader, length, chunked)
        if close or until_close:
            self.close()
        return status, content


async def _read_headers(reader: asyncio.StreamReader) -> tuple[int, bool, bool]:
    """The answer's headers up to the blank line: (Content-Length or -1, chunked, close)."""
    length = -1
    chunked = close = False
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            return length, chunked, close
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True


async def _read_body(
    reader: asyncio.StreamReader, length: int, chunked: bool
) -> tuple[bytes, bool]:
    """The answer's body, and whether it ran until the server closed the connection."""
    if chunked:
        return await _read_chunked(reader), False
    if length >= 0:
        return await reader.readexactly(length), False
    return await reader.read(), True


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class Pool:
    """Up to `size` keep-alive connections to one host; a broken one is reopened."""

    def __init__(
        self,
        host: str,
        port: int,
        size: int = 32,
        tls: ssl.SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._all = [Connection(host, port, tls) for _ in range(size)]
        for connection in self._all:
            self._idle.put_nowait(connection)
        self.headers = b"" if token is None else f"Authorization: Bearer {token}\r\n".encode()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        connection = await self._idle.get()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        finally:
            self._idle.put_nowait(connection)

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, bytes]:
        """JSON in, (status, raw answer) out; `token` replaces the pool's bearer token."""
        payload = None if body is None else json.dumps(body).encode()
        headers = self.headers
        if token is not None:
            headers = f"Authorization: Bearer {token}\r\n".encode()
        return await self._send(method, path, payload, headers)

    async def form(self, path: str, fields: dict[str, str]) -> tuple[int, Any]:
        """POST an OAuth form; (status, JSON answer)."""
        payload = urlencode(fields).encode()
        headers = b"Content-Type: application/x-www-form-urlencoded\r\n"
        status, content = await self._send("POST", path, payload, headers, json_body=False)
        return status, json.loads(content) if content else None

    async def _send(
        self, method: str, path: str, payload: bytes | None, headers: bytes, json_body: bool = True
    ) -> tuple[int, bytes]:
        async with self._connection() as connection:
            for attempt in range(2):
                try:
                    return await connection.request(method, path, payload, headers, json_body)
                except (ConnectionError, asyncio.IncompleteReadError) as error:
                    connection.close()  # the server closed a kept-alive connection: once more
                    if attempt:
                        raise HttpError(f"{method} {path}: {error}") from error
        raise AssertionError("unreachable")

    async def json(self, method: str, path: str, body: Any = None, ok: int = 299) -> Any:
        status, content = await self.request(method, path, body)
        if not 200 <= status <= ok:
            raise HttpError(f"{method} {path}: {status} {content[:300]!r}")
        return json.loads(content) if content else None

    def close(self) -> None:
        """Close the connections; the pool stays usable and reopens them when needed."""
        for connection in self._all:
            connection.close()

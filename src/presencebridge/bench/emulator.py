"""The Graph emulator as the benchmarks run it: the product's emulator plus a request log.

`python -m presencebridge.bench.emulator --port P --tls-dir D` serves exactly the app
`presencebridge graph-emulator` serves (same `create_app`, same HTTPS set-up), wrapped
in one ASGI layer that only the benchmarks use:

* every Graph request (`/v1.0/...`) is logged with `time.monotonic()` at arrival and at
  the start of its answer. CLOCK_MONOTONIC is one clock for every process of the
  machine, so the load generator can put its own timestamps beside these;
* `GET /_bench/log?since=I` pages through that log;
* `GET /_bench/stats` is `/_emulator/stats` without the per-user write table, which
  at 100,000 users is megabytes per call;
* `POST /_bench/users {"ids": [...]}` creates many users at once (used only to seed
  large populations; the scenarios report how they created users).

Uvicorn's access log is off (level warning): the emulator is the benchmark's
infrastructure and should take as little of the two cores as it can.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request

from presencebridge.emulator.app import create_app
from presencebridge.emulator.server import build
from presencebridge.emulator.state import Emulator
from presencebridge.logs import setup_logging

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAGE = 50_000


class RequestLog:
    """(arrived, answered, method, path, status) of every Graph request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.entries: list[tuple[float, float, str, str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1.0/"):
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.entries.append(
                    (arrived, time.monotonic(), scope["method"], scope["path"], message["status"])
                )
            await send(message)

        await self.app(scope, receive, watch)


def bench_app(emulator: Emulator) -> RequestLog:
    app: FastAPI = create_app(emulator=emulator)
    logged = RequestLog(app)

    @app.get("/_bench/log")
    async def request_log(since: int = 0) -> dict[str, Any]:
        entries = logged.entries[since : since + PAGE]
        return {"next": since + len(entries), "entries": entries}

    @app.get("/_bench/stats")
    async def stats() -> dict[str, Any]:
        state = emulator.stats
        now = emulator.now()
        return {
            "requests": dict(state.requests),
            "responses": dict(state.statuses),
            "throttled": state.throttled,
            "user_count": len(emulator.users),
            "budget": emulator.budget.to_json(now.timestamp()),
            "notifications": emulator.delivery.counts.to_json(),
            "subscriptions": {
                "active": sum(1 for s in emulator.subscriptions.values() if s.expires_at > now),
                **dict(state.subscriptions),
            },
            "log_length": len(logged.entries),
            "monotonic": time.monotonic(),
        }

    @app.post("/_bench/users")
    async def users(request: Request) -> dict[str, Any]:
        body = await request.json()
        created = 0
        for user_id in body["ids"]:
            created += emulator.create_user(str(user_id), None, False)[1]
        return {"created": created, "user_count": len(emulator.users)}

    return logged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging("warning", "text")
    tls, emulator = build(args.tls_dir, args.host)
    config = uvicorn.Config(
        bench_app(emulator),
        host=args.host,
        port=args.port,
        ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()

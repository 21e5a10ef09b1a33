"""What one PBX event costs in CPU, by part: `python -m presencebridge.bench.cpu_split`.

Measured in this process with `time.process_time()` (CPU, not wall time: the wait for
fsync is not counted, the kernel's work for it is), on a fresh SQLite database in WAL
with `synchronous=FULL` and 1,000 users, each part alone and many times over:

* validation: the body parsed and validated as the PBX routes do (`api/telephony.py`);
* core: `Hub.handle` (one event) or `Hub.handle_batch` (100 events), the rules,
  effective presence and the hub's bookkeeping, with the durable write left out;
* answer: the presence view and its JSON (one event per request only);
* store: `Store.save_users` as the group commit calls it, with 1, 8 and 100 users'
  changes in one transaction (encode, SQL, commit).

HTTP (uvicorn, the middleware, the socket) is what the benchmark's server CPU per
event (`server_cpu_us_per_event` of `presencebridge bench throughput`) leaves after
these parts; docs/benchmarks.md shows the split.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from presencebridge.adapters.store import HistoryEntry, Store, create_engine, migrate
from presencebridge.api import views
from presencebridge.api.telephony import _batch as batch_body
from presencebridge.api.telephony import _dumps as dumps
from presencebridge.api.telephony import _single as single_body
from presencebridge.core import rules
from presencebridge.core.model import CallState, User, UserState
from presencebridge.core.settings import GroupSettings
from presencebridge.service.hub import Hub, NewUser

USERS = 1_000


def _cpu(fn: Callable[[], object], times: int) -> float:
    """µs of CPU per call."""
    fn()
    started = time.process_time()
    for _ in range(times):
        fn()
    return (time.process_time() - started) / times * 1e6


async def _acpu(fn: Callable[[], Awaitable[object]], times: int) -> float:
    await fn()
    started = time.process_time()
    for _ in range(times):
        await fn()
    return (time.process_time() - started) / times * 1e6


async def _no_write(
    _states: Sequence[UserState], _history: Sequence[HistoryEntry], _now: datetime
) -> None:
    return None


async def measure(folder: Path) -> dict[str, float]:
    engine = create_engine(f"sqlite:///{folder / 'split.sqlite3'}")
    migrate(engine)
    store = Store(engine)
    hub = Hub(store)
    await hub.start()
    await hub.create_group("bench", "bench", GroupSettings())
    users = [f"u{i:05d}" for i in range(USERS)]
    await hub.create_users([NewUser(User(u, u, "bench")) for u in users], "bench")
    out: dict[str, float] = {}
    one = json.dumps({"user": users[0], "call_id": "k1", "state": "connected"}).encode()
    hundred = json.dumps(
        {"events": [{"user": u, "call_id": "k1", "state": "connected"} for u in users[:100]]}
    ).encode()
    out["validation_one_event"] = _cpu(lambda: single_body.validate_python(json.loads(one)), 3000)
    out["validation_per_event_in_batch_of_100"] = _cpu(
        lambda: batch_body.validate_python(json.loads(hundred)), 100
    )
    out["validation_per_event_in_batch_of_100"] /= 100

    real_write = hub._commit.write  # the probe leaves the durable write out
    hub._commit.write = _no_write  # type: ignore[method-assign,assignment]
    turn = 0

    def event() -> tuple[str, rules.Event]:
        nonlocal turn
        user, k = users[turn % USERS], turn // USERS
        turn += 1
        state = CallState.CONNECTED if k % 2 == 0 else CallState.ENDED
        return user, rules.TelephonyEvent(f"c{k // 2}", state)

    async def handle_one() -> Any:
        user, e = event()
        return await hub.handle(hub.resolve(user, None, None), e, "pbx")

    async def handle_hundred() -> Any:
        return await hub.handle_batch([event() for _ in range(100)], "pbx")

    out["core_one_event"] = await _acpu(handle_one, 3000)
    out["core_per_event_in_batch_of_100"] = await _acpu(handle_hundred, 30) / 100
    view = await handle_one()
    out["answer_one_event"] = _cpu(lambda: dumps(views.presence(view.presence, "en")), 3000)
    hub._commit.write = real_write  # type: ignore[method-assign]

    states = [hub.user(u).state for u in users[:100]]
    now = hub.clock.now()
    history = [HistoryEntry(u, now, "pbx", "busy", "on_the_phone", "") for u in users[:100]]
    for size, times in ((1, 300), (8, 100), (100, 30)):

        def save(size: int = size) -> None:
            store.save_users(states[:size], history[:size], now)

        out[f"store_per_event_{size}_per_commit"] = _cpu(save, times) / size
    await hub.stop()
    engine.dispose()
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        figures = asyncio.run(measure(Path(folder)))
    print(json.dumps({"us_cpu": figures, "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()

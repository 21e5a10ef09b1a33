"""The webhook service (issue 17 part 4) on a real SQLite file, the receiver replaced by
an httpx transport of the test's: a failing user waits while the others go on, each
user's changes in order; the hub never waits for the outbox; the table is checked when
the configuration file is read, and the secret is never echoed.

The process-level tests (tests/webhooks) show the same against a real receiver.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from presencebridge.adapters.store import Store, create_engine, migrate
from presencebridge.adapters.store.webhooks import WebhookOutbox
from presencebridge.adapters.webhook import WebhookSender, WebhookSettings, parse, sign
from presencebridge.adapters.webhook.sender import judge
from presencebridge.api import views
from presencebridge.config import load_settings
from presencebridge.core.model import User
from presencebridge.core.rules import AddProfile, SelectProfile
from presencebridge.service import bus
from presencebridge.service.hub import Hub, NewUser
from presencebridge.service.webhooks import Webhooks, WebhookWorker
from tests.service.conftest import FOCUS, FixedClock, Hubs, add_user

pytestmark = pytest.mark.anyio

SECRET = "service-test-secret"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    # A file, not the shared in-memory copy: the outbox writes from threads of its own.
    engine = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    hubs = Hubs(Store(engine), FixedClock())
    yield await hubs.open()
    for running in list(hubs.running):
        await hubs.stop(running)
    engine.dispose()


class Receiver:
    """Answers with `answer(user, profile)`; records what it took, per user."""

    def __init__(self, answer: Callable[[str, str | None], int]) -> None:
        self.answer = answer
        self.taken: dict[str, list[str | None]] = {}
        self.attempts: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        timestamp = request.headers["X-Presencebridge-Timestamp"]
        assert request.headers["X-Presencebridge-Signature"] == sign(
            SECRET, timestamp, request.content
        )
        user = body["user"]["id"]
        profile = (body["presence"] or {}).get("profile")
        self.attempts[user] = self.attempts.get(user, 0) + 1
        status = self.answer(user, profile)
        if status == 200:
            self.taken.setdefault(user, []).append(profile)
        return httpx.Response(status)


def webhooks(hub: Hub, receiver: Receiver, **settings: Any) -> Webhooks:
    hook = WebhookSettings(
        "test", "http://receiver.test/hook", SECRET,
        first_retry_seconds=0.01, max_retry_seconds=0.05, max_attempts=1000, **settings,
    )  # fmt: skip
    outbox = WebhookOutbox(hub.store.engine)
    sender = WebhookSender(hook, transport=httpx.MockTransport(receiver))
    return Webhooks(hub, outbox, [WebhookWorker(hook, sender, outbox, hub)], views.presence)


async def until(condition: Callable[[], bool]) -> None:
    """Only a bound: returns as soon as `condition` holds; the workers run on their own
    tasks, so the test yields to them between looks."""
    async with asyncio.timeout(60.0):
        while not condition():  # noqa: ASYNC110 - the workers have no event to wait on
            await asyncio.sleep(0.005)


async def with_profiles(hub: Hub, user: str, names: list[str]) -> None:
    await add_user(hub, user)
    for name in names:
        profile = FOCUS.__class__(name, FOCUS.status, name, FOCUS.color)
        await hub.handle(user, AddProfile(profile), "test")


async def select(hub: Hub, user: str, name: str) -> None:
    await hub.handle(user, SelectProfile(name), "test")


async def test_a_failing_user_waits_while_the_others_go_on_each_in_order(hub: Hub) -> None:
    held = {"alice": True}
    receiver = Receiver(lambda user, _profile: 503 if held.get(user) else 200)
    hooks = webhooks(hub, receiver)
    await hooks.start()
    try:
        names = ["a", "b", "c", "d"]
        for user in ("alice", "bob"):
            await with_profiles(hub, user, names)
        for name in names:
            for user in ("alice", "bob"):
                await select(hub, user, name)
        await until(lambda: receiver.taken.get("bob") == [None, *names])
        # She is asked again (after her backoff, which may outlast bob's deliveries),
        # and nothing of hers is taken while she refuses: her order is kept.
        await until(lambda: receiver.attempts.get("alice", 0) > 1)
        assert "alice" not in receiver.taken
        held["alice"] = False
        await until(lambda: receiver.taken.get("alice") == [None, *names])
        await until(lambda: hooks.workers["test"].pending == 0)
        health = hooks.health()[0]
        assert health.up and health.counts["dead"] == 0 and health.counts["delivered"] == 10
    finally:
        await hooks.stop()


async def test_a_receiver_that_does_not_answer_is_probed_one_request_at_a_time(
    hub: Hub,
) -> None:
    down = True
    in_flight, most_while_down = 0, 0
    taken: dict[str, list[str | None]] = {}
    hooks: Webhooks

    async def receiver(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most_while_down
        worker = hooks.workers["test"]
        in_flight += 1
        if worker.unreachable:  # known to be down: only a probe may be on its way
            most_while_down = max(most_while_down, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1
        if down:
            raise httpx.ConnectError("connection refused")
        body = json.loads(request.content)
        profile = (body["presence"] or {}).get("profile")
        taken.setdefault(body["user"]["id"], []).append(profile)
        return httpx.Response(200)

    hook = WebhookSettings(
        "test", "http://receiver.test/hook", SECRET,
        first_retry_seconds=0.01, max_retry_seconds=0.02, max_attempts=1000,
    )  # fmt: skip
    outbox = WebhookOutbox(hub.store.engine)
    sender = WebhookSender(hook, transport=httpx.MockTransport(receiver))
    worker = WebhookWorker(hook, sender, outbox, hub)
    hooks = Webhooks(hub, outbox, [worker], views.presence)
    await hooks.start()
    try:
        users = [f"u{n}" for n in range(6)]
        for user in users:
            await with_profiles(hub, user, ["a"])
            await select(hub, user, "a")
        await until(lambda: worker.failed >= 20)
        assert not worker.health().up and most_while_down == 1
        down = False
        await until(lambda: all(taken.get(u) == [None, "a"] for u in users))
        assert worker.health().up
    finally:
        await hooks.stop()


async def test_the_hub_goes_on_while_the_outbox_cannot_be_written(hub: Hub) -> None:
    receiver = Receiver(lambda _user, _profile: 200)
    hooks = webhooks(hub, receiver)
    blocked = threading.Event()
    write = hooks.outbox.add

    def slow_add(changes: Any) -> None:
        blocked.wait(30)  # the database hangs, as a locked or far-away one would
        write(changes)

    hooks.outbox.add = slow_add  # type: ignore[method-assign]
    await hooks.start()
    try:
        await with_profiles(hub, "alice", ["a", "b"])
        for name in ["a", "b", "a", "b"]:
            await select(hub, "alice", name)  # each returns though nothing is written
        assert receiver.taken == {}
        blocked.set()
        await until(lambda: receiver.taken.get("alice") == [None, "a", "b", "a", "b"])
    finally:
        blocked.set()
        await hooks.stop()


async def test_a_graceful_stop_writes_what_is_buffered_and_a_new_start_sends_it(
    hub: Hub,
) -> None:
    down = Receiver(lambda _user, _profile: 503)
    first = webhooks(hub, down)
    await first.start()
    await with_profiles(hub, "alice", ["a"])
    await select(hub, "alice", "a")
    await first.stop()
    up = Receiver(lambda _user, _profile: 200)
    second = webhooks(hub, up)
    await second.start()
    try:
        await until(lambda: up.taken.get("alice") == [None, "a"])
    finally:
        await second.stop()


async def test_a_webhook_for_a_group_gets_only_that_groups_users(hub: Hub) -> None:
    receiver = Receiver(lambda _user, _profile: 200)
    hooks = webhooks(hub, receiver, groups=("other",))
    await hooks.start()
    try:
        await with_profiles(hub, "alice", ["a"])
        await select(hub, "alice", "a")
        await hub.delete_user("alice")
        await asyncio.sleep(0)  # nothing to wait for: nothing may come
        assert hooks._buffer == [] and receiver.attempts == {}
    finally:
        await hooks.stop()
    assert receiver.attempts == {}


async def test_a_burst_beyond_the_bus_backlog_still_reaches_everyone(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import publishes its users' changes in one go; past the bus's backlog the bus
    drops the listener, which then sends everyone's presence in place of what it missed."""
    monkeypatch.setattr(bus, "LISTENER_BACKLOG", 3)
    receiver = Receiver(lambda _user, _profile: 200)
    hooks = webhooks(hub, receiver)
    await hooks.start()
    try:
        people = [NewUser(User(f"u{n}", f"U{n}", "hq")) for n in range(10)]
        assert await hub.create_users(people, "import") == []
        await until(lambda: set(receiver.taken) == {f"u{n}" for n in range(10)})
    finally:
        await hooks.stop()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "delivered"), (204, "delivered"), (408, "retry"), (429, "retry"), (500, "retry"),
     (503, "retry"), (301, "dead"), (400, "dead"), (401, "dead"), (404, "dead"), (410, "dead")],
)  # fmt: skip
def test_what_an_answer_means(status: int, outcome: str) -> None:
    assert judge(status).value == outcome


# -- the table, when the configuration file is read -----------------------------------------


def config_error(tmp_path: Path, table: str) -> str:
    """The messages as `presencebridge serve` prints them (cli._settings)."""
    config = tmp_path / "presencebridge.toml"
    config.write_text(table)
    with pytest.raises(ValidationError) as refused:
        load_settings(config)
    return "; ".join(e["msg"] for e in refused.value.errors())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "ftp://files.example/x"\nsecret_env = "S"', "url must be an http:// or https://"),
        ('url = "https://"\nsecret_env = "S"', "with a host"),
        ('url = "https://hook.example/x"', "the HMAC secret is missing"),
        ('url = "https://hook.example/x"\nsecret_env = "S"\ngroups = "sales"', "groups must be"),
        ('url = "https://hook.example/x"\nsecret_env = "S"\nretries = 3', "unknown setting"),
        ('url = "https://hook.example/x"\nsecret_env = "S"\nlanguage = "fr"', "language"),
        ('url = "https://hook.example/x"\nsecret_env = "S"\nmax_attempts = 0', "max_attempts"),
        ('url = "https://hook.example/x"\nsecret = "hunter22"', "must not be in the"),
    ],
)
def test_a_bad_webhook_table_is_refused_when_the_file_is_read(
    tmp_path: Path, table: str, message: str
) -> None:
    error = config_error(tmp_path, f'[[publish]]\nkind = "webhook"\nname = "door"\n{table}\n')
    assert message in error
    assert "[[publish]] door" in error
    assert "hunter22" not in error


def test_a_good_table_is_read_and_the_secret_is_never_in_its_repr(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter22\n")
    config = tmp_path / "presencebridge.toml"
    config.write_text(
        '[[publish]]\nkind = "webhook"\nname = "door"\n'
        'url = "https://user:pw@hook.example:8443/x?token=t"\n'
        f'secret_file = "{secret}"\ngroups = ["sales"]\n'
    )
    [table] = load_settings(config).publish
    hook = parse(table.table())
    assert hook.secret == "hunter22" and hook.groups == ("sales",)
    assert "hunter22" not in repr(hook)
    assert hook.shown_url == "https://hook.example:8443/x"  # no credentials, no query
    assert hook.wants("sales") and not hook.wants("hq")

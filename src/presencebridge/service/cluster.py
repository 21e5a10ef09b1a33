"""Several nodes sharing one PostgreSQL and one Redis.

The users are split into partitions (`core/partition.py`); each node handles the
users of the partitions it holds a lease on, renewing the leases every third of
their lifetime. A node that dies stops renewing; once its leases expire (at most
`lease_seconds`, 9 s by default) the others take its partitions, read those users'
states from the database and carry on. Requests for another node's users are
forwarded to it (`api/cluster.py`). Changes fan out over Redis so every node can
stream every user's presence. Each node spends the Graph budget in proportion to
the partitions it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from presencebridge.adapters.store.leases import LeaseStore
from presencebridge.core import codec
from presencebridge.core.model import User, UserState
from presencebridge.core.partition import partition_of, plan
from presencebridge.core.ports import Reading
from presencebridge.service.agents import AgentRelay
from presencebridge.service.hub import Hub
from presencebridge.service.membership import Membership
from presencebridge.service.teams_sync import apply_readings

if TYPE_CHECKING:  # a single node does not import the Redis client
    from presencebridge.adapters.fanout import Fanout

log = logging.getLogger(__name__)
T = TypeVar("T")


class Cluster:
    def __init__(
        self,
        hub: Hub,
        leases: LeaseStore,
        fanout: Fanout,
        node: str,
        url: str,
        partitions: int,
        lease_seconds: float,
    ) -> None:
        self.hub = hub
        self.leases = leases
        self.fanout = fanout
        self.node = node
        self.url = url
        self.partitions = partitions
        self.ttl = timedelta(seconds=lease_seconds)
        self.owned: frozenset[int] = frozenset()
        self.owner_urls: dict[int, str] = {}
        self.nodes: dict[str, str] = {}
        self.on_share: Callable[[float], None] | None = None
        self.agents: AgentRelay | None = None
        self.takeovers = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="leases")
        self._tasks: list[asyncio.Task[None]] = []

    # -- who handles whom ------------------------------------------------------------------

    def partition(self, user_id: str) -> int:
        return partition_of(user_id, self.partitions)

    def owns(self, user_id: str) -> bool:
        return self.partition(user_id) in self.owned

    def owner_url(self, user_id: str) -> str | None:
        """The URL of the node that handles the user, if another node does."""
        partition = self.partition(user_id)
        if partition in self.owned:
            return None
        return self.owner_urls.get(partition)

    async def find_owner(self, user_id: str) -> str | None:
        """Like `owner_url`, but asks the database when our view is not fresh enough
        (partitions moved since our last renewal)."""
        known = self.owner_url(user_id)
        if known is not None or self.owns(user_id):
            return known
        url = await self._io(self.leases.owner_url, self.partition(user_id))
        return None if url == self.url else url

    async def catch_up(self) -> None:
        """Before answering a read from our copies: take in every change another node
        acknowledged before now (a barrier through the fan-out)."""
        await self.fanout.barrier(self.nodes.keys(), self.ttl.total_seconds() / 3)

    def status(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "url": self.url,
            "partitions": self.partitions,
            "owned": sorted(self.owned),
            "nodes": dict(sorted(self.nodes.items())),
            "owners": {str(p): u for p, u in sorted(self.owner_urls.items())},
            "takeovers": self.takeovers,
            "fanout": {
                "connected": self.fanout.connected,
                "published": self.fanout.published,
                "received": self.fanout.received,
                "dropped": self.fanout.dropped,
                "barriers": self.fanout.barriers,
                "barrier_timeouts": self.fanout.barrier_timeouts,
            },
        }

    # -- life cycle ------------------------------------------------------------------------

    def attach(
        self, agents: AgentRelay | None = None, on_share: Callable[[float], None] | None = None
    ) -> None:
        """Wiring (bootstrap), before the hub starts: it handles no one until leases say
        so. `agents` applies agent messages other nodes pass on; `on_share` learns this
        node's share of the Graph budget."""
        self.agents = agents
        self.on_share = on_share
        self.hub.join(
            Membership(self.owns, self._replicate, self._group_changed, self._removed, self._tokens)
        )

    async def start(self) -> None:
        """Take a first share before serving, and start renewing and fanning out."""
        await self.step()
        self._tasks = [
            asyncio.create_task(self._renew_forever(), name="cluster-leases"),
            asyncio.create_task(self.fanout.run_publisher(), name="cluster-publish"),
            asyncio.create_task(
                self.fanout.run_subscriber(self._apply, self._resync), name="cluster-subscribe"
            ),
        ]

    async def stop(self) -> None:
        """Leave: give every partition back at once so the others need not wait."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        owned, self.owned = self.owned, frozenset()
        with contextlib.suppress(Exception):
            await self._io(self.leases.release, self.node, owned)
            await self._io(self.leases.leave, self.node)
        await self.fanout.aclose()
        self._executor.shutdown(wait=False)

    async def _renew_forever(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.step()
            except Exception:  # keep trying: the leases run out only if this keeps failing
                log.exception("lease renewal failed")

    async def step(self) -> None:
        """One round: heartbeat, renew, give back the excess, take free partitions."""
        view = await self._io(self.leases.heartbeat, self.node, self.url, self.ttl)
        wanted = plan(self.node, self.partitions, view.leases, view.nodes, view.now)
        renewed = await self._io(self.leases.renew, self.node, wanted.keep, self.ttl)
        lost = self.owned - renewed
        if lost - wanted.release:
            log.warning("leases of partitions %s ran out before renewal", sorted(lost))
        # Stop handling before giving back, so nothing is written after the hand-over.
        self.owned = frozenset(renewed)
        if wanted.release:
            await self._io(self.leases.release, self.node, wanted.release)
        acquired = await self._io(self.leases.acquire, self.node, wanted.acquire, self.ttl)
        self.nodes = view.nodes
        owners = {
            p: view.nodes[lease.node]
            for p, lease in view.leases.items()
            if lease.expires_at > view.now and lease.node in view.nodes
        }
        for p in self.owned:
            owners[p] = self.url
        for p in wanted.release | lost:
            if owners.get(p) == self.url:
                del owners[p]
        self.owner_urls = owners
        if acquired:
            await self._take_over(frozenset(acquired))
        if self.on_share is not None:
            self.on_share(len(self.owned) / self.partitions)

    async def _take_over(self, partitions: frozenset[int]) -> None:
        states = await self.hub.load_stored_users()
        mine = [s for s in states if self.partition(s.user.id) in partitions]

        def claim() -> None:
            self.owned = self.owned | partitions

        await self.hub.take_over(mine, claim)
        self.takeovers += 1
        log.info("took over partitions %s (%d users)", sorted(partitions), len(mine))

    # -- fan-out ---------------------------------------------------------------------------

    def _replicate(self, state: UserState) -> None:
        user = state.user
        directory = [
            user.id,
            user.display_name,
            user.group,
            user.teams_user_id,
            user.email,
            list(user.extensions),
            list(user.numbers),
            user.directory_key,
        ]
        self.fanout.publish({"kind": "user", "user": directory, "state": codec.encode(state)})

    def _removed(self, user_id: str) -> None:
        self.fanout.publish({"kind": "removed", "user": user_id})

    def _tokens(self, user_id: str) -> None:
        """An agent token of the user was revoked here: every node lets go of the user's
        agents whose token no longer works (an agent may be connected to any node)."""
        self.fanout.publish({"kind": "tokens", "user": user_id})

    def _group_changed(self, group_id: str) -> None:
        self.fanout.publish({"kind": "group", "group": group_id})

    def relay_agent_message(self, user_id: str, message: dict[str, Any]) -> None:
        """An agent connected here reported for a user another node handles."""
        self.fanout.publish({"kind": "agent", "user": user_id, "message": message})

    def relay_readings(self, readings: Sequence[Reading]) -> None:
        """Notifications that reached us for other nodes' users (Graph posts to one URL)."""
        if readings:
            rows = [[r.teams_user_id, r.availability, r.activity, r.sequence] for r in readings]
            self.fanout.publish({"kind": "readings", "readings": rows})

    async def _apply(self, message: dict[str, Any]) -> None:
        if message.get("kind") == "readings":
            readings = [Reading(*row) for row in message["readings"]]
            by_teams_id = {}
            for reading in readings:
                user_id = self.hub.user_for_teams_id(reading.teams_user_id)
                if user_id is not None and self.hub.owns(user_id):
                    by_teams_id[reading.teams_user_id] = user_id
            await apply_readings(self.hub, readings, by_teams_id, self.hub.clock.now())
        elif message.get("kind") == "agent":
            if self.agents is not None and self.hub.owns(message["user"]):
                log.debug("applying agent message for %s", message["user"])
                await self.agents.apply(message["user"], message["message"])
            else:
                log.debug("agent message for %s: not ours", message["user"])
        elif message.get("kind") == "user":
            await self.hub.apply_remote(codec.decode(_user(message["user"]), message["state"]))
        elif message.get("kind") == "removed":
            self.hub.forget_remote(message["user"])
        elif message.get("kind") == "tokens":
            self.hub.recheck_tokens(message["user"])
        elif message.get("kind") == "group":
            await self.hub.reload_group(message["group"])

    async def _resync(self) -> None:
        """After (re)connecting to Redis: what we may have missed comes from the database."""
        await self.hub.reload_groups()
        stored = await self.hub.load_stored_users()
        for state in stored:
            await self.hub.apply_remote(state)
        for user_id in set(self.hub.user_ids()) - {s.user.id for s in stored}:
            self.hub.forget_remote(user_id)  # deleted on another node meanwhile

    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _user(directory: list[Any]) -> User:
    """A user's directory data as `_replicate` sends it (a node of the version before
    extensions and numbers sends only the first four)."""
    user_id, name, group, teams_user_id, *rest = directory
    email, extensions, numbers, key = [*rest, None, [], [], None][:4]
    return User(user_id, name, group, teams_user_id, email, tuple(extensions), tuple(numbers), key)

"""Three nodes on one PostgreSQL and one Redis, syncing with the Graph emulator.

Every node takes every request; each user is handled by the node that holds the
lease on the user's partition. These tests run real `presencebridge serve`
processes, a throw-away PostgreSQL and Redis, and the emulator, all separately.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from presencebridge.core.partition import partition_of
from tests.support.postgres import scratch_database
from tests.support.redis import throwaway_redis
from tests.support.server import ServerProcess, receive, receive_until
from tests.support.teams import EmulatorProcess, sync_server
from tests.support.waiting import eventually

PARTITIONS = 16
USERS = [f"u{i:02d}" for i in range(24)]
TAKEOVER_LIMIT = 15.0  # the promise: a dead node's users move within 15 s
PBX_WARM_UP = 20  # events the PBX has acknowledged before the kill (and after the take-over)


def teams_id(user: str) -> str:
    return f"teams-{user}"


class Nodes:
    def __init__(self, nodes: list[ServerProcess], emulator: EmulatorProcess) -> None:
        self.nodes = nodes
        self.emulator = emulator

    def status(self, index: int) -> dict[str, object]:
        with self.nodes[index].client() as api:
            response = api.get("/api/v1/admin/cluster")
            assert response.status_code == 200, response.text
            result: dict[str, object] = response.json()
            return result

    def owner_of(self, user: str) -> int:
        """Index of the node that handles `user` now (by its own account)."""
        partition = partition_of(user, PARTITIONS)
        for index, node in enumerate(self.nodes):
            if node.process is None or node.process.poll() is not None:
                continue
            owned = self.status(index)["owned"]
            assert isinstance(owned, list)
            if partition in owned:
                return index
        raise AssertionError(f"no live node handles {user}")


def balanced(cluster: Nodes, live: list[int]) -> bool:
    """Every partition owned, and shared out evenly among the live nodes."""
    counts = []
    for index in live:
        part = cluster.status(index)["owned"]
        assert isinstance(part, list)
        counts.append(len(part))
    return all_partitions_owned(cluster, live) and max(counts) - min(counts) <= 2


def all_partitions_owned(cluster: Nodes, live: list[int]) -> bool:
    owned: list[int] = []
    for index in live:
        part = cluster.status(index)["owned"]
        assert isinstance(part, list)
        owned += part
    return sorted(owned) == list(range(PARTITIONS))


@pytest.fixture(scope="module")
def cluster(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    folder = tmp_path_factory.mktemp("cluster")
    emulator = EmulatorProcess(folder / "emulator-tls")
    nodes: list[ServerProcess] = []
    with scratch_database(postgres_server) as database, throwaway_redis() as redis_url:
        try:
            emulator.start()
            for n in range(3):
                node = sync_server(
                    folder / f"node{n + 1}",
                    emulator,
                    PRESENCEBRIDGE_DATABASE_URL=database,
                    PRESENCEBRIDGE_REDIS_URL=redis_url,
                    PRESENCEBRIDGE_NODE_ID=f"node{n + 1}",
                    PRESENCEBRIDGE_PARTITIONS=str(PARTITIONS),
                )
                node.start()
                nodes.append(node)
            result = Nodes(nodes, emulator)
            eventually(lambda: balanced(result, [0, 1, 2]), bool, timeout=60)
            with nodes[0].client() as api:
                group = {
                    "id": "hq",
                    "name": "HQ",
                    "settings": {"teams_sync_mode": "telephony_and_presence"},
                }
                assert api.post("/api/v1/groups", json=group).status_code == 201
                for user in USERS:
                    emulator.add_user(teams_id(user))
                    body = {
                        "id": user,
                        "display_name": user.upper(),
                        "group": "hq",
                        "teams_user_id": teams_id(user),
                    }
                    # Whichever node handles the user creates it; node 1 passes it on.
                    created = eventually(
                        lambda body=body: api.post("/api/v1/users", json=body),  # type: ignore[misc]
                        lambda r: (
                            r.status_code != 503
                        ),  # a partition moving: retry, as a client does
                        timeout=10,
                    )
                    assert created.status_code == 201, created.text
            yield result
        finally:
            for node in nodes:
                node.stop()
            emulator.stop()


def post_batch(api: httpx.Client, events: list[dict[str, str]]) -> httpx.Response:
    """A batch sent as a PBX connector does: again after a 503 (a partition moving between
    nodes, which nothing was applied of)."""
    answer: httpx.Response = eventually(
        lambda: api.post("/api/v1/telephony/events/batch", json={"events": events}),
        lambda r: r.status_code != 503,
        timeout=10,
    )
    return answer


def telephony(node: ServerProcess, user: str, call_id: str, state: str) -> httpx.Response:
    with node.client() as api:
        return api.post(
            "/api/v1/telephony/events", json={"user": user, "call_id": call_id, "state": state}
        )


def test_partitions_are_shared_out_and_every_node_knows_every_user(cluster: Nodes) -> None:
    counts = []
    for index in range(3):
        owned = cluster.status(index)["owned"]
        assert isinstance(owned, list)
        counts.append(len(owned))
    assert sum(counts) == PARTITIONS
    assert max(counts) - min(counts) <= 2, counts
    for node in cluster.nodes:
        with node.client() as api:
            users = api.get("/api/v1/users").json()
            assert sorted(u["id"] for u in users) == USERS


def test_a_stream_on_node_1_sees_a_change_handled_by_node_3(cluster: Nodes) -> None:
    user = next(u for u in USERS if cluster.owner_of(u) == 2)
    with cluster.nodes[0].stream() as ws:
        receive(ws)  # snapshot
        answer = telephony(cluster.nodes[2], user, "c-stream", "connected")
        assert answer.status_code == 200, answer.text
        # Every change after the snapshot arrives, in order; Teams readings of the user
        # may come before the call, so wait for the call rather than take the next one.
        receive_until(ws, user, lambda m: m["telephony"] == "on_the_phone")
        # A stream opened after the acknowledgement, on any node, has it in its snapshot.
        with cluster.nodes[1].stream() as later:
            snapshot = {p["user"]: p for p in receive(later)["presences"]}
            assert snapshot[user]["telephony"] == "on_the_phone"
        # And a request sent to node 1 for the same user is passed to node 3.
        assert telephony(cluster.nodes[0], user, "c-stream", "ended").status_code == 200
        receive_until(ws, user, lambda m: m["telephony"] == "idle")
    # The PBX call reached Teams through the node that handles the user.
    eventually(lambda: cluster.emulator.shown(teams_id(user)), lambda s: s[0] == "Available", 10)


def test_an_event_another_node_refuses_is_named_at_its_place_in_the_batch(
    cluster: Nodes,
) -> None:
    far = next(u for u in USERS if cluster.owner_of(u) != 1)
    near = next(u for u in USERS if cluster.owner_of(u) == 1)
    opened = [{"user": far, "call_id": f"open-{i}", "state": "connected"} for i in range(50)]
    with cluster.nodes[1].client() as api:
        try:
            assert post_batch(api, opened).json()["accepted"] == 50
            events = [
                {"user": near, "call_id": "n-1", "state": "ringing"},
                {"user": far, "call_id": "open-0", "state": "ended"},
                {"user": far, "call_id": "open-50", "state": "connected"},
                {"user": far, "call_id": "open-51", "state": "connected"},
                {"user": near, "call_id": "n-1", "state": "ended"},
            ]
            answer = post_batch(api, events)
            assert answer.status_code == 200, answer.text
            # open-0's end made room for open-50; open-51 is one too many.
            assert answer.json()["accepted"] == 4
            assert [(r["index"], r["code"]) for r in answer.json()["rejected"]] == [(3, "conflict")]
        finally:
            ended = [{**e, "state": "ended"} for e in opened]
            ended.append({"user": far, "call_id": "open-50", "state": "ended"})
            assert post_batch(api, ended).status_code == 200
        assert api.get(f"/api/v1/users/{far}/presence").json()["telephony"] == "idle"


def test_a_batch_spanning_all_nodes_is_applied_by_each_owner(cluster: Nodes) -> None:
    owners = {u: cluster.owner_of(u) for u in USERS}
    assert set(owners.values()) == {0, 1, 2}
    events = [{"user": u, "call_id": "c-batch", "state": "connected"} for u in USERS]
    with cluster.nodes[1].client() as api:
        answer = post_batch(api, events)
        assert answer.status_code == 200, answer.text
    # Read-your-writes on every node: what the owners acknowledged is read at once.
    for node in cluster.nodes:
        with node.client() as api:
            for user in USERS:
                presence = api.get(f"/api/v1/users/{user}/presence").json()
                assert presence["telephony"] == "on_the_phone", (node.url, user)
    with cluster.nodes[0].client() as api:
        ended = [{"user": u, "call_id": "c-batch", "state": "ended"} for u in USERS]
        assert post_batch(api, ended).is_success
        for user in USERS:
            assert api.get(f"/api/v1/users/{user}/presence").json()["telephony"] == "idle"
        # Lists are read after catching up with the other nodes, so they agree too.
        listed = {u["id"]: u for u in api.get("/api/v1/users").json()}
        assert all(listed[u]["presence"]["telephony"] == "idle" for u in USERS), listed


def test_every_node_finds_a_user_by_extension_and_forgets_a_deleted_one(cluster: Nodes) -> None:
    body = {"id": "ext-user", "display_name": "Ext", "group": "hq", "extensions": ["4711"]}
    with cluster.nodes[0].client() as api:
        created = eventually(
            lambda: api.post("/api/v1/users", json=body), lambda r: r.status_code != 503, 10
        )
        assert created.status_code == 201, created.text
    try:
        for index, node in enumerate(cluster.nodes):
            with node.client() as api:
                event = {"extension": "4711", "call_id": f"c-ext-{index}", "state": "connected"}
                answer = api.post("/api/v1/telephony/events", json=event)
                assert answer.status_code == 200, (node.url, answer.text)
                assert answer.json()["telephony"] == "on_the_phone"
    finally:
        with cluster.nodes[1].client() as api:
            assert api.delete("/api/v1/users/ext-user").status_code == 204
    for node in cluster.nodes:
        with node.client() as api:
            assert "ext-user" not in {u["id"] for u in api.get("/api/v1/users").json()}
            event = {"extension": "4711", "call_id": "c-ext-late", "state": "connected"}
            assert api.post("/api/v1/telephony/events", json=event).status_code == 404


def test_killing_a_node_loses_no_acknowledged_event_and_its_users_keep_syncing(
    cluster: Nodes,
) -> None:
    victim = 2
    victims_users = [u for u in USERS if cluster.owner_of(u) == victim]
    assert len(victims_users) >= 2  # one probes the take-over, the others take calls
    acknowledged: dict[str, str] = {}
    counts = {"sent": 0, "acknowledged": 0, "retried": 0}
    stop = threading.Event()

    def pbx(entry: ServerProcess, users: list[str]) -> None:
        """A PBX connector: alternate connected / ended per user; retry what is refused."""
        turn = 0
        with httpx.Client(base_url=entry.url, timeout=10) as api:
            api.headers["Authorization"] = cluster.nodes[0].client().headers["Authorization"]
            while not stop.is_set():
                user = users[turn % len(users)]
                state = "connected" if (turn // len(users)) % 2 == 0 else "ended"
                body = {"user": user, "call_id": f"k{turn // (2 * len(users))}", "state": state}
                counts["sent"] += 1
                try:
                    answer = api.post("/api/v1/telephony/events", json=body)
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    acknowledged[user] = state
                    counts["acknowledged"] += 1
                    turn += 1
                else:
                    counts["retried"] += 1
                    time.sleep(0.1)

    # One of the dead node's users is kept out of the PBX's calls to probe the take-over.
    probe = victims_users[0]
    callers = [u for u in USERS if u != probe]
    half = len(callers) // 2
    workers = [
        threading.Thread(target=pbx, args=(cluster.nodes[0], callers[:half])),
        threading.Thread(target=pbx, args=(cluster.nodes[1], callers[half:])),
    ]
    for worker in workers:
        worker.start()
    # The PBX is under way (events acknowledged on both entry nodes) before the kill.
    eventually(lambda: counts["acknowledged"], lambda n: n >= PBX_WARM_UP, timeout=30)
    cluster.nodes[victim].kill9()
    killed_at = time.monotonic()
    try:
        # A user of the dead node: its events are accepted again once its partition moved.
        user = probe

        def accepted() -> bool:
            answer = telephony(cluster.nodes[0], user, "after-kill", "connected")
            return answer.status_code == 200

        eventually(accepted, bool, timeout=TAKEOVER_LIMIT + 5)
        moved_after = time.monotonic() - killed_at
        assert eventually(lambda: all_partitions_owned(cluster, [0, 1]), bool, timeout=30)
        # The PBX carries on after the take-over: more events acknowledged.
        after = counts["acknowledged"]
        eventually(lambda: counts["acknowledged"], lambda n: n >= after + PBX_WARM_UP, 30)
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    print(
        f"\ncluster kill: {counts['sent']} events sent, {counts['acknowledged']} acknowledged, "
        f"{counts['retried']} refused and retried, 1 node killed, "
        f"its users handled again after {moved_after:.1f} s"
    )
    assert moved_after <= TAKEOVER_LIMIT
    # Nothing acknowledged was lost: every user shows the last state the PBX was told.
    for name, state in acknowledged.items():
        # Strictly from the node that handles the user now (its state is the stored one) ...
        with cluster.nodes[cluster.owner_of(name)].client() as owner:
            shown = owner.get(f"/api/v1/users/{name}/presence").json()["telephony"]
        assert (shown == "on_the_phone") == (state == "connected"), (name, state, shown)
    for node in cluster.nodes[:2]:
        with node.client() as api:
            for name, state in acknowledged.items():
                # ... and from any node: reads are answered by the owner. A node whose
                # view of the owners is older than the take-over says 503 (retry).
                answer = eventually(
                    lambda name=name: api.get(f"/api/v1/users/{name}/presence"),  # type: ignore[misc]
                    lambda r: r.status_code != 503,
                    timeout=10,
                )
                shown = answer.json()["telephony"]
                assert (shown == "on_the_phone") == (state == "connected"), (name, state, shown)
    # The dead node's user keeps syncing: Teams shows the call it was sent after the kill.
    eventually(
        lambda: cluster.emulator.shown(teams_id(user)),
        lambda s: s == ("Busy", "InACall"),
        TAKEOVER_LIMIT,
    )
    assert telephony(cluster.nodes[1], user, "after-kill", "ended").status_code == 200

    # The node comes back and gets its share again.
    cluster.nodes[victim].start()
    eventually(lambda: balanced(cluster, [0, 1, 2]), bool, timeout=30)


def test_the_nodes_share_the_graph_budget_and_never_exceed_it(cluster: Nodes) -> None:
    limits = []
    for index, node in enumerate(cluster.nodes):
        owned = cluster.status(index)["owned"]
        assert isinstance(owned, list)
        with node.client() as api:
            budget = api.get("/api/v1/admin/teams-sync").json()["budget"]
        assert budget["share"] == pytest.approx(len(owned) / PARTITIONS)
        limits.append(budget["limit"])
    # Shares follow the leases in the database, so together they stay within the tenant's.
    assert sum(limits) <= 1500
    stats = cluster.emulator.stats()
    assert stats["throttled"] == 0
    assert stats["budget"]["peak"] <= stats["budget"]["limit"]


def test_an_agent_on_node_1_reports_for_a_user_another_node_handles(cluster: Nodes) -> None:
    def idle(user: str) -> bool:  # "on the phone" would outrank the microphone
        with cluster.nodes[0].client() as api:
            presence = api.get(f"/api/v1/users/{user}/presence").json()
        return bool(presence["telephony"] == "idle")

    user = next(u for u in USERS if cluster.owner_of(u) != 0 and idle(u))
    owner = cluster.owner_of(user)
    with cluster.nodes[1].client() as api:
        # Group changes made on node 2 reach every node.
        micsync = {"name": "MicSync", "status": "busy", "text": "Mikrofon", "color": "#aa00aa"}
        assert api.post("/api/v1/groups/hq/templates", json=micsync).status_code == 201
        enable = {"MicrophoneUsageSync.Enable": 1}
        assert api.patch("/api/v1/groups/hq/settings", json=enable).is_success
        token = api.post(f"/api/v1/users/{user}/agent-tokens").json()["token"]

    def next_of(ws: ClientConnection, kind: str) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(ws.recv(timeout=10))
            if message["type"] == kind:
                return message

    with cluster.nodes[0].client() as api:  # read-your-writes: node 1 knows the change
        group = api.get("/api/v1/groups/hq/settings").json()
        assert group["MicrophoneUsageSync.Enable"] in (1, True, "1"), group
    url = f"ws://127.0.0.1:{cluster.nodes[0].port}/api/v1/agent/stream"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        settings = next_of(ws, "settings")
        assert settings["microphone"]["enabled"] is True
        ws.send(json.dumps({"type": "hello", "version": "test", "platform": "linux"}))
        ws.send(json.dumps({"type": "microphone", "processes": ["zoom"]}))
        shown = next_of(ws, "presence")
        while shown["profile"] != "MicSync":
            shown = next_of(ws, "presence")
        assert shown["text"] == "Zoom Meeting"
    # The owner applied it.
    with cluster.nodes[owner].client() as api:
        assert api.get(f"/api/v1/users/{user}/presence").json()["profile"] == "MicSync"


def test_graph_notifications_reach_the_node_that_subscribed(cluster: Nodes) -> None:
    """Each node subscribes with its own key and `?node=` in the URL; the load balancer
    may deliver to any node, which passes the notification on."""
    forged = {"value": [{"subscriptionId": "s-1", "clientState": "x", "resource": "r"}]}
    with httpx.Client(base_url=cluster.nodes[0].url, timeout=10) as anyone:
        passed = anyone.post("/graph/notifications?node=node3", json=forged)
        # Node 3 answered (it holds no subscriptions: these nodes poll) and node 1 said so.
        assert passed.status_code == 403, passed.text
        assert passed.json()["code"] == "unknown_subscription"
        node3_metrics = httpx.get(cluster.nodes[2].url + "/metrics").text
        assert 'result="unknown_subscription"' in node3_metrics
        # A node that is gone: accepted and dropped, so Graph does not retry for ever.
        orphaned = anyone.post("/graph/notifications?node=ghost", json=forged)
        assert orphaned.status_code == 202
        # The handshake is answered by whichever node gets it.
        echoed = anyone.post("/graph/notifications?node=node3&validationToken=abc%20def")
        assert echoed.text == "abc def"


def agent_stream(node: ServerProcess, token: str) -> ClientConnection:
    url = f"ws://127.0.0.1:{node.port}/api/v1/agent/stream"
    return connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5)


def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes the stream; its close code. A stream left open
    fails the test (no message within 10 s)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    return None if closed.value.rcvd is None else closed.value.rcvd.code


def create(node: ServerProcess, body: dict[str, Any]) -> None:
    with node.client() as api:
        created = eventually(
            lambda: api.post("/api/v1/users", json=body), lambda r: r.status_code != 503, 10
        )
        assert created.status_code == 201, created.text


def test_agents_are_let_go_on_every_node_when_their_token_or_user_goes(cluster: Nodes) -> None:
    user = "agent-user"
    create(cluster.nodes[0], {"id": user, "display_name": "Agent", "group": "hq"})
    owner = cluster.owner_of(user)
    # The agent is connected to a node that does not handle its user; the token is
    # revoked through the third node.
    agent_node, revoking = (cluster.nodes[i] for i in range(3) if i != owner)
    try:
        with cluster.nodes[owner].client() as api:
            token = api.post(f"/api/v1/users/{user}/agent-tokens").json()["token"]
            kept = api.post(f"/api/v1/users/{user}/agent-tokens").json()["token"]
            token_id = api.get(f"/api/v1/users/{user}/agent-tokens").json()[0]["id"]
        with agent_stream(agent_node, token) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "settings"  # connected
            with revoking.client() as api:
                revoked = api.delete(f"/api/v1/users/{user}/agent-tokens/{token_id}")
                assert revoked.status_code == 204
            assert close_code(ws) == 1008
        for node in cluster.nodes:  # the revoked token opens no stream anywhere
            with pytest.raises(InvalidStatus) as refused:
                agent_stream(node, token)
            assert refused.value.response.status_code == 403

        # The user deleted through another node: its agent is let go as well.
        with agent_stream(agent_node, kept) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "settings"
            with revoking.client() as api:
                assert api.delete(f"/api/v1/users/{user}").status_code == 204
            assert close_code(ws) == 1008
    finally:
        with cluster.nodes[owner].client() as api:
            api.delete(f"/api/v1/users/{user}")


def test_a_csv_file_with_users_of_other_nodes_is_refused_before_any_write(cluster: Nodes) -> None:
    entry = cluster.nodes[0]
    owned = cluster.status(0)["owned"]
    assert isinstance(owned, list)
    names = [f"csv-{n:02d}" for n in range(64)]
    here = [u for u in names if partition_of(u, PARTITIONS) in owned][:2]
    elsewhere = [u for u in names if partition_of(u, PARTITIONS) not in owned][:2]
    header = "id,display_name,group\n"
    # This node's users first: written one by one, they would be in before the refusal.
    text = header + "".join(f"{u},{u.upper()},hq\n" for u in here + elsewhere)

    def listed(node: ServerProcess) -> set[str]:
        with node.client() as api:
            return {u["id"] for u in api.get("/api/v1/users").json()}

    try:
        with entry.client() as api:
            for dry_run in ("true", "false"):
                answer = api.post(
                    "/api/v1/admin/users/import",
                    params={"dry_run": dry_run},
                    content=text.encode(),
                    headers={"Content-Type": "text/csv"},
                )
                assert answer.status_code == 409, answer.text
                [problem] = answer.json()["problems"]
                assert problem["code"] == "other_nodes"
                assert problem["params"]["users"] == ", ".join(elsewhere)
        for node in cluster.nodes:  # nothing was written, on any node
            assert not listed(node) & set(names), node.url

        # A file of only this node's users is imported, and every node has them.
        with entry.client() as api:
            only_here = header + "".join(f"{u},{u.upper()},hq\n" for u in here)
            answer = api.post(
                "/api/v1/admin/users/import",
                content=only_here.encode(),
                headers={"Content-Type": "text/csv"},
            )
            assert answer.status_code == 200, answer.text
        for node in cluster.nodes:
            assert set(here) <= listed(node), node.url
    finally:
        with entry.client() as api:
            for user in here + elsewhere:
                api.delete(f"/api/v1/users/{user}")

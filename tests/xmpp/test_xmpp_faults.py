"""XMPP faults: the server restarted under the hub, and a wrong component secret.

Hub and XMPP server are separate processes; the PBX side is the hub's REST API.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.waiting import eventually
from tests.support.xmpp import Watcher, showing
from tests.xmpp.conftest import (
    ALICE_ACCOUNT,
    ALICE_COMPONENT,
    BOB,
    COMPONENT_SECRET,
    WAIT,
    add_alice,
    all_up,
    connectors,
    hub_server,
    pbx,
    publish_tables,
    xmpp_server,
)

BOTH = (ALICE_COMPONENT, ALICE_ACCOUNT)


@pytest.mark.parametrize("kind", ["prosody", "ejabberd"])
def test_after_an_xmpp_server_restart_the_client_sees_the_current_state(
    tmp_path: Path, kind: str
) -> None:
    """The call ends while the XMPP server is down: after it is back, both outlets have
    reconnected, a client logging in sees alice available (the component answers the
    probe, the account outlet set its presence again), and changes reach it again."""
    xmpp = xmpp_server(kind, tmp_path / kind)
    try:
        server = hub_server(tmp_path / "hub", publish_tables(xmpp))
        try:
            with server.client() as api:
                alice = add_alice(api)
                all_up(server)
                with Watcher(BOB, xmpp.c2s) as bob:
                    pbx(api, alice, "call-1", "connected")
                    for jid in BOTH:
                        bob.wait(jid, showing("dnd", "Am Telefon"), WAIT)

                xmpp.stop()
                eventually(lambda: connectors(server), lambda c: not c["chat"]["up"], WAIT)
                pbx(api, alice, "call-1", "ended")
                xmpp.start()

                health = eventually(
                    lambda: connectors(server),
                    lambda c: all(x["up"] and x["counts"]["reconnects"] >= 1 for x in c.values()),
                    WAIT,
                    step=0.1,
                )
                probes = health["chat"]["counts"].get("probes_answered", 0)
                with Watcher(BOB, xmpp.c2s) as bob:
                    for jid in BOTH:
                        bob.wait(jid, showing("", "Verfügbar"), WAIT)
                    chat = connectors(server)["chat"]
                    assert chat["counts"]["probes_answered"] > probes
                    pbx(api, alice, "call-2", "connected")  # pushed to the watcher it learnt
                    for jid in BOTH:
                        bob.wait(jid, showing("dnd", "Am Telefon"), WAIT)
                metrics = httpx.get(server.url + "/metrics", timeout=10).text
                assert 'presencebridge_connector_reconnects_total{name="chat"}' in metrics
        finally:
            server.stop()
    finally:
        xmpp.close()


@pytest.mark.parametrize("kind", ["prosody", "ejabberd"])
def test_a_wrong_component_secret_is_health_down_and_never_logged(
    tmp_path: Path, kind: str
) -> None:
    wrong = "wrong-component-secret-e41b77"
    xmpp = xmpp_server(kind, tmp_path / kind, secret=COMPONENT_SECRET)
    try:
        config = publish_tables(xmpp, account=False)
        server = hub_server(tmp_path / "hub", config, secret=wrong)
        try:
            chat = eventually(
                lambda: connectors(server)["chat"],
                lambda c: "not-authorized" in c["detail"],
                WAIT,
                step=0.1,
            )
            assert not chat["up"]
            assert "wrong secret" in chat["detail"]
            assert wrong not in chat["detail"]
            metrics = httpx.get(server.url + "/metrics", timeout=10).text
            assert 'presencebridge_connector_up{kind="xmpp-component",name="chat"} 0.0' in metrics
            # It keeps trying, backing off, and says so in the log, never with the secret.
            eventually(lambda: connectors(server)["chat"]["detail"], lambda d: "next attempt" in d,
                       WAIT)  # fmt: skip
        finally:
            server.stop()
        log = server.log_path.read_text()
        assert "not-authorized" in log
        assert wrong not in log
        assert COMPONENT_SECRET not in log
    finally:
        xmpp.close()

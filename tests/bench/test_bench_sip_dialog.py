"""The sip-dialog benchmark in its quick form: Kamailio, the server and the generator as
processes; every change arrives, no subscription is lost, the result file is whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.kamailio import need


@pytest.mark.timeout(180)
def test_sip_dialog_quick(tmp_path: Path) -> None:
    need("kamailio")
    command = [sys.executable, "-m", "presencebridge.bench.scenarios.sip_dialog", "--quick"]
    command += ["--clean-period", "2"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "latest-sip-dialog.json").read_text())
    figures = data["figures"]["sizes"]["50"]
    assert figures["changes_lost"] == 0 and figures["subscriptions_lost"] == 0, figures
    # Each change seen on the stream (two of a user's in quick succession may show as
    # one message on a busy machine: the second's sample then stands for both).
    assert figures["latency_seconds"]["count"] >= 0.9 * figures["publishes_sent"] > 0
    assert figures["outlet_publishes_per_change"] <= 2
    # The hub's share is measured by the server itself, once per notification applied.
    assert figures["hub_share_seconds"]["count"] >= figures["latency_seconds"]["count"]
    # The server's full garbage collections are reported (the loop's longest stalls), and
    # whether the watcher took the PBX for restarted or silent.
    assert {"server_restarts_seen", "server_silences_seen"} <= figures.keys()
    # Datagrams the kernel dropped are counted (Linux), and Kamailio ran with the
    # clean period asked for (how often it sends the expiry NOTIFYs).
    assert isinstance(figures["udp_datagrams_dropped"], int)
    assert data["parameters"]["kamailio_clean_period_seconds"] == 2
    gc_figures = figures["hub_share_seconds"]["full_gc"]
    assert gc_figures["count"] >= 0 and gc_figures["seconds_total"] >= 0
    assert (tmp_path / data["plot"]).read_bytes().startswith(b"\x89PNG")

"""The `presencebridge` command as an operator uses it."""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.server import ADMIN_TOKEN, BIN, ServerProcess, receive


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert words in lines[0]


def test_serve_without_admin_token_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PRESENCEBRIDGE_ADMIN_TOKEN"}
    result = subprocess.run(
        [str(BIN), "serve", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert_one_line_error(result, "PRESENCEBRIDGE_ADMIN_TOKEN is not set")


def test_serve_with_a_bad_config_file_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "presencebridge.toml"
    config.write_text('port = "eighty"\n')
    result = run("serve", "--config", str(config), env={"PRESENCEBRIDGE_ADMIN_TOKEN": "x"})
    assert_one_line_error(result, "port")
    result = run("serve", "--config", str(tmp_path / "missing.toml"))
    assert_one_line_error(result, "missing.toml")


def test_serve_reads_its_toml_file(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "presencebridge.toml"
    config.write_text(
        f'port = {port}\nadmin_token = "from-file-token"\ndata_dir = "{tmp_path / "d"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCEBRIDGE_")}
    process = subprocess.Popen(
        [str(BIN), "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/groups",
                    headers={"Authorization": "Bearer from-file-token"},
                )
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server from TOML config did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert (tmp_path / "d" / "presencebridge.db").exists()
    finally:
        process.terminate()
        process.wait(10)


def test_admin_commands_manage_groups_and_users(server: ServerProcess) -> None:
    common = ("--server", server.url, "--token", ADMIN_TOKEN)
    created = run(
        "groups", "create", "hq", "Headquarters", "--set", "teams_sync_mode=telephony_only", *common
    )
    assert created.returncode == 0, created.stderr
    assert "hq" in run("groups", "list", *common).stdout
    changed = run("groups", "set", "hq", "reassert_dnd=true", *common)
    assert "reassert_dnd = True" in changed.stdout
    made = run("users", "create", "alice", "Alice A.", "--group", "hq", *common)
    assert made.returncode == 0, made.stderr
    listing = run("users", "list", *common).stdout
    assert "alice" in listing and "available" in listing
    token = run("users", "agent-token", "alice", *common).stdout.strip()
    with server.client(token) as agent:
        assert agent.get("/api/v1/users/alice/presence").status_code == 200


def test_admin_command_errors_are_one_line(server: ServerProcess) -> None:
    common = ("--server", server.url, "--token", ADMIN_TOKEN)
    refused = run("users", "create", "bob", "Bob", "--group", "nowhere", *common)
    assert_one_line_error(refused, "server answered 404: unknown group 'nowhere'")
    bad_setting = run("groups", "create", "g", "G", "--set", "teams_sync_mode=maybe", *common)
    assert_one_line_error(bad_setting, "teams_sync_mode")
    unreachable = run(
        "groups", "list", "--server", f"http://127.0.0.1:{free_port()}", "--token", "x"
    )
    assert_one_line_error(unreachable, "cannot reach the server")
    wrong = run("groups", "list", "--server", server.url, "--token", "wrong")
    assert_one_line_error(wrong, "invalid token")


def test_demo_changes_presence_with_no_input(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN), "demo", "--port", str(port), "--data-dir", str(tmp_path), "--pace", "0.2"],
        env={**os.environ, "PRESENCEBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        watcher = ServerProcess(tmp_path)
        watcher.port = port
        deadline = time.monotonic() + 120
        while True:
            try:
                users = watcher.client().get("/api/v1/users").json()
                if len(users) == 8:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "demo did not create its sample users"
            time.sleep(0.2)
        with watcher.stream() as ws:
            first = {p["user"]: p["telephony"] for p in receive(ws)["presences"]}
            assert len(first) == 8
            seen: set[str] = set()
            while "on_the_phone" not in seen:
                message = receive(ws, timeout=30)
                seen.add(message["telephony"])
        console = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=True)
        assert console.status_code == 200 and 'id="login-form"' in console.text
    finally:
        process.terminate()
        process.wait(10)


def test_serve_with_the_embedded_graph_emulator(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", ("--graph", "emulator"))
    server.start()
    try:
        with server.client() as api:
            status = api.get("/api/v1/admin/teams-sync").json()
            assert status["enabled"] is True and status["read_mode"] == "poll"
            graph_url = status["graph_url"]
            body = {"id": "hq", "name": "HQ", "settings": {"teams_sync_mode": "telephony_only"}}
            assert api.post("/api/v1/groups", json=body).status_code == 201
            user = {"id": "alice", "display_name": "Alice", "group": "hq", "teams_user_id": "t-1"}
            assert api.post("/api/v1/users", json=user).status_code == 201
            event = {"user": "alice", "call_id": "1", "state": "connected"}
            assert api.post("/api/v1/telephony/events", json=event).is_success
            ca = ssl.create_default_context(
                cafile=str(tmp_path / "data" / "emulator-tls" / "ca.pem")
            )
            base = graph_url.removesuffix("/v1.0")
            with httpx.Client(base_url=base, verify=ca) as emulator:
                deadline = time.monotonic() + 60
                while True:
                    shown = emulator.get("/_emulator/users/t-1")
                    if shown.is_success and "InACall" in shown.text:
                        break
                    assert time.monotonic() < deadline, shown.text
                    time.sleep(0.1)
    finally:
        server.stop()
    refused = run("serve", "--graph", "graph.example")
    assert_one_line_error(refused, "--graph takes only 'emulator'")

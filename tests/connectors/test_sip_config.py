"""The SIP tables of the configuration file: read and checked when the file is read
(errors name the table and the field, never a value), the password from the
environment into the connector and nowhere else, both connectors made by the
application's wiring."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from presencebridge import bootstrap
from presencebridge.adapters.sip.publisher import PresencePublisher
from presencebridge.adapters.sip.watcher import DialogWatcher
from presencebridge.config import load_settings

GOOD = """\
[[pbx]]
kind = "sip-dialog"
server = "pbx.example.com:5070"
transport = "tcp"
username = "hub"
secret_env = "TEST_SIP_PASSWORD"
subscribe_rate = 20

[[publish]]
kind = "sip-presence"
name = "phones"
server = "presence.example.com"
uri = "sip:{user_id}@presence.example.com"
"""


def test_the_tables_make_both_connectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SIP_PASSWORD", "pa55-w0rd-xyz")
    config = tmp_path / "presencebridge.toml"
    config.write_text(GOOD)
    settings = load_settings(config, admin_token="t", data_dir=tmp_path)
    assert "pa55" not in repr(settings)
    pbx_table = settings.pbx[0].table()
    assert pbx_table["secret"] == "pa55-w0rd-xyz"

    connectors = bootstrap.connect_connectors(settings, hub=_NoHub())  # type: ignore[arg-type]
    assert connectors is not None
    watcher = connectors.pbx[0]
    assert isinstance(watcher, DialogWatcher)
    assert watcher.settings.address == ("pbx.example.com", 5070)
    assert watcher.ua.credentials is not None and "pa55" not in repr(watcher.ua.credentials)
    assert "pa55" not in repr(watcher.settings)
    assert connectors.feed is not None
    outlet = connectors.feed.outboxes[0].outlet
    assert isinstance(outlet, PresencePublisher) and outlet.name == "phones"


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('kind = "sip-dialog"\nserver = "pbx example"', "server"),
        ('kind = "sip-dialog"\nserver = "pbx"\ntransport = "carrier-pigeon"', "transport"),
        ('kind = "sip-dialog"\nserver = "pbx"\nuri = "sip:{name}@pbx"', "uri"),
        ('kind = "sip-dialog"\nserver = "pbx"\npassword = "hunter2-pw"', "password"),
        ('kind = "sip-dialog"', "server"),
    ],
)
def test_a_wrong_table_is_refused_naming_the_field(tmp_path: Path, table: str, field: str) -> None:
    config = tmp_path / "presencebridge.toml"
    config.write_text(f"[[pbx]]\n{table}\n")
    with pytest.raises(ValidationError) as caught:
        load_settings(config, admin_token="t", data_dir=tmp_path)
    # What `serve` prints: where and why, never the input (pydantic's str() has it).
    first = caught.value.errors()[0]
    message = ".".join(str(p) for p in first["loc"]) + ": " + first["msg"]
    assert field in message, message
    assert "hunter2" not in message


class _NoHub:
    """Enough of a hub for the wiring: the feeds only register listeners."""

    def add_takeover_listener(self, listener: object) -> None:
        pass

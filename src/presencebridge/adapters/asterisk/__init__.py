"""Asterisk through its Manager Interface (AMI), kind `asterisk-ami` (issue 13): hint
states in as call states (`source`), custom device states out (`outlet`), over the
small AMI client of `client` / `protocol`. docs/pbx-asterisk.md has the tables and
the Asterisk side."""

from __future__ import annotations

from presencebridge.adapters.asterisk.outlet import AmiDeviceStateOutlet
from presencebridge.adapters.asterisk.settings import (
    KIND,
    AmiOutletSettings,
    AmiSourceSettings,
    parse_outlet,
    parse_source,
)
from presencebridge.adapters.asterisk.source import AmiPbxSource
from presencebridge.core.ports import PbxConnector, PresenceOutlet, TelephonyLines, UserNotes


def make_source(settings: AmiSourceSettings, lines: TelephonyLines) -> PbxConnector:
    return AmiPbxSource(settings, lines)


def make_outlet(settings: AmiOutletSettings, notes: UserNotes | None = None) -> PresenceOutlet:
    return AmiDeviceStateOutlet(settings, notes)


__all__ = ["KIND", "make_outlet", "make_source", "parse_outlet", "parse_source"]

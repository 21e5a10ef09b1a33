"""A user's state the way the store keeps it: encoded, written as JSON text by the
store's serializer, read back and decoded (what a restart does)."""

from __future__ import annotations

import orjson

from presencebridge.adapters.store import json_text
from presencebridge.core import codec
from presencebridge.core.model import UserState


def stored_text(state: UserState) -> str:
    return json_text(codec.encode(state))


def through_store(state: UserState) -> UserState:
    return codec.decode(state.user, orjson.loads(stored_text(state)))

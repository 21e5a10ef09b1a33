"""How the hub's values look as JSON: one place, shared by REST and the stream."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from presencebridge.adapters.store import GroupRecord, HistoryEntry
from presencebridge.adapters.store.audit import AuditEntry
from presencebridge.api.schemas import iso
from presencebridge.core.effective import EffectivePresence
from presencebridge.core.micsync import group_problem
from presencebridge.core.model import Appointment, Profile, ProfileTemplate, UserState
from presencebridge.core.settings import effective_mode
from presencebridge.core.texts import render


def appointment(a: Appointment, language: str, now_active: bool | None = None) -> dict[str, Any]:
    return {
        "id": a.id,
        "subject": render(a.subject, language),
        "color": a.color,
        "start": iso(a.start),
        "end": iso(a.end),
        "profile": a.profile,
        "origin": a.origin.value,
        "hard_end": iso(a.hard_end),
        **({} if now_active is None else {"active": now_active}),
    }


def presence(
    p: EffectivePresence, language: str, last_sync: datetime | None = None
) -> dict[str, Any]:
    return {
        "status": p.status.value,
        "profile": p.profile,
        "text": render(p.text, language),
        "color": p.color,
        "call_forwarding": p.call_forwarding,
        "telephony": p.telephony.value,
        "telephony_source": None if p.telephony_source is None else p.telephony_source.value,
        "appointments": [appointment(a, language) for a in p.appointments],
        "microphone": None
        if p.microphone is None
        else {
            "process": p.microphone.process,
            "service": p.microphone.service,
            "since": iso(p.microphone.since),
        },
        "teams": {
            "availability": p.teams.availability,
            "activity": p.teams.activity,
            "held_by_user": p.teams.held_by_user,
            "status_message": p.teams.status_message,
            "status_message_held_by_user": p.teams.message_held_by_user,
            "out_of_office": p.teams.out_of_office,
            "last_sync": iso(last_sync),
        },
    }


def profile(p: Profile, language: str) -> dict[str, Any]:
    return {
        "name": p.name,
        "status": p.status.value,
        "text": render(p.text, language),
        "color": p.color,
        "call_forwarding": p.call_forwarding,
        "source": p.source.value,
    }


def template(t: ProfileTemplate, language: str) -> dict[str, Any]:
    return {
        "name": t.name,
        "status": t.status.value,
        "text": render(t.text, language),
        "color": t.color,
        "active": t.active,
        "call_forwarding": t.call_forwarding,
    }


def group(g: GroupRecord, language: str) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "settings": g.settings.public(),
        "templates": [template(t, language) for t in g.templates],
        "microphone_sync": microphone_sync(g),
    }


def microphone_sync(g: GroupRecord) -> dict[str, Any]:
    """Whether Microphone Sync works for the group, and if not why (SPEC §6)."""
    reason = group_problem(g.settings, g.templates)
    return {"active": reason is None, "reason": reason}


def user(
    state: UserState,
    p: EffectivePresence,
    g: GroupRecord,
    language: str,
    last_sync: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": state.user.id,
        "display_name": state.user.display_name,
        "group": state.user.group,
        "teams_user_id": state.user.teams_user_id,
        "email": state.user.email,
        "extensions": list(state.user.extensions),
        "numbers": list(state.user.numbers),
        "teams_sync_mode": effective_mode(g.settings, state.own_mode).value,
        "presence": presence(p, language, last_sync),
    }


def user_settings(state: UserState, g: GroupRecord) -> dict[str, Any]:
    return {
        "teams_sync_mode": None if state.own_mode is None else state.own_mode.value,
        "effective_teams_sync_mode": effective_mode(g.settings, state.own_mode).value,
        "user_may_change": g.settings.user_may_change,
    }


def audit_entry(e: AuditEntry) -> dict[str, Any]:
    """One row of the audit log; `details` as the JSON it was recorded as."""
    try:
        details: Any = json.loads(e.details)
    except ValueError:
        details = e.details
    return {
        "id": e.id, "at": iso(e.at), "actor_kind": e.actor_kind, "actor": e.actor,
        "action": e.action, "target": e.target, "details": details,
    }  # fmt: skip


def history(h: HistoryEntry, language: str) -> dict[str, Any]:
    return {
        "at": iso(h.at),
        "source": h.source,
        "status": h.status,
        "telephony": h.telephony,
        "text": render(h.text, language),
        "change": h.change,
    }

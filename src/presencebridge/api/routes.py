"""REST routes of SPEC §7. Thin: check the caller, translate, call the hub, render."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, StringConstraints, ValidationError

from presencebridge.adapters.credentials import CredentialStoreUnavailable
from presencebridge.adapters.store import PERSONAL
from presencebridge.adapters.store.audit import AuditQuery
from presencebridge.api import responses, schemas, views
from presencebridge.api.auth import Principal, principal
from presencebridge.api.cluster import FORWARDED_BY, Moving, forward_batch
from presencebridge.api.schemas import (
    AppointmentIn,
    ClockIn,
    GroupIn,
    MeetingIn,
    ProfileIn,
    ProfileOrderIn,
    SelectProfileIn,
    TelephonyBatchIn,
    TelephonyBatchOut,
    TelephonyEventIn,
    TemplateIn,
    TokenOut,
    UserIn,
    UserPatchIn,
    UserSettingsIn,
)
from presencebridge.api.telephony import batch_answer, resolve_batch
from presencebridge.config import DirectoryRulesConfig
from presencebridge.core import addresses, rules
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import ID_PATTERN, ID_RULE, Profile, ProfileTemplate, User
from presencebridge.core.settings import GroupSettings
from presencebridge.core.texts import pick_language
from presencebridge.service.directory import DirectorySync, RulesInEffect, StoredRulesUnreadable
from presencebridge.service.hub import Hub

router = APIRouter(
    prefix="/api/v1", dependencies=[Depends(principal)], responses=responses.API_ERRORS
)
Caller = Annotated[Principal, Depends(principal)]
Lang = Annotated[str | None, Query(pattern="^(en|de)$", description="language of texts")]
# Ids in the path use the charset they were created with (docs/rules.md): anything else
# is a 422 naming the parameter, not a lookup.
UserId = Annotated[str, Path(pattern=ID_PATTERN.pattern, description=f"user id: {ID_RULE}")]
GroupId = Annotated[str, Path(pattern=ID_PATTERN.pattern, description=f"group id: {ID_RULE}")]


def _path_problem(parameter: str, value: str, problem: str) -> RequestValidationError:
    where = ("path", parameter)
    return RequestValidationError(
        [{"type": "refused", "loc": where, "msg": problem, "input": value}]
    )


def _profile_name(hub: Hub, user_id: str, raw: str) -> str:
    """A profile name from the path (any characters, `/` too: the route takes the rest).

    Normalised as names are when created; an own profile stored under exactly the raw
    name (before names were normalised) is still found, so it can be deleted.
    """
    if any(p.name == raw for p in hub.user(user_id).state.profiles):
        return raw
    name = schemas.normalise_name(raw)
    problem = schemas.name_problem(name)
    if problem is not None:
        raise _path_problem("name", raw, problem)
    return name


def _appointment_id(raw: str) -> str:
    problem = schemas.character_problem(raw) or (None if raw else "must not be empty")
    if problem is not None:
        raise _path_problem("appointment_id", raw, problem)
    return raw


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _language(request: Request, lang: str | None) -> str:
    if lang:
        return lang
    header = request.headers.get("accept-language")
    default: str = request.app.state.settings.language
    return pick_language(header) if header else default


def settings_error(error: ValidationError) -> HTTPException:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "settings"
        problems.append(f"{where}: {item['msg']}")
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "; ".join(problems))


def _settings(patch: dict[str, Any], base: GroupSettings | None = None) -> GroupSettings:
    try:
        return schemas.merged_settings(base, patch)
    except ValidationError as error:
        raise settings_error(error) from None


# -- groups ------------------------------------------------------------------------------


@router.post("/groups", status_code=201)
async def create_group(
    body: GroupIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    group = await _hub(request).create_group(body.id, body.name, _settings(body.settings))
    return views.group(group, _language(request, lang))


@router.get("/groups")
async def list_groups(who: Caller, request: Request, lang: Lang = None) -> list[dict[str, Any]]:
    language = _language(request, lang)
    return [views.group(g, language) for g in _hub(request).groups()]


@router.get("/groups/{group}")
async def get_group(
    group: GroupId, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    return views.group(_hub(request).group(group), _language(request, lang))


@router.get("/groups/{group}/settings")
async def get_group_settings(group: GroupId, who: Caller, request: Request) -> dict[str, Any]:
    return _hub(request).group(group).settings.public()


@router.patch("/groups/{group}/settings")
async def patch_group_settings(
    group: GroupId, who: Caller, request: Request, patch: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    hub = _hub(request)
    merged = _settings(patch, hub.group(group).settings)
    return (await hub.update_group_settings(group, merged)).settings.public()


@router.get("/groups/{group}/templates")
async def list_templates(
    group: GroupId, who: Caller, request: Request, lang: Lang = None
) -> list[dict[str, Any]]:
    language = _language(request, lang)
    return [views.template(t, language) for t in _hub(request).group(group).templates]


@router.post("/groups/{group}/templates", status_code=201)
async def put_template(
    group: GroupId, body: TemplateIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    template = ProfileTemplate(
        body.name, body.status, body.text, body.color, body.active, body.call_forwarding
    )
    await _hub(request).put_template(group, template)
    return views.template(template, _language(request, lang))


@router.delete("/groups/{group}", status_code=204)
async def delete_group(group: GroupId, who: Caller, request: Request) -> None:
    """Only an empty group: 409 while users are in it."""
    await _hub(request).delete_group(group)


@router.delete("/groups/{group}/templates/{name:path}", status_code=204)
async def delete_template(
    group: GroupId,
    name: Annotated[str, Path(description="the template's name, percent-encoded")],
    who: Caller,
    request: Request,
) -> None:
    await _hub(request).delete_template(group, schemas.normalise_name(name))


# -- users -------------------------------------------------------------------------------


@router.post("/users", status_code=201)
async def create_user(
    body: UserIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    hub = _hub(request)
    user = User(
        body.id,
        body.display_name,
        body.group,
        body.teams_user_id,
        body.email,
        addresses.unique(body.extensions),
        hub.parse_numbers(body.numbers),
    )
    view = await hub.create_user(user)
    return _user_view(hub, view.state.user.id, _language(request, lang))


def _user_view(hub: Hub, user_id: str, language: str) -> dict[str, Any]:
    view = hub.user(user_id)
    group = hub.group(view.state.user.group)
    return views.user(view.state, view.presence, group, language, hub.teams_last_sync(user_id))


def _user_fields(hub: Hub, body: UserPatchIn) -> dict[str, Any]:
    """The fields the request names, as the hub keeps them."""
    fields: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "extensions":
            value = addresses.unique(value or [])
        elif name == "numbers":
            value = hub.parse_numbers(value or [])
        fields[name] = value
    return fields


@router.patch("/users/{user_id}")
async def patch_user(
    user_id: UserId, body: UserPatchIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    """Change a user's directory data; only the fields present change, `null` clears."""
    hub = _hub(request)
    hub.user(user_id)
    await hub.update_user(user_id, _user_fields(hub, body), "admin")
    return _user_view(hub, user_id, _language(request, lang))


@router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: UserId, who: Caller, request: Request) -> None:
    """The user and everything of theirs; what the hub set in Teams for them is cleared."""
    await _hub(request).delete_user(user_id)


@router.get("/users/{user_id}/agent-tokens")
async def list_agent_tokens(user_id: UserId, who: Caller, request: Request) -> list[dict[str, Any]]:
    tokens = await _hub(request).agent_tokens(user_id)
    return [{"id": t.id, "created_at": schemas.iso(t.created_at)} for t in tokens]


@router.delete("/users/{user_id}/agent-tokens/{token_id}", status_code=204)
async def revoke_agent_token(
    user_id: UserId,
    token_id: Annotated[str, Path(max_length=64)],
    who: Caller,
    request: Request,
) -> None:
    await _hub(request).revoke_agent_token(user_id, token_id)


class PersonalTokenIn(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class PersonalTokenOut(BaseModel):
    id: str
    name: str | None
    token: str


def _token_rows(tokens: list[Any]) -> list[dict[str, Any]]:
    return [{"id": t.id, "name": t.name, "created_at": schemas.iso(t.created_at)} for t in tokens]


@router.get("/users/{user_id}/personal-tokens")
async def list_personal_tokens(
    user_id: UserId, who: Caller, request: Request
) -> list[dict[str, Any]]:
    """The user's personal API tokens (issue 14): names and dates, never the tokens."""
    return _token_rows(await _hub(request).agent_tokens(user_id, PERSONAL))


@router.post("/users/{user_id}/personal-tokens", status_code=201)
async def issue_personal_token(
    user_id: UserId, body: PersonalTokenIn, who: Caller, request: Request
) -> PersonalTokenOut:
    """A personal token for a script of the user's, shown once; it acts for that user only."""
    token_id, token = await _hub(request).issue_token(user_id, PERSONAL, body.name)
    return PersonalTokenOut(id=token_id, name=body.name, token=token)


@router.delete("/users/{user_id}/personal-tokens/{token_id}", status_code=204)
async def revoke_personal_token(
    user_id: UserId,
    token_id: Annotated[str, Path(max_length=64)],
    who: Caller,
    request: Request,
) -> None:
    await _hub(request).revoke_agent_token(user_id, token_id, PERSONAL)


@router.get("/me")
async def who_am_i(who: Caller) -> dict[str, Any]:
    """Who the caller is: role, the user they act for, and with what."""
    return {"role": "admin" if who.is_admin else "user", "user": who.user_id, "via": who.via}


@router.get("/users")
async def list_users(who: Caller, request: Request, lang: Lang = None) -> list[dict[str, Any]]:
    hub = _hub(request)
    language = _language(request, lang)
    result = []
    for user_id in sorted(hub.user_ids()):
        view = hub.user(user_id)
        result.append(
            views.user(
                view.state,
                view.presence,
                hub.group(view.state.user.group),
                language,
                hub.teams_last_sync(user_id),
            )
        )
    return result


@router.get("/users/{user_id}")
async def get_user(
    user_id: UserId, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    hub = _hub(request)
    view = hub.user(user_id)
    group = hub.group(view.state.user.group)
    return views.user(
        view.state,
        view.presence,
        group,
        _language(request, lang),
        hub.teams_last_sync(view.state.user.id),
    )


@router.get("/users/{user_id}/settings")
async def get_user_settings(user_id: UserId, who: Caller, request: Request) -> dict[str, Any]:
    hub = _hub(request)
    state = hub.user(user_id).state
    return views.user_settings(state, hub.group(state.user.group))


@router.patch("/users/{user_id}/settings")
async def patch_user_settings(
    user_id: UserId, body: UserSettingsIn, who: Caller, request: Request
) -> dict[str, Any]:
    hub = _hub(request)
    group = hub.group(hub.user(user_id).state.user.group)
    if not who.is_admin and not group.settings.user_may_change:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"user_may_change is false in group {group.id!r}: "
            "the user may not change teams_sync_mode",
        )
    view = await hub.handle(user_id, rules.SetOwnMode(body.teams_sync_mode), "settings")
    return views.user_settings(view.state, group)


@router.get("/users/{user_id}/profiles")
async def list_profiles(
    user_id: UserId, who: Caller, request: Request, lang: Lang = None
) -> list[dict[str, Any]]:
    language = _language(request, lang)
    return [views.profile(p, language) for p in _hub(request).profiles(user_id)]


@router.post("/users/{user_id}/profiles", status_code=201)
async def add_profile(
    user_id: UserId, body: ProfileIn, who: Caller, request: Request, lang: Lang = None
) -> list[dict[str, Any]]:
    profile = Profile(body.name, body.status, body.text, body.color, body.call_forwarding)
    hub = _hub(request)
    await hub.handle(user_id, rules.AddProfile(profile), "profile")
    language = _language(request, lang)
    return [views.profile(p, language) for p in hub.profiles(user_id)]


@router.put("/users/{user_id}/profiles/order")
async def reorder_profiles(
    user_id: UserId, body: ProfileOrderIn, who: Caller, request: Request, lang: Lang = None
) -> list[dict[str, Any]]:
    hub = _hub(request)
    await hub.handle(user_id, rules.ReorderProfiles(tuple(body.names)), "profile")
    language = _language(request, lang)
    return [views.profile(p, language) for p in hub.profiles(user_id)]


# `:path`: a name may hold `/` (sent as %2F or as it is); everything after /profiles/ is it.
@router.delete("/users/{user_id}/profiles/{name:path}", status_code=204)
async def delete_profile(
    user_id: UserId,
    name: Annotated[
        str, Path(description="the profile's name, percent-encoded; `/` may stay as it is")
    ],
    who: Caller,
    request: Request,
) -> None:
    hub = _hub(request)
    await hub.handle(user_id, rules.DeleteProfile(_profile_name(hub, user_id, name)), "profile")


@router.put("/users/{user_id}/profile")
async def select_profile(
    user_id: UserId, body: SelectProfileIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    view = await _hub(request).handle(user_id, rules.SelectProfile(body.name), "manual")
    return views.presence(
        view.presence, _language(request, lang), _hub(request).teams_last_sync(view.state.user.id)
    )


@router.get("/users/{user_id}/appointments")
async def list_appointments(
    user_id: UserId, who: Caller, request: Request, lang: Lang = None
) -> list[dict[str, Any]]:
    hub = _hub(request)
    now = hub.clock.now()
    language = _language(request, lang)
    state = hub.user(user_id).state
    return [
        views.appointment(a, language, a.is_active(now))
        for a in sorted(state.appointments, key=lambda a: (a.start, a.id))
    ]


@router.post("/users/{user_id}/appointments", status_code=201)
async def add_appointment(
    user_id: UserId, body: AppointmentIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    hub = _hub(request)
    appointment_id = uuid.uuid4().hex
    event = rules.AddAppointment(
        appointment_id, body.subject, body.start, body.end, body.profile, body.color
    )
    view = await hub.handle(user_id, event, "appointment")
    created = next(a for a in view.state.appointments if a.id == appointment_id)
    return views.appointment(created, _language(request, lang), created.is_active(hub.clock.now()))


@router.delete("/users/{user_id}/appointments/{appointment_id:path}", status_code=204)
async def delete_appointment(
    user_id: UserId, appointment_id: str, who: Caller, request: Request
) -> None:
    event = rules.DeleteAppointment(_appointment_id(appointment_id))
    await _hub(request).handle(user_id, event, "appointment")


@router.post("/users/{user_id}/agent-tokens", status_code=201)
async def issue_agent_token(user_id: UserId, who: Caller, request: Request) -> TokenOut:
    return TokenOut(token=await _hub(request).issue_agent_token(user_id))


@router.get("/users/{user_id}/presence")
async def get_presence(
    user_id: UserId, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    hub = _hub(request)
    return views.presence(
        hub.user(user_id).presence, _language(request, lang), hub.teams_last_sync(user_id)
    )


@router.get("/users/{user_id}/history")
async def get_history(
    user_id: UserId,
    who: Caller,
    request: Request,
    lang: Lang = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    language = _language(request, lang)
    return [views.history(h, language) for h in await _hub(request).history(user_id, limit)]


@router.post("/users/{user_id}/meetings")
async def meeting_event(
    user_id: UserId, body: MeetingIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    event = rules.MeetingEvent(body.meeting_id, body.state, body.screen_sharing, body.audio)
    view = await _hub(request).handle(user_id, event, "meeting")
    return views.presence(
        view.presence, _language(request, lang), _hub(request).teams_last_sync(view.state.user.id)
    )


# -- telephony and operations ------------------------------------------------------------


@router.post("/telephony/events")
async def telephony_event(
    body: TelephonyEventIn, who: Caller, request: Request, lang: Lang = None
) -> dict[str, Any]:
    event = rules.TelephonyEvent(body.call_id, body.state)
    hub = _hub(request)
    user_id = hub.resolve(body.user, body.extension, body.number)
    view = await hub.handle(user_id, event, "pbx")
    return views.presence(
        view.presence, _language(request, lang), _hub(request).teams_last_sync(view.state.user.id)
    )


@router.post("/telephony/events/batch")
async def telephony_events(
    body: TelephonyBatchIn, who: Caller, request: Request
) -> TelephonyBatchOut:
    """Many PBX events in one request, applied in order per user.

    A PBX connector that sees many calls at once sends them together: one request and
    one durable commit instead of hundreds. An unknown user refuses the whole batch
    (nothing applied); an event the rules refuse (a user's 51st open call) is named in
    `rejected` by its place in the batch, and the others apply.
    """
    hub = _hub(request)
    users = resolve_batch(hub, body)
    local = [(i, u, e) for i, (u, e) in enumerate(zip(users, body.events, strict=True))]
    remote: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    cluster = request.app.state.cluster
    if cluster is not None:  # several nodes: each owner applies its users' events
        local = [(i, u, e) for i, u, e in local if hub.owns(u)]
        for index, (user_id, e) in enumerate(zip(users, body.events, strict=True)):
            if not hub.owns(user_id):
                owner = await cluster.find_owner(user_id)
                if owner is None or request.headers.get(FORWARDED_BY):
                    raise Moving()  # nothing applied yet; the PBX retries the batch
                forwarded = {"user": user_id, "call_id": e.call_id, "state": e.state.value}
                remote.setdefault(owner, []).append((index, forwarded))
    events = [(u, rules.TelephonyEvent(e.call_id, e.state)) for _, u, e in local]
    owners = list(remote)
    # Telephony events can be applied twice without harm (calls only move forward),
    # so after a 503 the whole batch may simply be sent again.
    refused_here, *refused_there = await asyncio.gather(
        hub.handle_batch(events, "pbx"),
        *(forward_batch(request, owner, [f for _, f in remote[owner]]) for owner in owners),
    )
    refused = [(local[k][0], refusal) for k, refusal in refused_here]
    for owner, answers in zip(owners, refused_there, strict=True):
        for answer in answers:
            where = remote[owner][answer["index"]][0]
            refused.append((where, Rejected(Reason(answer["code"]), answer["detail"])))
    return TelephonyBatchOut.model_validate(batch_answer(len(body.events), users, refused))


@router.post("/admin/clock")
async def advance_clock(body: ClockIn, who: Caller, request: Request) -> dict[str, Any]:
    if not request.app.state.settings.allow_clock_control:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "clock control is off: start the server with --allow-clock-control",
        )
    hub = _hub(request)
    await hub.advance_clock(body.advance_seconds)
    return {"now": hub.clock.now().isoformat(), "offset_seconds": hub.clock.offset_seconds}


# -- the audit log (issue 18) ------------------------------------------------------------

AuditFilter = Annotated[
    schemas.SearchTerm, Query(max_length=200, description="part of it, any case")
]
# The audit log's ids are 32-bit integers on PostgreSQL; a larger one is no entry's.
AUDIT_ID_MAX = 2**31 - 1


@router.get("/admin/audit")
async def audit_log(
    who: Caller,
    request: Request,
    actor: AuditFilter = "",
    action: AuditFilter = "",
    target: AuditFilter = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=AUDIT_ID_MAX, description="an entry's id: older ones")
    ] = None,
) -> dict[str, Any]:
    """Who changed what, when: newest first, `limit` at a time. `total` counts every
    entry the filters match; `next_before`, when older ones follow, asks for them."""
    hub = _hub(request)
    query = AuditQuery(actor, action, target, limit, before)
    found = await hub.store_io(hub.store.audit_page, query)
    return {
        "entries": [views.audit_entry(e) for e in found.entries],
        "total": found.total,
        "next_before": found.entries[-1].id if found.more and found.entries else None,
    }


# -- Teams sync status and service accounts ----------------------------------------------


class ServiceAccountIn(schemas.Body):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


def _teams_sync(request: Request) -> Any:
    return request.app.state.teams_sync


@router.get("/admin/teams-sync")
async def teams_sync_status(who: Caller, request: Request) -> dict[str, Any]:
    sync = _teams_sync(request)
    if sync is None:
        return {"enabled": False, "reason": "no app registration configured"}
    hub = _hub(request)
    users = len(hub.synced_users())
    status: dict[str, Any] = {
        "enabled": True,
        "read_mode": sync.settings.read_mode,
        "graph_url": sync.settings.graph_url,
        "synced_users": users,
        "budget": {
            "limit": sync.budget.limit,
            "share": sync.budget.share,  # several nodes: this node's part of the tenant's
            "window_seconds": sync.budget.window,
            "read_limit": sync.budget.read_limit,
            "used": sync.budget.used(),
            "spent_total": sync.budget.spent_total,
        },
        "poll": {
            "rounds": sync.poller.rounds,
            "last_round_seconds": round(sync.poller.last_round_seconds, 4),
            "interval_seconds": round(sync.poller.interval(users), 4),
        },
    }
    if sync.notify is not None:
        status["subscriptions"] = sync.notify.manager.describe()
        status["errors"] = sync.notify.manager.errors
    return status


@router.get("/admin/service-accounts")
async def list_service_accounts(who: Caller, request: Request) -> list[dict[str, Any]]:
    sync = _teams_sync(request)
    if sync is None or sync.accounts is None:
        return []
    result: list[dict[str, Any]] = sync.accounts.describe()
    return result


@router.post("/admin/service-accounts", status_code=202)
async def add_service_account(
    body: ServiceAccountIn, who: Caller, request: Request
) -> dict[str, Any]:
    """Start a device-code sign-in of a service account (notify mode)."""
    sync = _teams_sync(request)
    if sync is None or sync.accounts is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "service accounts are used in read mode notify: set PRESENCEBRIDGE_READ_MODE=notify",
        )
    try:
        started: dict[str, Any] = await sync.accounts.begin_sign_in(body.name)
    except CredentialStoreUnavailable as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except RuntimeError as error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from None
    await _hub(request).audit("service_account.sign_in_started", body.name)
    return started


@router.delete("/admin/service-accounts/{name}", status_code=204)
async def remove_service_account(
    who: Caller,
    request: Request,
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")],
) -> None:
    """Remove a service account: its subscriptions are deleted and its users go to the
    other accounts (or the poller); a pending sign-in stops; its token cache is deleted."""
    sync = _teams_sync(request)
    if sync is None or sync.accounts is None or not await sync.accounts.remove(name):
        raise Rejected(Reason.NOT_FOUND, f"no service account {name!r}")
    await _hub(request).audit("service_account.removed", name)


# -- the directory sync (issue 12) -------------------------------------------------------


class DirectorySyncIn(schemas.Body):
    dry_run: bool = False
    force: bool = False
    source: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] | None = None


def _directories(request: Request, source: str | None) -> list[Any]:
    syncs: dict[str, Any] = request.app.state.directories
    if not syncs:
        raise Rejected(
            Reason.NOT_FOUND,
            "no directory is configured: add a [[directory]] table to the configuration file",
        )
    if source is None:
        return list(syncs.values())
    if source not in syncs:
        raise Rejected(
            Reason.NOT_FOUND, f"unknown directory {source!r}; configured: {', '.join(syncs)}"
        )
    return [syncs[source]]


@router.post("/admin/directory/sync")
async def directory_sync(
    who: Caller, request: Request, body: Annotated[DirectorySyncIn | None, Body()] = None
) -> dict[str, Any]:
    """Run the directory sync now (every configured source, or `source`): `dry_run` only
    says what it would do; `force` passes the safety stop. Answers each run's report."""
    body = body or DirectorySyncIn()
    reports = []
    for sync in _directories(request, body.source):
        report = await sync.run(dry_run=body.dry_run, force=body.force)
        reports.append(report.to_json() | {"text": report.text()})
    return {"runs": reports, "ok": all(r["ok"] for r in reports)}


@router.get("/admin/directory")
async def directory_status(who: Caller, request: Request) -> dict[str, Any]:
    """Each configured directory source: its last run, and its rules in effect with
    where they come from (`rules_source`: `config`, the file's; `console`, saved in the
    console or with `PUT …/rules`, which replace the file's until deleted)."""
    syncs: dict[str, DirectorySync] = request.app.state.directories
    sources = []
    for name, sync in syncs.items():
        source = {
            "name": name,
            "schedule_minutes": sync.schedule_minutes,
            "last_run": None if sync.last is None else sync.last.to_json(),
        }
        sources.append(source | await _rules_in_effect(sync))
    return {"sources": sources}


SourceName = Annotated[
    str,
    Path(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="the name of a [[directory]] table"),
]


def _directory(request: Request, source: str) -> DirectorySync:
    sync: DirectorySync = _directories(request, source)[0]
    return sync


def rules_view(rules: RulesInEffect) -> dict[str, Any]:
    """Rules as the API shows them: the fields of the file's rule tables."""
    config = DirectoryRulesConfig.of_rules(rules.rules)
    return {
        "rules": [r.model_dump() for r in config.rules],
        "default_group": config.default_group,
        "rules_source": rules.origin,
        "rules_changed_by": rules.changed_by,
        "rules_changed_at": None if rules.changed_at is None else rules.changed_at.isoformat(),
        "rules_problem": None,
    }


async def _rules_in_effect(sync: DirectorySync) -> dict[str, Any]:
    """The rules in effect, read from the store (another node may have saved them)."""
    try:
        return rules_view(await sync.current_rules())
    except StoredRulesUnreadable as error:
        return rules_view(sync.rules) | {"rules_source": "console", "rules_problem": str(error)}


@router.put("/admin/directory/{source}/rules")
async def directory_rules_save(
    source: SourceName, body: DirectoryRulesConfig, who: Caller, request: Request
) -> dict[str, Any]:
    """Replace the configuration file's rules of a source (same fields as its rule
    tables; every configuration group named must exist, else 422 naming it). Every
    node's next run uses them; nothing is stored when anything is wrong."""
    sync = _directory(request, source)
    return {"name": sync.name} | rules_view(await sync.save_rules(body, "api"))


@router.delete("/admin/directory/{source}/rules")
async def directory_rules_reset(
    source: SourceName, who: Caller, request: Request
) -> dict[str, Any]:
    """Forget the rules saved for a source: its configuration file's apply again."""
    sync = _directory(request, source)
    return {"name": sync.name} | rules_view(await sync.reset_rules())


@router.post("/admin/directory/{source}/rules/preview")
async def directory_rules_preview(
    source: SourceName, body: DirectoryRulesConfig, who: Caller, request: Request
) -> dict[str, Any]:
    """A dry run of the source with these rules (not saved): what a run would do with
    them, as a run's report. Nothing is stored, not even the report."""
    sync = _directory(request, source)
    report = await sync.preview(body.to_rules())
    return report.to_json() | {"text": report.text()}

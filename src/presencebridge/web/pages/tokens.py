"""Every user's agent and personal tokens for the administrator (`/console/tokens`,
issue 18): whose, which kind, which, when made; revoking one after a confirmation. The
same hub calls as a user's page (`lifecycle`): `Hub.revoke_agent_token`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from presencebridge.adapters.store import AGENT, PERSONAL
from presencebridge.core.errors import Rejected
from presencebridge.web.forms import Posted, SignedIn
from presencebridge.web.page import back

router = APIRouter(include_in_schema=False)
URL = "/console/tokens"


@router.get(URL)
async def show_tokens(page: SignedIn) -> Response:
    records = await page.hub.all_tokens()
    names = {}
    for record in records:
        if record.user_id not in names and page.hub.has_user(record.user_id):
            names[record.user_id] = page.hub.user(record.user_id).state.user.display_name
    return page.render("tokens.html", tokens=records, names=names, nav="tokens")


@router.post(URL + "/revoke")
async def revoke_token(form: Posted) -> Response:
    page = form.page
    user_id, token_id, kind = form.text("user_id"), form.text("token_id"), form.text("kind")
    if kind not in (AGENT, PERSONAL) or not page.hub.has_user(user_id):
        page.flash(page._("That token does not exist (any more)."), "error")
        return back(URL)
    if not form.confirmed:
        if kind == AGENT:
            message = page._(
                "Revoke this agent token of %(user)s? The desktop agent that uses it is "
                "signed off at once and needs a new token."
            )
        else:
            message = page._(
                "Revoke this personal token of %(user)s? Scripts that use it are refused "
                "from now on."
            )
        return page.confirm(
            page._("Revoke token?"),
            message % {"user": user_id},
            URL + "/revoke",
            {"user_id": user_id, "token_id": token_id, "kind": kind},
            URL,
            note=page._("Token ID: %(id)s") % {"id": token_id},
            button=page._("Revoke"),
            nav="tokens",
        )
    try:
        await page.hub.revoke_agent_token(user_id, token_id, kind)
    except Rejected:
        page.flash(page._("That token does not exist (any more)."), "error")
        return back(URL)
    page.flash(page._("Token of %(user)s revoked.") % {"user": user_id})
    return back(URL)


__all__ = ["router"]

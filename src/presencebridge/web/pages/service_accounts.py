"""The service accounts of read mode notify in the console (`/console/service-accounts`,
issue 18): each account's state and how many users its subscriptions watch; adding
one (a device-code sign-in whose code, link and expiry the page shows), signing one in
again, removing one. The same `ServiceAccounts` calls as the admin API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from presencebridge.adapters.credentials import CredentialStoreUnavailable
from presencebridge.adapters.graph.subscriptions import ACCOUNT_NAME
from presencebridge.web.forms import Posted, SignedIn
from presencebridge.web.labels import N_
from presencebridge.web.page import Page, back, path_part

router = APIRouter(include_in_schema=False)
URL = "/console/service-accounts"
STATUS = {
    "active": N_("signed in"),
    "pending": N_("sign-in pending"),
    "error": N_("error"),
    "signed_out": N_("signed out"),
}
EXPIRED = "the sign-in has expired"  # `ServiceAccounts.token`'s words, said in the page's


def _sync(page: Page) -> Any:
    return getattr(page.request.app.state, "teams_sync", None)


def anchor(name: str) -> str:
    return "account-" + path_part(name)


def _account(page: Page, sync: Any, row: dict[str, Any], users: dict[str, int]) -> dict[str, Any]:
    name = row["name"]
    detail = row["detail"]
    if detail and detail.startswith(EXPIRED):
        detail = page._("The sign-in has expired: sign the account in again.")
    return {
        **row,
        "anchor": anchor(name),
        "status_text": page._(STATUS.get(row["status"], STATUS["error"])),
        "detail": detail,
        "users": users.get(name),
        "code": sync.accounts.device_code(name),
    }


async def _show(
    page: Page, status_code: int = 200, errors: dict[str, str] | None = None, name: str = ""
) -> Response:
    sync = _sync(page)
    accounts = None if sync is None else sync.accounts
    rows: list[dict[str, Any]] = []
    if accounts is not None:
        manager = sync.manager
        users = {} if manager is None else manager.users_by_account()
        rows = [_account(page, sync, row, users) for row in accounts.describe()]
    return page.render(
        "service_accounts.html",
        status_code,
        sync_on=sync is not None,
        notify=accounts is not None,
        accounts=rows,
        errors=errors or {},
        name=name,
        nav="accounts",
    )


@router.get(URL)
async def show_service_accounts(page: SignedIn) -> Response:
    return await _show(page)


@router.post(URL)
async def sign_in_service_account(form: Posted) -> Response:
    """A new account, or an account signed in again: a device code to enter."""
    page = form.page
    name = form.text("name")
    sync = _sync(page)
    if sync is None or sync.accounts is None:
        return await _show(page, 409)
    if not ACCOUNT_NAME.match(name):
        message = page._("1 to 64 letters, digits and . _ - only, starting with a letter or digit.")
        return await _show(page, 422, {"name": message}, name)
    try:
        await sync.accounts.begin_sign_in(name)
    except CredentialStoreUnavailable:
        message = page._(
            "The token cache cannot be encrypted on this server: set PRESENCEBRIDGE_SECRET_KEY "
            "and restart the server."
        )
        return page.problem(409, message)
    except RuntimeError as error:
        message = page._("The sign-in service refused the device code: %(why)s") % {"why": error}
        return page.problem(502, message)
    await page.hub.audit("service_account.sign_in_started", name)
    page.flash(page._("Sign-in of %(name)s started: enter the code shown.") % {"name": name})
    return back(f"{URL}#{anchor(name)}")


@router.post(URL + "/remove")
async def remove_service_account(form: Posted) -> Response:
    page = form.page
    name = form.text("name")
    sync = _sync(page)
    known = sync is not None and sync.accounts is not None and name in sync.accounts
    if not known:
        page.flash(page._("That service account does not exist (any more)."), "error")
        return back(URL)
    if not form.confirmed:
        message = page._(
            "Remove the service account “%(name)s”? Its subscriptions end and the users it "
            "watched go to the other service accounts, or are read by polling; its stored "
            "sign-in is deleted."
        )
        return page.confirm(
            page._("Remove service account?"),
            message % {"name": name},
            URL + "/remove",
            {"name": name},
            f"{URL}#{anchor(name)}",
            button=page._("Remove"),
            nav="accounts",
        )
    if not await sync.accounts.remove(name):
        page.flash(page._("That service account does not exist (any more)."), "error")
        return back(URL)
    await page.hub.audit("service_account.removed", name)
    page.flash(page._("Service account %(name)s removed.") % {"name": name})
    return back(URL)


__all__ = ["router"]

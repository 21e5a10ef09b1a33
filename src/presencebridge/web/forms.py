"""The common opening of every console handler, written once.

* `SignedIn` (a GET page's parameter): the request's `Page`, or the way to the
  sign-in page.
* `Posted` / `PostedAnonymously` (a form handler's parameter): the submitted form,
  after the CSRF and origin check (403 saying why, in words) and, for `Posted`, the
  sign-in check (to the sign-in page, or 401 for `fetch`). A form of a session that
  has ended is no attack: it goes to the sign-in page, which says so, and back.
* `Form.valid(model, values, show_again)`: the values checked by the API's own
  schema; when a field is wrong, the form's page again (422) with a translated
  message next to the field (`field_message`: never pydantic's English).

A refusal is raised as `Refused(response)`; `install(app)` answers it with that
response, so a handler reads from the top down without `if ...: return` openings.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from presencebridge import metrics
from presencebridge.api.access import ACCESS, Access, Principal, decide, refusal, route_key
from presencebridge.service import audit
from presencebridge.web import security, signin_page
from presencebridge.web.labels import CHARACTER_KINDS, N_
from presencebridge.web.page import (
    LOGIN_PATH,
    SECURITY_HEADERS,
    Page,
    here,
    login_again,
    to_login,
    wants_json,
)

MIC_ENABLE = "MicrophoneUsageSync.Enable"
MIC_WHITELIST = "MicrophoneUsageSync.ProcessWhitelist"
OFFICE_NETWORKS = "teams_work_location_office_networks"

# Translated messages for the validation errors a form can produce (pydantic's type -> text);
# the parameters come from the error's context (`max_length`, as pydantic names it).
FIELD_MESSAGES = {
    "missing": N_("Required."),
    "string_too_short": N_("Required."),
    "string_too_long": N_("Too long: at most %(max_length)s characters."),
    "too_long": N_("Too many: at most %(max_length)s entries."),
    "string_type": N_("Required."),
    "enum": N_("Choose one of the offered values."),
    "literal_error": N_("Choose one of the offered values."),
    "bool_parsing": N_("Choose yes or no."),
    "bool_type": N_("Choose yes or no."),
    "int_parsing": N_("Choose yes or no."),
    "int_type": N_("Choose yes or no."),
    "greater_than_equal": N_("Choose yes or no."),
    "less_than_equal": N_("Choose yes or no."),
    "datetime_type": N_("Enter a date and time."),
    "datetime_parsing": N_("Enter a date and time."),
    "datetime_from_date_parsing": N_("Enter a date and time."),
    "timezone_aware": N_("Enter a date and time."),
    "extension": N_("Extensions: digits, * and # only, 1 to 16 characters each."),
    "process_name": N_(
        "Not a process name: %(name)s. Separate names with commas or semicolons; "
        '* ? " < > | are not allowed.'
    ),
}
PATTERN_MESSAGES = {
    "id": N_("Letters, digits and . _ @ + - only, starting with a letter or digit."),
    "user_id": N_("Letters, digits and . _ @ + - only, starting with a letter or digit."),
    "group": N_("Letters, digits and . _ @ + - only, starting with a letter or digit."),
    "teams_user_id": N_("Letters, digits and . _ @ + - only, starting with a letter or digit."),
    "color": N_("A colour like #1a7f37."),
    "email": N_("An address like name@example.com."),
}
# A name the API refuses (`api.schemas._check_name`), by why.
NAME_MESSAGES = {
    "empty": N_("Required."),
    "too_long": N_("Too long: at most %(max_length)s characters."),
    "dots": N_("“.” and “..” cannot be used as names: choose another name."),
}
CHARACTER_MESSAGE = N_(
    "Contains %(kind)s (U+%(code)s at character %(position)s), which cannot be stored."
)
# Anything else a field can be refused for: still said in the reader's language.
OTHER_PROBLEM = N_("This value is not allowed here.")

Model = TypeVar("Model", bound=BaseModel)
# Renders the form's page again: (status code, messages by field) -> the page.
ShowAgain = Callable[[int, dict[str, str]], Awaitable[Response]]


class Refused(Exception):
    """The request ends here with `response` (sign-in, 403, a form shown again)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _refused(_request: Request, error: Exception) -> Response:
    assert isinstance(error, Refused)
    return error.response


def install(app: FastAPI) -> None:
    """Answer a `Refused` with its response."""
    app.add_exception_handler(Refused, _refused)


@dataclass(frozen=True, slots=True)
class Form:
    """A submitted console form and the page it came from."""

    page: Page
    data: FormData

    @property
    def request(self) -> Request:
        return self.page.request

    def text(self, name: str) -> str:
        value = self.data.get(name)
        return value.strip() if isinstance(value, str) else ""

    def optional(self, name: str) -> str | None:
        return self.text(name) or None

    def checked(self, name: str, value: str = "true") -> bool:
        return self.data.get(name) == value

    def profile_fields(self) -> dict[str, Any]:
        """The fields a user's profile and a group's central template share."""
        return {
            "name": self.text("name"),
            "status": self.text("status"),
            "text": self.text("text"),
            "color": self.text("color"),
            "call_forwarding": self.optional("call_forwarding"),
        }

    @property
    def confirmed(self) -> bool:
        """The second step of a deletion (`Page.confirm`) was taken."""
        return self.checked("confirm", "yes")

    def names(self, name: str) -> tuple[str, ...]:
        return tuple(str(n) for n in self.data.getlist(name))

    async def valid(
        self, model: type[Model], values: Mapping[str, Any], show_again: ShowAgain
    ) -> Model:
        """`values` checked by `model`, or `Refused` with the form's page shown again."""
        try:
            return model.model_validate(dict(values))
        except ValidationError as error:
            raise Refused(await show_again(422, field_errors(self.page, error))) from None


def field_errors(page: Page, error: ValidationError) -> dict[str, str]:
    """pydantic's errors as translated messages keyed by the form field's name."""
    result: dict[str, str] = {}
    for item in error.errors():
        where = str(item["loc"][0]) if item["loc"] else "form"
        result.setdefault(where, field_message(page, where, item))
    return result


def field_message(page: Page, where: str, item: Any) -> str:
    """One validation error in the page's language; never pydantic's English text."""
    kind = item["type"]
    context = dict(item.get("ctx") or {})
    message = OTHER_PROBLEM
    if kind == "string_pattern_mismatch":
        message = PATTERN_MESSAGES.get(where, OTHER_PROBLEM)
    elif kind == "refused_name":
        message = NAME_MESSAGES.get(str(context.get("why")), CHARACTER_MESSAGE)
    elif kind == "refused_character":
        message = CHARACTER_MESSAGE
    elif kind == "value_error" and where == OFFICE_NETWORKS:
        found = re.search(r"'(.*)'", str(item["msg"]))
        context["entry"] = found.group(1) if found else "?"
        message = N_(
            "Not a network in CIDR form: %(entry)s. Separate networks with commas or "
            "semicolons, e.g. 10.20.0.0/16; 2001:db8:5::/48."
        )
    elif kind in FIELD_MESSAGES:
        message = FIELD_MESSAGES[kind]
    if message is CHARACTER_MESSAGE:
        category = str(context.get("category", "Cc"))
        context["kind"] = page._(CHARACTER_KINDS.get(category, CHARACTER_KINDS["Cc"]))
    try:
        return page._(message) % context
    except (KeyError, TypeError, ValueError):  # a parameter missing: the words without it
        return page._(OTHER_PROBLEM)


async def _submitted(request: Request, need_sign_in: bool) -> Form:
    """The form of a state-changing request, or `Refused` (403 / sign-in)."""
    data = await request.form()
    page = Page(request)
    token = request.headers.get(security.CSRF_HEADER) or data.get(security.CSRF_FIELD)
    problem = security.csrf_problem(request, token if isinstance(token, str) else None)
    if problem is not None:
        if problem == security.CSRF_INVALID and await security.console_session(request) is None:
            # A form of a session that has ended (signed out, expired, a new admin token):
            # not an attack to refuse but a sign-in to ask for, back to the form's page.
            raise Refused(_session_ended(page, data, ended=True))
        raise Refused(_csrf_refusal(page, problem))
    if need_sign_in:
        if await security.console_session(request) is None:
            raise Refused(_session_ended(page, data, security.session_lost(request)))
        await authorize(request, page)
    return Form(page, data)


SESSION_ENDED_NOTICE = N_("Your session has expired or was ended. Please sign in again.")
# The CSRF check's problems (`security.csrf_problem`) in words for the page.
CSRF_MESSAGES = {
    security.CROSS_ORIGIN: N_(
        "Refused: the form was sent from another web site. Open the console itself and try again."
    ),
    security.CSRF_MISSING: N_(
        "Refused: the form came without its security token. Reload the page and try again."
    ),
    security.CSRF_INVALID: N_(
        "This form is out of date (you signed in again since it was shown). Reload the page "
        "and try again."
    ),
}


def _csrf_refusal(page: Page, problem: str) -> Response:
    metrics.REJECTED_REQUESTS.labels("403").inc()
    if wants_json(page.request):
        detail = f"{problem}: reload the page and try again"
        return JSONResponse({"detail": detail, "code": "csrf"}, 403, headers=SECURITY_HEADERS)
    heading = N_("Form out of date") if problem == security.CSRF_INVALID else N_("Refused")
    return page.problem(403, page._(CSRF_MESSAGES[problem]), heading)


def _session_ended(page: Page, data: FormData, ended: bool) -> Response:
    """The sign-in page (saying the session has ended), which keeps what the form held
    and leads back to the form's page; the sign-in form itself: to where it led."""
    metrics.REJECTED_REQUESTS.labels("401").inc()
    if wants_json(page.request):
        detail = {"detail": "the session has ended: sign in again", "code": "http_401"}
        return JSONResponse(detail, 401, headers=SECURITY_HEADERS)
    request = page.request
    typed_next = data.get("next")
    if request.url.path == LOGIN_PATH and isinstance(typed_next, str):
        return login_again(security.safe_next(typed_next))
    notice = page._(SESSION_ENDED_NOTICE) if ended else None
    replay = (request.url.path, signin_page.typed_fields(data))
    target = security.safe_next(here(request))
    return signin_page.login_page(page, 401, target, None, notice, replay)


async def posted(request: Request) -> Form:
    """Dependency: the form of a signed-in session's POST."""
    return await _submitted(request, need_sign_in=True)


async def posted_anonymously(request: Request) -> Form:
    """Dependency: the form of a POST that needs no sign-in (sign-in, sign-out, language)."""
    return await _submitted(request, need_sign_in=False)


async def authorize(request: Request, page: Page | None = None) -> Principal:
    """The session's principal, if the authorisation table lets it use this route; else
    `Refused`: to the sign-in page (401 for `fetch`), or a 403 page saying why."""
    who = security.principal_of(await security.console_session(request))
    access = ACCESS[route_key(request.scope)]
    answer = decide(access, who, request.path_params.get("user_id"))
    if answer is None:
        assert who is not None or access is Access.OPEN
        found = security.known_session(request)
        if found is not None:  # the changes this request makes are the session's
            audit.acting.set(security.actor_of(found))
        return who or Principal(is_admin=False, via="anonymous")
    metrics.REJECTED_REQUESTS.labels(str(answer)).inc()
    if answer == 401:
        if wants_json(request):
            detail = {"detail": "not signed in", "code": "http_401"}
            raise Refused(JSONResponse(detail, 401, headers=SECURITY_HEADERS))
        if request.method != "GET":  # a form: back to its page after signing in
            target = security.safe_next(here(request))
            raise Refused(login_again(target, security.session_lost(request)))
        raise Refused(to_login(request))
    page = page or Page(request)
    if wants_json(request):
        detail = {"detail": refusal(access), "code": "http_403"}
        raise Refused(JSONResponse(detail, 403, headers=SECURITY_HEADERS))
    if access is Access.ADMIN:
        message = page._("Only administrators may open this page.")
    else:
        message = page._("This page belongs to another user: you may open only your own.")
    raise Refused(page.render("forbidden.html", 403, message=message, nav=None))


async def signed_in_page(request: Request) -> Page:
    """Dependency: the page of a GET the session may open, else the sign-in page or 403."""
    page = Page(request)
    await authorize(request, page)
    return page


Posted = Annotated[Form, Depends(posted)]
PostedAnonymously = Annotated[Form, Depends(posted_anonymously)]
SignedIn = Annotated[Page, Depends(signed_in_page)]

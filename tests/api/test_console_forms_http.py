"""Every console form's error paths, in German and in English (issue 18).

Each wrong input must come back as the form again (never a 500), the input kept, the
field marked (`aria-invalid`), the message in the page's language; a refusal shown as a
flash on the next page likewise. A German page fails on tell-tale English words, and
any page on the word None. Sessions that ended send to the sign-in page saying so.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from presencebridge.api.app import create_app
from presencebridge.config import Settings
from presencebridge.web import security
from tests.api.test_console_http import csrf, signed_in
from tests.support.server import ADMIN_TOKEN, ServerProcess, make_user

LANGUAGES = ("de", "en")
# Words that give away an English (or Python) text on a German page.
ENGLISH = (
    " must ",
    "should",
    "exists already",
    "Input ",
    "not allowed",
    "Not allowed",
    "Field required",
    "Value error",
    "is not in the user",
    "Refused",
    "Unknown ",
    "That did not work",
    "Too long",
    "Required.",
    "CSRF",
    "Not Found",
    '{"detail"',
)
# Python's None shown as a value ("Available · None"); "None:" and "None." are words.
NONE = re.compile(r"\bNone\b(?![:.])")


class _Text(HTMLParser):
    """What a reader sees or hears: text outside scripts, and the spoken attributes."""

    SPOKEN = ("aria-label", "title", "placeholder", "alt")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self.parts += [value for name, value in attrs if name in self.SPOKEN and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def shown_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def check_page(answer: httpx.Response, lang: str, what: str, server_error: bool = False) -> str:
    """The page is HTML in `lang`, with no English on a German page and no None."""
    if not server_error:
        assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.text[:300]}"
    assert answer.headers["content-type"].startswith("text/html"), what
    assert f'<html lang="{lang}">' in answer.text, what
    text = shown_text(answer.text)
    assert not NONE.search(text), f"{what}: 'None' on the page: {text[:500]}"
    if lang == "de":
        found = [word for word in ENGLISH if word in text]
        assert not found, f"{what}: English on a German page {found}: {text[:800]}"
    return text


def tag(html: str, element_id: str) -> str:
    found = re.search(
        rf'<(?:input|textarea|select)\b[^>]*\bid="{re.escape(element_id)}"[^>]*>', html
    )
    assert found, f"no field #{element_id}"
    return found.group(0)


@dataclass(frozen=True)
class Case:
    """One wrong input: the form, the status it answers, the field marked and its message."""

    what: str
    path: str
    data: dict[str, str]
    status: int
    field_id: str
    kept: tuple[str, ...] = ()  # form names whose typed value must come back
    message: dict[str, str] = field(default_factory=dict)  # lang -> part of the message


USER = "/console/users/alice"
LONG_NAME = "x" * 65
LONG_TEXT = "y" * 201
PROFILE = {"name": "Pause", "status": "away", "text": "Kurz weg", "color": "#0f6cbd"}
APPOINTMENT = {"subject": "Kunde", "start": "2030-05-04T10:00", "end": "2030-05-04T11:00"}
FORM_CASES = [
    Case(
        "profile name too long",
        f"{USER}/profiles",
        {**PROFILE, "name": LONG_NAME},
        422,
        "p-name",
        ("name",),
        {"de": "Zu lang: höchstens 64 Zeichen.", "en": "Too long: at most 64 characters."},
    ),
    Case("presence text too long", f"{USER}/profiles", {**PROFILE, "text": LONG_TEXT}, 422,
         "p-text", ("text",), {"de": "höchstens 200 Zeichen", "en": "at most 200 characters"}),
    Case("forwarding too long", f"{USER}/profiles", {**PROFILE, "call_forwarding": "1" * 129},
         422, "p-fwd", ("call_forwarding",), {"de": "höchstens 128 Zeichen"}),
    Case("reserved name", f"{USER}/profiles", {**PROFILE, "name": "Termin"}, 422, "p-name",
         ("name",), {"de": "„Termin“ ist der Name eines eingebauten Profils",
                     "en": "“Termin” is the name of a built-in profile"}),
    Case("reserved name, other case", f"{USER}/profiles", {**PROFILE, "name": "nicht STÖREN"},
         422, "p-name", ("name",), {"de": "eingebauten Profils"}),
    Case("profile exists", f"{USER}/profiles", {**PROFILE, "name": "Im Büro"}, 409, "p-name",
         ("name",), {"de": "Ein Profil namens „Im Büro“ gibt es schon",
                     "en": "A profile named “Im Büro” exists already"}),
    Case("dot name", f"{USER}/profiles", {**PROFILE, "name": ".."}, 422, "p-name", ("name",),
         {"de": "als Namen nicht möglich"}),
    Case("invisible character", f"{USER}/profiles", {**PROFILE, "name": "a\u200bb"}, 422,
         "p-name", (), {"de": "ein unsichtbares Formatzeichen (U+200B an Stelle 2)",
                        "en": "an invisible format character (U+200B at character 2)"}),
    Case("colour", f"{USER}/profiles", {**PROFILE, "color": "red"}, 422, "p-color", (),
         {"de": "Eine Farbe wie #1a7f37."}),
    Case("empty name", f"{USER}/profiles", {**PROFILE, "name": ""}, 422, "p-name", (),
         {"de": "Pflichtfeld", "en": "Required."}),
    Case("subject too long", f"{USER}/appointments", {**APPOINTMENT, "subject": LONG_TEXT},
         422, "a-subject", ("subject",), {"de": "höchstens 200 Zeichen"}),
    Case("end before start", f"{USER}/appointments", {**APPOINTMENT, "end": "2030-05-04T09:00"},
         422, "a-end", ("subject",), {"de": "Das Ende muss nach dem Beginn liegen.",
                                     "en": "The end must come after the start."}),
    Case("start not a time", f"{USER}/appointments", {**APPOINTMENT, "start": "morgen"}, 422,
         "a-start", ("subject",), {"de": "Datum und Uhrzeit", "en": "Enter a date and time."}),
    Case("unknown profile", f"{USER}/appointments", {**APPOINTMENT, "profile": "Gibtsnicht"},
         404, "a-profile", ("subject",), {"de": "„Gibtsnicht“ ist keines der Profile"}),
    Case("over already", f"{USER}/appointments",
         {**APPOINTMENT, "start": "2020-01-01T10:00", "end": "2020-01-01T11:00"}, 422, "a-end",
         ("subject",), {"de": "wäre schon vorbei", "en": "would be over already"}),
    Case("group name too long", "/console/groups", {"id": "neu", "name": LONG_TEXT}, 422,
         "g-name", ("id", "name"), {"de": "höchstens 200 Zeichen"}),
    Case("group id", "/console/groups", {"id": "bad id", "name": "Neu"}, 422, "g-id",
         ("id", "name"), {"de": "Nur Buchstaben"}),
    Case("group exists", "/console/groups", {"id": "hq", "name": "Neu"}, 409, "g-id", ("name",),
         {"de": "Es gibt bereits eine Gruppe mit dieser ID.",
          "en": "A group with this ID exists already."}),
    Case("display name too long", "/console/users",
         {"id": "carol", "display_name": LONG_TEXT, "group": "hq"}, 422, "u-name",
         ("display_name",), {"de": "höchstens 200 Zeichen"}),
    Case("user exists", "/console/users", {"id": "alice", "display_name": "A", "group": "hq"},
         409, "u-id", ("display_name",), {"en": "A user with this ID exists already."}),
    Case("teams id taken", "/console/users",
         {"id": "carol", "display_name": "Carol", "group": "hq", "teams_user_id": "tid-bob"},
         409, "u-teams", ("display_name",), {"de": "gehört zu Benutzer bob",
                                             "en": "belongs to user bob"}),
    Case("process list too long", "/console/groups/hq/settings",
         {"teams_sync_mode": "off", "MicrophoneUsageSync.ProcessWhitelist": "p" * 2001}, 422,
         "s-mic-list", (), {"de": "höchstens 2000 Zeichen"}),
    Case("process name", "/console/groups/hq/settings",
         {"teams_sync_mode": "off", "MicrophoneUsageSync.ProcessWhitelist": "zoom; te*ms"},
         422, "s-mic-list", ("MicrophoneUsageSync.ProcessWhitelist",),
         {"de": "Kein Prozessname: te*ms.", "en": "Not a process name: te*ms."}),
    Case("control character in the process list", "/console/groups/hq/settings",
         {"teams_sync_mode": "off", "MicrophoneUsageSync.ProcessWhitelist": "zoom\x00"}, 422,
         "s-mic-list", (), {"de": "ein Steuerzeichen (U+0000 an Stelle 5)",
                            "en": "a control character (U+0000"}),
    Case("template name too long", "/console/groups/hq/templates",
         {**PROFILE, "name": LONG_NAME}, 422, "t-name", ("name",), {"de": "höchstens 64 Zeichen"}),
    Case("reserved template name", "/console/groups/hq/templates", {**PROFILE, "name": "Termin"},
         422, "t-name", ("name",), {"de": "für die Vorlage einen anderen Namen",
                                    "en": "another name for the template"}),
    Case("template text too long", "/console/groups/hq/templates",
         {**PROFILE, "text": LONG_TEXT}, 422, "t-text", ("text",), {"en": "at most 200"}),
    Case("directory name too long", f"{USER}/directory",
         {"display_name": LONG_TEXT, "group": "hq"}, 422, "d-name", ("display_name",),
         {"de": "höchstens 200 Zeichen"}),
    Case("e-mail", f"{USER}/directory", {"display_name": "Alice", "group": "hq",
         "email": "nope"}, 422, "d-email", ("email",), {"de": "Eine Adresse wie"}),
    Case("extension", f"{USER}/directory", {"display_name": "Alice", "group": "hq",
         "extensions": "12ab"}, 422, "d-ext", ("extensions",), {"de": "Nebenstellen"}),
    Case("extension taken", f"{USER}/directory", {"display_name": "Alice", "group": "hq",
         "extensions": "2201"}, 409, "d-ext", ("extensions",), {"de": "2201 gehört Benutzer bob."}),
    Case("token name too long", f"{USER}/personal-tokens", {"name": LONG_NAME}, 422, "pt-name",
         ("name",), {"de": "höchstens 64 Zeichen"}),
]  # fmt: skip
# Refusals shown as a flash on the page the browser goes back to.
FLASH_CASES = [
    ("select unknown", f"{USER}/profile", {"name": "Gibtsnicht"},
     {"de": "„Gibtsnicht“ ist keines der Profile", "en": "“Gibtsnicht” is not one of"}),
    ("delete unknown profile", f"{USER}/profiles/delete", {"name": "Gibtsnicht"},
     {"de": "kein eigenes Profil", "en": "is no own profile"}),
    ("delete unknown profile, confirmed", f"{USER}/profiles/delete",
     {"name": "Gibtsnicht", "confirm": "yes"}, {"de": "kein eigenes Profil"}),
    ("delete unknown appointment", f"{USER}/appointments/nope/delete", {"confirm": "yes"},
     {"de": "Diesen Termin gibt es nicht", "en": "This appointment does not exist"}),
    ("move unknown", f"{USER}/profiles/move", {"name": "nope", "direction": "up"}, {}),
    ("delete unknown template", "/console/groups/hq/templates/delete", {"name": "nope"},
     {"de": "Diese Vorlage gibt es nicht"}),
    ("delete group in use", "/console/groups/hq/delete", {"confirm": "true"},
     {"de": "Die Gruppe hat noch 2 Benutzer"}),
]  # fmt: skip


@pytest.fixture
def console(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as api:
        make_user(api, "alice", "hq")
        body = {"id": "bob", "display_name": "Bob", "group": "hq", "teams_user_id": "tid-bob"}
        assert api.post("/api/v1/users", json=body).status_code == 201
        assert api.patch("/api/v1/users/bob", json={"extensions": ["2201"]}).status_code == 200
        profile = {**PROFILE, "name": "Im Büro"}
        assert api.post("/api/v1/users/alice/profiles", json=profile).status_code == 201
    with signed_in(server) as client:
        yield client


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_form_answers_wrong_input_with_the_form_in_the_page_language(
    console: httpx.Client, lang: str
) -> None:
    headers = {"Accept-Language": lang}
    token = csrf(console.get("/console/groups", headers=headers))
    for case in FORM_CASES:
        answer = console.post(case.path, data={**case.data, "csrf_token": token}, headers=headers)
        text = check_page(answer, lang, case.what)
        assert answer.status_code == case.status, f"{case.what}: {answer.status_code}: {text}"
        field_tag = tag(answer.text, case.field_id)
        assert 'aria-invalid="true"' in field_tag, f"{case.what}: {field_tag}"
        assert f'id="{case.field_id}-error"' in answer.text, case.what
        for name in case.kept:
            assert f'value="{escape(case.data[name])}"' in answer.text, f"{case.what}: {name}"
        if lang in case.message:
            assert case.message[lang] in text, f"{case.what}: {text[:1500]}"
    for what, path, data, message in FLASH_CASES:
        answer = console.post(path, data={**data, "csrf_token": token}, headers=headers)
        assert answer.status_code == 303, f"{what}: {answer.status_code}"
        shown = check_page(console.get(answer.headers["location"], headers=headers), lang, what)
        if lang in message:
            assert message[lang] in shown, f"{what}: {shown[:1500]}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_inputs_carry_the_model_limits_and_the_card_shows_no_none(
    console: httpx.Client, lang: str
) -> None:
    headers = {"Accept-Language": lang}
    user = console.get(USER, headers=headers)
    check_page(user, lang, "user page")  # no profile chosen: no "· None" on the card
    limits = {"p-name": 64, "p-text": 200, "p-fwd": 128, "a-subject": 200, "d-name": 200}
    limits |= {"d-teams": 128, "d-email": 254, "pt-name": 64}
    groups = console.get("/console/groups", headers=headers)
    limits_groups = {"g-id": 128, "g-name": 200, "u-id": 128, "u-name": 200, "u-teams": 128}
    group = console.get("/console/groups/hq", headers=headers)
    templates = console.get("/console/groups/hq/templates", headers=headers)
    for page, expected in (
        (user, limits),
        (groups, limits_groups),
        (group, {"s-mic-list": 2000}),
        (templates, {"t-name": 64, "t-text": 200, "t-fwd": 128}),
    ):
        for element_id, limit in expected.items():
            assert f'maxlength="{limit}"' in tag(page.text, element_id), element_id


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_process_list_takes_semicolons_and_warns_about_paths(
    server: ServerProcess, console: httpx.Client, lang: str
) -> None:
    headers = {"Accept-Language": lang}
    token = csrf(console.get("/console/groups/hq", headers=headers))
    typed = "C:\\Programme\\Zoom\\Zoom.exe; teams"
    data = {"teams_sync_mode": "off", "MicrophoneUsageSync.ProcessWhitelist": typed}
    saved = console.post(
        "/console/groups/hq/settings", data={**data, "csrf_token": token}, headers=headers
    )
    assert saved.status_code == 303, saved.text
    page = console.get(saved.headers["location"], headers=headers)
    text = check_page(page, lang, "process list saved")
    warning = {"de": "Es zählt nur der Programmname", "en": "Only the program's name counts"}
    assert warning[lang] in text and "C:\\Programme\\Zoom\\Zoom.exe → zoom" in text
    assert "\\\\" not in text  # never a doubled backslash
    with server.client() as api:
        stored = api.get("/api/v1/groups/hq/settings").json()
        assert (
            stored["MicrophoneUsageSync.ProcessWhitelist"] == "C:\\Programme\\Zoom\\Zoom.exe,teams"
        )
        # The API takes the same list the same way, and refuses the same names.
        body = {"MicrophoneUsageSync.ProcessWhitelist": "zoom.exe; teams"}
        assert api.patch("/api/v1/groups/hq/settings", json=body).status_code == 200
        stored = api.get("/api/v1/groups/hq/settings").json()
        assert stored["MicrophoneUsageSync.ProcessWhitelist"] == "zoom.exe,teams"
        body = {"MicrophoneUsageSync.ProcessWhitelist": "zoom*"}
        refused = api.patch("/api/v1/groups/hq/settings", json=body)
        assert refused.status_code == 422
        assert "not a process name: zoom*" in refused.json()["detail"]


def test_the_api_refuses_reserved_profile_names_naming_the_field(server: ServerProcess) -> None:
    with server.client() as api:
        make_user(api, "alice", "hq")
        for name in ("Termin", "termin", "Abwesend"):
            body = {**PROFILE, "name": name}
            refused = api.post("/api/v1/users/alice/profiles", json=body)
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"].startswith("name: "), refused.text
        ok = api.post("/api/v1/users/alice/profiles", json={**PROFILE, "name": "MS Teams"})
        assert ok.status_code == 201
        template = {**PROFILE, "name": "abwesend"}
        refused = api.post("/api/v1/groups/hq/templates", json=template)
        assert refused.status_code == 422 and refused.json()["detail"].startswith("name: ")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_error_pages_have_their_own_heading_and_the_menu(console: httpx.Client, lang: str) -> None:
    headers = {"Accept-Language": lang}
    expected = {
        "/console/nope": (404, {"de": "Seite nicht gefunden", "en": "Page not found"}),
        "/nope": (404, {"de": "Seite nicht gefunden", "en": "Page not found"}),
        "/console/users/nobody": (404, {"de": "Nicht gefunden", "en": "Not found"}),
        f"{USER}/profiles": (405, {"de": "So nicht möglich", "en": "Not possible this way"}),
    }
    menu = {"de": "Hauptmenü", "en": "Main menu"}
    for path, (status, heading) in expected.items():
        answer = console.get(path, headers=headers)
        assert answer.status_code == status, path
        check_page(answer, lang, path)
        assert f"<title>{heading[lang]} · presencebridge</title>" in answer.text, path
        assert re.search(rf"<h1>\s*{heading[lang]}\s*</h1>", answer.text), path
        assert f'aria-label="{menu[lang]}"' in answer.text, path  # signed in: the menu
    api = console.get("/api/v1/nope", headers=headers)
    assert api.status_code == 404 and api.headers["content-type"] == "application/json"
    assert api.json()["code"] == "http_404"


SESSION_ENDED = {
    "de": "Ihre Sitzung ist abgelaufen oder wurde beendet. Bitte melden Sie sich erneut an.",
    "en": "Your session has expired or was ended. Please sign in again.",
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_form_of_an_ended_session_asks_to_sign_in_keeps_the_input_and_leads_back(
    server: ServerProcess, console: httpx.Client, lang: str
) -> None:
    headers = {"Accept-Language": lang}
    token = csrf(console.get(USER, headers=headers))
    cookie = console.cookies["pb_console"]
    assert console.post("/console/logout", data={"csrf_token": token}).status_code == 303
    typed = {**PROFILE, "name": "Nach der Pause", "text": "Gleich zurück"}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as stale:
        stale.cookies.set("pb_console", cookie)  # the tab still open on the user's page
        sent = stale.post(
            f"{USER}/profiles",
            data={**typed, "csrf_token": token},
            headers={"Referer": server.url + USER},
        )
        assert sent.status_code == 401, sent.text[:300]
        text = check_page(sent, lang, "sign-in after the session ended")
        assert SESSION_ENDED[lang] in text and "CSRF" not in text
        assert f'name="next" value="{USER}"' in sent.text
        assert f'name="replay_action" value="{USER}/profiles"' in sent.text
        replay = re.search(r'name="replay" value="([^"]*)"', sent.text)
        assert replay is not None
        kept = html.unescape(replay.group(1))
        assert "Nach der Pause" in kept and token not in kept  # what was typed, no token
        form = {
            "token": ADMIN_TOKEN,
            "csrf_token": csrf(sent),
            "next": USER,
            "replay_action": f"{USER}/profiles",
            "replay": kept,
        }
        offered = stale.post("/console/login", data=form)
        assert offered.status_code == 200, offered.text[:300]
        check_page(offered, lang, "send the form again")
        assert f'action="{USER}/profiles"' in offered.text
        assert f'href="{USER}"' in offered.text  # or back without it
        with server.client() as api:  # nothing is sent again without the click
            names = [p["name"] for p in api.get("/api/v1/users/alice/profiles").json()]
            assert "Nach der Pause" not in names
        fields = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', offered.text))
        assert fields["name"] == "Nach der Pause" and fields["text"] == "Gleich zurück"
        again = stale.post(
            f"{USER}/profiles", data={k: html.unescape(v) for k, v in fields.items()}
        )
        assert again.status_code == 303 and again.headers["location"] == f"{USER}#profiles"
        with server.client() as api:
            names = [p["name"] for p in api.get("/api/v1/users/alice/profiles").json()]
            assert "Nach der Pause" in names
        # A sign-in form cannot be made to send to anywhere but a console form.
        for action in ("https://evil.example/x", "//evil.example/x", "/api/v1/groups"):
            form = {**form, "csrf_token": csrf(stale.get("/")), "replay_action": action}
            assert stale.post("/console/login", data=form).status_code == 303, action


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_cookie_of_an_earlier_admin_token_says_why_it_signs_in_again(
    server: ServerProcess, lang: str
) -> None:
    headers = {"Accept-Language": lang}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as browser:
        # What a restart with a new admin token leaves: a cookie signed with the old key.
        browser.cookies.set("pb_console", "eyJzaWQiOiAieCJ9.old.signature")
        board = browser.get("/")
        assert board.status_code == 303
        login = browser.get(board.headers["location"])
        assert SESSION_ENDED[lang] in check_page(login, lang, "board after a new token")
        # The live board itself goes to the sign-in page when its stream is refused
        # (board.js: /console/login?next=/): the cookie alone tells why.
        browser.cookies.clear()  # one cookie, as a browser holds it
        browser.cookies.set("pb_console", "eyJzaWQiOiAieCJ9.old.signature")
        direct = browser.get("/console/login", params={"next": "/"})
        assert SESSION_ENDED[lang] in check_page(direct, lang, "board's own way to sign-in")
        # The same for a form sent from a page shown before the restart.
        browser.cookies.clear()
        browser.cookies.set("pb_console", "eyJzaWQiOiAieCJ9.old.signature")
        sent = browser.post(
            "/console/groups",
            data={"id": "x", "name": "Neue Gruppe", "csrf_token": "t" * 43},
            headers={"Referer": server.url + "/console/groups"},
        )
        assert sent.status_code == 401
        assert SESSION_ENDED[lang] in check_page(sent, lang, "form after a new token")
        assert 'name="next" value="/console/groups"' in sent.text
        assert "Neue Gruppe" in sent.text  # kept for sending again
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as fresh:
        first = fresh.get("/console/login")  # never signed in: nothing to explain
        assert SESSION_ENDED[lang] not in check_page(first, lang, "first visit")


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example",
     "/\n/evil.example", "javascript:alert(1)", "", "evil.example"],
)  # fmt: skip
def test_next_takes_only_paths_on_this_site(target: str) -> None:
    assert security.safe_next(target) == "/"


def test_next_keeps_a_console_path_with_its_query() -> None:
    assert security.safe_next("/console/users/a?edit=x#p") == "/console/users/a?edit=x#p"


def test_a_fault_no_form_foresaw_is_a_page_in_the_reader_language(tmp_path: Path) -> None:
    """The safety net under every form: an unforeseen error is still a console page (with
    a heading saying so), not a bare English "Internal Server Error"; the API keeps it plain."""
    app = create_app(Settings(admin_token=ADMIN_TOKEN, data_dir=tmp_path))

    async def boom() -> None:
        raise RuntimeError("a fault")

    app.add_api_route("/console/boom", boom)
    app.add_api_route("/api/v1/boom", boom)
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: no hub needed
    for lang, heading in (("de", "Serverfehler"), ("en", "Server error")):
        answer = client.get("/console/boom", headers={"Accept-Language": lang})
        assert answer.status_code == 500
        text = check_page(answer, lang, "server error", server_error=True)
        assert f"<h1>{heading}</h1>" in answer.text and "a fault" not in text
    plain = client.get("/api/v1/boom")
    assert plain.status_code == 500 and plain.text == "Internal Server Error"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_deleting_asks_first_in_the_page_language(
    server: ServerProcess, console: httpx.Client, lang: str
) -> None:
    headers = {"Accept-Language": lang}
    with server.client() as api:
        template = {**PROFILE, "name": "Kantine"}
        assert api.post("/api/v1/groups/hq/templates", json=template).status_code == 201
    token = csrf(console.get(USER, headers=headers))
    asks = {
        f"{USER}/profiles/delete": ({"name": "Im Büro"}, {"de": "Profil löschen?"}),
        "/console/groups/hq/templates/delete": ({"name": "Kantine"}, {"de": "Vorlage löschen?"}),
    }
    for path, (data, heading) in asks.items():
        asked = console.post(path, data={**data, "csrf_token": token}, headers=headers)
        assert asked.status_code == 200, path
        text = check_page(asked, lang, path)
        if lang in heading:
            assert heading[lang] in text
        assert f'value="{escape(data["name"])}"' in asked.text  # the same form, confirmed
        assert 'name="confirm" value="yes"' in asked.text and 'id="confirm-cancel"' in asked.text
    with server.client() as api:  # nothing deleted yet
        assert "Im Büro" in [p["name"] for p in api.get("/api/v1/users/alice/profiles").json()]
        assert "Kantine" in [t["name"] for t in api.get("/api/v1/groups/hq/templates").json()]
    for path, (data, _heading) in asks.items():
        done = console.post(path, data={**data, "confirm": "yes", "csrf_token": token})
        assert done.status_code == 303, path
    with server.client() as api:
        assert "Im Büro" not in [p["name"] for p in api.get("/api/v1/users/alice/profiles").json()]
        assert "Kantine" not in [t["name"] for t in api.get("/api/v1/groups/hq/templates").json()]

"""The `presencebridge` command. Thin: parse, load settings, call into the package."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from presencebridge import __version__
from presencebridge.config import Settings, load_settings

app = typer.Typer(
    help="Presence hub between Microsoft Teams and a PBX / UC system.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
groups_app = typer.Typer(
    help="Configuration groups (talks to a running server).", no_args_is_help=True
)
users_app = typer.Typer(help="Users (talks to a running server).", no_args_is_help=True)
app.add_typer(groups_app, name="groups")
app.add_typer(users_app, name="users")
directory_app = typer.Typer(
    help="The directory sync (talks to a running server).", no_args_is_help=True
)
app.add_typer(directory_app, name="directory")

out = Console()
err = Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """An error shown to the operator as one line."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"configuration error: {where}: {first['msg']}")
    except (FileNotFoundError, ValueError) as error:
        fail(f"configuration error: {error}")


ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML configuration file")]


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="folder for the SQLite database")] = None,
    allow_clock_control: Annotated[
        bool, typer.Option(help="allow POST /api/v1/admin/clock (demos and tests)")
    ] = False,
    graph: Annotated[
        str | None,
        typer.Option(help="'emulator': run the embedded Graph emulator instead of Graph"),
    ] = None,
) -> None:
    """Run the server (default 127.0.0.1:8080)."""
    from presencebridge.server import run_loop
    from presencebridge.server import serve as run_server

    if graph not in (None, "emulator"):
        fail(f"--graph takes only 'emulator', not {graph!r}")
    settings = _settings(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        allow_clock_control=allow_clock_control or None,
    )
    if settings.admin_token is None:
        fail("PRESENCEBRIDGE_ADMIN_TOKEN is not set: the API needs an admin token")
    run_loop(run_server(settings, graph_emulator=graph == "emulator"))


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    data_dir: Annotated[
        Path | None, typer.Option(help="keep the demo's data here (default: a fresh temp folder)")
    ] = None,
    pace: Annotated[float, typer.Option(min=0.05, max=10, help="slow down (>1) or speed up")] = 1.0,
    with_sip: Annotated[
        bool,
        typer.Option(
            "--with-sip",
            help="also start Kamailio (when installed) as PBX and presence server: the "
            "hub watches the sample extensions' calls there and publishes their presence",
        ),
    ] = False,
) -> None:
    """Run the server on SQLite with the embedded Graph emulator, sample users and a
    scripted office day (PBX calls, Teams calls, screen sharing, DnD), told in the
    terminal in PRESENCEBRIDGE_LANGUAGE (en, de). Ctrl+C or SIGTERM stops it (exit code 0)."""
    from presencebridge.demo import run_demo, sip_tables, start_kamailio

    folder = data_dir or Path(tempfile.mkdtemp(prefix="presencebridge-demo-"))
    kamailio = start_kamailio(folder) if with_sip else None
    language = os.environ.get("PRESENCEBRIDGE_LANGUAGE", "en")
    sip = (
        {}
        if kamailio is None or isinstance(kamailio, str)
        else sip_tables(kamailio.domain, language)
    )
    token = os.environ.get("PRESENCEBRIDGE_ADMIN_TOKEN") or secrets.token_urlsafe(16)
    # The story is the demo's output; the server's logs show warnings and errors only
    # unless PRESENCEBRIDGE_LOG_LEVEL asks for more (the access log stays off either way).
    quiet = {} if os.environ.get("PRESENCEBRIDGE_LOG_LEVEL") else {"log_level": "warning"}
    try:
        settings = Settings(
            host="127.0.0.1",
            port=port,
            data_dir=folder,
            database_url=None,
            admin_token=token,
            allow_clock_control=True,
            **quiet,  # type: ignore[arg-type]
            **sip,  # type: ignore[arg-type]
        )
    except ValidationError as error:
        if kamailio is not None and not isinstance(kamailio, str):
            kamailio.stop()
        first = error.errors()[0]
        fail(f"configuration error: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
    raise typer.Exit(run_demo(settings, pace, folder, kamailio))


# -- admin commands over the REST API ------------------------------------------------------

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="PRESENCEBRIDGE_SERVER", help="server base URL")
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="PRESENCEBRIDGE_ADMIN_TOKEN", help="admin token", show_default=False
    ),
]


def _send(
    server: str, token: str | None, method: str, path: str, timeout: float = 30, **request: Any
) -> httpx.Response:
    """The server's answer, or a one-line error (no token, unreachable, a refusal)."""
    if not token:
        fail("no admin token: pass --token or set PRESENCEBRIDGE_ADMIN_TOKEN")
    # The client header: the server's audit log records these changes as the command line's.
    headers = {
        "Authorization": f"Bearer {token}",
        "X-PresenceBridge-Client": "cli",
        **request.pop("headers", {}),
    }
    try:
        response = httpx.request(
            method, server.rstrip("/") + path, headers=headers, timeout=timeout, **request
        )
    except httpx.HTTPError as error:
        fail(f"cannot reach the server at {server}: {error}")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        fail(f"server answered {response.status_code}: {detail}")
    return response


def _call(
    server: str,
    token: str | None,
    method: str,
    path: str,
    body: Any = None,
    timeout: float = 30,
) -> Any:
    response = _send(server, token, method, path, timeout, json=body)
    return response.json() if response.content else None


def _setting_pairs(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"settings are KEY=VALUE, not {pair!r}")
        lowered = value.lower()
        settings[key] = {"true": True, "false": False}.get(lowered, value)
    return settings


@groups_app.command("create")
def group_create(
    group_id: str,
    name: str,
    setting: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE")] = None,
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Create a configuration group."""
    body = {"id": group_id, "name": name, "settings": _setting_pairs(setting or [])}
    group = _call(server, token, "POST", "/api/v1/groups", body)
    out.print(f"group {group['id']} created")


@groups_app.command("list")
def group_list(server: ServerOpt = "http://127.0.0.1:8080", token: TokenOpt = None) -> None:
    """List the configuration groups and their Teams sync mode."""
    table = Table("id", "name", "teams_sync_mode", "templates")
    for group in _call(server, token, "GET", "/api/v1/groups"):
        templates = ", ".join(t["name"] for t in group["templates"])
        table.add_row(group["id"], group["name"], group["settings"]["teams_sync_mode"], templates)
    out.print(table)


@groups_app.command("set")
def group_set(
    group_id: str,
    pairs: Annotated[list[str], typer.Argument(help="KEY=VALUE, keys of SPEC §5")],
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Change settings of a group."""
    settings = _call(
        server, token, "PATCH", f"/api/v1/groups/{group_id}/settings", _setting_pairs(pairs)
    )
    for key, value in settings.items():
        out.print(f"{key} = {value}")


@users_app.command("create")
def user_create(
    user_id: str,
    display_name: str,
    group: Annotated[str, typer.Option("--group", help="configuration group")],
    teams_user_id: Annotated[str | None, typer.Option(help="Entra object id")] = None,
    email: Annotated[str | None, typer.Option(help="UPN / e-mail")] = None,
    extension: Annotated[
        list[str] | None, typer.Option("--extension", help="PBX extension (repeatable)")
    ] = None,
    number: Annotated[
        list[str] | None, typer.Option("--number", help="phone number (repeatable)")
    ] = None,
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Create a user in a group."""
    body = {
        "id": user_id,
        "display_name": display_name,
        "group": group,
        "teams_user_id": teams_user_id,
        "email": email,
        "extensions": extension or [],
        "numbers": number or [],
    }
    _call(server, token, "POST", "/api/v1/users", body)
    out.print(f"user {user_id} created")


@users_app.command("list")
def user_list(server: ServerOpt = "http://127.0.0.1:8080", token: TokenOpt = None) -> None:
    """List users with their effective presence."""
    table = Table("id", "name", "group", "status", "text", "telephony")
    for user in _call(server, token, "GET", "/api/v1/users"):
        p = user["presence"]
        table.add_row(
            user["id"], user["display_name"], user["group"], p["status"], p["text"], p["telephony"]
        )
    out.print(table)


@users_app.command("agent-token")
def user_agent_token(
    user_id: str, server: ServerOpt = "http://127.0.0.1:8080", token: TokenOpt = None
) -> None:
    """Issue an agent token for a user (shown once; the server keeps only its hash)."""
    issued = _call(server, token, "POST", f"/api/v1/users/{user_id}/agent-tokens")
    out.print(issued["token"])


def _path(*parts: str) -> str:
    """API path segments, each percent-encoded (a template name may hold `/`)."""
    return "/".join(quote(part, safe="") for part in parts)


@groups_app.command("delete")
def group_delete(
    group_id: str, server: ServerOpt = "http://127.0.0.1:8080", token: TokenOpt = None
) -> None:
    """Delete an empty configuration group (refused while users are in it)."""
    _call(server, token, "DELETE", f"/api/v1/groups/{_path(group_id)}")
    out.print(f"group {group_id} deleted")


@groups_app.command("delete-template")
def group_delete_template(
    group_id: str,
    name: str,
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Delete a central profile template of a group."""
    _call(server, token, "DELETE", f"/api/v1/groups/{_path(group_id, 'templates', name)}")
    out.print(f"template {name} of group {group_id} deleted")


def _update_body(
    name: str | None,
    group: str | None,
    teams_user_id: str | None,
    email: str | None,
    extensions: list[str] | None,
    numbers: list[str] | None,
    clear: list[str],
) -> dict[str, Any]:
    """Only what was given; an empty --teams-user-id / --email clears it."""
    body: dict[str, Any] = {}
    given = {"display_name": name, "group": group, "extensions": extensions, "numbers": numbers}
    body.update({k: v for k, v in given.items() if v is not None})
    for key, value in (("teams_user_id", teams_user_id), ("email", email)):
        if value is not None:
            body[key] = value or None
    for what in clear:
        if what not in ("extensions", "numbers"):
            fail(f"--clear takes extensions or numbers, not {what!r}")
        body[what] = []
    if not body:
        fail("nothing to change: give at least one option (see --help)")
    return body


@users_app.command("update")
def user_update(
    user_id: str,
    name: Annotated[str | None, typer.Option("--name", help="display name")] = None,
    group: Annotated[str | None, typer.Option("--group", help="move to this group")] = None,
    teams_user_id: Annotated[
        str | None, typer.Option(help="Entra object id; '' removes it")
    ] = None,
    email: Annotated[str | None, typer.Option(help="UPN / e-mail; '' removes it")] = None,
    extension: Annotated[
        list[str] | None, typer.Option("--extension", help="PBX extension (repeatable)")
    ] = None,
    number: Annotated[
        list[str] | None, typer.Option("--number", help="phone number (repeatable)")
    ] = None,
    clear: Annotated[
        list[str] | None, typer.Option("--clear", help="'extensions' or 'numbers': remove all")
    ] = None,
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Change a user; only what is given changes (extensions and numbers are replaced)."""
    body = _update_body(name, group, teams_user_id, email, extension, number, clear or [])
    user = _call(server, token, "PATCH", f"/api/v1/users/{_path(user_id)}", body)
    out.print(
        f"user {user['id']} updated: group {user['group']}, "
        f"extensions {', '.join(user['extensions']) or '-'}, "
        f"numbers {', '.join(user['numbers']) or '-'}"
    )


@users_app.command("import")
def user_import(
    file: Annotated[Path, typer.Argument(help="CSV file: id,display_name,group,...")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only say what would change (per line)")
    ] = False,
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Create and update users from a CSV file; any bad line: nothing is written."""
    try:
        data = file.read_bytes()
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror or error}")
    params = {"dry_run": "true" if dry_run else "false"}
    headers = {"Content-Type": "text/csv"}
    answer = _send(
        server, token, "POST", "/api/v1/admin/users/import", 300,
        content=data, params=params, headers=headers,
    ).json()  # fmt: skip
    for line in answer["lines"]:
        typer.echo(("would " if dry_run else "") + line["text"])
    counts = ", ".join(f"{a} {answer[a]:,}" for a in ("create", "update", "unchanged"))
    typer.echo(("would " if dry_run else "") + counts)


@users_app.command("export")
def user_export(
    file: Annotated[
        Path | None, typer.Argument(help="write here (default: standard output)")
    ] = None,
    delimiter: Annotated[str, typer.Option(help="',' or ';' (German Excel)")] = ",",
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Every user as CSV, in the columns the import reads."""
    if delimiter not in (",", ";"):
        fail(f"--delimiter is ',' or ';', not {delimiter!r}")
    params = {"delimiter": delimiter}
    text = _send(server, token, "GET", "/api/v1/admin/users/export", params=params).text
    if file is None:
        typer.echo(text, nl=False)
        return
    try:
        file.write_text(text, encoding="utf-8", newline="")
    except OSError as error:
        fail(f"cannot write {file}: {error.strerror or error}")
    typer.echo(f"{text.count(chr(10)) - 1} user(s) written to {file}", err=True)


@users_app.command("delete")
def user_delete(
    user_id: str, server: ServerOpt = "http://127.0.0.1:8080", token: TokenOpt = None
) -> None:
    """Delete a user and everything of theirs; what the hub set in Teams is cleared."""
    _call(server, token, "DELETE", f"/api/v1/users/{_path(user_id)}")
    out.print(f"user {user_id} deleted")


@users_app.command("agent-tokens")
def user_agent_tokens(
    user_id: str, server: ServerOpt = "http://127.0.0.1:8080", token: TokenOpt = None
) -> None:
    """List a user's agent tokens (ids and when made; the tokens are never shown again)."""
    table = Table("id", "created_at")
    for issued in _call(server, token, "GET", f"/api/v1/users/{_path(user_id, 'agent-tokens')}"):
        table.add_row(issued["id"], issued["created_at"])
    out.print(table)


@users_app.command("revoke-token")
def user_revoke_token(
    user_id: str,
    token_id: str,
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Revoke an agent token: it stops working at once."""
    _call(server, token, "DELETE", f"/api/v1/users/{_path(user_id, 'agent-tokens', token_id)}")
    out.print(f"agent token {token_id} of {user_id} revoked")


@app.command()
def version() -> None:
    """Show the version."""
    out.print(__version__)


@app.command("graph-emulator")
def graph_emulator(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (HTTPS)")] = 8443,
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="folder of the CA (ca.pem) and keys [default: DATA_DIR/emulator-tls]"),
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="accept only apps registered with POST /_emulator/apps")
    ] = False,
) -> None:
    """Run the Microsoft Graph presence emulator alone, over HTTPS."""
    from presencebridge.emulator.server import default_tls_dir, run
    from presencebridge.logs import setup_logging

    folder = tls_dir or default_tls_dir()
    setup_logging("info", "text")
    base = f"https://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    out.print(f"[bold]presencebridge {__version__} Graph emulator[/bold]{' (strict)' * strict}")
    out.print(f"  Graph URL:  {base}/v1.0")
    out.print(f"  authority:  {base}/<tenant>   (any tenant)")
    out.print(f"  CA bundle:  {folder / 'ca.pem'}")
    out.print(f"  control:    {base}/_emulator/…   Ctrl+C stops it.")
    try:
        run(host, port, folder, strict)
    except OSError as error:
        fail(f"cannot serve the Graph emulator: {error}")


@app.command()
def agent(
    server: Annotated[str, typer.Option(envvar="PRESENCEBRIDGE_SERVER", help="hub base URL")],
    token: Annotated[
        str,
        typer.Option(envvar="PRESENCEBRIDGE_AGENT_TOKEN", help="agent token", show_default=False),
    ],
    state_dir: Annotated[
        Path | None, typer.Option(help="folder for the agent's state and remembered sign-in")
    ] = None,
    on_delay: Annotated[
        float, typer.Option(min=0, max=60, help="seconds of use before it counts")
    ] = 2.0,
    off_delay: Annotated[
        float, typer.Option(min=0, max=300, help="seconds of silence before it ends")
    ] = 5.0,
    ca_bundle: Annotated[
        Path | None, typer.Option(help="extra CA to trust (e.g. the Graph emulator's ca.pem)")
    ] = None,
) -> None:
    """Run the desktop agent: Microphone Sync and, if the group asks, the user's Teams sync."""
    from presencebridge.agent.runner import AgentOptions, default_state_dir, run_agent, stream_url
    from presencebridge.logs import setup_logging

    try:
        stream_url(server)
    except ValueError as error:
        fail(str(error))
    setup_logging(os.environ.get("PRESENCEBRIDGE_LOG_LEVEL", "info"), "text")
    options = AgentOptions(
        server, token, state_dir or default_state_dir(), on_delay, off_delay, ca_bundle
    )
    run_agent(options)


@app.command()
def bench(
    scenario: Annotated[
        str,
        typer.Argument(
            help="teams-to-uc, uc-to-teams, throughput, memory, poll-vs-notify, "
            "naive-baseline, directory, or all; growth plots the recorded runs by size"
        ),
    ],
    users: Annotated[
        str | None, typer.Option(help="user counts, comma-separated [default: the scenario's]")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="changes or events per second [default: the scenario's]")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="seconds of load per measurement")] = None,
    quick: Annotated[bool, typer.Option(help="a few users for a few seconds (smoke test)")] = False,
    full: Annotated[bool, typer.Option(help="the large sizes, up to 100,000 users")] = False,
    results: Annotated[Path, typer.Option("--out", help="folder for the results")] = Path(
        "bench/results"
    ),
) -> None:
    """Run a benchmark: emulator and server as separate processes; JSON and PNG to --out."""
    from presencebridge import bench as benchmarks

    if scenario == "growth":
        from presencebridge.bench import growth

        path = growth.write(results)
        for line in benchmarks.headline(path):
            out.print(f"  {line}", highlight=False, soft_wrap=True)
        out.print(f"  results: {path} and {path.with_suffix('.png')}", highlight=False)
        return
    names = list(benchmarks.SCENARIOS) if scenario == "all" else [scenario]
    unknown = [n for n in names if n not in benchmarks.SCENARIOS]
    if unknown:
        fail(f"unknown scenario {unknown[0]!r}; choose from {', '.join(benchmarks.SCENARIOS)}")
    try:
        sizes = None if users is None else [int(u) for u in users.split(",") if u.strip()]
    except ValueError:
        fail(f"--users takes whole numbers separated by commas, not {users!r}")
    failed = []
    for name in names:
        err.print(f"[bold]bench {name}[/bold] …")
        try:
            path = benchmarks.run(name, sizes, rate, duration, quick=quick, full=full, out=results)
        except Exception as error:  # one scenario's failure must not lose the others
            err.print_exception(max_frames=8)
            err.print(f"[red]bench {name} failed:[/red] {error!r}", highlight=False)
            failed.append(name)
            continue
        for line in benchmarks.headline(path):
            out.print(f"  {line}", highlight=False, soft_wrap=True)
        out.print(
            f"  results: {path} and {path.with_suffix('.png')}", highlight=False, soft_wrap=True
        )
    if failed:
        fail(f"scenarios failed: {', '.join(failed)}")


def main() -> None:
    try:
        app()
    except CliError as error:
        # Escaped: a message may name a table such as [[publish]], which is rich markup.
        err.print(f"[red]error:[/red] {escape(str(error))}", highlight=False)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


@directory_app.command("sync")
def directory_sync(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only say what would change (per user)")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="pass the safety stop (max_removal_share)")
    ] = False,
    source: Annotated[
        str | None, typer.Option("--source", help="one [[directory]] by name; default all")
    ] = None,
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Sync users from the configured directories now: "create 12, update 3, …"."""
    body = {"dry_run": dry_run, "force": force, "source": source}
    answer = _call(server, token, "POST", "/api/v1/admin/directory/sync", body, timeout=3600)
    for run in answer["runs"]:
        typer.echo(run["text"])
    if not answer["ok"]:
        raise typer.Exit(1)


@directory_app.command("show")
def directory_show(
    server: ServerOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Each directory source: its rules in effect, where they come from, its last run."""
    answer = _call(server, token, "GET", "/api/v1/admin/directory")
    if not answer["sources"]:
        typer.echo("no directory is configured ([[directory]] in the configuration file)")
    for source in answer["sources"]:
        typer.echo("\n".join(_directory_lines(source)))


def _directory_lines(source: dict[str, Any]) -> list[str]:
    name = source["name"]
    if source["rules_source"] == "console":
        how = {"api": "through the API"}.get(source["rules_changed_by"], "in the console")
        origin = (
            f"rules saved {how} at {source['rules_changed_at']}, in place of the "
            f"configuration file's (reset: the console, or DELETE /api/v1/admin/directory/"
            f"{name}/rules)"
        )
    else:
        origin = "rules from the configuration file"
    lines = [f"{name}: {origin}"]
    if source.get("rules_problem"):
        lines.append(f"  {source['rules_problem']}")
    for number, rule in enumerate(source["rules"], 1):
        conditions = [
            f"{key} = {rule[key]!r}" for key in ("member_of", "ou", "attribute", "equals")
            if rule[key] is not None
        ]  # fmt: skip
        then = f"group {rule['group']}" if rule["in_scope"] else "not in scope"
        lines.append(f"  {number}. {', '.join(conditions)} -> {then}")
    lines.append(f"  default group: {source['default_group'] or '- (not in scope)'}")
    last = source["last_run"]
    if last is not None:
        what = last["error"] or last["stopped"] or last["summary"]
        kind = "last dry run" if last["dry_run"] else "last run"
        lines.append(f"  {kind} {last['started_at']}: {what}")
    return lines

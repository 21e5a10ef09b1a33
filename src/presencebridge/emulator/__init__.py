"""Microsoft Graph presence emulator: Graph's presence paths and Entra ID sign-in, offline.

A product component (demo, tests, benchmarks, admins trying a configuration), held
to GRAPH.md. Layout:

    model.py          pure presence model: sessions, fade, preferred presence, aggregation
    clock.py          the emulator clock (wall time + an offset the control API moves)
    tls.py            private CA, server certificate for 127.0.0.1/localhost, JWT key
    identity.py       identity provider: OpenID config, JWKS, client credentials,
                      device code, authorization codes, refresh tokens; bearer-token checks
    signin.py         the web sign-in's bookkeeping: registrations' redirect URIs and app
                      roles, authorize checks, waiting sign-in pages, codes, sessions
    budget.py         the tenant budget (1,500 / 30 s per app and tenant) and fault injection
    subscriptions.py  subscriptions, the validation handshake, encryption, async delivery
    state.py          `Emulator`: the whole state, expiry ticker, notifications, statistics
    graph.py          the /v1.0 dispatcher ($batch runs inner requests through it)
    app.py            `create_app(...)`: assembles one ASGI app from the routers below
    routing.py        what the routers share (the state as a dependency, error shape)
    routes_identity.py       the identity provider's paths and /devicelogin
    routes_signin.py         /{tenant}/oauth2/v2.0/authorize (sign-in page) and /logout
    routes_graph.py          /v1.0/{path}: token and JSON checks, then `graph.py`
    routes_control.py        /_emulator: health, device approval, apps and their role
                             assignments, clock, faults, stats, reset
    routes_users.py          /_emulator/users: users, their Teams client, preferred presence
    routes_subscriptions.py  /_emulator/subscriptions: list, lifecycle events, drop
    server.py         `run(...)` for the CLI and `EmbeddedEmulator` for `serve --graph emulator`

Where GRAPH.md is silent the emulator decides as follows:

* Nothing known is reported as Offline/Offline: a new user has a Teams client session
  (Available/Available), and a user without sessions is Offline. PresenceUnknown shows
  only when the control API puts the Teams client there.
* The Teams client (`POST /_emulator/users/{id}/client`) may hold any pair of GRAPH.md's
  "What Teams shows" list; the bare AvailableIdle, BusyIdle and PresenceUnknown pair
  with themselves (PresenceUnknown/PresenceUnknown). Offline/Offline (or Offline alone)
  closes the client. Offline/OffWork and PresenceUnknown are held like any client state
  but rank below Away, so any app session shows instead; a preferred presence still
  beats them. Other pairs are 422, naming the pair and listing the valid ones.
* `statusMessage` is null until set, as Graph returns it.
* Among sessions of equal standing the most recently set wins (an app session beats the
  Teams client at the same instant); an app's keep-alive setPresence counts as setting.
  BeRightBack ranks between Available and Away; AvailableIdle and BusyIdle rank with
  Available and Busy.
* The "In a call" nuance applies to any Busy/InACall session, the Teams client's own too.
* A preferred presence stays in force while a faded session still shows.
* A preferred `expirationDuration` may be PT1S..P30D (Graph names no bound).
* One presence subscription per signed-in user and application: a second is 409
  `ExtensionError` (Conflict) naming the existing one; dropped subscriptions count,
  expired ones do not. Unknown user ids may be watched (they may be created later).
  http:// notification URLs are accepted (the demo's hub listens on plain HTTP);
  `lifecycleNotificationUrl` is validated like `notificationUrl`.
* `validationTokens` come with rich notifications only, as Graph sends them, and are
  dated by wall time because the receiver checks them against its own clock. Access
  tokens, device codes, subscriptions and expiries run on the emulator clock.
* Notifications are batched per subscription (in order), acknowledged within 3 s or
  retried after 1, 4 and 16 s, then given up; every failed attempt is counted.
* `$batch`: an inner request with a body but no Content-Type is 400 on its own;
  `dependsOn` may name earlier requests (a failed dependency gives 424); the outer
  request gets neither faults nor budget, each inner one both.
* Faults apply to every /v1.0 request (not the identity provider or control API);
  503 is drawn before 429 and carries no Retry-After, so clients' own backoff is used.
* Delegated tokens are held to their scopes: Presence.Read(.All) to read (own / all),
  Presence.ReadWrite to write one's own presence, Presence.Read.All to subscribe.
* `--strict` accepts client secrets only (no client assertions), and `sessionId` must
  be the caller's app id. `POST /_emulator/reset` keeps the clock and the signing key.
* Any authority tenant is accepted: a GUID stands for itself, common / organizations /
  consumers for a fixed default tenant, any other name for a GUID derived from it.
  Their OpenID configuration names the issuer `https://<host>/{tenantid}/v2.0`, the
  template Entra publishes; tokens name the default tenant.
* The web sign-in needs a registered app (`POST /_emulator/apps` with `redirect_uris`)
  in any mode; its redirect URIs may be http:// anywhere (the demo's hub is plain
  HTTP), Entra allows that for localhost only. A public client (no secret) must send
  a PKCE challenge; a sign-in needs the `openid` scope. The user name is the UPN
  (case-insensitive) of a Teams or directory user; a disabled directory user is
  refused (AADSTS50057). A sign-in starts a 24-hour session (cookie ESTSAUTH): without
  `prompt` or with `prompt=none` the next authorize request for that tenant goes
  straight back with a code; `login` / `select_account` / `consent` show the page.
* The ID token's `oid`, `name` and `preferred_username` need the `profile` scope, as
  Entra's do; `groups` (direct memberships in the emulated directory) and `roles` are
  always emitted when not empty (Entra needs groupMembershipClaims for groups). A
  code issued to another client, or refused for a wrong verifier or redirect URI,
  stays redeemable by its own client; a verifier without a challenge is refused.
* Post-logout redirects go to a registered post-logout URI or redirect URI of the
  app named by `client_id` or `id_token_hint`; otherwise the "You signed out" page.
"""

from presencebridge.emulator.app import create_app
from presencebridge.emulator.server import EmbeddedEmulator
from presencebridge.emulator.state import Emulator

__all__ = ["EmbeddedEmulator", "Emulator", "create_app"]

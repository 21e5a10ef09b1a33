"""The console's pages, one module each; `router` serves them all.

* `login`: sign-in, sign-out, the language switch;
* `board`: the presence board (`/`) and its directory;
* `users`: a user's page and its forms (profiles, appointments, own mode);
* `groups`: the list of groups, creating groups and users;
* `group`: one group's settings;
* `templates`: a group's central profile templates;
* `health`: sync health;
* `lifecycle`: a user's directory data, deleting users, groups and templates, agent tokens;
* `directory`: the directory sources, their last run, preview and sync;
* `directory_rules`: a directory source's rules: edit, preview, save, reset;
* `userfile`: the CSV import and export of users;
* `webhooks`: the signed outgoing webhooks, their dead letters, send again and discard;
* `service_accounts`: notify mode's service accounts: sign in (device code), remove;
* `tokens`: every user's agent and personal tokens, revoking one;
* `audit`: the audit log: who changed what, when (issue 18), and its CSV file.

Each handler starts from `web.forms` (`SignedIn`, `Posted`, `PostedAnonymously`),
which does the sign-in and CSRF checks and the form parsing once for all.
"""

from __future__ import annotations

from fastapi import APIRouter

from presencebridge.web.pages import (
    audit,
    board,
    directory,
    directory_rules,
    group,
    groups,
    health,
    lifecycle,
    login,
    service_accounts,
    templates,
    tokens,
    userfile,
    users,
    webhooks,
)

router = APIRouter(include_in_schema=False)
for _module in (
    login,
    board,
    users,
    lifecycle,
    groups,
    group,
    templates,
    health,
    directory,
    directory_rules,
    userfile,
    webhooks,
    service_accounts,
    tokens,
    audit,
):
    router.include_router(_module.router)

__all__ = ["router"]

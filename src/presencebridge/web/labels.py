"""Display names of the model's values. Marked with N_ for extraction, translated at render."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from presencebridge.core.errors import Rejected


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where it is shown."""
    return message


STATUS = {
    "available": N_("Available"),
    "busy": N_("Busy"),
    "away": N_("Away"),
    "dnd": N_("Do not disturb"),
    "offline": N_("Offline"),
}
TELEPHONY = {
    "idle": N_("Idle"),
    "ringing": N_("Ringing"),
    "on_the_phone": N_("On the phone"),
}
TELEPHONY_SOURCE = {
    "pbx": N_("PBX"),
    "meeting": N_("Meeting"),
    "teams": N_("MS Teams"),
}
MODE = {
    "off": N_("Off (no sync)"),
    "telephony_and_presence": N_("Sync telephony and presence status"),
    "telephony_only": N_("Sync telephony status only"),
}
MODE_SHORT = {
    "off": N_("Off"),
    "telephony_and_presence": N_("Telephony and presence"),
    "telephony_only": N_("Telephony only"),
}
ORIGIN = {
    "manual": N_("Manual"),
    "teams": N_("MS Teams"),
    "micsync": N_("Microphone Sync"),
}
PROFILE_SOURCE = {
    "own": N_("Own profile"),
    "template": N_("Central template"),
    "builtin": N_("Built-in"),
}
HISTORY_SOURCE = {
    "pbx": N_("PBX call"),
    "teams": N_("MS Teams"),
    "manual": N_("Manual choice"),
    "appointment": N_("Appointment"),
    "clock": N_("Time (appointment or call ended)"),
    "settings": N_("Settings"),
    "template": N_("Profile template"),
    "profile": N_("Profiles"),
    "meeting": N_("UC meeting"),
    "micsync": N_("Microphone Sync"),
    "agent": N_("Desktop agent"),
    "admin": N_("Administrator"),
    "directory": N_("Directory sync"),
    "csv": N_("CSV import"),
}
DIRECTORY_COUNT = {
    "create": N_("Create"),
    "update": N_("Update"),
    "disable": N_("Disable"),
    "delete": N_("Delete"),
    "unchanged": N_("Unchanged"),
    "skipped": N_("Skipped"),
}
TEAMS_AVAILABILITY = {
    "Available": N_("Available"),
    "AvailableIdle": N_("Available (idle)"),
    "Away": N_("Away"),
    "BeRightBack": N_("Be right back"),
    "Busy": N_("Busy"),
    "BusyIdle": N_("Busy (idle)"),
    "DoNotDisturb": N_("Do not disturb"),
    "Offline": N_("Offline"),
    "PresenceUnknown": N_("Unknown"),
}
TEAMS_ACTIVITY = {
    "Available": N_("Available"),
    "Away": N_("Away"),
    "BeRightBack": N_("Be right back"),
    "Busy": N_("Busy"),
    "DoNotDisturb": N_("Do not disturb"),
    "InACall": N_("In a call"),
    "InAConferenceCall": N_("In a conference call"),
    "Inactive": N_("Inactive"),
    "InAMeeting": N_("In a meeting"),
    "Offline": N_("Offline"),
    "OffWork": N_("Off work"),
    "OutOfOffice": N_("Out of office"),
    "PresenceUnknown": N_("Unknown"),
    "Presenting": N_("Presenting"),
    "UrgentInterruptionsOnly": N_("Urgent interruptions only"),
}

CSV_ACTION = {
    "create": N_("Create"),
    "update": N_("Update"),
    "unchanged": N_("Unchanged"),
}

# Who saved a directory source's rules (`DirectorySync.save_rules`), in a sentence.
RULES_SAVED_BY = {
    "console": N_("in the console"),
    "api": N_("through the API"),
}

# The CSV import's problems by code (core/usercsv.py TEXTS, the same English texts),
# shown in the reader's language with their parameters.
CSV_PROBLEMS = {
    "not_utf8": N_("not UTF-8 text; save the file as UTF-8"),
    "empty_file": N_("the file is empty: the first row must name the columns"),
    "too_many_lines": N_("more than %(max)s users in one file; split it"),
    "nul_character": N_("a NUL character; save the file as CSV text"),
    "field_too_large": N_("a field longer than %(max)s characters"),
    "not_csv": N_("not readable as CSV: %(reason)s"),
    "unknown_columns": N_("unknown column(s): %(columns)s; the columns are %(known)s"),
    "columns_twice": N_("column(s) named twice: %(columns)s"),
    "columns_missing": N_("required column(s) missing: %(columns)s"),
    "field_count": N_("%(found)s fields, but the header has %(wanted)s"),
    "empty": N_("%(field)s: must not be empty"),
    "too_long": N_("%(field)s: at most %(max)s characters: '%(value)s'"),
    "not_id": N_(
        "%(field)s: not allowed (letters A-Z a-z, digits and . _ @ + - (not first), "
        "at most 128 characters): '%(value)s'"
    ),
    "not_email": N_("%(field)s: not an address: '%(value)s'"),
    "bad_character": N_(
        "%(field)s: must not contain a control character (%(character)s at character %(position)s)"
    ),
    "too_many_values": N_("%(field)s: at most %(max)s values"),
    "not_extension": N_(
        "%(field)s: '%(value)s' is not a valid extension (digits, * and # only, 1 to 16 characters)"
    ),
    "not_number": N_(
        "%(field)s: '%(value)s' is not a valid phone number "
        "(national numbers are read as %(country)s)"
    ),
    "invalid": N_("%(field)s: %(reason)s"),
    "id_twice": N_("user '%(user)s' is on line %(other_line)s already"),
    "directory_user": N_(
        "user '%(user)s' comes from directory '%(source)s', which owns it: "
        "change it there, or leave it out of the file"
    ),
    "unknown_group": N_("group '%(group)s' does not exist; create it first"),
    "teams_id_taken": N_("Teams id '%(value)s' belongs to user '%(other)s'"),
    "extension_taken": N_("extension '%(value)s' belongs to user '%(other)s'"),
    "number_taken": N_("number '%(value)s' belongs to user '%(other)s'"),
    "teams_id_twice": N_("Teams id '%(value)s' is also on line %(other_line)s (user '%(other)s')"),
    "extension_twice": N_(
        "extension '%(value)s' is also on line %(other_line)s (user '%(other)s')"
    ),
    "number_twice": N_("number '%(value)s' is also on line %(other_line)s (user '%(other)s')"),
    "created_meanwhile": N_("user '%(user)s' was created meanwhile"),
    "deleted_meanwhile": N_("user '%(user)s' was deleted meanwhile"),
    "database": N_("the database refused the file: %(reason)s"),
    "other_nodes": N_(
        "%(count)s user(s) of the file are handled by other nodes of the cluster "
        "(%(users)s): an import is written in one transaction by the node that receives it, "
        "so on a cluster it takes only users that node handles"
    ),
    "failed": N_("the import failed: %(reason)s"),
}

# The audit log's actions (service/audit.py, issue 18) and how the actor proved who they are.
AUDIT_ACTION = {
    "group.created": N_("Group created"),
    "group.settings.changed": N_("Group settings changed"),
    "group.deleted": N_("Group deleted"),
    "template.saved": N_("Profile template saved"),
    "template.deleted": N_("Profile template deleted"),
    "user.created": N_("User created"),
    "user.changed": N_("User's directory data changed"),
    "user.deleted": N_("User deleted"),
    "user.settings.changed": N_("User's Teams sync mode changed"),
    "profile.created": N_("Profile added"),
    "profile.deleted": N_("Profile deleted"),
    "profile.reordered": N_("Profiles reordered"),
    "profile.selected": N_("Profile chosen"),
    "appointment.created": N_("Appointment added"),
    "appointment.deleted": N_("Appointment deleted"),
    "agent_token.issued": N_("Agent token issued"),
    "agent_token.revoked": N_("Agent token revoked"),
    "personal_token.issued": N_("Personal token issued"),
    "personal_token.revoked": N_("Personal token revoked"),
    "users.imported": N_("Users imported from a CSV file"),
    "directory.sync": N_("Directory synced"),
    "directory.rules.saved": N_("Directory rules saved"),
    "directory.rules.reset": N_("Directory rules reset to the configuration file"),
    "webhook.dead_letter.retried": N_("Dead letter sent again"),
    "webhook.dead_letter.discarded": N_("Dead letter discarded"),
    "service_account.sign_in_started": N_("Service account sign-in started"),
    "service_account.removed": N_("Service account removed"),
    "clock.advanced": N_("Clock advanced"),
    "session.signed_in": N_("Signed in"),
    "session.signed_out": N_("Signed out"),
}
AUDIT_ACTOR = {
    "admin-token": N_("admin token"),
    "session": N_("console sign-in"),
    "personal-token": N_("personal token"),
    "agent-token": N_("agent token"),
    "cli": N_("command line"),
}

# The hub's refusals by code (`Rejected.code`, core/rules.py and service/hub.py): the API
# sends the English message, the console says the same in the reader's language.
REJECTIONS = {
    "profile_exists": N_("A profile named “%(name)s” exists already: choose another name."),
    "profile_reserved": N_(
        "“%(name)s” is the name of a built-in profile: choose another name for your own profile."
    ),
    "template_reserved": N_(
        "“%(name)s” is the name of a built-in profile: choose another name for the template."
    ),
    "too_many_profiles": N_("At most %(max)s own profiles per user: delete one first."),
    "profile_not_own": N_("“%(name)s” is no own profile of this user (any more)."),
    "profile_unknown": N_("“%(name)s” is not one of this user's profiles."),
    "profile_order": N_("The new order must name each own profile once: %(names)s."),
    "appointment_order": N_("The end must come after the start."),
    "appointment_ended": N_("This appointment would be over already: choose a later end."),
    "appointment_exists": N_("This appointment exists already."),
    "too_many_appointments": N_("At most %(max)s appointments per user: delete one first."),
    "appointment_unknown": N_("This appointment does not exist (any more)."),
    "group_unknown": N_("Unknown group: %(id)s"),
    "user_unknown": N_("Unknown user: %(id)s"),
    "group_exists": N_("A group with this ID exists already."),
    "user_exists": N_("A user with this ID exists already."),
    "group_not_empty": N_("The group still has %(n)s user(s): move or delete them first."),
    "template_unknown": N_("That template does not exist (any more)."),
    "teams_user_id_taken": N_("Teams user ID %(value)s belongs to user %(other)s."),
    "extension_taken": N_("Extension %(value)s belongs to user %(other)s."),
    "number_taken": N_("Number %(value)s belongs to user %(other)s."),
    "store_refused": N_(
        "The database refused the change (a user on another node may hold the value); "
        "nothing was changed."
    ),
}
# A refusal without a code (should not happen in the console): said by its kind only.
REJECTION_REASONS = {
    "not_found": N_("Not found: it may have been deleted meanwhile."),
    "conflict": N_("That conflicts with the current state: reload the page and try again."),
    "invalid": N_("That is not valid here."),
    "forbidden": N_("That is not allowed."),
}
# The characters a name or text may not hold (`api.schemas.refused_character`), by category.
CHARACTER_KINDS = {
    "Cc": N_("a control character"),
    "Cs": N_("an unpaired surrogate"),
    "Cf": N_("an invisible format character"),
    "Zl": N_("a line separator"),
    "Zp": N_("a paragraph separator"),
}

KINDS: dict[str, dict[str, str]] = {
    "status": STATUS,
    "telephony": TELEPHONY,
    "telephony_source": TELEPHONY_SOURCE,
    "mode": MODE,
    "mode_short": MODE_SHORT,
    "origin": ORIGIN,
    "profile_source": PROFILE_SOURCE,
    "history_source": HISTORY_SOURCE,
    "teams_availability": TEAMS_AVAILABILITY,
    "teams_activity": TEAMS_ACTIVITY,
    "directory_count": DIRECTORY_COUNT,
    "csv_action": CSV_ACTION,
    "rules_saved_by": RULES_SAVED_BY,
    "audit_action": AUDIT_ACTION,
    "audit_actor": AUDIT_ACTOR,
}


def csv_problem(code: str, params: Mapping[str, object], gettext: Callable[[str], str]) -> str:
    """A problem of the CSV import in the reader's language, with what was found."""
    return gettext(CSV_PROBLEMS[code]) % params


def label(kind: str, value: str | None, gettext: object) -> str:
    """The translated display name; an unknown value is shown as it is."""
    if value is None:
        return ""
    message = KINDS[kind].get(value)
    if message is None:
        return value
    assert callable(gettext)
    return str(gettext(message))


def rejection(error: Rejected, gettext: Callable[[str], str]) -> str:
    """The hub's refusal in the reader's language (never the API's English text)."""
    message = REJECTIONS.get(error.code)
    if message is None:
        return gettext(REJECTION_REASONS[error.reason.value])
    return gettext(message) % error.params

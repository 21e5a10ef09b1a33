"""Display names of the model's values. Marked with N_ for extraction, translated at render."""

from __future__ import annotations


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
}


def label(kind: str, value: str | None, gettext: object) -> str:
    """The translated display name; an unknown value is shown as it is."""
    if value is None:
        return ""
    message = KINDS[kind].get(value)
    if message is None:
        return value
    assert callable(gettext)
    return str(gettext(message))

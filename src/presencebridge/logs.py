"""Logging set-up: readable on a terminal, JSON in production, secrets redacted.

Redaction happens in a filter on every handler, so no logger (ours, uvicorn's
access log with its `?token=` query strings, a library's) can leak a token.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',]+"),
    re.compile(
        r"(?i)((?:access_|admin_|client_|refresh_|id_)?(?:token|secret|password)[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+"
    ),
    re.compile(r"(pba_)[A-Za-z0-9_\-]+"),
    # OAuth codes redeem a sign-in (msal logs the device code at debug level). Only
    # long values: `"code": "not_found"` or `code=1008` are no secrets.
    re.compile(r"(?i)((?<![a-z_])(?:device_)?code[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]{16,}"),
    # Headers, as a WebSocket handshake logs them at debug level ("< authorization: …"):
    # a token sent without its scheme, Basic credentials, the console's session cookie.
    re.compile(
        r"(?i)((?<![a-z_-])(?:proxy-)?(?:authorization|cookie|set-cookie)[\"']?\s*[=:]\s*[\"']?"
        r"(?:[a-z]+\s+(?=\S))?)[^\s\"',;]+"
    ),
)
REDACTED = "***"


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class PbxAccessSummary(logging.Filter):
    """The access log without a line per accepted PBX event (uvicorn's `uvicorn.access`).

    A PBX sends thousands of events a second; a line for each cost about a twentieth of
    the server's CPU per event (docs/benchmarks.md) and buries everything else. The first
    200 answer to `POST /api/v1/telephony/events` (or `…/batch`) in each minute is logged
    as usual, with how many such answers since the last logged one were not; every
    other answer (a refusal, another route) is logged as before.
    """

    PATHS = frozenset(("/api/v1/telephony/events", "/api/v1/telephony/events/batch"))
    EVERY = 60.0

    def __init__(self) -> None:
        super().__init__()
        self.left_out = 0
        self.last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            not isinstance(args, tuple)
            or len(args) != 5
            or args[4] != 200
            or args[1] != "POST"
            or args[2] not in self.PATHS
        ):
            return True
        if record.created - self.last < self.EVERY:
            self.left_out += 1
            return False
        if self.left_out:
            record.msg = f"{record.msg} (and %d more 200 answers to PBX events since %s)"
            since = datetime.fromtimestamp(self.last).strftime("%H:%M:%S")
            record.args = (*args, self.left_out, since)
        self.last, self.left_out = record.created, 0
        return True


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO, URLs included: keep it to warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would bypass the filter; route everything through ours.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.filters[:] = [f for f in access.filters if not isinstance(f, PbxAccessSummary)]
    access.addFilter(PbxAccessSummary())

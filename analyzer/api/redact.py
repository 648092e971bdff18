"""What API answers may show of outbound calls: URLs without secrets, errors without bodies.

A webhook URL can carry a token (``https://user:pass@host/...``, ``?token=...``); a receiver's
answer can echo anything. The store keeps what the dispatcher recorded (a scrubbed excerpt,
for the logs); answers show :func:`public_url` and :func:`public_error` of it instead.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["public_error", "public_url"]

_REDACTED = "redacted"
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")
_GAVE_UP = re.compile(r"^gave up after (\d+) attempts: ")
_TIMED_OUT = re.compile(r"^timed out after [0-9.e+]+s$")
_CLIENT_ERROR = re.compile(r"^([A-Z][A-Za-z]{2,60}):")  # "ClientConnectorError: ..."


def public_url(url: str) -> str:
    """``url`` with its userinfo, query and fragment replaced by ``redacted``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return _REDACTED
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{_REDACTED}@" if parts.username is not None or parts.password is not None else ""
    netloc += host + (f":{port}" if port is not None else "")
    query = _REDACTED if parts.query else ""
    fragment = _REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def public_error(error: str) -> str:
    """A delivery error as a status and a fixed message: never the receiver's words, never an
    address or a library's message."""
    if not error:
        return ""
    prefix = ""
    gave_up = _GAVE_UP.match(error)
    if gave_up is not None:
        prefix = f"gave up after {gave_up.group(1)} attempts: "
        error = error[gave_up.end() :]
    return prefix + _fixed(error)


def _fixed(error: str) -> str:
    status = _HTTP_STATUS.match(error)
    if status is not None:
        code = int(status.group(1))
        if 300 <= code < 400:
            return f"HTTP {code} (redirects are not followed)"
        return f"HTTP {code}"
    if _TIMED_OUT.match(error):
        return error
    if error.startswith("webhook URL refused"):
        return "webhook URL refused by the outbound policy"
    if error.startswith("invalid URL"):
        return "invalid webhook URL"
    client = _CLIENT_ERROR.match(error)
    if client is not None:  # the exception's class name: ours, not the receiver's
        return f"{client.group(1)}: no answer from the receiver"
    return "the attempt failed"

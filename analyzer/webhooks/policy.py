"""Where webhooks may go: the URL policy checked at registration and before every attempt.

http(s) only, an explicit host allow-list (``host`` or ``host:port`` entries; ``*`` allows any
host but never the ones below), never link-local or cloud-metadata addresses, no userinfo, no
characters URL parsers disagree on. It resolves nothing: literal addresses, in any notation the
C library accepts (decimal, hex, short, IPv4-mapped), are checked as addresses.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Collection
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import SplitResult, urlsplit

from analyzer.errors import InvalidInput

__all__ = ["URL_FIELD", "check_webhook_url"]

URL_FIELD = "webhook.url"

_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata"})
_METADATA_ADDRESSES = frozenset({ip_address("169.254.169.254"), ip_address("fd00:ec2::254")})
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, controls, backslash: parsers disagree


def _as_ip(host: str) -> IPv4Address | IPv6Address | None:
    """A literal address in ``host``, in any notation; None for a name. No DNS."""
    try:
        address = ip_address(host.partition("%")[0])
    except ValueError:
        try:  # 2852039166, 0xa9.0xfe.0xa9.0xfe, 169.254.43518 — what connect() would accept
            address = IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _canonical_host(host: str) -> str:
    host = host.strip("[]").lower().removesuffix(".")
    address = _as_ip(host)
    return host if address is None else str(address)


def _split(url: str) -> tuple[SplitResult, str, int]:
    if _UNSAFE.search(url):
        raise InvalidInput(URL_FIELD, "must not contain whitespace, control characters or '\\'")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(URL_FIELD, f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(URL_FIELD, "scheme must be http or https")
    if "@" in parts.netloc:
        raise InvalidInput(URL_FIELD, "must not contain user info")
    if not parts.hostname:
        raise InvalidInput(URL_FIELD, "has no host")
    default_port = 443 if parts.scheme == "https" else 80
    return parts, _canonical_host(parts.hostname), default_port if port is None else port


def _refuse_internal(host: str) -> None:
    address = _as_ip(host)
    if address is None and not _HOST_NAME.fullmatch(host):
        raise InvalidInput(URL_FIELD, f"host {host!r} is not a valid host name")
    if host in _METADATA_NAMES or address in _METADATA_ADDRESSES:
        raise InvalidInput(URL_FIELD, f"host {host!r} is a cloud metadata endpoint")
    if address is not None and address.is_link_local:
        raise InvalidInput(URL_FIELD, f"host {host!r} is link-local")


def _allow_entry(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 literal."""
    entry = entry.strip()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    if not port:
        return _canonical_host(host), None
    return _canonical_host(host), int(port) if port.isascii() and port.isdigit() else -1


def _is_allowed(host: str, port: int, allowed_hosts: Collection[str]) -> bool:
    entries = allowed_hosts.split(",") if isinstance(allowed_hosts, str) else allowed_hosts
    for entry in entries:
        if entry.strip() == "*":
            return True
        allowed_host, allowed_port = _allow_entry(entry)
        if allowed_host == host and allowed_port in (None, port):
            return True
    return False


def check_webhook_url(url: str, allowed_hosts: Collection[str]) -> None:
    """Raise :class:`InvalidInput` (field ``webhook.url``) unless ``url`` may receive webhooks.

    http(s) only; no userinfo; never a link-local or cloud-metadata host, even with ``*``; and
    the host must be in ``allowed_hosts`` (exact names, ``host`` or ``host:port``). An empty
    allow-list allows nothing; ``*`` allows any other host. No name is resolved.
    """
    _parts, host, port = _split(url)
    _refuse_internal(host)
    if not _is_allowed(host, port, allowed_hosts):
        raise InvalidInput(URL_FIELD, f"host {host!r} is not in the allowed webhook hosts")

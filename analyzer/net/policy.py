"""The outbound URL policy: which URLs the daemon may call and which addresses it may reach.

A URL passes :func:`check_url` when it is http(s), has no userinfo and none of the characters URL
parsers disagree on (whitespace, controls, ``\\``), yarl (what aiohttp connects with) reads the
same host and port from it, the allow-list admits its host, and that host is not internal. The
host is parsed strictly: a name of ASCII letters, digits, ``-`` and ``_`` (no ``%``, so no
``127.0.0.1%25.evil.test``; IDNs in punycode), an IPv4 literal in any notation the C library
accepts (checked as the address it means: ``2852039166`` is ``169.254.169.254``), or a bracketed
IPv6 literal, the only place a zone id may appear (``[fe80::1%25eth0]``, RFC 6874).

Allow-list entries (:class:`AllowList`): ``host``, ``host:port``, ``[v6]``, ``[v6]:port``, a
bare IPv6 literal, a CIDR (``10.0.0.0/8``, admitting literal addresses in it) or ``*`` (any
host). Names and literals are compared in one canonical form: lower case, no trailing dot,
IPv4-mapped IPv6 as IPv4, no zone. Nothing admits a link-local, cloud-metadata, unspecified or
multicast host. Nothing here resolves a name; at connect time
:meth:`AllowList.admits_address` checks each address a name resolved to
(:mod:`analyzer.net.connector`): a loopback or reserved address only when the allow-list admits
it as a literal, or for a ``localhost`` name — so a DNS answer cannot swap an allowed name for
the daemon's own host or a metadata endpoint.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from yarl import URL

from analyzer.errors import InvalidInput

__all__ = ["Address", "AllowList", "Host", "check_url", "parse_host"]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata"})
_METADATA_ADDRESSES = frozenset({ip_address("169.254.169.254"), ip_address("fd00:ec2::254")})
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_ZONE = re.compile(r"25[A-Za-z0-9._~-]+")  # RFC 6874: "%25" then unreserved characters
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, controls, backslash: parsers disagree


@dataclass(frozen=True, slots=True)
class Host:
    """A host in canonical form: ``name`` is the address's text when it is a literal."""

    name: str
    address: Address | None = None


def _plain(address: Address) -> Address:
    """The address to compare: IPv4-mapped IPv6 as IPv4, an IPv6 zone dropped."""
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return IPv6Address(int(address))
    return address


def _literal(text: str) -> Address | None:
    """The address ``text`` means in any notation connect() accepts; None for a name."""
    try:
        return _plain(ip_address(text))
    except ValueError:
        try:  # 2852039166, 0xa9.0xfe.0xa9.0xfe, 169.254.43518
            return IPv4Address(socket.inet_aton(text))
        except OSError:
            return None


def parse_host(text: str, *, bracketed: bool, field: str) -> Host:
    """The canonical host of ``text`` (a URL's or an allow-list entry's host, brackets off);
    :class:`InvalidInput` on ``field`` for anything that is not strictly a host."""
    text = text.lower()
    if bracketed:
        literal, percent, zone = text.partition("%")
        if percent and not _ZONE.fullmatch(zone):
            raise InvalidInput(field, f"host [{text}]: a zone id is written %25<zone>")
        try:
            address = _plain(IPv6Address(literal))
        except ValueError:
            raise InvalidInput(field, f"host [{text}] is not an IPv6 address") from None
        return Host(str(address), address)
    if "%" in text:
        raise InvalidInput(field, f"host {text!r} must not contain '%'")
    name = text.removesuffix(".")
    if not _HOST_NAME.fullmatch(name):
        raise InvalidInput(field, f"host {text!r} is not a valid host name")
    literal_address = _literal(name)
    return Host(name) if literal_address is None else Host(str(literal_address), literal_address)


def _is_localhost(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761: always loopback


def _internal(address: Address) -> str:
    """Why an address is never reachable, or ``""``."""
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata endpoint"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified or address.is_multicast:
        return "not a unicast address"
    return ""


@dataclass(frozen=True, slots=True)
class AllowList:
    """Parsed allow-list entries (see the module docstring)."""

    hosts: frozenset[tuple[str, int | None]] = frozenset()
    networks: tuple[Network, ...] = ()
    anything: bool = False

    @classmethod
    def of(
        cls, entries: AllowList | Collection[str] | str, *, setting: str = "allowed hosts"
    ) -> AllowList:
        """Parse ``entries`` (a list, or one comma-separated string); :class:`InvalidInput`
        names ``setting`` on a bad entry. An AllowList is returned as it is."""
        if isinstance(entries, AllowList):
            return entries
        if isinstance(entries, str):
            entries = entries.split(",")
        hosts: set[tuple[str, int | None]] = set()
        networks: list[Network] = []
        anything = False
        for raw in entries:
            entry = raw.strip()
            if entry == "*":
                anything = True
            elif "/" in entry:
                networks.append(_network(entry, setting))
            elif entry:
                hosts.add(_host_entry(entry, setting))
        return cls(hosts=frozenset(hosts), networks=tuple(networks), anything=anything)

    def admits(self, host: Host, port: int) -> bool:
        """Whether an entry admits ``host`` on ``port`` (internal hosts are checked apart)."""
        if self.anything or (host.name, None) in self.hosts or (host.name, port) in self.hosts:
            return True
        return host.address is not None and any(host.address in n for n in self.networks)

    def admits_address(self, name: str, address: Address, port: int) -> bool:
        """Whether a connection to ``address``, which the admitted host ``name`` resolved to,
        may be made: never to an internal address; to a loopback or reserved one only if it
        is admitted as a literal or the name is ``localhost``."""
        address = _plain(address)
        if _internal(address):
            return False
        if self.admits(Host(str(address), address), port):
            return True
        if address.is_loopback:
            return _is_localhost(name)
        return not address.is_reserved


def _network(entry: str, setting: str) -> Network:
    try:
        return ip_network(entry, strict=False)
    except ValueError:
        raise InvalidInput(setting, f"entry {entry!r} is not a CIDR network") from None


def _host_entry(entry: str, setting: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 literal (no zone)."""
    if entry.startswith("["):
        host, close, rest = entry[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise InvalidInput(setting, f"entry {entry!r} is not host, host:port or a CIDR")
        bracketed, has_port, port = True, bool(rest), rest[1:]
    elif entry.count(":") > 1:
        host, bracketed, has_port, port = entry, True, False, ""
    else:
        host, sep, port = entry.partition(":")
        bracketed, has_port = False, bool(sep)
    if "%" in host:
        raise InvalidInput(setting, f"entry {entry!r}: no '%' or zone ids in allow-list entries")
    parsed = parse_host(host, bracketed=bracketed, field=setting)
    if not has_port:
        return parsed.name, None
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise InvalidInput(setting, f"entry {entry!r} has no valid port")
    return parsed.name, int(port)


def _split(url: str, field: str) -> tuple[Host, int]:
    if _UNSAFE.search(url):
        raise InvalidInput(field, "must not contain whitespace, control characters or '\\'")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(field, f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(field, "scheme must be http or https")
    if "@" in parts.netloc:
        raise InvalidInput(field, "must not contain user info")
    if not parts.hostname:
        raise InvalidInput(field, "has no host")
    host = parse_host(parts.hostname, bracketed=parts.netloc.startswith("["), field=field)
    default_port = 443 if parts.scheme == "https" else 80
    return host, default_port if port is None else port


def _refuse_internal(host: Host, field: str) -> None:
    if host.name in _METADATA_NAMES:
        raise InvalidInput(field, f"host {host.name!r} is a cloud metadata endpoint")
    why = _internal(host.address) if host.address is not None else ""
    if why:
        raise InvalidInput(field, f"host {host.name!r} is {why}")


def _agree_with_yarl(url: str, host: Host, port: int, field: str) -> None:
    """aiohttp connects where yarl reads the URL to point: it must be what was checked."""
    try:
        seen = URL(url)
    except ValueError:
        raise InvalidInput(field, "not a valid URL") from None
    raw = (seen.host or "").lower().removesuffix(".")
    address = _literal(raw.partition("%")[0] if ":" in raw else raw)
    if (raw if address is None else str(address)) != host.name or seen.port != port:
        raise InvalidInput(field, "URL parsers disagree on its host or port")


def check_url(
    url: str, allowed: AllowList | Collection[str] | str, *, field: str, what: str
) -> None:
    """Raise :class:`InvalidInput` on ``field`` unless the daemon may call ``url``: see the
    module docstring; ``what`` names the allow-list in the message (``webhook``, ``scrape``).
    An empty allow-list admits nothing. No name is resolved."""
    host, port = _split(url, field)
    _refuse_internal(host, field)
    if not AllowList.of(allowed).admits(host, port):
        raise InvalidInput(field, f"host {host.name!r} is not in the allowed {what} hosts")
    _agree_with_yarl(url, host, port, field)

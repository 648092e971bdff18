"""Where webhooks may go: the outbound URL policy (:mod:`analyzer.net.policy`) with the webhook
allow-list, checked at registration and before every attempt; the session the daemon gives the
dispatcher checks it again against the address it connects to (:mod:`analyzer.net.connector`).

http(s) only, an explicit host allow-list (``host``, ``host:port`` or CIDR entries; ``*`` allows
any host but never a link-local or cloud-metadata one), no userinfo, no ``%`` in host names, no
characters URL parsers disagree on. It resolves nothing: literal addresses, in any notation the
C library accepts (decimal, hex, short, IPv4-mapped), are checked as addresses.
"""

from __future__ import annotations

from collections.abc import Collection

from analyzer.net.policy import AllowList, check_url

__all__ = ["URL_FIELD", "check_webhook_url"]

URL_FIELD = "webhook.url"


def check_webhook_url(url: str, allowed_hosts: AllowList | Collection[str]) -> None:
    """Raise :class:`~analyzer.errors.InvalidInput` (field ``webhook.url``) unless ``url`` may
    receive webhooks: the host in ``allowed_hosts`` and not internal. An empty allow-list
    allows nothing; ``*`` allows any other host. No name is resolved."""
    check_url(url, allowed_hosts, field=URL_FIELD, what="webhook")

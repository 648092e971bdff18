"""The session that enforces the outbound policy on what it actually connects to.

:func:`outbound_session` gives an ``aiohttp.ClientSession`` whose

- request hook checks every request's URL against the policy (:func:`~.policy.check_url`)
  before anything is sent — literal addresses never reach a resolver, so they are checked here;
- resolver (:class:`PolicyResolver`, wrapping aiohttp's default one) keeps only the resolved
  addresses :meth:`~.policy.AllowList.admits_address` allows, so a DNS answer cannot turn an
  allowed name into a forbidden address; a name left with none fails to connect;
- redirect hook fails any request that would follow a redirect (callers pass
  ``allow_redirects=False``; this is the backstop).

A refused URL raises ``aiohttp.InvalidUrlClientError``, a refused resolution
``aiohttp.ClientConnectorDNSError``: the callers' own seams translate them (aiohttp's errors
never leave ``sources/`` or ``webhooks/``).
"""

from __future__ import annotations

import socket
from ipaddress import ip_address
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from analyzer.errors import InvalidInput
from analyzer.net.policy import Address, AllowList, check_url, parse_host

__all__ = ["PolicyResolver", "outbound_session"]


class PolicyResolver(AbstractResolver):
    """Resolves with ``inner`` (aiohttp's default resolver if None), then keeps only the
    addresses ``allowed`` lets a connection to its admitted name reach."""

    def __init__(self, allowed: AllowList, inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The inner resolver's answers the policy allows; OSError when none is left."""
        try:
            parsed = parse_host(host, bracketed=":" in host, field="host")
        except InvalidInput:
            parsed = None
        if parsed is None or not self._allowed.admits(parsed, port):
            msg = f"{host}: not an allowed host"
            raise OSError(msg)
        answers = await self._inner.resolve(host, port, family)
        kept = [a for a in answers if self._allowed.admits_address(parsed.name, _ip(a), port)]
        if not kept:
            msg = f"{host}: resolves to no address the outbound policy allows"
            raise OSError(msg)
        return kept

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


def _ip(answer: ResolveResult) -> Address:
    return ip_address(answer["host"])


def outbound_session(
    allowed: AllowList,
    *,
    what: str,
    timeout: aiohttp.ClientTimeout,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A session that calls only what ``allowed`` admits (``what`` names the allow-list in
    refusals); ``resolver`` replaces aiohttp's default one under the policy (tests)."""
    trace = aiohttp.TraceConfig()

    async def on_start(
        _session: aiohttp.ClientSession,
        _ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        try:
            check_url(str(params.url), allowed, field="url", what=what)
        except InvalidInput as exc:
            raise aiohttp.InvalidUrlClientError(params.url, exc.message) from None

    async def on_redirect(
        _session: aiohttp.ClientSession,
        _ctx: SimpleNamespace,
        params: aiohttp.TraceRequestRedirectParams,
    ) -> None:
        response = params.response
        raise aiohttp.ClientResponseError(
            response.request_info,
            (),
            status=response.status,
            message="redirects are not followed",
        )

    trace.on_request_start.append(on_start)
    trace.on_request_redirect.append(on_redirect)
    connector = aiohttp.TCPConnector(resolver=PolicyResolver(allowed, resolver))
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=[trace])

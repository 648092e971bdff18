"""What the outbound-policy and scrape-hardening tests call: hostile targets on 127.0.0.1 and a
resolver that answers what the test says, so no test needs real DNS.

- :class:`FakeResolver`: an ``AbstractResolver`` answering each name with the addresses the test
  gave it (the DNS-swap attacker), recording the names asked.
- :class:`HostileTarget`: ``/metrics`` endpoints that misbehave — an HTML page or a 503 carrying
  :data:`SECRET`, a redirect to :data:`SECRET_PATH`, an endless stream, a huge declared length,
  an exposition of many series — counting hits and bytes sent.
- :func:`scraped`: a :class:`~support.exporters.ScrapedCanary` whose canary side is one target.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from analyzer.clock import FakeClock
from analyzer.sources.scrape import ScrapeSource
from support.exporters import ScrapedCanary

__all__ = ["SECRET", "SECRET_PATH", "FakeResolver", "HostileTarget", "exposition", "scraped"]

SECRET = "s3cr3t-internal-token-7f1c"
"""What a hostile or internal endpoint answers; it must never reach tick evidence."""
SECRET_PATH = "/internal/secret"
CHUNK = b"# filler line of a stream that never ends\n" * 1024


class FakeResolver(AbstractResolver):
    """Answers ``name`` with ``answers[name]`` (unknown names fail as DNS would)."""

    def __init__(self, answers: Mapping[str, Sequence[str]]) -> None:
        self.answers = dict(answers)
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The test's addresses for ``host``, as aiohttp's resolvers return them."""
        self.asked.append(host)
        if host not in self.answers:
            msg = f"{host}: no such name"
            raise OSError(msg)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        """Nothing to release."""


def exposition(series: int) -> str:
    """Exposition text with ``series`` series of ``http_requests_total``."""
    lines = ["# TYPE http_requests_total counter"]
    lines += [f'http_requests_total{{code="200",path="/p{i}"}} {i}' for i in range(series)]
    return "\n".join(lines) + "\n"


@dataclass
class HostileTarget:
    """Misbehaving endpoints on one loopback server (see the module docstring)."""

    big_series: int = 20_000
    hits: dict[str, int] = field(default_factory=dict)
    streamed_bytes: int = 0
    url: str = ""

    def app(self) -> web.Application:
        """The routes, each counting its hits."""
        app = web.Application()
        for path, handler in {
            "/html": self._html,
            "/unavailable": self._unavailable,
            "/redirect": self._redirect,
            SECRET_PATH: self._secret,
            "/stream": self._stream,
            "/declared": self._declared,
            "/big": self._big,
            "/metrics": self._metrics,
        }.items():
            app.router.add_get(path, handler)
        return app

    @property
    def port(self) -> int:
        """The running server's port."""
        return int(self.url.rsplit(":", 1)[1])

    def at(self, path: str) -> str:
        """The URL of ``path`` on the running server."""
        return f"{self.url}{path}"

    def _hit(self, request: web.Request) -> None:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1

    async def _html(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(text=f"<html>{SECRET}</html>", content_type="text/html")

    async def _unavailable(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(status=503, text=f"upstream {SECRET} is down")

    async def _redirect(self, request: web.Request) -> web.Response:
        self._hit(request)
        raise web.HTTPFound(SECRET_PATH)

    async def _secret(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(text=f"# HELP x {SECRET}\nsecret_total 1\n")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Exposition-looking comments, forever (until the client goes away)."""
        self._hit(request)
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        try:
            while True:
                await response.write(CHUNK)
                self.streamed_bytes += len(CHUNK)
                await asyncio.sleep(0)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            return response

    async def _declared(self, request: web.Request) -> web.StreamResponse:
        """Declares 400 MB and sends a little."""
        self._hit(request)
        response = web.StreamResponse(headers={"Content-Length": str(400 * 1024 * 1024)})
        response.content_type = "text/plain"
        await response.prepare(request)
        await response.write(CHUNK)
        return response

    async def _big(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(text=exposition(self.big_series), content_type="text/plain")

    async def _metrics(self, request: web.Request) -> web.Response:
        self._hit(request)
        return web.Response(text=exposition(3), content_type="text/plain")


def scraped(source: ScrapeSource, clock: FakeClock, target: str) -> ScrapedCanary:
    """A canary whose baseline and canary sides both scrape ``target``."""
    return ScrapedCanary(source, clock, (target,), (target,))

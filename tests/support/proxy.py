"""A gate in front of Prometheus' HTTP API on 127.0.0.1: ticks in flight exactly when a test says.

:class:`GatedProxy` passes ``GET /api/v1/*`` to the upstream. After :meth:`~GatedProxy.hold` it
holds every request until :meth:`~GatedProxy.release` (each hold bounded), counting the
requests it holds, so a test waits for "a tick is waiting on Prometheus" instead of hoping a
slow answer overlaps its signal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

__all__ = ["GatedProxy"]

HOLD_LIMIT_S = 60.0


@dataclass
class GatedProxy:
    """Forwards API requests to ``upstream``; holds them while the gate is closed."""

    upstream: str
    held: int = 0
    """Requests being held right now."""
    answered: int = 0
    _open: asyncio.Event = field(default_factory=asyncio.Event)
    _session: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self._open.set()

    def hold(self) -> None:
        """Hold every request from now on, until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests now, and hold none from now on."""
        self._open.set()

    async def handle(self, request: web.Request) -> web.Response:
        """Forward one API request, once the gate is open."""
        assert self._session is not None
        if not self._open.is_set():
            self.held += 1
            try:
                async with asyncio.timeout(HOLD_LIMIT_S):
                    await self._open.wait()
            finally:
                self.held -= 1
        url = f"{self.upstream}{request.path}"
        async with self._session.get(url, params=request.query) as resp:
            body = await resp.read()
            self.answered += 1
            return web.Response(status=resp.status, body=body, content_type="application/json")

    async def _session_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        yield
        await self._session.close()

    def app(self) -> web.Application:
        """The proxy's application; its client session lives as long as the app."""
        app = web.Application()
        app.cleanup_ctx.append(self._session_ctx)
        app.router.add_get("/api/v1/{rest:.*}", self.handle)
        return app

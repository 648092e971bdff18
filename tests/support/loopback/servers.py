"""One way to serve an aiohttp application on loopback: aiohttp's ``TestServer`` listening on a
socket from :func:`support.loopback.ports.bind` (port 0, so the port is never guessed).

- :func:`server`: the server, not started; give it a socket bound earlier to have its URL
  before it listens (a peer that is "down" and later comes "up" at the same address).
- :func:`serving`: started for the length of an ``async with`` block.
- :func:`client`: aiohttp's ``TestClient`` over it, for requests by path.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from support.loopback.ports import HOST, bind, port_of

__all__ = ["Client", "client", "server", "serving"]

Client = TestClient[web.Request, web.Application]


def server(app: web.Application, sock: socket.socket | None = None) -> TestServer:
    """A TestServer for ``app`` that will listen on ``sock`` (a fresh :func:`bind` if none).

    The socket belongs to the server from here on: closing the server closes it.
    """
    bound = sock if sock is not None else bind()
    return TestServer(app, host=HOST, port=port_of(bound), socket_factory=lambda *_: bound)


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, sock: socket.socket | None = None
) -> AsyncIterator[TestServer]:
    """``app`` listening on 127.0.0.1 (on ``sock`` if given) until the block ends."""
    started = server(app, sock)
    await started.start_server()
    try:
        yield started
    finally:
        await started.close()


@contextlib.asynccontextmanager
async def client(app: web.Application) -> AsyncIterator[Client]:
    """A TestClient of ``app`` served on 127.0.0.1 until the block ends."""
    async with TestClient(server(app)) as opened:
        yield opened

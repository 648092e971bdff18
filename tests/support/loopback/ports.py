"""Loopback ports without check-then-use: the socket bound to ``127.0.0.1:0`` *is* the port.

The kernel picks a free port when a socket binds to port 0, and nobody else can take that port
while the socket stays open. So the socket itself is handed on — to a server that starts
listening on it (:mod:`support.loopback.servers`), or held, never listening, as a port where every
connection is refused (:func:`refused_url`) — and the number is only ever read from it.

A subprocess that must be *told* a port number cannot be handed a socket: :func:`on_fresh_port`
is the interim for that case (see its docstring).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

__all__ = ["HOST", "PortTaken", "bind", "on_fresh_port", "port_of", "refused_url"]

HOST = "127.0.0.1"
T = TypeVar("T")


def bind(port: int = 0) -> socket.socket:
    """A TCP socket bound to a port the kernel picked on 127.0.0.1, not listening yet:
    connecting to it is refused, and no one else gets the port until the socket is closed.

    ``port``: bind that port again instead (a server coming back up where it was, right after
    its own socket on it was closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    """The port a socket is bound to."""
    return int(sock.getsockname()[1])


@contextlib.contextmanager
def refused_url(path: str = "") -> Iterator[str]:
    """``http://127.0.0.1:<port><path>`` where connections are refused while the block runs:
    the port is held by a bound socket that never listens."""
    with contextlib.closing(bind()) as sock:
        yield f"http://{HOST}:{port_of(sock)}{path}"


class PortTaken(Exception):
    """The process given a port could not bind it: someone else took the port first."""


async def on_fresh_port(start: Callable[[int], Awaitable[T]], *, attempts: int = 5) -> T:
    """``await start(port)`` with a port the kernel has just handed out (and this process let go
    of again), retried with another port whenever ``start`` raises :class:`PortTaken`.

    The interim for a subprocess that must be told a port number: between the release here and
    the child's own bind another process may take the port, the child then fails to bind, and
    ``start`` is expected to notice (the child exits saying "address already in use") and raise
    :class:`PortTaken`. ``start`` must also make sure that whatever answers on the port is its
    child, not the process that took the port.
    """
    for _ in range(attempts):
        with contextlib.closing(bind()) as sock:
            port = port_of(sock)
        with contextlib.suppress(PortTaken):
            return await start(port)
    msg = f"the port was taken from under the process {attempts} times in a row"
    raise AssertionError(msg)

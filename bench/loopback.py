"""Loopback ports for the benchmarks' servers, without taking a number that was free a moment ago.

- :func:`serve`: an in-process aiohttp app on a socket bound to ``127.0.0.1:0``; the port is read
  from the socket, which nobody else can take while it is open.
- :func:`on_fresh_port`: a child process that must be *told* its port (the fake Prometheus, the
  daemon under test) gets one the kernel has just handed out; if another process takes it
  before the child binds it, the child exits, and it is started again on another port.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable

from aiohttp import web

__all__ = ["HOST", "on_fresh_port", "serve"]

HOST = "127.0.0.1"
ATTEMPTS = 5


def _bound() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, 0))
    except OSError:
        sock.close()
        raise
    return sock


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on a socket bound to a port the kernel picked; the runner and the port.
    The runner's cleanup closes the socket."""
    sock = _bound()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, int(sock.getsockname()[1])


def _ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether ``url`` answered 200 while ``proc`` ran (False once it has exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as resp,  # noqa: S310 — loopback
        ):
            if resp.status == 200 and proc.poll() is None:
                return True
        time.sleep(0.1)
    msg = f"{url} not ready within {timeout_s:g}s"
    raise SystemExit(msg)


def on_fresh_port(
    spawn: Callable[[int], subprocess.Popen[bytes]],
    ready_url: Callable[[int], str],
    what: str,
    *,
    timeout_s: float = 30.0,
) -> tuple[subprocess.Popen[bytes], int]:
    """``spawn(port)`` with a port the kernel just handed out, waited for until
    ``ready_url(port)`` answers 200; started again on another port while the child exits
    first (its port was taken). The child and its port."""
    for _ in range(ATTEMPTS):
        with contextlib.closing(_bound()) as sock:
            port = int(sock.getsockname()[1])
        proc = spawn(port)
        if _ready(ready_url(port), proc, timeout_s):
            return proc, port
    msg = f"{what} exited before it was ready, {ATTEMPTS} times (is its port taken?)"
    raise SystemExit(msg)

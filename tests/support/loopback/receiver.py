"""The deploy system's webhook endpoint for every test: one recording receiver on 127.0.0.1.

:class:`WebhookReceiver` accepts POSTs on any path, checks each body's HMAC-SHA256 itself with
the standard library (DESIGN §5: ``sha256=<hex HMAC of the raw body>``; a fault shared by the
daemon's ``sign`` and ``verify`` cannot hide), records every attempt with its headers and raw
body, and answers as configured:

- ``require_signature``: a bad signature is answered 401 (and counted in :attr:`rejected`);
- ``plan[delivery_id]``: replies for that delivery's attempts, used up in order;
- ``first``: the reply to the first attempt of each delivery id (e.g. a 503: retried);
- ``reply``: every other attempt (200 unless set; a test may swap it at any time).

A :class:`Reply` may hold its answer for ``hold_s`` seconds or until :meth:`release`. Tests wait
for what they need — :meth:`wait_for` n attempts, :meth:`until` any condition of the receiver —
woken at every arrival and answer, each wait bounded.

The receiver binds its port when it is made, so its URL is known before it listens: until
:meth:`start` every connection is refused (the deploy system is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from support.loopback.ports import HOST, bind, port_of
from support.loopback.servers import server

__all__ = ["HOOK_PATH", "WEBHOOK_SECRET", "Attempt", "Reply", "WebhookReceiver"]

HOOK_PATH = "/hooks/canary"
WEBHOOK_SECRET = "wh-test-secret-3c9a"
"""The secret the analyzer tests' daemons sign with and the receiver checks by default."""
WAIT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One POST as it arrived, and the status it was (to be) answered with."""

    path: str
    headers: Mapping[str, str]
    body: bytes
    signed: bool
    """The X-Canaryd-Signature-256 header is the HMAC of the body with the receiver's secret."""
    status: int
    at: float

    @property
    def delivery(self) -> str:
        """X-Canaryd-Delivery: ``<canary id>:<decision seq>``."""
        return self.headers.get("X-Canaryd-Delivery", "")

    @property
    def canary_id(self) -> str:
        """The canary of the delivery id."""
        return self.delivery.rpartition(":")[0]

    @property
    def event(self) -> str:
        """X-Canaryd-Event."""
        return self.headers.get("X-Canaryd-Event", "")

    @property
    def signature(self) -> str:
        """X-Canaryd-Signature-256."""
        return self.headers.get("X-Canaryd-Signature-256", "")

    @property
    def body_sha256(self) -> str:
        """Digest of the raw body, to compare attempts."""
        return hashlib.sha256(self.body).hexdigest()

    def json(self) -> dict[str, Any]:
        """The body, decoded."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """How the receiver answers one attempt."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str | Callable[[Attempt], str] = ""
    """The body, or a function of the attempt that makes it (to echo what was sent)."""
    hold_s: float = 0.0
    """Hold the answer this long first, or until :meth:`WebhookReceiver.release`."""


def signature_ok(secret: str, body: bytes, header: str) -> bool:
    """DESIGN §5: ``sha256=<hex HMAC-SHA256 of the raw body with the shared secret>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={digest}".encode(), header.encode("utf-8", "replace"))


class WebhookReceiver:
    """A recording webhook endpoint on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        secret: str = WEBHOOK_SECRET,
        *,
        reply: Reply | None = None,
        first: Reply | None = None,
        require_signature: bool = False,
    ) -> None:
        self.secret = secret
        self.reply = reply or Reply()
        self.first = first
        self.require_signature = require_signature
        self.plan: dict[str, list[Reply]] = {}
        self.attempts: list[Attempt] = []
        self.answered: list[Attempt] = []
        """Attempts whose answer was sent (not those cut off by the client while held)."""
        self.in_flight: list[str] = []
        """Delivery ids of the attempts being handled right now."""
        self._released = asyncio.Event()
        self._changed = asyncio.Event()
        """Set (and replaced by a fresh one) at every arrival and answer."""
        self._sock = bind()
        self.port = port_of(self._sock)
        self._server: TestServer | None = None

    # -- where it is --------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """``127.0.0.1:port``: the allow-list entry of this receiver."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The hook's URL."""
        return self.url_for(HOOK_PATH)

    def url_for(self, path: str) -> str:
        """Another path on the receiver (it answers POSTs on any)."""
        return f"http://{self.host}{path}"

    # -- what it got --------------------------------------------------------------------------
    @property
    def events(self) -> list[str]:
        """X-Canaryd-Event of every attempt, in arrival order."""
        return [a.event for a in self.attempts]

    @property
    def ids(self) -> list[str]:
        """X-Canaryd-Delivery of every attempt, in arrival order."""
        return [a.delivery for a in self.attempts]

    @property
    def rejected(self) -> int:
        """Attempts whose signature did not match."""
        return sum(not a.signed for a in self.attempts)

    def of(self, delivery: str) -> list[Attempt]:
        """Every attempt of one delivery id, in arrival order."""
        return [a for a in self.attempts if a.delivery == delivery]

    def acknowledged(self, delivery: str | None = None) -> list[Attempt]:
        """Attempts answered 2xx (of one delivery id if given), in arrival order."""
        return [
            a for a in self.answered if 200 <= a.status < 300 and delivery in (None, a.delivery)
        ]

    def events_of(self, canary_id: str) -> list[str]:
        """X-Canaryd-Event of the acknowledged attempts of one canary, in arrival order."""
        return [a.event for a in self.acknowledged() if a.canary_id == canary_id]

    # -- waiting ------------------------------------------------------------------------------
    async def until(
        self,
        condition: Callable[[], object],
        what: str,
        *,
        timeout_s: float = WAIT_S,
    ) -> None:
        """Wait until ``condition()`` holds, re-checked at every arrival and answer; fails the
        test saying ``what`` was not reached after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            msg = f"webhook receiver: {what} not reached in {timeout_s:g}s; got {self.ids}"
            raise AssertionError(msg) from None

    async def wait_for(
        self, count: int, *, delivery: str | None = None, timeout_s: float = WAIT_S
    ) -> list[Attempt]:
        """Wait until at least ``count`` attempts (of ``delivery`` if given) have arrived;
        returns them."""

        def arrived() -> list[Attempt]:
            return self.attempts if delivery is None else self.of(delivery)

        what = f"{count} attempts" + (f" of {delivery}" if delivery else "")
        await self.until(lambda: len(arrived()) >= count, what, timeout_s=timeout_s)
        return arrived()

    def release(self) -> None:
        """Answer the held attempts now, and hold none from now on."""
        self._released.set()

    # -- serving ------------------------------------------------------------------------------
    def _reply_to(self, delivery: str, signed: bool) -> Reply:
        if self.require_signature and not signed:
            return Reply(status=401, text="bad signature")
        planned = self.plan.get(delivery)
        if planned:
            return planned.pop(0)
        if self.first is not None and delivery not in self.ids:
            return self.first
        return self.reply

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record the attempt, then answer it as configured."""
        body = await request.read()
        headers = dict(request.headers)
        signed = signature_ok(self.secret, body, headers.get("X-Canaryd-Signature-256", ""))
        delivery = headers.get("X-Canaryd-Delivery", "")
        reply = self._reply_to(delivery, signed)
        attempt = Attempt(
            path=request.path,
            headers=headers,
            body=body,
            signed=signed,
            status=reply.status,
            at=time.time(),
        )
        self.attempts.append(attempt)
        self.in_flight.append(delivery)
        self._notify()
        try:
            if reply.hold_s > 0 and not self._released.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(reply.hold_s):
                        await self._released.wait()
            text = reply.text(attempt) if callable(reply.text) else reply.text
            response = web.Response(status=reply.status, headers=reply.headers, text=text)
            self.answered.append(attempt)
            return response
        finally:
            self.in_flight.remove(delivery)
            self._notify()

    def _notify(self) -> None:
        """Wake the waiters: they check their condition again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def app(self) -> web.Application:
        """The receiver's application: POST on any path."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self.handle)
        return app

    async def start(self) -> WebhookReceiver:
        """Start listening (on the port bound when the receiver was made)."""
        if self._server is None:
            self._server = server(self.app(), self._sock)
            await self._server.start_server()
        return self

    async def close(self) -> None:
        """Stop listening; held attempts are released first."""
        self.release()
        if self._server is not None:
            await self._server.close()
        self._sock.close()

    async def __aenter__(self) -> WebhookReceiver:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

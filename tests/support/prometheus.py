"""The one fake Prometheus of the tests: ``/api/v1/query_range`` on 127.0.0.1, served with
:mod:`support.loopback.servers`.

:class:`FakePrometheus` records every request's query parameters and answers each range query

- with one series of ``answer(query, times)`` (an empty matrix when that is None): what a
  daemon polling it needs;
- as its :attr:`~FakePrometheus.fault` says (:class:`Fault`: down, slow, 5xx, malformed JSON,
  empty, NaN/±Inf, several series), for every query or only those starting with
  :attr:`~FakePrometheus.only`;
- or by a ``handler`` of the test's own, such as :func:`canned` (one reply to every query).

Its port is bound when it is made and held while it is down, so its URL never changes: a
Prometheus that is down refuses connections, and comes back up where it was.

The last part builds a range fetch of the base config's metrics for the real
:class:`~analyzer.sources.prometheus.PrometheusSource` against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import StrEnum
from types import TracebackType
from typing import Any, assert_never

import aiohttp
import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestServer

from analyzer.metricdata import FloatArray, MetricData
from analyzer.model import Side, Window
from analyzer.sources.prometheus import PrometheusSource
from analyzer.sources.protocol import FetchRequest, MetricQuery
from support.fakes import T0
from support.loopback import HOST, bind, port_of, server
from support.queries import ERRORS, LATENCY, STEP

__all__ = [
    "Answer",
    "FakePrometheus",
    "Fault",
    "Handler",
    "assert_all_nan",
    "canned",
    "canned_text",
    "fetch_from",
    "fetch_request",
    "matrix",
    "no_series",
    "prometheus_error",
]

Answer = Callable[[str, FloatArray], FloatArray | None]
"""The values of a range query at each step time, or None for no series at all."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Samples = Sequence[tuple[float, str]]
HOLD_S = 30.0
"""The longest a slow reply is held (it is released as soon as the fault changes)."""
WAIT_S = 10.0


class Fault(StrEnum):
    """What the fake Prometheus does with a range query."""

    HEALTHY = "healthy"
    DOWN = "down"
    SLOW = "slow"
    SERVER_ERROR = "5xx"
    MALFORMED = "malformed"
    EMPTY = "empty"
    NOT_FINITE = "nan-inf"
    SEVERAL_SERIES = "several-series"


def no_series(_query: str, _times: FloatArray) -> None:
    """The default answer: no series for any query."""


# -- bodies and replies -----------------------------------------------------------------------
def matrix(*series: Samples) -> dict[str, Any]:
    """A successful range-query body with one series per argument, each ``[(time, "value")]``
    (labelled ``{"i": "0"}``, ``{"i": "1"}``… so that they differ)."""
    result = [{"metric": {"i": str(i)}, "values": values} for i, values in enumerate(series)]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def prometheus_error(error_type: str, error: str) -> dict[str, Any]:
    """Prometheus' body for a query it could not run."""
    return {"status": "error", "errorType": error_type, "error": error}


def canned(payload: Mapping[str, Any], *, status: int = 200) -> Handler:
    """A handler answering every query with ``payload`` as JSON."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response(payload, status=status)

    return handler


def canned_text(text: str, *, status: int = 200, content_type: str = "text/plain") -> Handler:
    """A handler answering every query with ``text`` (an error page, a truncated body)."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, text=text, content_type=content_type)

    return handler


def _samples(times: FloatArray, values: FloatArray) -> Samples:
    return [(float(t), repr(float(v))) for t, v in zip(times, values, strict=True)]


# -- the server -------------------------------------------------------------------------------
class FakePrometheus:
    """A recording range-query API on 127.0.0.1 (see the module docstring)."""

    def __init__(self, answer: Answer = no_series, *, handler: Handler | None = None) -> None:
        self.answer = answer
        self.handler = handler
        """When set, it answers every query (and :attr:`fault` is not looked at)."""
        self.fault = Fault.HEALTHY
        self.only = ""
        """When set, the fault hits only queries starting with it; the others are healthy."""
        self.requests: list[dict[str, str]] = []
        """The parameters of every range query (URL query or form body), in arrival order."""
        self.methods: list[str] = []
        """The HTTP method of every range query, in arrival order."""
        self.in_flight = 0
        self.max_in_flight = 0
        self._sock: socket.socket | None = bind()
        self.port = port_of(self._sock)
        self._server: TestServer | None = None
        self._released = asyncio.Event()
        self._released.set()
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        """The base URL a source is configured with."""
        return f"http://{HOST}:{self.port}"

    @property
    def queries(self) -> list[str]:
        """The text of every range query, in arrival order."""
        return [params["query"] for params in self.requests]

    # -- up and down ----------------------------------------------------------------------
    async def start(self) -> FakePrometheus:
        """Listen (on the port it was made with)."""
        if self._server is None:
            sock = self._sock if self._sock is not None else bind(self.port)
            self._sock = None
            app = web.Application()
            app.router.add_get("/api/v1/query_range", self._query_range)
            app.router.add_post("/api/v1/query_range", self._query_range)
            self._server = server(app, sock)
            await self._server.start_server()
        return self

    async def stop(self) -> None:
        """Stop listening but hold the port: connections are refused until :meth:`start`."""
        self._released.set()
        if self._server is not None:
            await self._server.close()
            self._server = None
            self._sock = bind(self.port)

    async def close(self) -> None:
        """Stop listening and let the port go."""
        await self.stop()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def switch(self, fault: Fault, *, only: str = "") -> None:
        """Behave as ``fault`` from the next query on (for queries starting with ``only``):
        :attr:`Fault.DOWN` stops listening, any other fault listens again; held slow replies
        are answered once the fault changes."""
        self.fault, self.only = fault, only
        if fault is Fault.SLOW:
            self._released.clear()
        else:
            self._released.set()
        if fault is Fault.DOWN:
            await self.stop()
        else:
            await self.start()

    async def __aenter__(self) -> FakePrometheus:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- waiting --------------------------------------------------------------------------
    async def until(
        self, condition: Callable[[], object], what: str, *, timeout_s: float = WAIT_S
    ) -> None:
        """Wait until ``condition()`` holds, re-checked at every arrival and answer; fails
        saying ``what`` was not reached after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            msg = f"fake Prometheus: {what} not reached in {timeout_s:g}s"
            raise AssertionError(msg) from None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- answering ------------------------------------------------------------------------
    async def _query_range(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if request.method == "POST":  # Prometheus takes a form body as well
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        self.requests.append(params)
        self.methods.append(request.method)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._notify()
        try:
            if self.handler is not None:
                return await self.handler(request)
            return await self._reply(params)
        finally:
            self.in_flight -= 1
            self._notify()

    async def _reply(self, params: Mapping[str, str]) -> web.Response:
        query = params["query"]
        start, end, step = (float(params[k]) for k in ("start", "end", "step"))
        times = np.arange(start, end + step / 2, step)
        values = self.answer(query, times)
        healthy = matrix() if values is None else matrix(_samples(times, values))
        fault = self.fault if query.startswith(self.only) else Fault.HEALTHY
        match fault:
            case Fault.HEALTHY | Fault.DOWN:
                return web.json_response(healthy)
            case Fault.SLOW:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HOLD_S):
                        await self._released.wait()
                return web.json_response(healthy)
            case Fault.SERVER_ERROR:
                body = prometheus_error("internal", "storage unavailable")
                return web.json_response(body, status=503)
            case Fault.MALFORMED:
                text = '{"status": "success", "da'
                return web.Response(text=text, content_type="application/json")
            case Fault.EMPTY:
                return web.json_response(matrix())
            case Fault.NOT_FINITE:
                bad = [(float(t), ("NaN", "+Inf", "-Inf")[k % 3]) for k, t in enumerate(times)]
                return web.json_response(matrix(bad))
            case Fault.SEVERAL_SERIES:
                one = _samples(times, np.ones(times.size) if values is None else values)
                return web.json_response(matrix(one, one))
            case _:
                assert_never(fault)


# -- the real source against it ---------------------------------------------------------------
def fetch_request(*metrics: MetricQuery, steps: int = 5, **variables: str) -> FetchRequest:
    """Canary ``c-1``'s ``metrics`` (error_rate and latency_p99 if none) over ``steps`` steps
    from T0, with its baseline and canary told apart by their ``deployment`` label."""
    return FetchRequest(
        canary_id="c-1",
        metrics=metrics or (ERRORS, LATENCY),
        baseline=Side(labels={"deployment": "checkout-baseline"}),
        canary=Side(labels={"deployment": "checkout-canary"}),
        start=T0,
        end=T0 + (steps - 1) * STEP,
        step_s=STEP,
        variables=dict(variables),
    )


async def fetch_from(
    handler: Handler, session: aiohttp.ClientSession, request: FetchRequest | None = None
) -> tuple[Window, FakePrometheus]:
    """Fetch ``request`` (:func:`fetch_request` if none) with a PrometheusSource from a fake
    Prometheus answering by ``handler``; returns the window and the fake."""
    async with FakePrometheus(handler=handler) as prometheus:
        source = PrometheusSource(prometheus.url, session, timeout_s=2.0)
        return await source.fetch(request or fetch_request()), prometheus


def assert_all_nan(data: MetricData, error: str) -> None:
    """The metric failed with ``error`` in its reason, every value of both sides NaN."""
    assert error in data.error
    for values in (*data.baseline.arrays, *data.canary.arrays):
        assert np.isnan(values).all()

"""A fake Prometheus HTTP API for benchmarks: cheap, plausible range-query answers on loopback.

    python bench/fake_prometheus.py --port 9090 [--delay-ms 0]

``GET /api/v1/query_range?query=&start=&end=&step=`` answers a ``matrix`` with exactly one
series holding one sample per step of the requested grid. The values are plausible for the
query's shape — a 5xx ``increase`` gives a handful of events, any other ``increase``/``rate``
thousands of requests, ``histogram_quantile`` a latency near 0.2 s, anything else a gauge near
0.5 — with noise drawn from a precomputed table (offset by a hash of the query and the step
time), so an answer costs little more than formatting its JSON. Baseline and canary come from
the same distributions: an A/A fleet. ``GET /-/ready`` answers 200, ``GET /stats`` the request
count. It runs as its own process so its CPU is not charged to the daemon under test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import zlib

import numpy as np
from aiohttp import web

HOST = "127.0.0.1"
_NOISE = np.random.default_rng(20261129).standard_normal(8192)
_REQUESTS = web.AppKey("requests", list[int])
_DELAY = web.AppKey("delay_s", float)
_MAX_STEPS = 11_000  # Prometheus' own limit on points per series in a range query


def _shape(query: str) -> tuple[float, float, bool]:
    """(mean, spread, integral) of the values a query of this shape returns."""
    if "histogram_quantile" in query:
        return 0.2, 0.01, False
    if '"5' in query:  # code=~"5.." — error events
        return 5.0, 2.0, True
    if "increase(" in query or "rate(" in query:
        return 3000.0, 50.0, True
    return 0.5, 0.05, False


def matrix(query: str, start: float, end: float, step: float) -> str:
    """The JSON body of a successful range query with one series on the grid."""
    steps = int((end - start) // step) + 1
    mean, spread, integral = _shape(query)
    offset = zlib.crc32(query.encode()) + int(start // step)
    # Plain modular indexing: np.take(..., mode="wrap") measured ~1000× slower here.
    noise = _NOISE[(offset + np.arange(steps)) % _NOISE.size]
    values = np.maximum(mean + spread * noise, 0.0)
    if integral:
        values = np.rint(values)
    samples = ",".join(f'[{start + k * step:.3f},"{v:g}"]' for k, v in enumerate(values.tolist()))
    return (
        '{"status":"success","data":{"resultType":"matrix","result":'
        f'[{{"metric":{{}},"values":[{samples}]}}]}}}}'
    )


def _error(status: int, kind: str, message: str) -> web.Response:
    body = json.dumps({"status": "error", "errorType": kind, "error": message})
    return web.Response(status=status, text=body, content_type="application/json")


async def query_range(request: web.Request) -> web.Response:
    """GET /api/v1/query_range."""
    request.app[_REQUESTS][0] += 1
    q = request.query
    try:
        query, start, end, step = q["query"], float(q["start"]), float(q["end"]), float(q["step"])
    except (KeyError, ValueError) as exc:
        return _error(400, "bad_data", f"invalid parameter: {exc}")
    if step <= 0 or end < start or (end - start) / step >= _MAX_STEPS:
        return _error(400, "bad_data", "exceeded maximum resolution or end before start")
    delay = request.app[_DELAY]
    if delay:
        await asyncio.sleep(delay)
    return web.Response(text=matrix(query, start, end, step), content_type="application/json")


async def ready(_request: web.Request) -> web.Response:
    """GET /-/ready."""
    return web.Response(text="Prometheus Server is Ready.\n")


async def stats(request: web.Request) -> web.Response:
    """GET /stats: how many range queries were answered."""
    return web.json_response({"query_range": request.app[_REQUESTS][0]})


def build_app(delay_s: float = 0.0) -> web.Application:
    """The fake's application."""
    app = web.Application()
    app[_REQUESTS] = [0]
    app[_DELAY] = delay_s
    app.router.add_get("/api/v1/query_range", query_range)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    """Serve on 127.0.0.1 until interrupted or terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to every answer")
    args = parser.parse_args()
    web.run_app(
        build_app(args.delay_ms / 1000.0),
        host=HOST,
        port=args.port,
        access_log=None,
        print=lambda *_: print(f"fake prometheus on {HOST}:{args.port}", flush=True),
    )


if __name__ == "__main__":
    main()

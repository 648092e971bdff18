"""Seeded scenarios for backtests: ``canaryd.recording/v1`` documents (DESIGN.md §3) by family.

Every recording is an HTTP service's two golden signals, baseline and canary side by side, at
``step_s`` steps: ``error_rate`` (count: 5xx and all requests per step) and ``latency_p99``
(series: the step's p99 in seconds). Per arm and step the requests are Poisson(rps·step·load),
the errors Poisson(requests·error rate·burst), and the p99 log-normal around ``latency_s``
with a spread that shrinks with the step's traffic (a p99 over few requests is noisy).

Families (``generate(family, n, seed, **params)``; every parameter below can be overridden):

- ``aa``             A/A: both arms identical.
- ``errors``         the canary's error rate × ``ratio`` (3) from ``onset_step`` (10).
- ``latency``        the canary's p99 + ``latency_delta`` s (0.030) from ``onset_step``.
- ``diurnal``        A/A under a load curve (``load_amplitude`` 0.6, random phase), the error
                     rate rising with load on both arms alike; the daily curve is compressed to
                     ``period_s`` = 4 h so that an hour's recording sees a quarter of the swing.
- ``bursty``         A/A with overdispersed errors: each arm's error rate is multiplied per
                     step by an independent Gamma(``burst_shape``, 1/``burst_shape``) draw —
                     negative-binomial counts, variance μ + μ²/``burst_shape``.
- ``zero_baseline``  the baseline serves no errors; the canary errs at ``canary_error_rate``
                     (0.5 %) from ``onset_step`` (``regression: false`` when it is 0).
- ``missing``        A/A with ``missing`` (10 %) of the steps null on one arm or both, plus
                     one outage of ``outage_steps`` (5) steps on both.
- ``late``           ``errors`` with a late onset, uniform in [``onset_min``, ``onset_max``].
- ``ar1_*``          autocorrelated gauges, 120 steps: p99 = ``latency_s`` + a load term both arms
                     share (daily curve ±``load_latency_s`` + an AR(1), ρ 0.9) + each arm's own
                     stationary AR(1) noise (ρ ``ar_rho``, marginal sd ``ar_sigma`` 20 ms);
                     ``ar1_03/06/08`` A/A at ρ 0.3/0.6/0.8, ``_shift`` +30 ms from step 10.
- ``sparse_nb``      sparse bursty errors over 240 steps: about 0.2 errors per step and arm,
                     negative binomial with variance 3× the mean (gamma shape 0.1).
- ``gamma_poisson``  gamma-Poisson errors (shape ``burst_shape`` 1, 120 steps), A/A; with
                     ``ratio`` > 1 a regression.
- ``overlap``        every value sums (counts) or averages (p99) the last ``overlap`` (5) steps,
                     as ``increase(x[10s])`` at a 2 s step does.

Each recording carries ``truth`` = {regression, metric, onset_step} (metric and onset null for
A/A). The same (family, n, seed, params) always gives the same documents.

    .venv/bin/python bench/scenarios.py errors aa --n 200 --seed 7 --out /tmp/rec [--set rps=50]
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULTS", "FAMILIES", "FORMAT", "generate", "main"]

FORMAT = "canaryd.recording/v1"
FloatArray = npt.NDArray[np.float64]

DEFAULTS: dict[str, Any] = {
    "steps": 60,
    "step_s": 60.0,
    "rps": 50.0,  # requests per second per arm
    "canary_rps": None,  # None: as rps
    "error_rate": 0.002,
    "latency_s": 0.240,
    "latency_spread": 0.05,  # log-normal sigma of the p99 at high traffic
    "start": "2026-01-01T00:00:00Z",
    "missing": 0.0,
    "ratio": 1.0,
    "onset_step": None,
    "latency_delta": 0.0,
    "canary_error_rate": None,  # zero_baseline: the canary's own error rate
    "baseline_error_rate": None,
    "load_amplitude": 0.0,
    "period_s": 86_400.0,
    "burst_shape": None,  # None: Poisson; k: gamma(k, 1/k) rate multipliers per step and arm
    "outage_steps": 0,
    "onset_min": None,
    "onset_max": None,
    "ar_rho": None,  # None: i.i.d. log-normal p99; ρ: the AR(1) gauge model of ``ar1``
    "ar_sigma": 0.020,
    "load_latency_s": 0.010,
    "overlap": 1,
}

_AR = {"steps": 120, "load_amplitude": 0.6, "period_s": 14_400.0}
_SHIFT = {"latency_delta": 0.030, "onset_step": 10}
FAMILIES: dict[str, dict[str, Any]] = {
    "aa": {},
    "errors": {"ratio": 3.0, "onset_step": 10},
    "latency": {"latency_delta": 0.030, "onset_step": 10},
    "diurnal": {"load_amplitude": 0.6, "period_s": 14_400.0},
    "bursty": {"burst_shape": 2.0},
    "zero_baseline": {
        "baseline_error_rate": 0.0,
        "canary_error_rate": 0.005,
        "onset_step": 10,
        "rps": 5.0,
    },
    "missing": {"missing": 0.10, "outage_steps": 5},
    "late": {"ratio": 3.0, "onset_min": 30, "onset_max": 50},
    **{f"ar1_{round(10 * r):02d}": _AR | {"ar_rho": r} for r in (0.3, 0.6, 0.8)},
    **{f"ar1_{round(10 * r):02d}_shift": _AR | _SHIFT | {"ar_rho": r} for r in (0.3, 0.6, 0.8)},
    "sparse_nb": {"steps": 240, "error_rate": 0.2 / 3000.0, "burst_shape": 0.1},
    "gamma_poisson": {"steps": 120, "burst_shape": 1.0},
    "overlap": {"overlap": 5},
}


def _load(p: dict[str, Any], rng: np.random.Generator) -> FloatArray:
    """Relative traffic per step: 1, or a daily sine with a random phase (never below 5 %)."""
    steps = int(p["steps"])
    amplitude = float(p["load_amplitude"])
    if amplitude <= 0:
        return np.ones(steps)
    phase = rng.uniform(0.0, 2.0 * math.pi)
    t = np.arange(steps) * float(p["step_s"])
    return np.maximum(
        0.05, 1.0 + amplitude * np.sin(2.0 * math.pi * t / float(p["period_s"]) + phase)
    )


def _onset(p: dict[str, Any], rng: np.random.Generator) -> int | None:
    if p["onset_min"] is not None and p["onset_max"] is not None:
        return int(rng.integers(int(p["onset_min"]), int(p["onset_max"]) + 1))
    return None if p["onset_step"] is None else int(p["onset_step"])


def _errors(
    rng: np.random.Generator, requests: FloatArray, rate: FloatArray, shape: float | None
) -> FloatArray:
    """Poisson errors, or negative binomial via a gamma multiplier per step (this arm only)."""
    burst = (
        np.ones(requests.size) if shape is None else rng.gamma(shape, 1.0 / shape, requests.size)
    )
    return rng.poisson(np.clip(rate * burst, 0.0, 1.0) * requests).astype(np.float64)


def _p99(
    rng: np.random.Generator, p: dict[str, Any], requests: FloatArray, shift: FloatArray
) -> FloatArray:
    """A p99 per step: log-normal around latency_s, noisier over fewer requests (≥ 50 for a
    spread of ``latency_spread``; NaN for a step without requests)."""
    spread = float(p["latency_spread"]) * np.sqrt(np.maximum(1.0, 50.0 / np.maximum(requests, 1.0)))
    p99 = float(p["latency_s"]) * rng.lognormal(0.0, spread) + shift
    return np.where(requests > 0, np.round(p99, 4), np.nan)


def _ar1(rng: np.random.Generator, steps: int, rho: float, sd: float) -> FloatArray:
    """A stationary AR(1) path with coefficient ``rho`` and marginal sd ``sd``."""
    shocks = rng.normal(0.0, sd * math.sqrt(1.0 - rho * rho), steps)
    out = np.empty(steps)
    out[0] = rng.normal(0.0, sd)
    for t in range(1, steps):
        out[t] = rho * out[t - 1] + shocks[t]
    return out


def _gauges(
    rng: np.random.Generator, p: dict[str, Any], load: FloatArray, shift: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The ``ar1`` p99 pair: a shared load term plus each arm's own AR(1) noise."""
    steps, amp, swing = int(p["steps"]), float(p["load_latency_s"]), float(p["load_amplitude"])
    daily = amp * (load - 1.0) / swing if swing > 0 else np.zeros(steps)
    shared = daily + _ar1(rng, steps, 0.9, amp / 2.0)
    rho, sd = float(p["ar_rho"]), float(p["ar_sigma"])
    base = float(p["latency_s"]) + shared
    lat_b = base + _ar1(rng, steps, rho, sd)
    lat_c = base + _ar1(rng, steps, rho, sd) + shift
    return np.round(lat_b, 5), np.round(lat_c, 5)


def _overlapping(values: FloatArray, width: int, *, mean: bool) -> FloatArray:
    """Each value replaced by the sum (or mean) of the last ``width`` steps (fewer at the
    start): the samples of a query whose range is ``width`` steps long."""
    if width <= 1:
        return values
    sums = np.convolve(values, np.ones(width))[: values.size]
    return sums / np.minimum(np.arange(1, values.size + 1), width) if mean else sums


def _holes(rng: np.random.Generator, p: dict[str, Any]) -> tuple[FloatArray, FloatArray]:
    """Masks (1 kept, NaN missing) per arm: random missing steps and one shared outage."""
    steps = int(p["steps"])
    masks = np.ones((2, steps))
    frac = float(p["missing"])
    if frac > 0:
        hit = rng.random(steps) < frac
        side = rng.integers(0, 3, steps)  # 0 baseline, 1 canary, 2 both
        masks[0, hit & (side != 1)] = np.nan
        masks[1, hit & (side != 0)] = np.nan
    outage = int(p["outage_steps"])
    if 0 < outage < steps:
        at = int(rng.integers(1, steps - outage + 1))
        masks[:, at : at + outage] = np.nan
    return masks[0], masks[1]


def _values(array: FloatArray) -> list[float | int | None]:
    out: list[float | int | None] = []
    for v in array.tolist():
        if math.isnan(v):
            out.append(None)
        elif float(v).is_integer():
            out.append(int(v))
        else:
            out.append(float(v))
    return out


def _one(name: str, p: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    steps, step_s = int(p["steps"]), float(p["step_s"])
    load = _load(p, rng)
    onset = _onset(p, rng)
    after = np.arange(steps) >= (steps if onset is None else onset)
    rps_b = float(p["rps"])
    rps_c = rps_b if p["canary_rps"] is None else float(p["canary_rps"])
    base_rate = float(
        p["error_rate"] if p["baseline_error_rate"] is None else p["baseline_error_rate"]
    )
    # Under a daily curve the error rate rises with load on both arms alike (contention).
    rate = base_rate * np.sqrt(load)
    canary_rate = rate * np.where(after, float(p["ratio"]), 1.0)
    if p["canary_error_rate"] is not None:
        canary_rate = np.where(after, float(p["canary_error_rate"]) * np.sqrt(load), rate)
    req_b = rng.poisson(rps_b * step_s * load).astype(np.float64)
    req_c = rng.poisson(rps_c * step_s * load).astype(np.float64)
    shape = None if p["burst_shape"] is None else float(p["burst_shape"])
    err_b = _errors(rng, req_b, rate, shape)
    err_c = _errors(rng, req_c, canary_rate, shape)
    shift = np.where(after, float(p["latency_delta"]), 0.0)
    if p["ar_rho"] is None:
        lat_b, lat_c = _p99(rng, p, req_b, np.zeros(steps)), _p99(rng, p, req_c, shift)
    else:
        lat_b, lat_c = _gauges(rng, p, load, shift)
    width = int(p["overlap"])
    req_b, req_c, err_b, err_c = (
        _overlapping(a, width, mean=False) for a in (req_b, req_c, err_b, err_c)
    )
    lat_b, lat_c = (_overlapping(a, width, mean=True) for a in (lat_b, lat_c))
    hole_b, hole_c = _holes(rng, p)
    truth = _truth(p, onset)
    return {
        "format": FORMAT,
        "name": name,
        "start": str(p["start"]),
        "step_s": int(step_s) if step_s.is_integer() else step_s,
        "metrics": {
            "error_rate": {
                "kind": "count",
                "baseline": {
                    "events": _values(err_b * hole_b),
                    "exposure": _values(req_b * hole_b),
                },
                "canary": {"events": _values(err_c * hole_c), "exposure": _values(req_c * hole_c)},
            },
            "latency_p99": {
                "kind": "series",
                "baseline": _values(lat_b * hole_b),
                "canary": _values(lat_c * hole_c),
            },
        },
        "truth": truth,
    }


def _truth(p: dict[str, Any], onset: int | None) -> dict[str, Any]:
    """What was injected: an error-rate or latency regression from ``onset``, or nothing."""
    base = p["error_rate"] if p["baseline_error_rate"] is None else p["baseline_error_rate"]
    errors = float(p["ratio"]) != 1.0 or (
        p["canary_error_rate"] is not None and float(p["canary_error_rate"]) != float(base)
    )
    latency = float(p["latency_delta"]) != 0.0
    if onset is None or not (errors or latency):
        return {"regression": False, "metric": None, "onset_step": None}
    return {
        "regression": True,
        "metric": "error_rate" if errors else "latency_p99",
        "onset_step": onset,
    }


def generate(family: str, n: int, seed: int, **params: Any) -> list[dict[str, Any]]:
    """``n`` recordings of ``family`` (see the module docstring), seeded: recording i draws from
    its own stream ``SeedSequence(seed, spawn_key=(family, i))``, so adding recordings or
    families never changes the others. ``params`` override the family's defaults."""
    if family not in FAMILIES:
        msg = f"family must be one of {sorted(FAMILIES)}, got {family!r}"
        raise ValueError(msg)
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        msg = f"unknown parameters {unknown}; known: {sorted(DEFAULTS)}"
        raise ValueError(msg)
    if n < 0:
        msg = f"n must be ≥ 0, got {n}"
        raise ValueError(msg)
    p = DEFAULTS | FAMILIES[family] | params
    family_key = list(FAMILIES).index(family)
    start = datetime.fromisoformat(str(p["start"]).replace("Z", "+00:00"))
    out = []
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(family_key, i)))
        # Consecutive recordings start a day apart, so a replay never mixes two of them.
        when = (start + timedelta(days=i)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        out.append(_one(f"{family}-{i:04d}", p | {"start": when}, rng))
    return out


def _set(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            msg = f"--set takes key=value, got {pair!r}"
            raise SystemExit(msg)
        try:
            out[key.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    """Write ``--n`` recordings of each family to ``--out``/<name>.json; print their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="+", choices=sorted(FAMILIES), metavar="FAMILY")
    parser.add_argument("--n", type=int, default=100, help="recordings per family")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter (JSON value), e.g. --set rps=0.2",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for family in args.families:
        for doc in generate(family, args.n, args.seed, **_set(args.set)):
            path = args.out / f"{doc['name']}.json"
            path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

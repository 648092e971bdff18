"""A/A and regressed count streams for the sequential judges' tests, drawn from seeded numpy
generators: :class:`CountTraffic` (requests ~ Poisson, errors ~ Binomial, many streams at once)
and :func:`count_stream` (one stream of Poisson errors at a fixed 3:1 exposure split)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CountTraffic", "count_stream"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CountTraffic:
    """An A/A count stream per step: requests ~ Poisson, errors ~ Binomial(requests, p)."""

    name: str
    rps_baseline: float
    rps_canary: float
    error_rate: float
    step_s: float = 60.0

    def draw(self, rng: np.random.Generator, shape: tuple[int, int]) -> tuple[FloatArray, ...]:
        """(baseline events, baseline exposure, canary events, canary exposure), each ``shape``."""
        na = rng.poisson(self.rps_baseline * self.step_s, shape).astype(np.float64)
        nb = rng.poisson(self.rps_canary * self.step_s, shape).astype(np.float64)
        ea = rng.binomial(na.astype(np.int64), self.error_rate).astype(np.float64)
        eb = rng.binomial(nb.astype(np.int64), self.error_rate).astype(np.float64)
        return ea, na, eb, nb


def count_stream(
    seed: int, steps: int = 40, ratio: float = 1.0, lam: float = 4.0
) -> tuple[FloatArray, ...]:
    """(baseline events, baseline exposure, canary events, canary exposure) over ``steps``: about
    3,000 and 1,000 requests a step, ``lam`` errors per 1,000 requests, the canary's × ``ratio``."""
    rng = np.random.default_rng(seed)
    na = rng.poisson(3000, steps).astype(np.float64)
    nb = rng.poisson(1000, steps).astype(np.float64)
    ea = rng.poisson(lam * na / 1000).astype(np.float64)
    eb = rng.poisson(lam * ratio * nb / 1000).astype(np.float64)
    return ea, na, eb, nb

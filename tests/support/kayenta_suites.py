"""What the tests of Kayenta's published judge suites share: the cases as pytest params, the
cases of one suite, and Kayenta's Mann-Whitney statistic read off canaryd's own test.

The suites are reproduced through canaryd's Python API, one test module per group of suites
(``tests/judges/mannwhitney/test_kayenta_*.py``).

Every case comes from ``kayenta_vectors`` (data transcribed from Kayenta's Scala suites) and
carries its ``source``: ``"<repo> <path>::<test name>"``. Pytest ids are the case ids and every
assertion message names the source, so a failure points straight at the published test.

Intentional differences from Kayenta, each handled in the test that meets it:

(1) Kayenta adds Gaussian noise when both samples are constant; canaryd decides
    deterministically (interval [c, c], c the single pairwise difference) and says why.
(2) Kayenta's estimate is wherever its Brent solver stops in the flat step W(d) = 0; canaryd's
    is the midpoint of that step (the Hodges–Lehmann median).
(3) Kayenta's interval ends are within the solver tolerance 1e-4 of the jump points of W(d);
    canaryd returns the jump points themselves.
(4) Legacy percentiles (commons-math) and values whose assertion is commented out in the suite
    are not asserted; the test pins what the current method gives instead.
(5) Options Kayenta would silently replace by a default are errors in canaryd.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from judges.mannwhitney.ranksum import mann_whitney
from support import kayenta_vectors as kv

__all__ = [
    "CONSTANT_REASON",
    "SOLVER_TOLERANCE",
    "as_array",
    "flat_step",
    "of_suite",
    "param_cases",
    "sorted_differences",
    "wilcoxon_diff",
]

FloatArray = npt.NDArray[np.float64]

SOLVER_TOLERANCE = 1e-4
"""Absolute tolerance of Kayenta's (and R's) root finder for the interval and the estimate."""

CONSTANT_REASON = "both sides constant: every pairwise difference is equal"


def param_cases(cases: Sequence[Any]) -> list[Any]:
    """Each case as a pytest param whose id is the case id."""
    return [pytest.param(case, id=case.id) for case in cases]


def of_suite(cases: Sequence[kv.MannWhitneyCase], suite: str) -> list[kv.MannWhitneyCase]:
    """The cases transcribed from ``suite``."""
    return [case for case in cases if case.source.startswith(suite)]


def as_array(values: Sequence[float]) -> FloatArray:
    """The values as a float64 array."""
    return np.asarray(values, dtype=np.float64)


def sorted_differences(experiment: Sequence[float], control: Sequence[float]) -> FloatArray:
    """All x_i − y_j, ascending: W(d) only changes value at these points."""
    return np.sort(np.subtract.outer(as_array(experiment), as_array(control)).ravel())


def flat_step(diffs: FloatArray) -> tuple[float, float]:
    """[D₍k₎, D₍k+1₎] around the median pairwise difference: the step on which W(d) = 0."""
    half = diffs.size // 2
    if diffs.size % 2:
        return float(diffs[half]), float(diffs[half])
    return float(diffs[half - 1]), float(diffs[half])


def wilcoxon_diff(experiment: Sequence[float], control: Sequence[float], shift: float) -> float:
    """Kayenta's ``wilcoxonDiff(shift, 0, x, y)``, read off canaryd's own test of (x − shift, y).

    canaryd reports z = (|U − nm/2| − ½)/σ with σ tie-corrected over the pooled sample, so the
    signed, continuity-corrected statistic Kayenta solves for is sign(U − nm/2)·z.
    """
    x = as_array(experiment) - shift
    result = mann_whitney(x, control)
    centre = x.size * len(control) / 2.0
    return float(np.sign(result.u - centre)) * result.z

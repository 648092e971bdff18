"""Reference test vectors transcribed from Spinnaker Kayenta's published test suites.

Kayenta (https://github.com/spinnaker/kayenta, since 2024 also vendored under
``kayenta/`` in https://github.com/spinnaker/spinnaker) is licensed under the
Apache License, Version 2.0.  This module contains *facts only*: the inputs the
Kayenta Scala/Java test suites feed to their judge, classifier, scorer,
statistics, detector, transform and Mann-Whitney code, and the outputs those
suites assert.  The data is in ``data/kayenta_vectors.json`` (its shared samples
under ``samples``, each with what it is and where it appears); this module gives
it its types.  No Kayenta code or prose is reproduced; every case carries a
``source`` of the form ``"<repo> <path>::<test name as written in the suite>"``
so it can be traced back to the published suite.

Conventions
-----------
* ``experiment`` is Kayenta's canary ("experiment") sample and ``control`` its
  baseline ("control") sample.  Kayenta's Mann-Whitney interval/estimate is for
  the location shift ``experiment - control``.
* NaN is written ``float("nan")`` (``NAN``).  An ``expected_*`` value of NaN
  means the suite asserts ``isNaN``.
* ``abs_tol`` is the absolute tolerance the suite itself uses for the
  comparison; ``0.0`` means the suite compares with exact (``==``/``===``)
  equality of doubles.
* Classification labels are spelled exactly as Kayenta's ``toString``:
  ``"Pass"``, ``"High"``, ``"Low"``, ``"Nodata"``, ``"NodataFailMetric"``,
  ``"Error"``.
* Directions are ``"either"``, ``"increase"``, ``"decrease"``; NaN strategies
  are ``"remove"``, ``"replace"``; effect-size measures are ``"meanRatio"``,
  ``"cles"``.
* Classifier parameters that a suite does not set explicitly take the Kayenta
  constructor/method defaults, which are the dataclass defaults below
  (MannWhitneyClassifier: tolerance=0.25, confLevel=0.95,
  effectSizeThresholds=(1.0, 1.0), criticalThresholds=(1.0, 1.0),
  effectSizeMeasure="meanRatio"; classify(): direction=either,
  nanStrategy=remove, isCriticalMetric=false, isDataRequired=false).
  Kayenta's threshold tuples are ``(decrease, increase)``; here they are split
  into ``allowed_decrease``/``allowed_increase`` and
  ``critical_decrease``/``critical_increase``.
* ``deterministic=False`` marks cases whose code path in Kayenta draws random
  numbers (Gaussian jitter added when both samples are constant, or a seeded
  JVM RNG); the asserted outcome is what Kayenta asserts, but the internal
  numbers cannot be reproduced bit-for-bit.
* ``asserted=False`` marks values that appear in a suite as an expectation but
  whose assertion is commented out there; they are kept for reference only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ALL_CASE_GROUPS",
    "CLASSIFIER_CASES",
    "CLASSIFIER_SUITE",
    "DETECTOR_CASES",
    "DETECTOR_SUITE",
    "MANN_WHITNEY_CASES",
    "MANN_WHITNEY_R_SUITE",
    "MANN_WHITNEY_SCALAR_CASES",
    "MANN_WHITNEY_SUITE",
    "NAN",
    "NETFLIX_DETECTOR_SUITE",
    "NETFLIX_STATISTIC_SUITE",
    "SCORER_CASES",
    "SCORER_SUITE",
    "STATISTIC_CASES",
    "STATISTIC_SUITE",
    "TRANSFORM_CASES",
    "TRANSFORM_SUITE",
    "WILCOX_HELPER_CASES",
    "WILCOX_TESTS",
    "ClassifierCase",
    "DetectorCase",
    "MannWhitneyCase",
    "ScalarCase",
    "ScorerCase",
    "ScorerMetric",
    "StatisticCase",
    "TransformCase",
]

NAN = float("nan")

# --------------------------------------------------------------------------
# Source files (repository + path).  Newest versions of the kayenta-judge and
# kayenta-mannwhitney suites live in the spinnaker monorepo under kayenta/.
# --------------------------------------------------------------------------
_MONO = "spinnaker/spinnaker kayenta/"
CLASSIFIER_SUITE = (
    _MONO + "kayenta-judge/src/test/scala/com/netflix/kayenta/judge/ClassifierSuite.scala"
)
SCORER_SUITE = _MONO + "kayenta-judge/src/test/scala/com/netflix/kayenta/judge/ScorerSuite.scala"
STATISTIC_SUITE = (
    _MONO + "kayenta-judge/src/test/scala/com/netflix/kayenta/judge/StatisticSuite.scala"
)
DETECTOR_SUITE = (
    _MONO + "kayenta-judge/src/test/scala/com/netflix/kayenta/judge/DetectorSuite.scala"
)
TRANSFORM_SUITE = (
    _MONO + "kayenta-judge/src/test/scala/com/netflix/kayenta/judge/TransformSuite.scala"
)
MANN_WHITNEY_SUITE = (
    _MONO + "kayenta-mannwhitney/src/test/scala/com/netflix/kayenta/mannwhitney/"
    "MannWhitneySuite.scala"
)

_KAYENTA = "spinnaker/kayenta "
NETFLIX_STATISTIC_SUITE = (
    _KAYENTA + "kayenta-judge-netflix/src/test/scala/com/netflix/kayenta/judge/netflix/"
    "StatisticSuite.scala"
)
NETFLIX_DETECTOR_SUITE = (
    _KAYENTA + "kayenta-judge-netflix/src/test/scala/com/netflix/kayenta/judge/netflix/"
    "DetectorSuite.scala"
)
MANN_WHITNEY_R_SUITE = (
    _KAYENTA + "kayenta-mannwhitney/src/test/scala/com/netflix/kayenta/mannwhitney/"
    "MannWhitneyRSuite.scala"
)
WILCOX_TESTS = (
    _KAYENTA + "kayenta-mannwhitney/src/test/scala/com/netflix/kayenta/mannwhitney/"
    "WilcoxTests.scala"
)


# --------------------------------------------------------------------------
# Case types
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class MannWhitneyCase:
    """Two-sample Mann-Whitney confidence interval / location-shift estimate.

    Kayenta call: ``mannWhitneyUTest(x=experiment, y=control, confidenceLevel)``
    (deprecated ``eval(MannWhitneyParams(mu, confidenceLevel, controlData,
    experimentData))`` is equivalent).  Interval is for experiment - control.
    """

    id: str
    source: str
    experiment: list[float]
    control: list[float]
    confidence: float
    mu: float = 0.0
    expected_lower: float | None = None
    expected_upper: float | None = None
    expected_estimate: float | None = None
    expected_p_value: float | None = None
    expected_upper_gt: float | None = None  # suite only asserts upper > this
    abs_tol: float = 1e-6  # tolerance the suite uses for the interval bounds
    estimate_abs_tol: float | None = None  # if the suite uses a different one
    p_value_abs_tol: float | None = None
    asserted: bool = True
    deterministic: bool = True
    note: str = ""


@dataclass(frozen=True)
class ScalarCase:
    """A single scalar assertion on a named Kayenta helper function."""

    id: str
    source: str
    function: str
    args: dict[str, Any]
    expected: Any
    abs_tol: float = 0.0
    asserted: bool = True
    note: str = ""


@dataclass(frozen=True)
class ClassifierCase:
    id: str
    source: str
    experiment: list[float]
    control: list[float]
    expected_classification: str | None
    classifier: str = "mannWhitney"  # or "meanInequality"
    direction: str = "either"
    tolerance: float | None = 0.25
    confidence: float | None = 0.95
    allowed_increase: float | None = 1.0
    allowed_decrease: float | None = 1.0
    critical_increase: float | None = 1.0
    critical_decrease: float | None = 1.0
    effect_measure: str = "meanRatio"
    nan_strategy: str = "remove"
    critical: bool = False
    must_have_data: bool = False
    expected_critical: bool | None = None  # None: suite does not assert it
    expected_deviation: float | None = None  # NaN: suite asserts isNaN
    expected_reason_nonempty: bool | None = None
    deterministic: bool = True
    note: str = ""


@dataclass(frozen=True)
class ScorerMetric:
    name: str
    classification: str
    groups: list[str]
    critical: bool = False  # CanaryAnalysisResult.critical (builder default false)


@dataclass(frozen=True)
class ScorerCase:
    id: str
    source: str
    group_weights: dict[str, float]
    metrics: list[ScorerMetric]
    expected_summary_score: float
    summary_abs_tol: float = 0.0
    expected_group_count: int | None = None
    expected_group_scores_sorted: list[float] | None = None
    note: str = ""


@dataclass(frozen=True)
class StatisticCase:
    id: str
    source: str
    function: str  # summary | percentile | meanRatio | meanRatioOfSummaries | cohenD | cles
    expected: Any
    data: list[float] | None = None
    experiment: list[float] | None = None
    control: list[float] | None = None
    p: float | None = None  # percentile in [0, 100]
    abs_tol: float | dict[str, float] = 0.0
    note: str = ""


@dataclass(frozen=True)
class DetectorCase:
    id: str
    source: str
    detector: str  # "iqr" | "ksigma"
    data: list[float]
    expected_outliers: list[bool]
    outlier_factor: float | None = None  # IQRDetector(factor=...)
    k: float | None = None  # KSigmaDetector(k=...)
    reduce_sensitivity: bool = False
    percentile_method: str | None = None  # "R-7" | "commons-math-legacy"
    note: str = ""


@dataclass(frozen=True)
class TransformCase:
    id: str
    source: str
    transform: str  # removeNaNs | replaceNaNs | removeOutliers | addGaussianNoise
    data: list[float]
    expected: list[float] | None
    params: dict[str, Any] = field(default_factory=dict)
    deterministic: bool = True
    note: str = ""


_Case = TypeVar(
    "_Case", MannWhitneyCase, ScalarCase, ClassifierCase, StatisticCase, DetectorCase, TransformCase
)

# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------
DATA = Path(__file__).parent / "data" / "kayenta_vectors.json"
"""The transcribed vectors (format ``canaryd.kayenta-vectors/v1``)."""
_NOT_FINITE = {"NaN": NAN, "Infinity": math.inf, "-Infinity": -math.inf}


def _decode(value: Any, samples: dict[str, list[Any]]) -> Any:
    """JSON to Python: the strings "NaN"/"Infinity"/"-Infinity" become floats, and
    ``{"$sample": name}`` the (one, shared) list of that sample."""
    if isinstance(value, str):
        return _NOT_FINITE.get(value, value)
    if isinstance(value, list):
        return [_decode(item, samples) for item in value]
    if isinstance(value, dict):
        if set(value) == {"$sample"}:
            return samples[value["$sample"]]
        return {key: _decode(item, samples) for key, item in value.items()}
    return value


def _load() -> dict[str, list[dict[str, Any]]]:
    """Every group's cases, decoded (fields a case leaves out take the dataclass default)."""
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    samples: dict[str, list[Any]] = {}
    for name, sample in doc["samples"].items():
        samples[name] = _decode(sample["values"], samples)
    return {name: _decode(group["cases"], samples) for name, group in doc["groups"].items()}


def _cases(kind: type[_Case], rows: list[dict[str, Any]]) -> list[_Case]:
    return [kind(**row) for row in rows]


def _scorer_cases(rows: list[dict[str, Any]]) -> list[ScorerCase]:
    metrics = [[ScorerMetric(**m) for m in row["metrics"]] for row in rows]
    return [ScorerCase(**(row | {"metrics": m})) for row, m in zip(rows, metrics, strict=True)]


_ROWS = _load()

MANN_WHITNEY_CASES: list[MannWhitneyCase] = _cases(MannWhitneyCase, _ROWS["MANN_WHITNEY_CASES"])
"""Confidence interval / estimate of experiment - control."""
MANN_WHITNEY_SCALAR_CASES: list[ScalarCase] = _cases(ScalarCase, _ROWS["MANN_WHITNEY_SCALAR_CASES"])
"""Scalar assertions on Mann-Whitney internals (wilcoxonDiff, quantiles, R tie-out of
intermediate variables).  wilcoxonDiff(d, zq, x, y) is the continuity-corrected,
tie-corrected normal statistic of x - d versus y, minus zq (R's wdiff())."""
WILCOX_HELPER_CASES: list[ScalarCase] = _cases(ScalarCase, _ROWS["WILCOX_HELPER_CASES"])
"""WilcoxTests also pins helpers of an (experimental) port of R's exact Wilcoxon
distribution code (choose / lbeta / lgammacor / chebyshev / pwilcox / cwilcox /
outer / trunc).  Only useful if an exact small-sample path is ever implemented."""
CLASSIFIER_CASES: list[ClassifierCase] = _cases(ClassifierCase, _ROWS["CLASSIFIER_CASES"])
"""MannWhitneyClassifier / MeanInequalityClassifier."""
SCORER_CASES: list[ScorerCase] = _scorer_cases(_ROWS["SCORER_CASES"])
"""WeightedSumScorer(groupWeights).score(results).summaryScore."""
STATISTIC_CASES: list[StatisticCase] = _cases(StatisticCase, _ROWS["STATISTIC_CASES"])
"""DescriptiveStatistics / EffectSizes."""
DETECTOR_CASES: list[DetectorCase] = _cases(DetectorCase, _ROWS["DETECTOR_CASES"])
"""IQRDetector / KSigmaDetector .detect(data) -> outlier flags."""
TRANSFORM_CASES: list[TransformCase] = _cases(TransformCase, _ROWS["TRANSFORM_CASES"])
"""preprocessing.Transforms.  (The older kayenta-judge-netflix TransformSuite/DetectorSuite
hold the same vectors as the current suites, except "IQR Reduce Sensitivity".)"""

ALL_CASE_GROUPS = {
    "MANN_WHITNEY_CASES": MANN_WHITNEY_CASES,
    "MANN_WHITNEY_SCALAR_CASES": MANN_WHITNEY_SCALAR_CASES,
    "WILCOX_HELPER_CASES": WILCOX_HELPER_CASES,
    "CLASSIFIER_CASES": CLASSIFIER_CASES,
    "SCORER_CASES": SCORER_CASES,
    "STATISTIC_CASES": STATISTIC_CASES,
    "DETECTOR_CASES": DETECTOR_CASES,
    "TRANSFORM_CASES": TRANSFORM_CASES,
}

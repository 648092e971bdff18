"""Preparing one side's values for judging: NaN strategy, IQR outliers, summary statistics.

Kayenta (kayenta-judge ``preprocessing/Transforms.scala``, ``detectors/IQRDetector.scala``)
applies the same steps; the fences with reduced sensitivity are
``[min(P1, Q1 − f·IQR), max(P99, Q3 + f·IQR)]`` with R-7 (linear) percentiles, Hyndman & Fan
(1996) type 7, which is numpy's default ``method="linear"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from judges.arrays import FloatArray
from judges.labels import NanStrategy, OutlierStrategy

__all__ = ["Stats", "apply_nan_strategy", "describe", "iqr_fences", "prepare", "remove_outliers"]

DEFAULT_OUTLIER_FACTOR = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """Summary of one side after preprocessing; NaN fields when the side is empty."""

    count: int
    mean: float
    std: float
    min: float
    max: float


def apply_nan_strategy(values: npt.ArrayLike, strategy: NanStrategy) -> FloatArray:
    """Drop NaNs (``remove``) or replace them by 0.0 (``replace``)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    missing = np.isnan(arr)
    match strategy:
        case NanStrategy.REMOVE:
            return arr[~missing]
        case NanStrategy.REPLACE:
            return np.where(missing, 0.0, arr)


def iqr_fences(values: FloatArray, factor: float = DEFAULT_OUTLIER_FACTOR) -> tuple[float, float]:
    """Lower and upper fences: min(P1, Q1 − f·IQR) and max(P99, Q3 + f·IQR), R-7 percentiles."""
    if factor <= 0 or not np.isfinite(factor):
        msg = f"outlier factor must be a positive number, got {factor!r}"
        raise ValueError(msg)
    p1, q1, q3, p99 = np.percentile(values, [1.0, 25.0, 75.0, 99.0], method="linear")
    iqr = q3 - q1
    return float(min(p1, q1 - factor * iqr)), float(max(p99, q3 + factor * iqr))


def remove_outliers(values: FloatArray, factor: float = DEFAULT_OUTLIER_FACTOR) -> FloatArray:
    """Values inside the IQR fences; fences come from the finite values, ±Inf is kept for the
    classifier to report (an empty side stays empty)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return values
    lower, upper = iqr_fences(finite, factor)
    keep = ((values >= lower) & (values <= upper)) | np.isinf(values)
    return values[keep]


def prepare(
    values: npt.ArrayLike,
    *,
    nan_strategy: NanStrategy = NanStrategy.REMOVE,
    outliers: OutlierStrategy = OutlierStrategy.KEEP,
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
) -> FloatArray:
    """Apply the NaN strategy, then (if asked) IQR outlier removal."""
    arr = apply_nan_strategy(values, nan_strategy)
    match outliers:
        case OutlierStrategy.KEEP:
            return arr
        case OutlierStrategy.REMOVE:
            return remove_outliers(arr, outlier_factor)


def describe(values: FloatArray) -> Stats:
    """Count, mean, sample standard deviation (n − 1, as Kayenta's), min and max."""
    n = int(values.size)
    if n == 0:
        nan = float("nan")
        return Stats(count=0, mean=nan, std=nan, min=nan, max=nan)
    # ±Inf (reported by the classifier as Error) makes inf − inf in the deviations: the mean
    # and std are then ±Inf or NaN, quietly, as the other statistics of such a side.
    with np.errstate(invalid="ignore", over="ignore"):
        std = float(np.std(values, ddof=1)) if n > 1 else 0.0
        mean = float(values.mean())
    return Stats(count=n, mean=mean, std=std, min=float(values.min()), max=float(values.max()))

"""Effect sizes: how large a change is, next to whether it is significant.

``meanRatio`` is mean(canary) / mean(baseline) (Kayenta ``stats/EffectSizes.scala``), NaN when
either mean is 0 because the ratio is then undefined or infinite. ``cles`` is the common-language
effect size of McGraw & Wong (1992): the probability that a random canary value exceeds a random
baseline value, ties counted one half — U / (n·m) of the Mann-Whitney test.
"""

from __future__ import annotations

import numpy as np

from judges.arrays import FloatArray
from judges.labels import EffectMeasure

__all__ = ["cles", "effect_size", "mean_ratio"]


def mean_ratio(experiment: FloatArray, control: FloatArray) -> float:
    """mean(experiment) / mean(control); NaN when a side is empty or either mean is 0."""
    if experiment.size == 0 or control.size == 0:
        return float("nan")
    num, den = float(experiment.mean()), float(control.mean())
    if num == 0.0 or den == 0.0:
        return float("nan")
    return num / den


def cles(experiment: FloatArray, control: FloatArray) -> float:
    """P(experiment > control) + ½·P(experiment = control) over all pairs; NaN when empty."""
    if experiment.size == 0 or control.size == 0:
        return float("nan")
    ys = np.sort(control)
    below = np.searchsorted(ys, experiment, side="left")
    not_above = np.searchsorted(ys, experiment, side="right")
    u = float(below.sum()) + 0.5 * float((not_above - below).sum())
    return u / (experiment.size * control.size)


def effect_size(measure: EffectMeasure, experiment: FloatArray, control: FloatArray) -> float:
    """The named effect size of experiment against control."""
    match measure:
        case EffectMeasure.MEAN_RATIO:
            return mean_ratio(experiment, control)
        case EffectMeasure.CLES:
            return cles(experiment, control)

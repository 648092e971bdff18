"""The vocabulary the judges speak: classification labels, directions and strategies."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Direction", "EffectMeasure", "Label", "NanStrategy", "OutlierStrategy", "ScoreClass"]


class Label(StrEnum):
    """Classification of one metric, spelt as Kayenta spells it."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL_METRIC = "NodataFailMetric"
    ERROR = "Error"


class Direction(StrEnum):
    """Which way a change counts as a regression."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class NanStrategy(StrEnum):
    """What happens to missing values before judging: dropped, or replaced by 0.0."""

    REMOVE = "remove"
    REPLACE = "replace"


class OutlierStrategy(StrEnum):
    """Whether IQR outliers are removed before judging."""

    KEEP = "keep"
    REMOVE = "remove"


class EffectMeasure(StrEnum):
    """How the size of a change is measured: ratio of means, or P(canary > baseline)."""

    MEAN_RATIO = "meanRatio"
    CLES = "cles"


class ScoreClass(StrEnum):
    """Classification of a summary score against the {pass, marginal} thresholds."""

    PASS = "Pass"
    MARGINAL = "Marginal"
    FAIL = "Fail"

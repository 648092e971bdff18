"""canaryd's judges: pure statistics on arrays (numpy and scipy only).

No I/O, logging, clock or global random state lives here; every function maps arrays and
keyword options to frozen results, so the daemon, backtests and tests share one behaviour.
"""

from judges.classifier import MannWhitneyOptions, classify, classify_stacked
from judges.effect import cles, effect_size, mean_ratio
from judges.judgement import MetricJudgement
from judges.labels import Direction, EffectMeasure, Label, NanStrategy, OutlierStrategy, ScoreClass
from judges.mannwhitney import MannWhitneyResult, mann_whitney, mann_whitney_batch
from judges.preprocessing import Stats, describe, iqr_fences, prepare, remove_outliers
from judges.scorer import GroupScore, ScoredMetric, ScoreResult, classify_score, score_groups
from judges.threshold import ThresholdResult, ThresholdRule, threshold_counts, threshold_series

__all__ = [
    "Direction",
    "EffectMeasure",
    "GroupScore",
    "Label",
    "MannWhitneyOptions",
    "MannWhitneyResult",
    "MetricJudgement",
    "NanStrategy",
    "OutlierStrategy",
    "ScoreClass",
    "ScoreResult",
    "ScoredMetric",
    "Stats",
    "ThresholdResult",
    "ThresholdRule",
    "classify",
    "classify_score",
    "classify_stacked",
    "cles",
    "describe",
    "effect_size",
    "iqr_fences",
    "mann_whitney",
    "mann_whitney_batch",
    "mean_ratio",
    "prepare",
    "remove_outliers",
    "score_groups",
    "threshold_counts",
    "threshold_series",
]

"""One metric's judgement: its label, the evidence behind it and the reason in words.

A batch classified at once shares one :class:`Verdicts` (its decisions as columns) and one
:class:`Evidence` (the test and the statistics as columns); each :class:`MetricJudgement` is a
(batch, row) view, so the hot loop makes one small object per metric and builds the test and
statistics objects only for the metrics someone reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from judges.arrays import FloatArray
from judges.labels import EffectMeasure, Label
from judges.mannwhitney.ranksum import MannWhitneyArrays, MannWhitneyResult
from judges.preprocessing import Stats, describe

__all__ = ["Evidence", "MetricJudgement", "StatsArrays", "Verdicts", "reason_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsArrays:
    """Summary statistics of many samples as columns; :meth:`row` makes one :class:`Stats`."""

    count: int
    mean: FloatArray
    std: FloatArray
    min: FloatArray
    max: FloatArray

    @classmethod
    def of(cls, rows: FloatArray, ordered: FloatArray) -> StatsArrays:
        """The statistics of each row of a B×n array (sample std, n − 1, as Kayenta's);
        ``ordered`` is the same rows sorted (minimum and maximum are its ends)."""
        n = rows.shape[1]
        std = rows.std(axis=1, ddof=1) if n > 1 else np.zeros(rows.shape[0])
        return cls(count=n, mean=rows.mean(axis=1), std=std, min=ordered[:, 0], max=ordered[:, -1])

    def row(self, i: int) -> Stats:
        """Row ``i`` as :class:`Stats`."""
        return Stats(
            count=self.count,
            mean=float(self.mean[i]),
            std=float(self.std[i]),
            min=float(self.min[i]),
            max=float(self.max[i]),
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a judgement's test and statistics live: a batch's columns (objects made on
    demand — the hot loop judges many metrics and reads few) or ready objects."""

    tests: MannWhitneyArrays | None
    experiment: StatsArrays | Stats
    control: StatsArrays | Stats


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdicts:
    """The decisions of a batch as columns (a single decision is a batch of one): the hot loop
    makes one small view object per metric instead of copying every field into it."""

    labels: tuple[Label, ...]
    critical: tuple[bool, ...]
    effect: tuple[float, ...]
    ratio: tuple[float, ...]
    note: str
    muted: bool
    measure: EffectMeasure
    evidence: Evidence


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class MetricJudgement:
    """The classification of one metric with the evidence behind it: row ``row`` of a batch
    of verdicts. Make single ones with :meth:`of`."""

    verdicts: Verdicts
    row: int = 0

    @classmethod
    def of(
        cls,
        *,
        label: Label,
        critical: bool,
        note: str = "",
        muted: bool = False,
        effect: float = math.nan,
        ratio: float = math.nan,
        measure: EffectMeasure = EffectMeasure.MEAN_RATIO,
        evidence: Evidence | None = None,
    ) -> MetricJudgement:
        """One judgement from its fields."""
        if evidence is None:
            evidence = Evidence(None, describe(np.empty(0)), describe(np.empty(0)))
        return cls(
            Verdicts(
                labels=(label,),
                critical=(critical,),
                effect=(effect,),
                ratio=(ratio,),
                note=note,
                muted=muted,
                measure=measure,
                evidence=evidence,
            )
        )

    @property
    def label(self) -> Label:
        """Pass, High, Low, Nodata, NodataFailMetric or Error."""
        return self.verdicts.labels[self.row]

    @property
    def note(self) -> str:
        """The reason of a decision taken before the test (no data, identical, Inf ...)."""
        return self.verdicts.note

    @property
    def critical(self) -> bool:
        """True when this result fails the canary on its own (Kayenta's result ``critical``)."""
        return self.verdicts.critical[self.row]

    @property
    def muted(self) -> bool:
        """A muted metric is reported but not scored."""
        return self.verdicts.muted

    @property
    def effect(self) -> float:
        """The effect size the thresholds were applied to (NaN: not computed)."""
        return self.verdicts.effect[self.row]

    @property
    def ratio(self) -> float:
        """mean(canary) / mean(baseline); NaN when undefined."""
        return self.verdicts.ratio[self.row]

    @property
    def measure(self) -> EffectMeasure:
        """The effect measure the thresholds were applied to."""
        return self.verdicts.measure

    @property
    def evidence(self) -> Evidence:
        """Where the test and the statistics of this metric live."""
        return self.verdicts.evidence

    @property
    def test(self) -> MannWhitneyResult | None:
        """The Mann-Whitney comparison (None when a special case decided without it)."""
        tests = self.evidence.tests
        return None if tests is None else tests.result(self.row)

    @property
    def experiment(self) -> Stats:
        """Statistics of the canary's values after preprocessing."""
        source = self.evidence.experiment
        return source if isinstance(source, Stats) else source.row(self.row)

    @property
    def control(self) -> Stats:
        """Statistics of the baseline's values after preprocessing."""
        source = self.evidence.control
        return source if isinstance(source, Stats) else source.row(self.row)

    @property
    def reason(self) -> str:
        """Why the metric got its label, in words."""
        test = self.test
        if self.note or test is None:
            return self.note
        return reason_text(self.label, test, self.effect, self.measure, critical=self.critical)

    def __repr__(self) -> str:
        return (
            f"MetricJudgement(label={self.label!r}, reason={self.reason!r}, "
            f"critical={self.critical!r}, muted={self.muted!r}, effect={self.effect!r}, "
            f"ratio={self.ratio!r}, measure={self.measure!r}, test={self.test!r}, "
            f"experiment={self.experiment!r}, control={self.control!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetricJudgement) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


def reason_text(
    label: Label,
    test: MannWhitneyResult,
    effect: float,
    effect_measure: EffectMeasure,
    *,
    critical: bool,
) -> str:
    """Why a tested metric got its label: the shift, its interval, the band and the effect."""
    pct = round(test.confidence * 100, 2)
    band = test.band
    shift = f"shift {test.estimate:.6g} ({pct:g}% CI [{test.lower:.6g}, {test.upper:.6g}])"
    measure = str(effect_measure)
    match label:
        case Label.HIGH:
            tail = " (critical)" if critical else ""
            return f"canary higher{tail}: {shift} above +{band:.6g}, {measure} {effect:.4g}"
        case Label.LOW:
            tail = " (critical)" if critical else ""
            return f"canary lower{tail}: {shift} below -{band:.6g}, {measure} {effect:.4g}"
        case _:
            why = test.reason + "; " if test.reason else ""
            return f"{why}{shift} within ±{band:.6g} or effect {measure} {effect:.4g} allowed"

"""Kayenta's weighted-sum scorer (kayenta-judge ``scorers/WeightedSumScorer.scala``).

Per group: score = 100·Pass / (Pass + High + Low + NodataFailMetric); a group whose denominator
is empty (only Nodata or Error) counts 100. Groups without a configured weight share what the
weights leave, (100 − Σweights) / (number of unweighted groups). The summary is
Σ score·weight/100 rounded half-up to 2 decimals — unless a critical result failed, or 50 % or
more of the metrics are Nodata, which forces 0. Muted metrics are reported but not scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from judges.labels import Label, ScoreClass

__all__ = ["GroupScore", "ScoreResult", "ScoredMetric", "classify_score", "score_groups"]

NODATA_SHARE_THRESHOLD = 50.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredMetric:
    """What the scorer needs of one metric's result."""

    name: str
    label: Label
    groups: tuple[str, ...]
    critical: bool = False
    muted: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupScore:
    """Score of one group with its label counts."""

    name: str
    score: float
    no_data: bool
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreResult:
    """Summary score, group scores and why the summary is what it is."""

    score: float
    groups: tuple[GroupScore, ...]
    classification: ScoreClass
    reason: str
    forced_by_no_data: bool = False
    """The score is 0 only because data was missing (a critical metric without data, or the
    Nodata share): the daemon holds on this rather than rolling back (DESIGN.md §4, rule 6)."""


def _round2(value: float) -> float:
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _group_score(name: str, labels: Sequence[Label]) -> GroupScore:
    counts = {str(label): labels.count(label) for label in Label if labels.count(label)}
    passed = labels.count(Label.PASS)
    total = passed + sum(
        labels.count(lab) for lab in (Label.HIGH, Label.LOW, Label.NODATA_FAIL_METRIC)
    )
    no_data = total == 0
    return GroupScore(
        name=name, score=0.0 if no_data else 100.0 * passed / total, no_data=no_data, counts=counts
    )


def _summary(groups: Sequence[GroupScore], weights: Mapping[str, float]) -> float:
    unweighted = [g.name for g in groups if g.name not in weights]
    share = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    total = 0.0
    for group in groups:
        effective = 100.0 if group.no_data else group.score
        total += effective * weights.get(group.name, share) / 100.0
    return _round2(total)


def score_groups(
    results: Sequence[ScoredMetric],
    weights: Mapping[str, float],
    *,
    pass_threshold: float,
    marginal_threshold: float,
) -> ScoreResult:
    """Score one interval's metric results; groups keep the order they first appear in."""
    scored = [r for r in results if not r.muted]
    by_group: dict[str, list[Label]] = {}
    for result in scored:
        for group in result.groups:
            by_group.setdefault(group, []).append(result.label)
    groups = tuple(_group_score(name, labels) for name, labels in by_group.items())
    failed = [r for r in scored if r.critical and r.label is not Label.PASS]
    nodata = sum(r.label is Label.NODATA for r in scored)
    forced_by_no_data = False
    if not scored:
        score, reason = 0.0, "no metric was scored"
    elif failed:
        score, reason = 0.0, f"critical metric {failed[0].name} failed: {failed[0].reason}"
        forced_by_no_data = all(r.label is Label.NODATA for r in failed)
    elif scored and 100.0 * nodata / len(scored) >= NODATA_SHARE_THRESHOLD:
        share = f"{nodata} of {len(scored)}"
        score, reason = 0.0, f"{share} metrics returned no data (≥ {NODATA_SHARE_THRESHOLD:g} %)"
        forced_by_no_data = True
    else:
        score, reason = _summary(groups, weights), ""
    label = classify_score(
        score, pass_threshold=pass_threshold, marginal_threshold=marginal_threshold
    )
    return ScoreResult(
        score=score,
        groups=groups,
        classification=label,
        reason=reason,
        forced_by_no_data=forced_by_no_data,
    )


def classify_score(score: float, *, pass_threshold: float, marginal_threshold: float) -> ScoreClass:
    """Pass at or above ``pass``, Marginal at or above ``marginal``, else Fail."""
    if score >= pass_threshold:
        return ScoreClass.PASS
    if score >= marginal_threshold:
        return ScoreClass.MARGINAL
    return ScoreClass.FAIL

"""What a sequential judge answers: its e-value, its anytime-valid bounds, its verdict, and the
verdict in words (one phrasing for the count and the mean judge).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["SequentialResult", "verdict_reason"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialResult:
    """One sequential metric after the data seen so far."""

    e_value: float
    """Evidence against "no regression" (one-sided in the metric's direction)."""
    estimate: float
    """Rate ratio (count) or mean difference (mean) — the point estimate."""
    lower: float
    """Anytime-valid lower bound (one-sided, at the threshold's level): inverts the judge's own
    test, so direction increase fails exactly when ``lower`` exceeds 1 (count) or the tolerance
    (mean)."""
    upper: float
    """Anytime-valid upper bound, likewise: non-inferiority (increase) needs it below the
    tolerance."""
    steps: int
    """Steps that carried information."""
    failed: bool
    """e_value ≥ threshold: a regression is proven."""
    proven: bool
    """The confidence sequence lies within the tolerance: non-inferiority is proven."""
    threshold: float
    dispersion: float = 1.0
    reason: str = ""


def verdict_reason(
    result: SequentialResult,
    *,
    estimate: str,
    bound: str,
    fine: str,
    spread: str,
    min_steps: int = 0,
) -> SequentialResult:
    """``result`` with its reason in words, the estimate first and what is proven second:
    "regression: rate 3.1× baseline (at least 1.02× proven; e = 41 ≥ 40)". ``estimate`` phrases
    the point estimate, ``bound`` the proven side of a regression, ``fine`` the proven side of
    non-inferiority and ``spread`` both bounds of an undecided judge, in its own quantity."""
    e, th = result.e_value, result.threshold
    dispersion = f"; dispersion {result.dispersion:.2g}" if result.dispersion >= 1.05 else ""
    if result.failed:
        why = f"regression: {estimate} ({bound}; e = {e:.3g} ≥ {th:g}{dispersion})"
    elif result.proven:
        why = f"non-inferior: {estimate} ({fine}; e = {e:.3g}{dispersion})"
    elif result.steps < min_steps:
        few = f"{result.steps} informative steps, fewer than {min_steps}"
        why = f"undecided: {few}; {estimate} ({spread}; e = {e:.3g}{dispersion})"
    else:
        why = f"undecided: {estimate} ({spread}; e = {e:.3g} < {th:g}{dispersion})"
    return replace(result, reason=why)

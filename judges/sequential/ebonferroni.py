"""Sharing a canary's false-rollback budget α among its sequential metrics by e-Bonferroni.

With m metrics, metric j fails when its e-value eⱼ ≥ m/α. By Markov's (for e-values) and
Ville's (for e-processes) inequalities the chance that any of them ever does under "no
regression" is at most Σ α/m = α, whatever the dependence between the metrics (Vovk & Wang,
"E-values: calibration, combination and applications", Ann. Statist. 2021, §4).
"""

from __future__ import annotations

__all__ = ["check_alpha", "e_bonferroni_threshold"]


def e_bonferroni_threshold(alpha: float, metrics: int) -> float:
    """The e-value at which one of ``metrics`` sequential metrics fails: m/α."""
    check_alpha(alpha)
    if metrics < 1:
        msg = f"metrics must be ≥ 1, got {metrics}"
        raise ValueError(msg)
    return metrics / alpha


def check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must lie in (0, 1), got {alpha!r}"
        raise ValueError(msg)

"""Reference results of R's Wilcoxon rank-sum test with a confidence interval for the shift.

Source: R 4.2.2 Patched (2022-11-10 r83330) stats::wilcox.test, computed 2026-11-29 with

    wilcox.test(x, y, conf.int = TRUE, exact = FALSE, correct = TRUE, conf.level = conf)

for each case below (``x`` the experiment, ``y`` the control), printed with ``sprintf("%.17g")``
of ``conf.int[1]``, ``conf.int[2]``, ``estimate`` and ``p.value``. No call emitted a warning.

R finds the interval ends and the estimate with ``uniroot(tol = 1e-4)``, so those are accurate to
about 1e-4 only; the p-value is closed form. For the estimate R solves W(d) = 0 *without* the
continuity correction (it sets ``correct <- FALSE`` before the call), so when n·m is odd the root
is the jump at the median pairwise difference, and when n·m is even W is 0 on the whole step
between the two middle differences and R returns whichever point of it the solver lands on.
"""

from __future__ import annotations

from typing import NamedTuple


class RCase(NamedTuple):
    """One ``wilcox.test`` call and what R returned."""

    id: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    conf: float
    lower: float
    upper: float
    estimate: float
    p_value: float


R_VERSION = "R 4.2.2 Patched (2022-11-10 r83330)"

R_CASES: tuple[RCase, ...] = (
    RCase(
        id="kayenta_readme",
        x=(10, 20, 30, 40),
        y=(1, 2, 3, 4),
        conf=0.98,
        lower=6.0,
        upper=39.0,
        estimate=22.5,
        p_value=0.030382821976577493,
    ),
    RCase(
        id="ties_small_ints",
        x=(3, 3, 4, 5, 5, 5, 6),
        y=(1, 2, 2, 3, 3, 4),
        conf=0.95,
        lower=7.1089580870326905e-06,
        upper=3.0000090975275575,
        estimate=1.9999887435460004,
        p_value=0.01940442694568581,
    ),
    RCase(
        id="odd_pairs_decimals",
        x=(1.0, 2.5, 3.7, 9.0, 11.0),
        y=(0.0, 0.3, 1.1),
        conf=0.9,
        lower=0.69997470479315305,
        upper=10.700002904641044,
        estimate=3.3999900469154758,
        p_value=0.073638270120302676,
    ),
    RCase(
        id="single_experiment",
        x=(5.5,),
        y=(1.2, 2.4, 3.1, 4.8, 6.0, 2.2, 3.3),
        conf=0.8,
        lower=-0.5,
        upper=4.2999999999999998,
        estimate=2.3999883719096404,
        p_value=0.38273308888522606,
    ),
    RCase(
        id="lower_at_mumin",
        x=(2, 3),
        y=(1, 1.5),
        conf=0.99,
        lower=0.5,
        upper=2.0,
        estimate=1.25,
        p_value=0.24527811680677283,
    ),
    RCase(
        id="negative_shift",
        x=(0.21, 0.19, 0.25, 0.22, 0.18, 0.20, 0.23, 0.24, 0.17),
        y=(0.31, 0.27, 0.29, 0.35, 0.30, 0.28, 0.33, 0.26, 0.32, 0.34, 0.36),
        conf=0.98,
        lower=-0.1399584139507386,
        upper=-0.060041586049261395,
        estimate=-0.099999999999999992,
        p_value=0.00019709416773215288,
    ),
    RCase(
        id="latency_overlap",
        x=(0.231, 0.245, 0.239, 0.251, 0.236, 0.262, 0.244, 0.240, 0.249, 0.255, 0.238, 0.247),
        y=(0.229, 0.241, 0.233, 0.236, 0.244, 0.231, 0.238, 0.235, 0.242, 0.230, 0.237, 0.240),
        conf=0.98,
        lower=0.00091735469546207454,
        upper=0.015973917056391132,
        estimate=0.0079923275504299382,
        p_value=0.012943900800596257,
    ),
    RCase(
        id="tied_across",
        x=(1, 1, 2, 2, 2, 3),
        y=(1, 2, 2, 3, 3, 3, 4),
        conf=0.95,
        lower=-1.999956344072559,
        upper=3.5188313314824778e-05,
        estimate=-0.9999951743184734,
        p_value=0.17691187319448651,
    ),
)

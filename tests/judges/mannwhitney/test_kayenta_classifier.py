"""Kayenta's ClassifierSuite and ScorerSuite, reproduced through canaryd's Python API:
classification labels and summary scores.

Every case comes from ``kayenta_vectors`` (data transcribed from Kayenta's Scala suites) and
carries its ``source``: ``"<repo> <path>::<test name>"``. Pytest ids are the case ids and every
assertion message names the source, so a failure points straight at the published test. The
intentional differences from Kayenta, numbered (1)–(5), are listed in
:mod:`support.kayenta_suites`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from judges.classifier import MannWhitneyOptions, classify
from judges.effect import mean_ratio
from judges.labels import Direction, EffectMeasure, Label, NanStrategy
from judges.scorer import ScoredMetric, score_groups
from support import kayenta_vectors as kv
from support.kayenta_suites import CONSTANT_REASON, as_array, param_cases

FloatArray = npt.NDArray[np.float64]


def _options(case: kv.ClassifierCase) -> MannWhitneyOptions:
    assert case.tolerance is not None, case.source
    assert case.confidence is not None, case.source
    return MannWhitneyOptions(
        direction=Direction(case.direction),
        tolerance=case.tolerance,
        confidence=case.confidence,
        effect_measure=EffectMeasure(case.effect_measure),
        allowed_increase=case.allowed_increase,
        allowed_decrease=case.allowed_decrease,
        critical_increase=case.critical_increase,
        critical_decrease=case.critical_decrease,
        critical=case.critical,
        must_have_data=case.must_have_data,
        nan_strategy=NanStrategy(case.nan_strategy),
    )


# --- ClassifierSuite --------------------------------------------------------------------------

_MW_CLASSIFIER = [c for c in kv.CLASSIFIER_CASES if c.classifier == "mannWhitney"]
_ZERO_INFLATED_HIGH = "mw_high_large_zero_inflated"
_REGULAR = [c for c in _MW_CLASSIFIER if c.deterministic and c.id != _ZERO_INFLATED_HIGH]
_NOISY = [c for c in _MW_CLASSIFIER if not c.deterministic]


class TestClassifierSuite:
    """kayenta-judge ``ClassifierSuite.scala`` through ``judges.classify``."""

    @pytest.mark.parametrize("case", param_cases(_REGULAR))
    def test_label(self, case: kv.ClassifierCase) -> None:
        """Each case gets Kayenta's label, and its critical flag and deviation where asserted."""
        judgement = classify(case.experiment, case.control, _options(case))
        if case.expected_classification is not None:
            assert judgement.label == Label(case.expected_classification), case.source
        if case.expected_critical is not None:
            assert judgement.critical is case.expected_critical, case.source
        if case.expected_deviation is not None:
            if math.isnan(case.expected_deviation):
                assert math.isnan(judgement.ratio), case.source
            else:
                assert judgement.ratio == case.expected_deviation, case.source
        if case.expected_reason_nonempty:
            assert judgement.reason, case.source

    @pytest.mark.parametrize("case", param_cases(_NOISY))
    def test_constant_samples(self, case: kv.ClassifierCase) -> None:
        """Constant samples get Kayenta's label from the single difference, the same every run.

        Difference (1): Kayenta jitters both samples with Gaussian noise (stdev value·1e-5)
        before the test; canaryd uses the one pairwise difference c: interval [c, c], estimate c,
        with a reason saying why.
        """
        first = classify(case.experiment, case.control, _options(case))
        second = classify(case.experiment, case.control, _options(case))
        c = case.experiment[0] - case.control[0]
        assert first.label == Label(case.expected_classification or ""), case.source
        assert repr(first) == repr(second), case.source
        assert first.test is not None, case.source
        assert (first.test.lower, first.test.estimate, first.test.upper) == (c, c, c)
        assert first.test.reason == CONSTANT_REASON, case.source
        assert first.reason, case.source

    def test_zero_inflated_high(self) -> None:
        """Zero-inflated error rates that are 4.4× higher are High, as the suite asserts.

        canaryd's interval is [0, 0] (most pairwise differences are exactly 0) and the band
        tolerance·|estimate| is 0; the classifier asks the test itself whether a shift within
        the band is rejected: W(0) = +5.94 > z, so High. Kayenta reaches the same label through
        a solver stop at 3.52e-5 > band 2.6e-6.
        """
        case = next(c for c in _MW_CLASSIFIER if c.id == _ZERO_INFLATED_HIGH)
        judgement = classify(case.experiment, case.control, _options(case))
        assert judgement.label is Label.HIGH, case.source
        assert judgement.critical is False, case.source

    @pytest.mark.parametrize(
        "case", param_cases([c for c in kv.CLASSIFIER_CASES if c.classifier == "meanInequality"])
    )
    def test_mean_inequality(self, case: kv.ClassifierCase) -> None:
        """The mean ratio orders the cases as Kayenta's mean-inequality classifier labels them.

        canaryd has no mean-inequality classifier (Kayenta uses it for benchmarking only, it is
        not part of NetflixACAJudge-v1.0); its rule — High when mean(canary) > mean(baseline),
        Low when below, else Pass — is checked through ``mean_ratio``, the meanRatio effect.
        """
        ratio = mean_ratio(as_array(case.experiment), as_array(case.control))
        label = Label.HIGH if ratio > 1.0 else Label.LOW if ratio < 1.0 else Label.PASS
        assert label == Label(case.expected_classification or ""), case.source


# --- ScorerSuite ------------------------------------------------------------------------------


class TestScorerSuite:
    """kayenta-judge ``ScorerSuite.scala`` through ``judges.score_groups``."""

    @pytest.mark.parametrize("case", param_cases(kv.SCORER_CASES))
    def test_summary_score(self, case: kv.ScorerCase) -> None:
        """The summary score and the group scores are Kayenta's."""
        results = [
            ScoredMetric(
                name=m.name,
                label=Label(m.classification),
                groups=tuple(m.groups),
                critical=m.critical,
            )
            for m in case.metrics
        ]
        score = score_groups(
            results, case.group_weights, pass_threshold=75.0, marginal_threshold=50.0
        )
        assert score.score == pytest.approx(case.expected_summary_score, abs=case.summary_abs_tol)
        if case.expected_group_count is not None:
            assert len(score.groups) == case.expected_group_count, case.source
        if case.expected_group_scores_sorted is not None:
            got = sorted(g.score for g in score.groups)
            assert got == case.expected_group_scores_sorted, case.source

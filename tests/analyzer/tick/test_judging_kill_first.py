"""The kill-switch is judged first: a tripped rule is the whole answer of the poll.

Under load the rollback must not wait for the costlier judges (Mann-Whitney's interval, the
sequential e-processes): a canary whose error rate crossed a hard line is rolled back on that
poll, judged by its kill-switch rules alone.
"""

from __future__ import annotations

from analyzer.tick.judging import evaluate
from judges.labels import Label
from support.fakes import MakeConfig
from support.judging import counts, healthy_latency, sequential_config, window


class TestKillFirst:
    """evaluate() with a tripped kill-switch rule."""

    def test_tripped_rule_skips_the_other_judges(self, make_config: MakeConfig) -> None:
        """On a scoring poll with sequential metrics, a tripped rule leaves the metrics, the
        score and the sequential outcomes unjudged."""
        events = [1] * 15 + [400] * 5
        win = window(counts((events, [1000] * 20), ([10] * 20, [1000] * 20)), healthy_latency(20))
        config = sequential_config(make_config)
        ev = evaluate(config, win, score_now=True)
        assert [k.label for k in ev.tripped] == [Label.HIGH]
        assert (ev.metrics, ev.sequential, ev.score) == ((), (), None)

    def test_untripped_rules_let_the_judges_run(self, make_config: MakeConfig) -> None:
        """Below the line the same poll is judged in full."""
        win = window(counts(([1] * 20, [1000] * 20), ([1] * 20, [1000] * 20)), healthy_latency(20))
        ev = evaluate(sequential_config(make_config), win, score_now=True)
        assert ev.tripped == ()
        assert ev.sequential
        assert ev.metrics
        assert ev.score is not None

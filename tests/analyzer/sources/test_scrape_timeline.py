"""The scrape timeline's quantile of histogram buckets, against Prometheus' rules."""

from __future__ import annotations

import math

import pytest

from analyzer.sources.timeline import bucket_quantile


class TestBucketQuantile:
    """bucket_quantile follows Prometheus' histogram_quantile rules."""

    INF = math.inf

    @pytest.mark.parametrize(
        ("q", "buckets", "expected"),
        [
            (0.5, [(0.1, 5), (0.5, 10), (1.0, 10), (INF, 10)], 0.1),
            (0.9, [(0.1, 5), (0.5, 10), (1.0, 10), (INF, 10)], 0.42),
            (0.25, [(1.0, 4), (2.0, 8), (INF, 8)], 0.5),
            (0.99, [(0.1, 0), (0.5, 0), (INF, 10)], 0.5),
            (0.5, [(-1.0, 6), (0.0, 8), (INF, 10)], -1.0),
            (0.5, [(0.1, 6), (0.5, 4), (INF, 10)], 0.1 * 5 / 6),
            (1.0, [(0.1, 5), (0.5, 10), (INF, 10)], 0.5),
        ],
    )
    def test_prometheus_rules(
        self, q: float, buckets: list[tuple[float, float]], expected: float
    ) -> None:
        """Linear interpolation, the +Inf rule, a lowest bound ≤ 0, monotonicity forced."""
        assert bucket_quantile(q, buckets) == pytest.approx(expected)

    @pytest.mark.parametrize(
        "buckets",
        [[(0.1, 1), (0.5, 2)], [(INF, 3)], [(0.1, 0), (INF, 0)], []],
    )
    def test_nan(self, buckets: list[tuple[float, float]]) -> None:
        """No +Inf bucket, a single bucket, or no observations: NaN."""
        assert math.isnan(bucket_quantile(0.5, buckets))

"""analyzer.metricdata: a metric's data typed per kind, built by side and template role."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analyzer.metricdata import (
    CountData,
    CountSide,
    MetricKind,
    Role,
    SeriesData,
    SeriesSide,
    SideName,
    has_data,
    metric_data,
    missing_metric,
)

NAN = float("nan")


def arr(*values: float) -> np.ndarray:
    """Float64 array."""
    return np.array(values, dtype=np.float64)


class TestMetricKind:
    """Each kind names the query templates its metric has."""

    def test_roles(self) -> None:
        """A series has one query; a count has events and exposure, in that order."""
        assert MetricKind.SERIES.roles == (Role.QUERY,)
        assert MetricKind.COUNT.roles == (Role.EVENTS, Role.EXPOSURE)

    def test_the_data_class_knows_its_kind(self) -> None:
        """SeriesData and CountData carry their kind as a class constant, not a field."""
        assert (SeriesData.kind, CountData.kind) == (MetricKind.SERIES, MetricKind.COUNT)
        assert "kind" not in {f.name for f in dataclasses.fields(SeriesData)}


class TestMetricData:
    """metric_data fills the kind's sides from arrays keyed by (side, role)."""

    def test_series(self) -> None:
        """A series metric takes each side's ``query`` array as its values."""
        data = metric_data(
            "p99",
            MetricKind.SERIES,
            {(SideName.BASELINE, Role.QUERY): arr(1.0), (SideName.CANARY, Role.QUERY): arr(2.0)},
        )
        assert isinstance(data, SeriesData)
        assert (data.baseline.values.tolist(), data.canary.values.tolist()) == ([1.0], [2.0])
        assert data.error == ""

    def test_count(self) -> None:
        """A count metric takes each side's events and exposure."""
        arrays = {
            (SideName.BASELINE, Role.EVENTS): arr(1.0),
            (SideName.BASELINE, Role.EXPOSURE): arr(10.0),
            (SideName.CANARY, Role.EVENTS): arr(2.0),
            (SideName.CANARY, Role.EXPOSURE): arr(20.0),
        }
        data = metric_data("errors", MetricKind.COUNT, arrays, error="why")
        assert isinstance(data, CountData)
        assert (data.baseline.events.tolist(), data.baseline.exposure.tolist()) == ([1.0], [10.0])
        assert (data.canary.events.tolist(), data.canary.exposure.tolist()) == ([2.0], [20.0])
        assert data.error == "why"

    def test_missing_metric_is_all_nan_with_its_own_arrays(self) -> None:
        """Every array of a missing metric is NaN over the steps, and none is shared."""
        data = missing_metric("errors", MetricKind.COUNT, 3, "down")
        arrays = (*data.baseline.arrays, *data.canary.arrays)
        assert len(arrays) == 4
        assert all(np.isnan(a).all() and a.size == 3 for a in arrays)
        assert len({id(a) for a in arrays}) == 4
        assert data.error == "down"

    def test_mapped_applies_to_every_array(self) -> None:
        """mapped transforms both sides' arrays and keeps the name and error."""
        data = CountData(
            name="errors",
            baseline=CountSide(events=arr(1, 2, 3), exposure=arr(10, 20, 30)),
            canary=CountSide(events=arr(4, 5, 6), exposure=arr(40, 50, 60)),
            error="e",
        )
        tail = data.mapped(lambda values: values[-2:])
        assert tail.baseline.events.tolist() == [2, 3]
        assert tail.canary.exposure.tolist() == [50, 60]
        assert (tail.name, tail.error) == ("errors", "e")
        series = SeriesData(
            name="p99", baseline=SeriesSide(values=arr(1)), canary=SeriesSide(values=arr(2))
        )
        assert series.mapped(lambda values: values * 10).canary.values.tolist() == [20]


class TestHasData:
    """A metric can be judged only with no error and a finite value in every array."""

    @pytest.mark.parametrize(
        ("canary", "error", "expected"),
        [((NAN, 2.0), "", True), ((NAN, NAN), "", False), ((1.0, 2.0), "down", False)],
    )
    def test_cases(self, canary: tuple[float, float], error: str, expected: bool) -> None:
        """One finite step suffices; an all-NaN side or an error does not."""
        data = SeriesData(
            name="p99",
            baseline=SeriesSide(values=arr(1.0, 2.0)),
            canary=SeriesSide(values=arr(*canary)),
            error=error,
        )
        assert has_data(data) is expected

"""The canaryd.recording/v1 format: reading, writing, and errors that name the file and field."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analyzer.errors import InvalidInput
from analyzer.metricdata import CountData, CountSide, MetricKind
from analyzer.offline.recording import (
    FORMAT,
    Recording,
    Truth,
    dump_recording,
    load_recording,
    parse_recording,
    write_recording,
)
from support.paths import RECORDINGS

FIXTURES = RECORDINGS

Mutation = Callable[[dict[str, Any]], None]


def document() -> dict[str, Any]:
    """The example of DESIGN.md §3, with null steps on both kinds."""
    return {
        "format": FORMAT,
        "name": "aa-0001",
        "start": "2026-01-01T00:00:00Z",
        "step_s": 60,
        "metrics": {
            "error_rate": {
                "kind": "count",
                "baseline": {"events": [3, 1, None], "exposure": [2990, 3011, None]},
                "canary": {"events": [2, 4, 1], "exposure": [3005, 2987, 3020]},
            },
            "latency_p99": {
                "kind": "series",
                "baseline": [0.231, 0.245, 0.239],
                "canary": [0.236, 0.251, None],
            },
        },
        "truth": {"regression": True, "metric": "error_rate", "onset_step": 1},
    }


def write(tmp_path: Path, doc: Any, name: str = "aa-0001.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


class TestParseRecording:
    def test_reads_the_design_example(self) -> None:
        """Every field of the example lands in the recording, times as epoch seconds."""
        rec = parse_recording(document())
        assert (rec.name, rec.step_s, rec.steps) == ("aa-0001", 60.0, 3)
        assert rec.start == 1_767_225_600.0
        assert rec.time(2) == rec.start + 120.0
        assert rec.truth == Truth(regression=True, metric="error_rate", onset_step=1)
        errors = rec.metrics["error_rate"]
        assert errors.kind is MetricKind.COUNT
        np.testing.assert_array_equal(errors.canary.events, [2.0, 4.0, 1.0])
        assert rec.metrics["latency_p99"].baseline.values[1] == 0.245

    def test_null_steps_are_nan(self) -> None:
        """A null step is NaN in memory, on every array it appears in."""
        rec = parse_recording(document())
        assert math.isnan(rec.metrics["error_rate"].baseline.events[2])
        assert math.isnan(rec.metrics["error_rate"].baseline.exposure[2])
        assert math.isnan(rec.metrics["latency_p99"].canary.values[2])
        assert not np.isnan(rec.metrics["latency_p99"].baseline.values).any()

    def test_truth_is_optional(self) -> None:
        """A recording without truth has truth None."""
        doc = document()
        del doc["truth"]
        assert parse_recording(doc).truth is None

    def test_other_time_zones_are_converted(self) -> None:
        """A start with an offset names the same instant as its UTC form."""
        doc = document()
        doc["start"] = "2026-01-01T01:00:00+01:00"
        assert parse_recording(doc).start == 1_767_225_600.0


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


BAD = [
    ("format", _set("format", "canaryd.recording/v2"), "format: Input should be"),
    ("name", _drop("name"), "name: Field required"),
    (
        "bool",
        _set("metrics.latency_p99.baseline.0", True),
        "metrics.latency_p99.baseline.0: Input should be a valid number",
    ),
    ("start", _set("start", "2026-01-01T00:00:00"), "start: Input should have timezone"),
    ("step_s", _set("step_s", 0), "step_s: Input should be greater than 0"),
    ("extra", _set("comment", "x"), "comment: Extra inputs are not permitted"),
    (
        "value",
        _set("metrics.error_rate.baseline.events.1", "4"),
        "metrics.error_rate.baseline.events.1: Input should be a valid number",
    ),
    (
        "negative",
        _set("metrics.error_rate.canary.exposure.0", -1),
        "metrics.error_rate.canary.exposure.0: Input should be greater than or equal to 0",
    ),
    (
        "typo",
        _set("metrics.error_rate.baseline.evnts", [1, 2, 3]),
        "metrics.error_rate.baseline.evnts: Extra inputs are not permitted",
    ),
    (
        "length",
        _set("metrics.error_rate.canary.events", [1, 2]),
        "metrics.error_rate.canary.events: has 2 steps, but metrics.error_rate.baseline.events "
        "has 3",
    ),
    ("kind", _set("metrics.latency_p99.kind", "gauge"), "metrics.latency_p99: Input tag 'gauge'"),
    (
        "series-shape",
        _set("metrics.latency_p99.canary", {"values": [1, 2, 3]}),
        "metrics.latency_p99.canary: Input should be a valid list",
    ),
    ("no-metrics", _set("metrics", {}), "metrics: Dictionary should have at least 1 item"),
    (
        "empty",
        _set("metrics", {"x": {"kind": "series", "baseline": [], "canary": []}}),
        "metrics.x.baseline: a recording needs at least one step",
    ),
    ("truth-metric", _set("truth.metric", "cpu"), "truth.metric: 'cpu' is not a recorded metric"),
    ("truth-onset", _set("truth.onset_step", 3), "truth.onset_step: 3 is past the last step (2)"),
    (
        "truth-incomplete",
        _drop("truth.onset_step"),
        "truth: a regression needs its metric and onset_step",
    ),
]


class TestRecordingErrors:
    @pytest.mark.parametrize(("case", "mutate", "expected"), BAD, ids=[b[0] for b in BAD])
    def test_names_the_file_and_field(
        self, tmp_path: Path, case: str, mutate: Mutation, expected: str
    ) -> None:
        """A bad recording is refused with the file and the dotted path of the bad field."""
        doc = copy.deepcopy(document())
        mutate(doc)
        path = write(tmp_path, doc)
        with pytest.raises(InvalidInput) as caught:
            load_recording(path)
        assert caught.value.field == str(path)
        assert str(caught.value).startswith(f"{path}: {expected}"), str(caught.value)

    def test_nan_is_not_json(self, tmp_path: Path) -> None:
        """A NaN constant (not JSON) is refused with a hint to write null."""
        path = tmp_path / "nan.json"
        path.write_text(json.dumps(document()).replace("0.231", "NaN"), encoding="utf-8")
        with pytest.raises(InvalidInput, match=r"NaN is not JSON \(write null"):
            load_recording(path)

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A missing file is refused naming it."""
        path = tmp_path / "missing.json"
        with pytest.raises(InvalidInput, match=r"missing\.json: cannot read"):
            load_recording(path)

    def test_not_json(self, tmp_path: Path) -> None:
        """A file that is not JSON is refused naming it."""
        path = tmp_path / "bad.json"
        path.write_text("{", encoding="utf-8")
        with pytest.raises(InvalidInput, match=r"bad\.json: not valid JSON"):
            load_recording(path)


class TestWriteRecording:
    def test_round_trip(self, tmp_path: Path) -> None:
        """Written and read back, a recording is the same document, nulls included."""
        rec = parse_recording(document())
        path = tmp_path / "out.json"
        write_recording(rec, path)
        again = load_recording(path)
        assert dump_recording(again) == dump_recording(rec) == document()

    def test_counts_are_written_as_integers(self, tmp_path: Path) -> None:
        """Whole numbers carry no trailing .0; fractions and nulls are kept."""
        rec = Recording(
            name="r",
            start=1_767_225_600.0,
            step_s=30.0,
            steps=3,
            metrics={
                "errors": CountData(
                    name="errors",
                    baseline=CountSide(
                        events=np.array([1.0, np.nan, 2.5]),
                        exposure=np.array([10.0, np.nan, 20.0]),
                    ),
                    canary=CountSide(
                        events=np.array([0.0, 1.0, 2.0]),
                        exposure=np.array([10.0, 10.0, 10.0]),
                    ),
                )
            },
        )
        path = tmp_path / "r.json"
        write_recording(rec, path)
        text = path.read_text(encoding="utf-8")
        assert '"events":[1,null,2.5]' in text
        assert '"step_s": 30,' in text
        assert json.loads(text)["start"] == "2026-01-01T00:00:00Z"
        assert "truth" not in json.loads(text)

    def test_fixtures_are_valid_recordings(self) -> None:
        """Every fixture recording loads, an hour at 60 s steps, with truth and null steps."""
        paths = sorted(FIXTURES.glob("*.json"))
        assert [p.stem for p in paths] == [
            "aa-0001",
            "err-3x-0001",
            "latency-0001",
            "zero-baseline-0001",
        ]
        for path in paths:
            rec = load_recording(path)
            assert (rec.name, rec.steps, rec.step_s) == (path.stem, 60, 60.0)
            assert rec.truth is not None
            assert np.isnan(rec.metrics["error_rate"].baseline.events).any()
            assert np.isnan(rec.metrics["latency_p99"].canary.values).any()

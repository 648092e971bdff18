"""Recorded metrics: the ``canaryd.recording/v1`` format of fixtures, backtests and replays.

A recording holds, per metric and side, one value per step from ``start`` every ``step_s``
seconds (DESIGN.md §3); ``null`` is a missing step. ``series`` metrics are one list per side,
``count`` metrics ``{events, exposure}``; ``truth`` (optional) says whether, where and from
which step a regression was injected, for evaluation reports.

pydantic reads the file at the edge with ``extra="forbid"``, and every problem is reported with
the file and the dotted path of the field, e.g.
``aa-0001.json: metrics.error_rate.baseline.events.2: Input should be a valid number``.
Inside, a :class:`Recording` carries each metric as :data:`~analyzer.metricdata.MetricData` (a
:class:`~analyzer.metricdata.SeriesData` or :class:`~analyzer.metricdata.CountData`) over the
whole recording (NaN for ``null``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self, assert_never

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from analyzer.errors import InvalidInput
from analyzer.metricdata import (
    CountData,
    CountSide,
    FloatArray,
    MetricData,
    MetricKind,
    SeriesData,
    SeriesSide,
    SideName,
)

__all__ = [
    "FORMAT",
    "Recording",
    "Truth",
    "dump_recording",
    "load_recording",
    "parse_recording",
    "write_recording",
]

FORMAT = "canaryd.recording/v1"

# JSON numbers only: a quoted "4" or a true is a mistake, not a value.
_Value = Annotated[float, Field(strict=True, allow_inf_nan=False)] | None
_Count = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)] | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CountSide(_Model):
    events: list[_Count]
    exposure: list[_Count]


class _CountMetric(_Model):
    kind: Literal["count"]
    baseline: _CountSide
    canary: _CountSide


class _SeriesMetric(_Model):
    kind: Literal["series"]
    baseline: list[_Value]
    canary: list[_Value]


_Metric = Annotated[_CountMetric | _SeriesMetric, Field(discriminator="kind")]


class _Truth(_Model):
    regression: bool
    metric: str | None = None
    onset_step: int | None = Field(default=None, ge=0)


class _Recording(_Model):
    format: Literal["canaryd.recording/v1"]
    name: str = Field(min_length=1, max_length=200)
    start: AwareDatetime
    step_s: float = Field(gt=0, allow_inf_nan=False)
    metrics: dict[str, _Metric] = Field(min_length=1)
    truth: _Truth | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        lengths = {path: len(values) for path, values in _columns(self)}
        first_path, steps = next(iter(lengths.items()))
        for path, length in lengths.items():
            if length != steps:
                msg = f"{path}: has {length} steps, but {first_path} has {steps}"
                raise ValueError(msg)
        if steps == 0:
            msg = f"{first_path}: a recording needs at least one step"
            raise ValueError(msg)
        truth = self.truth
        if truth is not None and truth.regression:
            if truth.metric is None or truth.onset_step is None:
                msg = "truth: a regression needs its metric and onset_step"
                raise ValueError(msg)
            if truth.metric not in self.metrics:
                msg = f"truth.metric: {truth.metric!r} is not a recorded metric"
                raise ValueError(msg)
            if truth.onset_step >= steps:
                msg = f"truth.onset_step: {truth.onset_step} is past the last step ({steps - 1})"
                raise ValueError(msg)
        return self


def _columns(model: _Recording) -> list[tuple[str, list[float | None]]]:
    """Every value list with its dotted path, in file order."""
    out: list[tuple[str, list[float | None]]] = []
    for name, metric in model.metrics.items():
        for side in SideName:
            data = getattr(metric, side)
            if isinstance(data, _CountSide):
                out.append((f"metrics.{name}.{side}.events", data.events))
                out.append((f"metrics.{name}.{side}.exposure", data.exposure))
            else:
                out.append((f"metrics.{name}.{side}", data))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Truth:
    """What was injected: a regression of ``metric`` from step ``onset_step``, or none."""

    regression: bool
    metric: str | None = None
    onset_step: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Recording:
    """A recording in memory: every metric over all ``steps`` steps (NaN = missing).

    ``start`` is seconds since the epoch; step ``k`` is at ``start + k·step_s``. ``source``
    names where it was read from, for error messages. It holds arrays, so it compares by
    identity; compare :func:`dump_recording` documents instead.
    """

    name: str
    start: float
    step_s: float
    steps: int
    metrics: dict[str, MetricData]
    truth: Truth | None = None
    source: str = ""

    def time(self, k: int) -> float:
        """Time of step ``k``."""
        return self.start + k * self.step_s


def _array(values: list[float | None]) -> FloatArray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def _count_side(side: _CountSide) -> CountSide:
    return CountSide(events=_array(side.events), exposure=_array(side.exposure))


def _metric(name: str, metric: _CountMetric | _SeriesMetric) -> MetricData:
    match metric:
        case _CountMetric():
            return CountData(
                name=name, baseline=_count_side(metric.baseline), canary=_count_side(metric.canary)
            )
        case _SeriesMetric():
            return SeriesData(
                name=name,
                baseline=SeriesSide(values=_array(metric.baseline)),
                canary=SeriesSide(values=_array(metric.canary)),
            )
        case _:
            assert_never(metric)


def _message(exc: ValidationError) -> str:
    """One line per problem, each starting with the dotted path of the bad field."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if len(loc) > 2 and loc[0] == "metrics" and loc[2] in set(MetricKind):
            del loc[2]  # the discriminator's tag is not a field of the file
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{'.'.join(loc)}: {message}" if loc else message)
    return "\n".join(lines)


def parse_recording(data: Any, *, source: str = "recording") -> Recording:
    """Validate a decoded recording; :class:`InvalidInput` names ``source`` and the field."""
    try:
        model = _Recording.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(source, _message(exc)) from None
    metrics = {name: _metric(name, m) for name, m in model.metrics.items()}
    truth = model.truth
    return Recording(
        name=model.name,
        start=model.start.timestamp(),
        step_s=model.step_s,
        steps=len(_columns(model)[0][1]),
        metrics=metrics,
        source=source,
        truth=None
        if truth is None
        else Truth(regression=truth.regression, metric=truth.metric, onset_step=truth.onset_step),
    )


def load_recording(path: Path) -> Recording:
    """Read and validate a recording file; errors name the file and the field."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(source, f"cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise InvalidInput(source, f"not valid JSON: {exc}") from None
    return parse_recording(data, source=source)


def _refuse_constant(name: str) -> Any:
    msg = f"{name} is not JSON (write null for a missing step)"
    raise ValueError(msg)


def _plain(value: float) -> float | int | None:
    """A value as it is written: null for NaN, integers without a trailing ``.0``."""
    if math.isnan(value):
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _values(array: FloatArray) -> list[float | int | None]:
    return [_plain(float(v)) for v in array]


def dump_recording(recording: Recording) -> dict[str, Any]:
    """The recording as its JSON document (``canaryd.recording/v1``)."""
    metrics = {name: _metric_doc(data) for name, data in recording.metrics.items()}
    start = datetime.fromtimestamp(recording.start, tz=UTC).isoformat().replace("+00:00", "Z")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "name": recording.name,
        "start": start,
        "step_s": _plain(recording.step_s),
        "metrics": metrics,
    }
    if recording.truth is not None:
        t = recording.truth
        doc["truth"] = {"regression": t.regression, "metric": t.metric, "onset_step": t.onset_step}
    return doc


def _metric_doc(data: MetricData) -> dict[str, Any]:
    """One metric as the file has it: ``kind``, then each side's lists."""
    match data:
        case CountData():
            return {
                "kind": str(data.kind),
                "baseline": _count_doc(data.baseline),
                "canary": _count_doc(data.canary),
            }
        case SeriesData():
            return {
                "kind": str(data.kind),
                "baseline": _values(data.baseline.values),
                "canary": _values(data.canary.values),
            }
        case _:
            assert_never(data)


def _count_doc(side: CountSide) -> dict[str, Any]:
    return {"events": _values(side.events), "exposure": _values(side.exposure)}


def write_recording(recording: Recording, path: Path) -> None:
    """Write the recording as compact JSON, one metric per line."""
    doc = dump_recording(recording)
    metrics = ",\n".join(
        f"    {json.dumps(name)}: {json.dumps(m, separators=(',', ':'))}"
        for name, m in doc.pop("metrics").items()
    )
    truth = doc.pop("truth", None)
    lines = [f"  {json.dumps(key)}: {json.dumps(value)}," for key, value in doc.items()]
    lines.append(f'  "metrics": {{\n{metrics}\n  }}' + ("," if truth is not None else ""))
    if truth is not None:
        lines.append(f'  "truth": {json.dumps(truth)}')
    path.write_text("{\n" + "\n".join(lines) + "\n}\n", encoding="utf-8")

"""Overlapping samples: a query whose range selector is longer than the config's step.

``increase(x[10s])`` polled every 2 s makes each sample share 8 of its 10 seconds with the
next one, and overlap some of the next four: neighbouring samples are strongly dependent, and
a judge that takes them as independent (Kayenta's Mann-Whitney) rejects far more often than
its level says. ``[${step}]`` never overlaps. :func:`overlaps` finds such metrics;
``canaryd validate``, registration and each scored tick's evidence report them.

The ranges are read from the query templates themselves, not a full PromQL parse (the parser
in :mod:`analyzer.sources.promql.parse` knows only the scrape source's few shapes): every
``[...]`` outside string literals and comments is a range selector, ``[range]``, or a subquery,
``[range:resolution]``; a range is a PromQL duration (``90s``, ``1h30m``, ``500ms``), a number
of seconds, or a placeholder — ``${step}``, ``${window}`` (the analysis interval) or a declared
variable whose value is one of those. A range that reads otherwise (a duration expression) is
not judged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import assert_never

from analyzer.configs.judgeconfig import JudgeConfig, MetricConfig
from analyzer.model import JudgeName
from judges.mannwhitney.dependence import Dependence

__all__ = ["Overlap", "overlap_warnings", "overlaps", "range_seconds", "range_selectors"]

_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PLACEHOLDER = re.compile(r"\$\{([_a-zA-Z][_a-zA-Z0-9]*)\}|\$([_a-zA-Z][_a-zA-Z0-9]*)")
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class Overlap:
    """A metric whose samples overlap: its longest range against the step."""

    metric: str
    where: str
    """The template's field, e.g. ``metrics.1.query`` or ``metrics.0.query.events``."""
    spelt: str
    """The range as the template spells it, e.g. ``[10s]`` or ``[${lookback}]``."""
    range_s: float
    step_s: float
    judge: JudgeName
    dependence: Dependence

    @property
    def overlapped(self) -> int:
        """How many following samples each sample shares data with."""
        return max(1, math.ceil(self.range_s / self.step_s - _EPSILON) - 1)

    @property
    def message(self) -> str:
        """The warning, naming the metric."""
        k = self.overlapped
        following = "the next sample" if k == 1 else f"the next {k}"
        spelt = f"{self.spelt} = {self.range_s:g}s" if "$" in self.spelt else self.spelt
        head = (
            f"{self.metric}: {self.where} range {spelt} is longer than the step "
            f"({self.step_s:g}s): each sample overlaps {following}, so the samples are "
            "serially dependent"
        )
        return f"{head}; {self._advice()}"

    def _advice(self) -> str:
        match self.judge:
            case JudgeName.MANN_WHITNEY if self.dependence is Dependence.ADJUST:
                return "dependence: adjust widens the Mann-Whitney test for it"
            case JudgeName.MANN_WHITNEY:
                return (
                    "Mann-Whitney assumes independent samples and will reject too often: "
                    "use a range of ${step}, or set dependence: adjust"
                )
            case JudgeName.SEQUENTIAL_COUNT:
                steps = self.overlapped + 1
                return f"an event is counted in up to {steps} steps: use a range of ${{step}}"
            case JudgeName.SEQUENTIAL_MEAN | JudgeName.THRESHOLD:
                return "use a range of ${step} for samples that do not share data"
            case _:
                assert_never(self.judge)


def range_selectors(template: str) -> list[str]:
    """The text inside every ``[...]`` of a PromQL template outside strings and comments."""
    return [body for _, body in _brackets(template)]


def _brackets(template: str) -> Iterator[tuple[int, str]]:
    quote, escaped, comment, opened = "", False, False, -1
    for i, char in enumerate(template):
        if comment:
            comment = char != "\n"
        elif quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "#":
            comment = True
        elif char == "[":
            opened = i
        elif char == "]" and opened >= 0:
            yield opened, template[opened + 1 : i]
            opened = -1


def range_seconds(
    spec: str, *, step_s: float, window_s: float, variables: Mapping[str, str]
) -> float | None:
    """Seconds of a range (the part of ``spec`` before a subquery's colon); None when it is
    not a duration, a number or a placeholder that resolves to one."""
    text = spec.split(":", 1)[0].strip()
    if text.startswith("$") and not text.startswith("$$"):
        match = _PLACEHOLDER.fullmatch(text)
        if match is None:
            return None
        name = match.group(1) or match.group(2)
        builtin = {"step": step_s, "window": window_s}
        if name in builtin:
            return builtin[name]
        value = variables.get(name)
        return None if value is None else _literal(value.strip())
    return _literal(text)


def _literal(text: str) -> float | None:
    if _DURATION.fullmatch(text):
        return float(sum(int(n) * _UNIT_S[u] for n, u in _PART.findall(text)))
    if _NUMBER.fullmatch(text):
        return float(text)
    return None


def _longest(
    metric: MetricConfig, index: int, config: JudgeConfig, variables: Mapping[str, str]
) -> Overlap | None:
    worst: Overlap | None = None
    for role, template in metric.templates().items():
        where = f"metrics.{index}.query" + ("" if role == "query" else f".{role}")
        for body in range_selectors(template):
            seconds = range_seconds(
                body, step_s=config.step, window_s=config.analysis_interval, variables=variables
            )
            if seconds is None or seconds <= config.step * (1 + _EPSILON):
                continue
            if worst is None or seconds > worst.range_s:
                worst = Overlap(
                    metric=metric.name,
                    where=where,
                    spelt=f"[{body}]",
                    range_s=seconds,
                    step_s=config.step,
                    judge=metric.judge,
                    dependence=metric.dependence,
                )
    return worst


def overlaps(config: JudgeConfig, variables: Mapping[str, str] | None = None) -> list[Overlap]:
    """Every metric whose samples overlap (its longest range), in the config's order.

    ``variables`` are a canary's values (default: the config's own); threshold metrics are
    left out — a hard line on the latest window does not assume independent samples.
    """
    values = {**config.variables, **(variables or {})}
    found = []
    for index, metric in enumerate(config.metrics):
        if metric.judge is JudgeName.THRESHOLD:
            continue
        overlap = _longest(metric, index, config, values)
        if overlap is not None:
            found.append(overlap)
    return found


def overlap_warnings(config: JudgeConfig, variables: Mapping[str, str] | None = None) -> list[str]:
    """The warning of every metric in :func:`overlaps`."""
    return [o.message for o in overlaps(config, variables)]

"""Judge configs for tests: the shipped ``config/*.yaml``, with the overrides a test needs.

A test config is a shipped one plus what the test changes, said at the call site::

    load("http-golden-signals", metrics=["error_rate"], step="2s", thresholds=(75, 50))

so a change to a shipped config is seen by the tests that build on it, and a test's config
shows at a glance how it differs from what users run.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from analyzer.configs.judgeconfig import JudgeConfig, parse_config
from support.paths import CONFIG_DIR

__all__ = ["BASE_CONFIG", "config_body", "judge_config", "load"]


@functools.cache
def _shipped(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text("utf-8"))
    return loaded


def load(
    shipped: str,
    /,
    *,
    metrics: Sequence[str] | None = None,
    queries: Mapping[str, str | Mapping[str, str]] | None = None,
    tune: Mapping[str, Mapping[str, Any]] | None = None,
    thresholds: tuple[float, float] | None = None,
    step: float | str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """``config/<shipped>.yaml`` as a dict (a fresh copy), changed by:

    - ``metrics``: only these metrics, in this order; groups left without a metric and
      kill-switch rules of the dropped metrics go too (pass ``groups=`` to reweigh the rest);
    - ``queries``: metric name → its query template (a string, or ``{events, exposure}``);
    - ``tune``: metric name → fields of that metric replaced (``effect_size``, ``critical``…);
    - ``thresholds``: ``(pass, marginal)`` score thresholds;
    - ``step``: seconds, or a duration such as ``"2s"``;
    - any other keyword: that top-level field replaced (``name``, ``warmup``, ``kill_switch``…).
    """
    config = copy.deepcopy(_shipped(shipped))
    if metrics is not None:
        by_name = {m["name"]: m for m in config["metrics"]}
        config["metrics"] = [by_name[m] for m in metrics]
        used = {m.get("group", "default") for m in config["metrics"]}
        config["groups"] = {g: w for g, w in config.get("groups", {}).items() if g in used}
        rules = config.get("kill_switch", [])
        config["kill_switch"] = [r for r in rules if r["metric"] in metrics]
    for metric in config["metrics"]:
        if queries and metric["name"] in queries:
            metric["query"] = copy.deepcopy(queries[metric["name"]])
        metric.update(copy.deepcopy(dict((tune or {}).get(metric["name"], {}))))
    if thresholds is not None:
        config["score_thresholds"] = {"pass": thresholds[0], "marginal": thresholds[1]}
    if step is not None:
        config["step"] = step if isinstance(step, str) else f"{step:g}s"
    config.update(copy.deepcopy(fields))
    return config


def judge_config(shipped: str, /, **changes: Any) -> JudgeConfig:
    """:func:`load`, validated."""
    return parse_config(load(shipped, **changes), source=shipped)


BASE_CONFIG: dict[str, Any] = load(
    "http-golden-signals",
    name="test-golden",
    metrics=["error_rate", "latency_p99"],
    groups={"errors": 60, "latency": 40},
    analysis_interval="5m",
    warmup="0s",
    kill_switch=[{"metric": "error_rate", "max": 0.2, "min_exposure": 200}],
)
"""The analyzer tests' config, ``test-golden``: http-golden-signals' error rate (a count) and
p99 latency (a series) at 60 s steps, scored every 5 minutes with no warm-up, and one
kill-switch rule (errors over 20 % of at least 200 requests)."""


def config_body(**fields: Any) -> dict[str, Any]:
    """:data:`BASE_CONFIG`'s JSON body with top-level fields replaced."""
    return {**copy.deepcopy(BASE_CONFIG), **fields}

"""A small valid judge config written out, and the edits the config tests make to it.

The rejection cases change one thing each (:func:`set_path`) and read the error
(:func:`rejection`); every other config test loads ``config/*.yaml`` (``support.configs``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from analyzer.configs.judgeconfig import parse_config
from analyzer.errors import InvalidInput

__all__ = ["Mutation", "base_config", "rejection", "set_path"]

Mutation = Callable[[dict[str, Any]], None]


def base_config() -> dict[str, Any]:
    """A small valid config, mutated by the rejection cases."""
    return {
        "name": "checkout",
        "step": "60s",
        "analysis_interval": "10m",
        "groups": {"errors": 70, "latency": 30},
        "metrics": [
            {
                "name": "error_rate",
                "group": "errors",
                "kind": "count",
                "judge": "threshold",
                "threshold": {"max": 0.01},
                "query": {
                    "events": 'sum(increase(http_requests{code=~"5..",${selector}}[${step}]))',
                    "exposure": "sum(increase(http_requests{${selector}}[${step}]))",
                },
            },
            {
                "name": "latency_p99",
                "group": "latency",
                "kind": "series",
                "judge": "mann-whitney",
                "query": "max(latency_p99{${selector}})",
            },
        ],
        "kill_switch": [{"metric": "error_rate", "max": 0.05}],
    }


def set_path(path: str, value: Any) -> Mutation:
    """A mutation setting a dotted path (list indices as numbers) to ``value``."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return mutate


def rejection(mutation: Mutation) -> str:
    """The message of the InvalidInput that the mutated small config is refused with."""
    data = base_config()
    mutation(data)
    with pytest.raises(InvalidInput) as caught:
        parse_config(data)
    return caught.value.message

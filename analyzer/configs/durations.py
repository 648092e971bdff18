"""Durations in judge configs and requests: ``90``, ``"90s"``, ``"10m"``, ``"1h30m"``, ``"500ms"``.

:func:`parse_duration` reads one; :data:`Duration` is the pydantic type of a duration field
(seconds as a float, with the JSON Schema editors see).
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["MAX_DURATION_S", "Duration", "parse_duration"]

MAX_DURATION_S = 366 * 86400.0
"""No duration anywhere is longer than a year (fields bound theirs tighter: a step ≤ 1 h)."""

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"10m"``, ``"1h30m"`` or ``"500ms"`` (0 to 366 days)."""
    if isinstance(value, bool):
        msg = "a duration is a number of seconds or a string like '10m'"
        raise ValueError(msg)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value.strip()))
    else:
        msg = f"invalid duration {value!r}: use a number of seconds or e.g. '90s', '10m', '1h30m'"
        raise ValueError(msg)
    if seconds < 0 or not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        shown = value if len(str(value)) <= 40 else f"{str(value)[:40]}…"
        msg = f"a duration must be ≥ 0 and at most 366d, got {shown!r}"
        raise ValueError(msg)
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+$"},
            ],
            "description": "seconds, or a duration string such as '90s', '10m', '1h30m'",
        }
    ),
    PlainSerializer(lambda s: s, return_type=float),
]

"""Checks on a request body before it is decoded: its content type and its nesting depth.

A body is JSON only when it says so (``application/json`` or a ``+json`` type; else 415), and
no deeper than :data:`MAX_DEPTH` arrays and objects (else 400): deep nesting would exhaust the
recursion of the decoder and of everything that walks the value after it.
"""

from __future__ import annotations

import re

import numpy as np
from aiohttp import web

from analyzer.api.schemas import ErrorOut

__all__ = ["MAX_DEPTH", "check_content_type", "nesting_depth"]

MAX_DEPTH = 32
"""Deepest nesting a body may have; a registration with an inline config needs about 6."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_OPENING = np.frombuffer(b"[{", dtype=np.uint8)


def nesting_depth(raw: bytes) -> int:
    """How deep a JSON text nests arrays and objects (brackets in strings do not count); exact
    for valid JSON, a bound the decoder refines for anything else. Linear, no recursion."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where(np.isin(codes, _OPENING), 1, -1)
    return int(np.cumsum(steps).max())


def check_content_type(request: web.Request) -> None:
    """Refuse (415) a body that does not say it is JSON."""
    kind = request.content_type
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        return
    raise web.HTTPUnsupportedMediaType(
        text=ErrorOut(
            error=f"body must be application/json, not {kind[:100]!r}", field="Content-Type"
        ).model_dump_json(),
        content_type="application/json",
    )

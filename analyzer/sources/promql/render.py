"""PromQL text: query templates rendered for one side.

Rendering (DESIGN.md §5): a template sees ``${selector}`` (the side's label matchers),
``${step}``, ``${window}`` and the declared ``${variables}``. Label values come from whoever
registers a canary, so they are escaped into PromQL double-quoted strings and cannot change the
structure of a query; label names and per-canary variable values are checked against narrow
character sets. An unknown variable is an error, never silently empty.

The parser of the small subset the scrape source evaluates itself is
:mod:`analyzer.sources.promql.parse`.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping

from analyzer.configs.judgeconfig import BUILTIN_VARIABLES
from analyzer.errors import InvalidInput, UnknownVariable
from analyzer.sources.promql.parse import (
    LABEL_NAME,
)

__all__ = ["duration", "escape", "render", "selector"]

_VARIABLE_VALUE = re.compile(r"[A-Za-z0-9_:./ -]*")
_BARE_VALUE = re.compile(r"[A-Za-z0-9_:.]*")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(value: str, *, field: str = "value") -> str:
    """``value`` as the body of a PromQL double-quoted string (the quotes not included).

    Backslash, double quote, newline, carriage return and tab get their escapes, other control
    characters ``\\xNN``; NUL and lone surrogates are refused (:class:`InvalidInput` on ``field``).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, "not valid Unicode (lone surrogate)") from None
    out: list[str] = []
    for char in value:
        if char == "\0":
            raise InvalidInput(field, "NUL is not allowed")
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or char == "\x7f":
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def selector(labels: Mapping[str, str]) -> str:
    """The side's label matchers, ``name="value",name2="value2"`` sorted by name."""
    matchers = []
    for name in sorted(labels):
        field = f"labels.{name}"
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            msg = f"invalid label name {name!r}: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with __"
            raise InvalidInput(field, msg)
        if labels[name] == "":
            raise InvalidInput(field, "empty value: it would match every series without the label")
        matchers.append(f'{name}="{escape(labels[name], field=field)}"')
    return ",".join(matchers)


def duration(seconds: float, *, field: str = "duration") -> str:
    """A Prometheus duration: whole seconds as ``60s``, otherwise milliseconds (``500ms``)."""
    if not math.isfinite(seconds * 1000) or seconds < 0:  # 1e306 s overflows in milliseconds
        raise InvalidInput(field, f"a duration must be ≥ 0 and finite in ms, got {seconds!r}")
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def render(
    template: str,
    *,
    labels: Mapping[str, str],
    step_s: float,
    window_s: float,
    variables: Mapping[str, str],
    where: str = "query",
) -> str:
    """``template`` with its ``${...}`` placeholders filled for one side; ``$$`` is a ``$``.

    Raises :class:`UnknownVariable` for a variable that is neither built in nor in
    ``variables``, and :class:`InvalidInput` for a malformed placeholder, a bad label name or
    value, or a variable value outside ``[A-Za-z0-9_:.-/ ]`` (``[A-Za-z0-9_:.]`` where the
    placeholder is not inside a string literal).
    """
    shadowed = sorted(BUILTIN_VARIABLES & set(variables))
    if shadowed:
        raise InvalidInput(f"variables.{shadowed[0]}", "shadows a built-in variable")
    builtins = {
        "selector": selector(labels),
        "step": duration(step_s, field="step"),
        "window": duration(window_s, field="window"),
    }

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "$"
        name = match.group("named") or match.group("braced")
        if name is None:
            msg = f"malformed placeholder at offset {match.start()} (use ${{name}}, or $$ for $)"
            raise InvalidInput(where, msg)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            known = f"built in: {sorted(BUILTIN_VARIABLES)}; declared: {sorted(variables)}"
            raise UnknownVariable(where, f"unknown variable ${{{name}}} ({known})")
        return _variable(name, variables[name], quoted=_in_string(template, match.start()))

    return string.Template.pattern.sub(substitute, template)


def _in_string(template: str, offset: int) -> bool:
    """Whether ``offset`` of a template lies inside a PromQL string literal."""
    quote, escaped = "", False
    for char in template[:offset]:
        if escaped:
            escaped = False
        elif quote and char == "\\" and quote != "`":
            escaped = True
        elif char == quote:
            quote = ""
        elif not quote and char in "\"'`":
            quote = char
    return bool(quote)


def _variable(name: str, value: str, *, quoted: bool) -> str:
    """A variable's value: inside a string literal from :data:`_VARIABLE_VALUE`; outside one
    (part of a metric name, a number, a duration) only name characters, so that no value can
    add an operator or a keyword (``total or up``, ``total/up``) to the query."""
    if quoted and not _VARIABLE_VALUE.fullmatch(value):
        msg = f"value {value!r} may hold only letters, digits, space and _ : . - /"
        raise InvalidInput(f"variables.{name}", msg)
    if not quoted and not _BARE_VALUE.fullmatch(value):
        msg = f"value {value!r} is used outside quotes: only letters, digits and _ : ."
        raise InvalidInput(f"variables.{name}", msg)
    return value

"""The PromQL subset the scrape source evaluates itself: a small recursive-descent parser that
reads a rendered query and accepts only :data:`SUPPORTED_SHAPES`, with Prometheus' string
escapes and fully anchored regular expressions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from analyzer.errors import InvalidInput

__all__ = [
    "LABEL_NAME",
    "SUPPORTED_SHAPES",
    "CounterQuery",
    "GaugeQuery",
    "HistogramQuery",
    "Matcher",
    "Query",
    "Selector",
    "parse",
    "unquote",
]

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""A Prometheus label name."""

SUPPORTED_SHAPES = (
    "sum(increase(NAME{matchers}[DURATION]))",
    "sum(rate(NAME{matchers}[DURATION]))",
    "histogram_quantile(Q, sum by (le) (rate|increase(NAME_bucket{matchers}[DURATION])))",
    "NAME{matchers}",
    "sum|avg|min|max(NAME{matchers})",
)
_AGGREGATES = frozenset({"sum", "avg", "min", "max"})
_TOKEN = re.compile(
    r"""(?:
      (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
    | (?P<duration>(?:[0-9]+(?:ms|s|m|h|d|w|y))+)(?![A-Za-z0-9_:])
    | (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>=~|!~|!=|=|[(){}\[\],])
    )""",
    re.VERBOSE,
)
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|[0-7]{3}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_EXPECTED = {
    "end": "the end of the query",
    "ident": "a name",
    "string": "a quoted string",
    "number": "a number",
    "duration": "a duration such as 5m",
    "op": "an operator",
}
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Matcher:
    """A label matcher; regular expressions are fully anchored, as in Prometheus."""

    name: str
    op: str
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a series with ``labels`` passes (a missing label is the empty string)."""
        actual = labels.get(self.name, "")
        if self.pattern is not None:
            return (self.pattern.fullmatch(actual) is not None) == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """``NAME{matchers}``."""

    metric: str
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a series of this metric with ``labels`` is selected."""
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True, kw_only=True)
class GaugeQuery:
    """The value at each scrape: one series, or an aggregate over the matching ones."""

    selector: Selector
    aggregate: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterQuery:
    """``sum(increase|rate(NAME{...}[range]))``."""

    selector: Selector
    range_s: float
    rate: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class HistogramQuery:
    """``histogram_quantile(q, sum by (le) (increase|rate(NAME_bucket{...}[range])))``."""

    quantile: float
    selector: Selector
    range_s: float
    rate: bool


Query = GaugeQuery | CounterQuery | HistogramQuery


def parse(query: str, *, where: str = "query") -> Query:
    """Read a rendered query of one of :data:`SUPPORTED_SHAPES`; anything else raises
    :class:`InvalidInput` on ``where`` listing the supported shapes."""
    return _Parser(query, where).query()


def unquote(literal: str, *, where: str = "query") -> str:
    """The value of a PromQL string literal (double-, single- or back-quoted), Go escapes."""
    body = literal[1:-1]
    if literal[0] == "`":
        return body
    out = bytearray()
    pos = 0
    for match in _GO_ESCAPE.finditer(body):
        out += body[pos : match.start()].encode()
        out += _escape_bytes(match.group(1), literal[0], where)
        pos = match.end()
    out += body[pos:].encode()
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(where, f"string {literal} is not valid UTF-8") from None


def _escape_bytes(code: str, quote: str, where: str) -> bytes:
    if code[0] == "x" and len(code) == 3:
        return bytes([int(code[1:], 16)])
    if len(code) == 3 and code.isdigit() and int(code, 8) <= 0xFF:
        return bytes([int(code, 8)])
    if code[0] in "uU" and len(code) > 1:
        return chr(int(code[1:], 16)).encode("utf-8", "surrogatepass")
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code].encode()
    if code in ("\\", quote):
        return code.encode()
    raise InvalidInput(where, f"unknown escape sequence \\{code} in a string")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


class _Parser:
    """Recursive descent over the tokens of one query."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self.tokens: list[tuple[str, str, int]] = []
        self.pos = 0
        pos = _skip_space(text, 0)
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.lastgroup is None:
                self.fail("a token", pos)
            self.tokens.append((match.lastgroup, match.group(), pos))
            pos = _skip_space(text, match.end())
        self.tokens.append(("end", "", len(text)))

    def fail(self, expected: str, offset: int | None = None) -> NoReturn:
        if offset is None:
            kind, value, offset = self.tokens[min(self.pos, len(self.tokens) - 1)]
            found = "the end" if kind == "end" else repr(value)
        else:
            found = repr(self.text[offset : offset + 10])
        shapes = "; ".join(SUPPORTED_SHAPES)
        msg = f"unsupported query: expected {expected} at offset {offset}, found {found}"
        raise InvalidInput(self.where, f"{msg}; supported shapes: {shapes}")

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        kind, value, _ = self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]
        return kind, value

    def take(self, kind: str, value: str | None = None) -> str:
        got_kind, got_value = self.peek()
        if got_kind != kind or (value is not None and got_value != value):
            self.fail(repr(value) if value is not None else _EXPECTED[kind])
        self.pos += 1
        return got_value

    def query(self) -> Query:
        kind, word = self.peek()
        opens = self.peek(1) == ("op", "(")
        result: Query
        if kind == "ident" and word == "histogram_quantile" and opens:
            result = self.histogram()
        elif kind == "ident" and word in _AGGREGATES and opens:
            result = self.aggregation()
        else:
            result = GaugeQuery(selector=self.selector(), aggregate=None)
        self.take("end")
        return result

    def aggregation(self) -> Query:
        op = self.take("ident")
        self.take("op", "(")
        if op == "sum" and self.peek()[1] in ("increase", "rate") and self.peek(1) == ("op", "("):
            rate, sel, range_s = self.range_function()
            self.take("op", ")")
            return CounterQuery(selector=sel, range_s=range_s, rate=rate)
        sel = self.selector()
        self.take("op", ")")
        return GaugeQuery(selector=sel, aggregate=op)

    def histogram(self) -> Query:
        self.take("ident", "histogram_quantile")
        self.take("op", "(")
        quantile = float(self.take("number"))
        if not 0 <= quantile <= 1:
            self.fail("a quantile between 0 and 1")
        self.take("op", ",")
        self.take("ident", "sum")
        by_first = self.peek() == ("ident", "by")
        if by_first:
            self.by_le()
        self.take("op", "(")
        rate, sel, range_s = self.range_function()
        self.take("op", ")")
        if not by_first:
            self.by_le()
        self.take("op", ")")
        return HistogramQuery(quantile=quantile, selector=sel, range_s=range_s, rate=rate)

    def by_le(self) -> None:
        for kind, value in (("ident", "by"), ("op", "("), ("ident", "le"), ("op", ")")):
            self.take(kind, value)

    def range_function(self) -> tuple[bool, Selector, float]:
        function = self.take("ident")
        if function not in ("increase", "rate"):
            self.fail("increase or rate")
        self.take("op", "(")
        sel = self.selector()
        self.take("op", "[")
        range_s = sum(
            int(n) * _DURATION_S[u] for n, u in _DURATION_PART.findall(self.take("duration"))
        )
        if range_s <= 0:
            self.fail("a range longer than 0s")
        self.take("op", "]")
        self.take("op", ")")
        return function == "rate", sel, float(range_s)

    def selector(self) -> Selector:
        metric = self.take("ident")
        matchers: list[Matcher] = []
        if self.peek() == ("op", "{"):
            self.take("op", "{")
            while self.peek() != ("op", "}"):
                matchers.append(self.matcher())
                if self.peek() != ("op", "}"):
                    self.take("op", ",")
            self.take("op", "}")
        return Selector(metric=metric, matchers=tuple(matchers))

    def matcher(self) -> Matcher:
        name = self.take("ident")
        if not LABEL_NAME.fullmatch(name):
            self.fail("a label name")
        op = self.take("op")
        if op not in ("=", "!=", "=~", "!~"):
            self.fail("one of = != =~ !~")
        value = unquote(self.take("string"), where=self.where)
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(f"(?:{value})", re.DOTALL)
            except re.error as exc:
                raise InvalidInput(self.where, f"invalid regex {value!r}: {exc}") from None
        return Matcher(name=name, op=op, value=value, pattern=pattern)

"""Query templates rendered safely, and the PromQL subset the scrape source reads."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.errors import InvalidInput, UnknownVariable
from analyzer.sources.promql.parse import (
    SUPPORTED_SHAPES,
    CounterQuery,
    GaugeQuery,
    HistogramQuery,
    parse,
    unquote,
)
from analyzer.sources.promql.render import duration, escape, render, selector

_MATCHER_HEAD = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)"')
_SIMPLE = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def unescape(body: str) -> str:
    """An independent reading of a PromQL double-quoted string body (the escapes we emit)."""
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        assert char != '"', "an unescaped quote inside a string body"
        if char != "\\":
            out.append(char)
            i += 1
        elif body[i + 1] == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        else:
            out.append(_SIMPLE[body[i + 1]])
            i += 2
    return "".join(out)


def read_selector(text: str) -> list[tuple[str, str, str]]:
    """The matchers of a rendered selector, read as Prometheus' lexer would."""
    assert "\n" not in text, "a raw newline ends a PromQL string"
    matchers = []
    i = 0
    while i < len(text):
        head = _MATCHER_HEAD.match(text, i)
        assert head is not None, f"no matcher at offset {i} of {text!r}"
        j = head.end()
        while text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        matchers.append((head.group(1), head.group(2), unescape(text[head.end() : j])))
        i = j + 1
        if i < len(text):
            assert text[i] == ",", f"expected ',' at offset {i} of {text!r}"
            i += 1
    return matchers


HOSTILE = [
    '"}',
    '\\"} or vector(1) #',
    '"} or vector(1) #',
    "back\\slash\\\\double",
    "trailing\\",
    "new\nline",
    "carriage\rreturn\ttab",
    "ünïcødé ☃ 𝔘 \u202e",
    ".*",
    '{deployment=~".*"}',
    "',a='b",
    "`raw`",
    "ctrl\x01\x1f\x7f",
    "x\u2028y",
]


class TestSelector:
    @pytest.mark.parametrize("value", HOSTILE)
    def test_hostile_value_is_one_matcher(self, value: str) -> None:
        """A hostile label value renders as exactly one equality matcher holding that value."""
        assert read_selector(selector({"deployment": value})) == [("deployment", "=", value)]

    @pytest.mark.parametrize("value", HOSTILE)
    def test_hostile_value_parses_back_from_a_query(self, value: str) -> None:
        """A query rendered with a hostile value still has only the intended matchers."""
        query = render(
            'sum(rate(http_requests_total{code="200",${selector}}[${step}]))',
            labels={"deployment": value},
            step_s=60,
            window_s=600,
            variables={},
        )
        parsed = parse(query)
        assert isinstance(parsed, CounterQuery)
        got = [(m.name, m.op, m.value) for m in parsed.selector.matchers]
        assert got == [("code", "=", "200"), ("deployment", "=", value)]

    def test_sorted_by_name(self) -> None:
        """Matchers come sorted by label name."""
        assert selector({"b": "2", "a": "1"}) == 'a="1",b="2"'

    @pytest.mark.parametrize("name", ["__name__", "__x", "1abc", "a-b", "a b", "", "é", 'a"'])
    def test_bad_label_name_rejected(self, name: str) -> None:
        """A label name outside [a-zA-Z_][a-zA-Z0-9_]* (or starting with __) names the label."""
        with pytest.raises(InvalidInput) as caught:
            selector({name: "x"})
        assert caught.value.field == f"labels.{name}"

    def test_nul_rejected(self) -> None:
        """A NUL in a value is refused, naming the label."""
        with pytest.raises(InvalidInput) as caught:
            selector({"deployment": "a\0b"})
        assert caught.value.field == "labels.deployment"

    def test_empty_value_rejected(self) -> None:
        """An empty value, which would match every series lacking the label, is refused."""
        with pytest.raises(InvalidInput, match="empty value"):
            selector({"deployment": ""})

    @given(st.text(alphabet=st.characters(exclude_characters="\0", exclude_categories=["Cs"])))
    def test_escape_round_trips(self, value: str) -> None:
        """Unescaping an escaped value gives the value back, by both readers."""
        assert unescape(escape(value)) == value
        assert unquote(f'"{escape(value)}"') == value

    @given(
        st.dictionaries(
            st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True),
            st.text(
                alphabet=st.characters(exclude_characters="\0", exclude_categories=["Cs"]),
                min_size=1,
            ),
            max_size=5,
        )
    )
    def test_one_matcher_per_label(self, labels: dict[str, str]) -> None:
        """Any labels render as exactly one equality matcher each, values intact."""
        assert read_selector(selector(labels)) == [(n, "=", labels[n]) for n in sorted(labels)]


class TestRender:
    def test_builtins(self) -> None:
        """${selector}, ${step} and ${window} are filled; $$ is a dollar."""
        out = render(
            "increase(x{${selector}}[${step}]) / $$ ${window}",
            labels={"deployment": "c"},
            step_s=60,
            window_s=0.5,
            variables={},
        )
        assert out == 'increase(x{deployment="c"}[60s]) / $ 500ms'

    def test_declared_variable_verbatim(self) -> None:
        """A declared variable's value is substituted as is."""
        out = render(
            'x{job="${job}",path=~"${path}"}',
            labels={},
            step_s=60,
            window_s=60,
            variables={"job": "api-gw:v2.1", "path": "/checkout/ .x_y"},
        )
        assert out == 'x{job="api-gw:v2.1",path=~"/checkout/ .x_y"}'

    def test_unknown_variable(self) -> None:
        """An unknown variable raises UnknownVariable naming where and the variable."""
        with pytest.raises(UnknownVariable) as caught:
            render("x{team=${team}}", labels={}, step_s=60, window_s=60, variables={}, where="m.q")
        assert caught.value.field == "m.q"
        assert "${team}" in str(caught.value)

    @pytest.mark.parametrize("value", ['"}', "a|b", "(x)", "a\nb", "5.*", "x;y", "a'b", "é"])
    def test_bad_variable_value(self, value: str) -> None:
        """A variable value outside [A-Za-z0-9_:.-/ ] raises naming the variable."""
        with pytest.raises(InvalidInput) as caught:
            render("${v}", labels={}, step_s=60, window_s=60, variables={"v": value})
        assert caught.value.field == "variables.v"

    def test_malformed_placeholder(self) -> None:
        """A lone $ is an error, not text."""
        with pytest.raises(InvalidInput, match="malformed placeholder"):
            render("x $ y", labels={}, step_s=60, window_s=60, variables={})

    def test_builtin_shadowed(self) -> None:
        """A variable may not shadow a built-in one."""
        with pytest.raises(InvalidInput) as caught:
            render("x", labels={}, step_s=60, window_s=60, variables={"step": "5m"})
        assert caught.value.field == "variables.step"


class TestDuration:
    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (60, "60s"),
            (60.0, "60s"),
            (0.5, "500ms"),
            (1.5, "1500ms"),
            (0, "0s"),
            (3600, "3600s"),
            (0.001, "1ms"),
            (86400, "86400s"),
        ],
    )
    def test_renders(self, seconds: float, text: str) -> None:
        """Whole seconds render as Ns, the rest as milliseconds."""
        assert duration(seconds) == text

    @pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
    def test_rejects(self, seconds: float) -> None:
        """Negative and non-finite durations are refused."""
        with pytest.raises(InvalidInput):
            duration(seconds)


class TestParse:
    @pytest.mark.parametrize(
        ("query", "kind"),
        [
            ('sum(increase(http_requests_total{code=~"5..",a="b"}[1m]))', CounterQuery),
            ("sum ( rate ( x [ 60s ] ) )", CounterQuery),
            ('sum(rate(x{a="b",}[1m30s]))', CounterQuery),
            ('histogram_quantile(0.99, sum by (le) (rate(h_bucket{a="b"}[1m])))', HistogramQuery),
            ("histogram_quantile(0.5, sum(increase(h_bucket[5m])) by (le))", HistogramQuery),
            ("up", GaugeQuery),
            ('up{job!="x"}', GaugeQuery),
            ("avg(cpu{})", GaugeQuery),
            ("max(cpu)", GaugeQuery),
        ],
    )
    def test_supported(self, query: str, kind: type) -> None:
        """Each supported shape parses, whitespace-insensitively."""
        assert isinstance(parse(query), kind)

    @pytest.mark.parametrize(
        "query",
        [
            "rate(x[1m])",
            "sum(x) + 1",
            "sum by (code) (rate(x[1m]))",
            "avg(rate(x[1m]))",
            "histogram_quantile(0.9, rate(h_bucket[1m]))",
            "histogram_quantile(1.5, sum by (le) (rate(h_bucket[1m])))",
            "sum(rate(x[0s]))",
            "sum(rate(x[1m] offset 5m))",
            "x{a=b}",
            'x{a~"b"}',
            "",
            "x @ 5",
        ],
    )
    def test_unsupported(self, query: str) -> None:
        """Anything else is refused with the list of supported shapes."""
        with pytest.raises(InvalidInput) as caught:
            parse(query, where="metrics.m.query")
        assert caught.value.field == "metrics.m.query"
        for shape in SUPPORTED_SHAPES:
            assert shape in caught.value.message

    def test_range_and_quantile(self) -> None:
        """The range and quantile are read as numbers."""
        parsed = parse('histogram_quantile(0.95, sum by (le) (increase(h_bucket{a="b"}[1m30s])))')
        assert isinstance(parsed, HistogramQuery)
        assert (parsed.quantile, parsed.range_s, parsed.rate) == (0.95, 90.0, False)

    def test_regex_fully_anchored(self) -> None:
        """=~ and !~ match the whole value, like Prometheus; a missing label is empty."""
        parsed = parse('x{code=~"5..",path!~"/health.*"}')
        sel = parsed.selector
        assert sel.matches({"code": "500", "path": "/api"})
        assert not sel.matches({"code": "5000", "path": "/api"})
        assert not sel.matches({"code": "1500", "path": "/api"})
        assert not sel.matches({"code": "503", "path": "/healthz"})
        assert parse('x{a=""}').selector.matches({})
        assert not parse('x{a!=""}').selector.matches({})

    def test_string_escapes(self) -> None:
        """Go string escapes, single quotes and raw backquotes are read like PromQL."""
        parsed = parse('x{a="\\x41\\u00e9\\n\\\\\\"",b=\'it\\\'s\',c=`\\n`,d="\\303\\251"}')
        values = [m.value for m in parsed.selector.matchers]
        assert values == ['Aé\n\\"', "it's", "\\n", "é"]

    @pytest.mark.parametrize("query", ['x{a="\\q"}', 'x{a="\\xff"}', 'x{a=~"("}', 'x{a="\\777"}'])
    def test_bad_strings(self, query: str) -> None:
        """Unknown escapes, invalid UTF-8 and bad regexes are refused."""
        with pytest.raises(InvalidInput):
            parse(query)

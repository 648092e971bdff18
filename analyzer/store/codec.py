"""Rows ⇄ domain dataclasses for the SQL stores.

One :class:`Table` per stored dataclass maps its fields to the table's columns in field order:
``params`` turns a value into named SQL parameters, ``from_row`` builds it back from a row. How
a field is stored follows its type: numbers and strings as they are, enums by value, bytes as a
blob, nested values (sides, stages, metadata, results, evidence) as JSON text — numpy scalars and
arrays become plain numbers and lists; times stay floats (seconds since the epoch). A row that
cannot be decoded raises ``ValueError`` (the store reports it as
:class:`~analyzer.errors.StoreError`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from analyzer.model import Canary, Decision, Delivery, Side, Stage, Tick
from analyzer.store.protocol import ConfigVersion

__all__ = [
    "CANARIES",
    "CANARY_COLUMNS",
    "CONFIGS",
    "DECISIONS",
    "DECISION_COLUMNS",
    "DELIVERIES",
    "DELIVERY_COLUMNS",
    "TICKS",
    "TICK_COLUMNS",
    "Table",
    "canary_from_row",
    "canary_params",
    "config_from_row",
    "config_params",
    "decision_from_row",
    "decision_params",
    "delivery_from_row",
    "delivery_params",
    "dump_json",
    "load_json",
    "tick_from_row",
    "tick_params",
]

_T = TypeVar("_T")


class Row(Protocol):
    """A result row addressable by column name (``sqlite3.Row`` qualifies)."""

    def __getitem__(self, key: str, /) -> Any: ...


# JSON ----------------------------------------------------------------------------------------
def _plain(value: object) -> object:
    """``json.dumps`` fallback: numpy values and sets become plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def dump_json(value: object) -> str:
    """Compact JSON text; NaN and ±inf are kept (Python's JSON reads them back)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_plain)


def load_json(text: str) -> Any:
    """Parse stored JSON text."""
    return json.loads(text)


# nested values ------------------------------------------------------------------------------------
def _side_json(side: Side) -> str:
    return dump_json({"labels": side.labels, "targets": list(side.targets)})


def _side(text: str) -> Side:
    data = load_json(text)
    return Side(labels=dict(data["labels"]), targets=tuple(data.get("targets", ())))


def _stages(text: str) -> tuple[Stage, ...]:
    return tuple(
        Stage(
            weight=float(s["weight"]),
            duration_s=float(s["duration_s"]),
            min_duration_s=float(s.get("min_duration_s", 0.0)),
        )
        for s in load_json(text)
    )


def _stages_json(stages: tuple[Stage, ...]) -> str:
    return dump_json(
        [
            {"weight": s.weight, "duration_s": s.duration_s, "min_duration_s": s.min_duration_s}
            for s in stages
        ]
    )


# tables --------------------------------------------------------------------------------------
Codec = tuple[Callable[[Any], object], Callable[[Any], Any]]


def _same(value: Any) -> Any:
    return value


def _codec(hint: Any) -> Codec:
    """How a field of type ``hint`` is written to and read from its column."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        inner_write, inner_read = _codec(next(a for a in args if a is not type(None)))
        return (
            lambda v: None if v is None else inner_write(v),
            lambda v: None if v is None else inner_read(v),
        )
    if hint is Side:
        return _side_json, _side
    if typing.get_origin(hint) is tuple and args and args[0] is Stage:
        return _stages_json, _stages
    if typing.get_origin(hint) is dict or hint is dict:
        return dump_json, load_json
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return (lambda v: v.value), hint
    if hint is bytes:
        return bytes, bytes
    if hint in (int, float):
        return _same, hint
    if hint is str:
        return _same, _same
    raise TypeError(f"no column codec for {hint!r}")


@dataclasses.dataclass(frozen=True)
class Table(Generic[_T]):
    """A dataclass stored as one row: its fields are the columns."""

    cls: type[_T]
    columns: tuple[str, ...]
    codecs: tuple[Codec, ...]

    @classmethod
    def of(cls, kind: type[_T]) -> Table[_T]:
        """The table of a dataclass, from its fields and their types."""
        hints = typing.get_type_hints(kind)
        names = tuple(f.name for f in dataclasses.fields(typing.cast(Any, kind)))
        return cls(kind, names, tuple(_codec(hints[name]) for name in names))

    def params(self, value: _T) -> dict[str, object]:
        """Named SQL parameters: one per column."""
        return {
            name: write(getattr(value, name))
            for name, (write, _) in zip(self.columns, self.codecs, strict=True)
        }

    def from_row(self, row: Row) -> _T:
        """The dataclass back from a row addressable by column name."""
        return self.cls(
            **{
                name: read(row[name])
                for name, (_, read) in zip(self.columns, self.codecs, strict=True)
            }
        )


CONFIGS = Table.of(ConfigVersion)
CANARIES = Table.of(Canary)
"""The canaries columns that mirror :class:`Canary` (the table also keeps ``registration``)."""
TICKS = Table.of(Tick)
DECISIONS = Table.of(Decision)
DELIVERIES = Table.of(Delivery)

CANARY_COLUMNS = CANARIES.columns
TICK_COLUMNS = TICKS.columns
DECISION_COLUMNS = DECISIONS.columns
DELIVERY_COLUMNS = DELIVERIES.columns

config_params, config_from_row = CONFIGS.params, CONFIGS.from_row
canary_params, canary_from_row = CANARIES.params, CANARIES.from_row
tick_params, tick_from_row = TICKS.params, TICKS.from_row
decision_params, decision_from_row = DECISIONS.params, DECISIONS.from_row
delivery_params, delivery_from_row = DELIVERIES.params, DELIVERIES.from_row

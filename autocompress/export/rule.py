"""The ``--pick`` rule language: choose one trial of a run by a readable rule.

Grammar (keywords are case-insensitive; no Python is evaluated)::

    rule       := sense METRIC [ "where" condition { "and" condition } ]
    sense      := "max" | "min"
    condition  := METRIC op NUMBER
    op         := "<=" | "<" | ">=" | ">" | "==" | "=" | "!="
    NUMBER     := digits [ "." digits ] [ ("e"|"E") ["+"|"-"] digits ] [ "%" ]

A ``%`` suffix divides by 100 (``accuracy >= 90%`` is ``accuracy >= 0.9``).
Metrics are the names of the metric table :data:`autocompress.core.metrics.METRICS`
(``accuracy``, ``test_accuracy``, ``recovered_accuracy`` / ``recovered_test_accuracy``
of trials recovered by ``autocompress finetune``, ``teacher_agreement``,
``latency_ms``, ``energy_mj``, ``power_mw``, ``peak_memory_kb``, ``model_size_kb``)
plus the row fields ``width_multiplier`` and ``trial``. Examples::

    max accuracy where latency_ms <= 3 and peak_memory_kb <= 2048
    min latency_ms where accuracy >= 0.9
    min energy_mj where accuracy >= 95% and power_mw < 1500

Ties are broken by the lower trial number. A malformed rule raises
:class:`~autocompress.core.errors.ConfigError` whose message points at the
column of the problem.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from autocompress.core.errors import ConfigError
from autocompress.core.metrics import metric_names

#: Columns a rule may name besides the metrics: fields of a report row.
ROW_FIELDS: tuple[str, ...] = ("width_multiplier", "trial")


def rule_columns() -> tuple[str, ...]:
    """What a rule may name: every metric of the table, then :data:`ROW_FIELDS`."""
    return (*metric_names(), *ROW_FIELDS)


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}

_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<|>|=)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """A token: kind (``number``, ``word``, ``op``, ``end``), text and 1-based column."""

    kind: str
    text: str
    column: int


@dataclass(frozen=True)
class Condition:
    """``metric op value``, e.g. ``latency_ms <= 3.0``."""

    metric: str
    op: str
    value: float

    def holds(self, values: Mapping[str, float | None]) -> bool:
        """True when the metric is known and satisfies the comparison."""
        value = values.get(self.metric)
        return value is not None and _OPERATORS[self.op](float(value), self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class PickRule:
    """A parsed rule: maximise or minimise ``metric`` among rows meeting every condition."""

    sense: str
    metric: str
    conditions: tuple[Condition, ...] = ()
    text: str = ""

    def choose(self, rows: Sequence[Mapping[str, float | None]]) -> int | None:
        """Index of the best row meeting every condition (ties: the first), or None."""
        best_index: int | None = None
        best_value = 0.0
        for index, row in enumerate(rows):
            value = row.get(self.metric)
            if value is None or not all(c.holds(row) for c in self.conditions):
                continue
            value = float(value)
            better = value > best_value if self.sense == "max" else value < best_value
            if best_index is None or better:
                best_index, best_value = index, value
        return best_index

    def __str__(self) -> str:
        text = f"{self.sense} {self.metric}"
        if self.conditions:
            text += " where " + " and ".join(str(c) for c in self.conditions)
        return text


def _rule_error(rule: str, column: int, message: str) -> ConfigError:
    pointer = " " * (column - 1) + "^"
    return ConfigError(
        f"bad --pick rule at column {column}: {message}\n  {rule}\n  {pointer}",
        hint='Write e.g. "max accuracy where latency_ms <= 3 and peak_memory_kb <= 2048" '
        "(see docs/report-and-export.md).",
    )


def tokenize(rule: str) -> list[Token]:
    """Split a rule into tokens; an unexpected character raises ConfigError at its column."""
    tokens: list[Token] = []
    position = 0
    while position < len(rule):
        match = _TOKEN_RE.match(rule, position)
        if match is None:
            raise _rule_error(rule, position + 1, f"unexpected character {rule[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position + 1))
        position = match.end()
    tokens.append(Token("end", "", len(rule) + 1))
    return tokens


def parse_rule(rule: str) -> PickRule:
    """Parse a ``--pick`` rule (see the module docstring for the grammar)."""
    tokens = tokenize(rule)
    index = 0

    def peek() -> Token:
        return tokens[index]

    def take() -> Token:
        nonlocal index
        token = tokens[index]
        index += 1
        return token

    def describe(token: Token) -> str:
        return "the end of the rule" if token.kind == "end" else repr(token.text)

    def metric() -> str:
        token = take()
        name = token.text.lower()
        columns = rule_columns()
        if token.kind != "word" or name not in columns:
            raise _rule_error(
                rule,
                token.column,
                f"expected a metric ({', '.join(columns)}), got {describe(token)}",
            )
        return name

    if not rule.strip():
        raise _rule_error(rule, 1, "the rule is empty; expected 'max' or 'min'")
    first = take()
    sense = first.text.lower()
    if first.kind != "word" or sense not in ("max", "min"):
        raise _rule_error(rule, first.column, f"expected 'max' or 'min', got {describe(first)}")
    target = metric()
    conditions: list[Condition] = []
    token = take()
    if token.kind == "word" and token.text.lower() == "where":
        while True:
            name = metric()
            op_token = take()
            if op_token.kind != "op":
                raise _rule_error(
                    rule,
                    op_token.column,
                    f"expected a comparison ({', '.join(_OPERATORS)}), got {describe(op_token)}",
                )
            number = take()
            if number.kind != "number":
                raise _rule_error(rule, number.column, f"expected a number, got {describe(number)}")
            text = number.text
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
            conditions.append(Condition(name, op_token.text, value))
            token = take()
            if token.kind == "word" and token.text.lower() == "and":
                continue
            break
    if token.kind != "end":
        expected = (
            "'and' or the end of the rule" if conditions else "'where' or the end of the rule"
        )
        raise _rule_error(rule, token.column, f"expected {expected}, got {describe(token)}")
    return PickRule(sense=sense, metric=target, conditions=tuple(conditions), text=rule)

"""The --pick rule language: grammar, errors that point at the column, choosing."""

from __future__ import annotations

import pytest

from autocompress.core.errors import ConfigError
from autocompress.export.rule import Condition, parse_rule, tokenize


def test_parses_the_documented_examples():
    rule = parse_rule("max accuracy where latency_ms <= 3 and peak_memory_kb <= 2048")
    assert rule.sense == "max" and rule.metric == "accuracy"
    assert rule.conditions == (
        Condition("latency_ms", "<=", 3.0),
        Condition("peak_memory_kb", "<=", 2048.0),
    )
    rule = parse_rule("MIN latency_ms WHERE accuracy >= 90%")
    assert rule.sense == "min" and rule.conditions == (Condition("accuracy", ">=", 0.9),)
    assert parse_rule("min energy_mj").conditions == ()
    assert parse_rule("max accuracy where power_mw<1.5e3").conditions[0].value == 1500.0


@pytest.mark.parametrize(
    ("rule", "column", "words"),
    [
        ("", 1, "empty"),
        ("maximum accuracy", 1, "'max' or 'min'"),
        ("max acuracy", 5, "expected a metric"),
        ("max accuracy when latency_ms <= 3", 14, "'where'"),
        ("max accuracy where latency_ms less 3", 31, "expected a comparison"),
        ("max accuracy where latency_ms <= fast", 34, "expected a number"),
        ("max accuracy where latency_ms <= 3 or accuracy > 0.5", 36, "'and'"),
        ("max accuracy where latency_ms <= 3 and", 39, "the end of the rule"),
        ("max accuracy; drop table", 13, "unexpected character ';'"),
        ("max accuracy where __import__('os')", 30, "unexpected character '('"),
    ],
)
def test_bad_rules_point_at_the_column(rule, column, words):
    with pytest.raises(ConfigError) as info:
        parse_rule(rule)
    message = str(info.value)
    assert f"column {column}" in message and words in message
    # the caret line points under the offending column
    lines = message.splitlines()
    assert lines[2].index("^") - 2 == column - 1


def test_tokens_carry_columns():
    tokens = tokenize("min latency_ms where accuracy>=0.9")
    assert [(t.kind, t.column) for t in tokens] == [
        ("word", 1),
        ("word", 5),
        ("word", 16),
        ("word", 22),
        ("op", 30),
        ("number", 32),
        ("end", 35),
    ]


def test_choose_respects_conditions_and_breaks_ties_by_order():
    rows = [
        {"accuracy": 0.90, "latency_ms": 2.0},
        {"accuracy": 0.95, "latency_ms": 4.0},
        {"accuracy": 0.93, "latency_ms": 2.5},
        {"accuracy": 0.93, "latency_ms": 1.0},
        {"accuracy": None, "latency_ms": 0.5},
    ]
    assert parse_rule("max accuracy").choose(rows) == 1
    assert parse_rule("max accuracy where latency_ms <= 3").choose(rows) == 2
    assert parse_rule("min latency_ms where accuracy >= 0.93").choose(rows) == 3
    assert parse_rule("min latency_ms").choose(rows) == 4
    assert parse_rule("max accuracy where latency_ms < 0.1").choose(rows) is None

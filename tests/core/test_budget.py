import pytest

from autocompress.core.budget import METRIC_SENSE, Budget
from autocompress.core.errors import BudgetError


def test_violations_are_relative_and_signed():
    budget = Budget(latency_ms=2.0, memory_kb=100.0, min_accuracy=0.9)
    v = budget.violations({"latency_ms": 3.0, "peak_memory_kb": 50.0, "accuracy": 0.95})
    assert v["latency_ms"] == pytest.approx(0.5)
    assert v["memory_kb"] == pytest.approx(-0.5)
    assert v["min_accuracy"] == pytest.approx((0.9 - 0.95) / 0.9)
    assert not budget.is_met({"latency_ms": 3.0})
    assert budget.is_met({"latency_ms": 2.0, "peak_memory_kb": 100.0})


def test_missing_metrics_are_skipped_not_counted():
    budget = Budget(latency_ms=1.0, min_accuracy=0.5)
    assert budget.violations({"latency_ms": 0.5}) == {"latency_ms": -0.5}


def test_replace_keeps_unset_overrides():
    budget = Budget(latency_ms=2.0, power_mw=1000.0)
    tightened = budget.replace(latency_ms=1.0, power_mw=None)
    assert tightened.latency_ms == 1.0 and tightened.power_mw == 1000.0


@pytest.mark.parametrize(
    "kwargs",
    [{"latency_ms": -1.0}, {"memory_kb": 0.0}, {"power_mw": float("nan")}, {"min_accuracy": 90}],
)
def test_malformed_budgets_are_rejected_with_the_field_name(kwargs):
    with pytest.raises(BudgetError) as info:
        Budget(**kwargs)
    assert next(iter(kwargs)) in str(info.value)


def test_every_budget_field_limits_a_known_metric():
    for name in Budget.__dataclass_fields__:
        assert Budget.metric_of(name) in METRIC_SENSE

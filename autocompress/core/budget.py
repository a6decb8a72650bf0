"""Budgets: upper (or lower) limits a deployable model must meet.

The budget fields, the metric each one limits and the metric senses come from the one
table of metrics, :data:`autocompress.core.metrics.METRICS` (``latency_ms``,
``energy_mj``, ``power_mw``, ``memory_kb`` -> ``peak_memory_kb``, ``model_size_kb``,
``min_accuracy`` -> ``accuracy``): a metric entry with a ``budget`` is a field here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, field, fields, make_dataclass

from autocompress.core.errors import BudgetError
from autocompress.core.metrics import budget_metrics, cost_metrics, metric_of_budget, metrics

#: Metric -> ``max`` / ``min`` for the metrics that may be objectives (Pareto senses).
METRIC_SENSE: dict[str, str] = {m.name: m.sense for m in metrics() if m.objective}
#: The metrics the cost model computes, in table order.
COST_METRICS: tuple[str, ...] = tuple(m.name for m in cost_metrics())
#: The budget fields: cost limits first, then lower bounds (``min_accuracy``).
BUDGET_FIELDS: tuple[str, ...] = tuple(str(m.budget) for m in budget_metrics())


class _BudgetRules:
    """The methods of :class:`Budget` (its fields come from the metric table)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                if metric_of_budget(f.name).is_fraction and value == 0:
                    continue
                raise BudgetError(
                    f"budget {f.name} must be a positive number, got {value!r}",
                    hint="Leave it out to search without that limit.",
                )
            if metric_of_budget(f.name).is_fraction and value > 1:
                raise BudgetError(
                    f"budget {f.name} is a fraction in [0, 1], got {value!r}",
                    hint="Write 0.9 for 90 %.",
                )

    def replace(self, **overrides: float | None) -> Budget:
        """A copy with the non-None ``overrides`` applied."""
        data = asdict(self)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self)(**data)

    def active(self) -> dict[str, float]:
        """The budget fields that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def violations(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Constraint values in Optuna's convention: ``<= 0`` satisfied, ``> 0`` violated.

        Each value is relative to the limit (0.25 = 25 % over budget) so constraints
        of different units are comparable. A metric missing from ``metrics``
        (accuracy before training) is skipped.
        """
        out: dict[str, float] = {}
        for name, limit in self.active().items():
            limited = metric_of_budget(name)
            metric = limited.name
            if metric not in metrics or metrics[metric] is None:
                continue
            value = float(metrics[metric])
            if limited.sense == "max":
                out[name] = (limit - value) / max(limit, 1e-12)
            else:
                out[name] = (value - limit) / limit
        return out

    def is_met(self, metrics: Mapping[str, float]) -> bool:
        """True when every budget that ``metrics`` can be checked against is met."""
        return all(v <= 0 for v in self.violations(metrics).values())

    @staticmethod
    def metric_of(field_name: str) -> str:
        """The metric a budget field limits (``memory_kb`` -> ``peak_memory_kb``)."""
        return metric_of_budget(field_name).name


def _make_budget() -> type:
    """The :class:`Budget` dataclass, one ``float | None`` field per budget of the table."""
    return make_dataclass(
        "Budget",
        [(str(m.budget), "float | None", field(default=None)) for m in budget_metrics()],
        bases=(_BudgetRules,),
        frozen=True,
        namespace={
            "__module__": __name__,
            "__doc__": "Limits a model must meet; ``None`` means unconstrained.\n\n"
            "Fields (from the metric table): "
            + ", ".join(
                f"``{m.budget}`` ({'lower' if m.sense == 'max' else 'upper'} bound on ``{m.name}``)"
                for m in budget_metrics()
            )
            + ". ``memory_kb`` limits peak memory (weights + largest live activations); "
            "``min_accuracy`` is a fraction in [0, 1].",
        },
    )


Budget = _make_budget()

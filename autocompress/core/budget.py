"""Budgets: upper (or lower) limits a deployable model must meet.

Metric names are shared across the package (cost model, search, report, export):

=================  ======  =========================================
name               sense   meaning
=================  ======  =========================================
``accuracy``       max     top-1 accuracy in [0, 1]
``latency_ms``     min     simulated latency of one inference
``energy_mj``      min     simulated energy of one inference
``power_mw``       min     average power while inferring
``peak_memory_kb`` min     weights + largest live activation set
``model_size_kb``  min     weight storage at the chosen bit-widths
=================  ======  =========================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from autocompress.core.errors import BudgetError

METRIC_SENSE: dict[str, str] = {
    "accuracy": "max",
    "latency_ms": "min",
    "energy_mj": "min",
    "power_mw": "min",
    "peak_memory_kb": "min",
    "model_size_kb": "min",
}
COST_METRICS: tuple[str, ...] = (
    "latency_ms",
    "energy_mj",
    "power_mw",
    "peak_memory_kb",
    "model_size_kb",
)

# Budget field -> the metric it limits.
_BUDGET_METRIC: dict[str, str] = {
    "latency_ms": "latency_ms",
    "energy_mj": "energy_mj",
    "power_mw": "power_mw",
    "memory_kb": "peak_memory_kb",
    "model_size_kb": "model_size_kb",
    "min_accuracy": "accuracy",
}


@dataclass(frozen=True)
class Budget:
    """Limits a model must meet; ``None`` means unconstrained.

    ``memory_kb`` limits peak memory (weights + largest live activations).
    ``min_accuracy`` is a lower bound in [0, 1]; all others are upper bounds.
    """

    latency_ms: float | None = None
    energy_mj: float | None = None
    power_mw: float | None = None
    memory_kb: float | None = None
    model_size_kb: float | None = None
    min_accuracy: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                if f.name == "min_accuracy" and value == 0:
                    continue
                raise BudgetError(
                    f"budget {f.name} must be a positive number, got {value!r}",
                    hint="Leave it out to search without that limit.",
                )
        if self.min_accuracy is not None and self.min_accuracy > 1:
            raise BudgetError(
                f"budget min_accuracy is a fraction in [0, 1], got {self.min_accuracy!r}",
                hint="Write 0.9 for 90 %.",
            )

    def replace(self, **overrides: float | None) -> Budget:
        """A copy with the non-None ``overrides`` applied."""
        data = asdict(self)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return Budget(**data)

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
            metric = _BUDGET_METRIC[name]
            if metric not in metrics or metrics[metric] is None:
                continue
            value = float(metrics[metric])
            if name == "min_accuracy":
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
        return _BUDGET_METRIC[field_name]

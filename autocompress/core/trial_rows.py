"""One report row per trial: metrics on the report's chip, feasibility, summaries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autocompress.core.budget import Budget
from autocompress.core.metrics import cost_metrics
from autocompress.core.workspace import TrialRecord


@dataclass(frozen=True)
class TrialRow:
    """A trial as the report shows it.

    Attributes:
        number: trial number.
        state: ``complete``, ``infeasible`` (over a cost budget during the search,
            never trained) or ``failed``.
        trained: the trial has a validation accuracy.
        feasible: every budget of the report (possibly re-targeted) is met on the report's chip.
        on_front: on the feasible Pareto front of the report.
        metrics: ``accuracy``, ``test_accuracy``, … plus the cost metrics on the report's chip.
        violations: budget -> constraint value under the report's budget (``<= 0`` met).
        width_multiplier: the student's width multiplier.
        bits: e.g. ``"w4×3 w8×2 a8×5"`` (layer counts per bit-width).
        pruning: e.g. ``"0–50% (mean 22%)"`` over the pruned layers.
        config: the TrialConfig as a dict.
        error: a failed trial's message.
        epochs: fine-tune epochs behind ``metrics`` (the longest rung; None if untrained).
        rungs: every fine-tune of the trial (``epochs``, ``accuracy``, …), shortest first.
    """

    number: int
    state: str
    trained: bool
    feasible: bool
    on_front: bool
    metrics: Mapping[str, float | None]
    violations: Mapping[str, float] = field(default_factory=dict)
    width_multiplier: float = 1.0
    bits: str = ""
    pruning: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    epochs: float | None = None
    rungs: Sequence[Mapping[str, Any]] = field(default_factory=list)

    def value(self, metric: str) -> float | None:
        """A metric by name (``trial`` and ``width_multiplier`` included), None if unknown."""
        if metric == "trial":
            return float(self.number)
        if metric == "width_multiplier":
            return self.width_multiplier
        value = self.metrics.get(metric)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.number,
            "state": self.state,
            "trained": self.trained,
            "feasible": self.feasible,
            "on_front": self.on_front,
            **{k: v for k, v in self.metrics.items()},
            "violations": dict(self.violations),
            "width_multiplier": self.width_multiplier,
            "bits": self.bits,
            "pruning": self.pruning,
            "config": dict(self.config),
            "error": self.error,
            "epochs": self.epochs,
            "rungs": [dict(r) for r in self.rungs],
        }


def summarize_bits(config: Mapping[str, Any]) -> str:
    """Layer counts per weight and activation bit-width, e.g. ``w4×3 w8×2 a8×5``."""
    weight = Counter(int(b) for b in (config.get("weight_bits") or {}).values())
    activation = Counter(int(b) for b in (config.get("activation_bits") or {}).values())
    parts = [" ".join(f"w{b}×{n}" for b, n in sorted(weight.items())) or "w float"]
    parts.append(" ".join(f"a{b}×{n}" for b, n in sorted(activation.items())) or "a float")
    sparse = len(config.get("sparsity") or {})
    if sparse:
        parts.append(
            f"2:4×{sparse}"
            if all(v == "2:4" for v in config["sparsity"].values())
            else f"sparse×{sparse}"
        )
    return " ".join(parts)


def summarize_pruning(config: Mapping[str, Any]) -> str:
    """Range and mean of the per-layer prune ratios, e.g. ``0–50% (mean 22%)``."""
    ratios = [float(r) for r in (config.get("prune_ratios") or {}).values()]
    if not ratios or max(ratios) == 0:
        return "none"
    mean = sum(ratios) / len(ratios)
    low, high = round(100 * min(ratios)), round(100 * max(ratios))
    return f"{high}% (mean {mean:.0%})" if low == high else f"{low}–{high}% (mean {mean:.0%})"


def make_row(
    record: TrialRecord,
    costs: Mapping[str, float] | None,
    budget: Budget,
    recovered: Mapping[str, Any] | None = None,
) -> TrialRow:
    """A row for ``record`` with ``costs`` on the report's chip, judged against ``budget``.

    ``recovered`` (the trial's ``recovered.json``, from ``autocompress finetune``)
    adds ``recovered_accuracy`` / ``recovered_test_accuracy``; the trial's
    ``finetune_s_per_epoch`` timing becomes a metric of the same name.
    """
    metrics: dict[str, float | None] = {
        k: (float(v) if v is not None else None) for k, v in record.metrics.items()
    }
    per_epoch = (record.timings_s or {}).get("finetune_s_per_epoch")
    if per_epoch is not None:
        metrics["finetune_s_per_epoch"] = float(per_epoch)
    if recovered:
        for key, name in (
            ("accuracy", "recovered_accuracy"),
            ("test_accuracy", "recovered_test_accuracy"),
        ):
            if recovered.get(key) is not None:
                metrics[name] = float(recovered[key])
    for metric in cost_metrics():
        metrics[metric.name] = metric.from_costs(costs)
    trained = record.state == "complete" and metrics.get("accuracy") is not None
    checkable = {k: v for k, v in metrics.items() if v is not None}
    violations = budget.violations(checkable) if costs else {}
    feasible = trained and bool(costs) and all(v <= 0 for v in violations.values())
    config = record.config.to_dict()
    return TrialRow(
        number=record.number,
        state=record.state,
        trained=trained,
        feasible=feasible,
        on_front=False,
        metrics=metrics,
        violations=violations,
        width_multiplier=float(config.get("width_multiplier", 1.0)),
        bits=summarize_bits(config),
        pruning=summarize_pruning(config),
        config=config,
        error=record.error,
        epochs=max((float(r["epochs"]) for r in record.rungs if "accuracy" in r), default=None),
        rungs=[dict(r) for r in record.rungs],
    )

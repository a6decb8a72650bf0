"""The one table of metrics: names, units, senses, budgets, objectives and how they are shown.

Everything that lists metrics derives from :data:`METRICS`: the budget fields of
:class:`~autocompress.core.budget.Budget` and their senses, the budget flags and the
``--objective`` choices of ``autocompress search`` / ``report``, the ``--pick`` rule
columns (``export``, ``finetune``), the report table, CSV, JSON and the HTML page.
Adding a metric is one :class:`Metric` entry here; a cost metric names the
:class:`~autocompress.hardware.cost.Cost` total it reads (``cost_field``, times
``scale``), so the cost model, trial records and report rows carry it too.

docs/report-and-export.md shows the entries as a table (tests/core/test_metrics.py keeps
it in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: Where a metric is shown: the terminal ``report`` table, the HTML front table, the CSV,
#: and (``plot``) an accuracy-vs-metric scatter plot of the HTML page.
View = Literal["table", "html", "csv", "plot"]
ALL_VIEWS: tuple[View, ...] = ("table", "html", "csv")


@dataclass(frozen=True)
class Metric:
    """One metric and everything the package needs to know to use and show it.

    Attributes:
        name: the shared name (trial records, rules, JSON, CSV header), unit in the name.
        unit: ``1`` for a fraction in [0, 1], else ``ms``, ``mJ``, ``mW``, ``KB`` ….
        sense: ``max`` (more is better) or ``min``.
        description: one line for help texts and docs.
        label: short column header of the terminal table.
        html_label: column header of the HTML table (default: ``label``).
        digits: significant digits in the tables (fractions: ×100 with one decimal).
        budget: the :class:`~autocompress.core.budget.Budget` field that limits it
            (``memory_kb`` for ``peak_memory_kb``), or None; the flag is ``--`` + the
            field with dashes. A ``max`` metric's budget is a lower bound.
        objective: it may be a search objective (``--objective``).
        cost_field: the ``Cost`` total it is computed from (cost metrics only).
        scale: factor applied to ``cost_field`` (``1e-6`` for millions of MACs).
        views: where the report shows it (``table``, ``html``, ``csv``, ``plot``); every
            metric is in ``--json`` and in ``--pick`` rules.
        optional: shown only when some trial has a value (``recovered_*``).
    """

    name: str
    unit: str
    sense: Literal["min", "max"]
    description: str
    label: str
    html_label: str = ""
    digits: int = 3
    budget: str | None = None
    objective: bool = False
    cost_field: str | None = None
    scale: float = 1.0
    views: tuple[View, ...] = ALL_VIEWS
    optional: bool = False

    @property
    def is_fraction(self) -> bool:
        """A fraction in [0, 1] (accuracies), shown as a percentage."""
        return self.unit == "1"

    @property
    def quantity(self) -> str:
        """The name without its unit suffix, in words (``peak memory`` for ``peak_memory_kb``)."""
        return self.name.removesuffix("_" + self.unit.lower()).replace("_", " ")

    @property
    def axis_label(self) -> str:
        """Plot axis label: the quantity and its unit (``latency (ms)``)."""
        return f"{self.quantity} (%)" if self.is_fraction else f"{self.quantity} ({self.unit})"

    @property
    def budget_flag(self) -> str | None:
        """The CLI flag of its budget, e.g. ``--memory-kb``, or None."""
        return None if self.budget is None else "--" + self.budget.replace("_", "-")

    @property
    def budget_help(self) -> str:
        """Help text of the budget flag (``NN%`` of the teacher is allowed for cost budgets)."""
        if self.sense == "max":
            return f"Minimum {self.description} (fraction, e.g. 0.9)."
        return (
            f"Budget on the main chip: {self.description} "
            f"({self.unit}, or NN% of the teacher at int8)."
        )

    def format(self, value: float | None) -> str:
        """The value as the tables show it (``–`` when unknown)."""
        if value is None:
            return "–"
        if self.is_fraction:
            return f"{100 * value:.1f}"
        if abs(value) >= 10 ** (self.digits - 1):
            return f"{value:.0f}"
        return f"{value:.{self.digits}g}"

    def format_html(self, value: float | None) -> str:
        """The value as the HTML table shows it: four significant digits (``–`` when unknown)."""
        return "–" if value is None else f"{value:.4g}"

    def from_costs(self, costs: Mapping[str, float] | None) -> float | None:
        """This cost metric from a trial's cost totals (its own key, else ``cost_field``)."""
        if not costs:
            return None
        value = costs.get(self.name)
        if value is None and self.cost_field is not None:
            raw = costs.get(self.cost_field)
            value = None if raw is None else float(raw) * self.scale
        return None if value is None else float(value)


METRICS: tuple[Metric, ...] = (
    Metric(
        "accuracy",
        "1",
        "max",
        "validation top-1 accuracy",
        "acc",
        html_label="accuracy",
        budget="min_accuracy",
        objective=True,
    ),
    Metric(
        "test_accuracy",
        "1",
        "max",
        "test top-1 accuracy",
        "test acc",
        html_label="test acc.",
        views=("html", "csv"),
    ),
    Metric(
        "recovered_accuracy",
        "1",
        "max",
        "validation accuracy after `autocompress finetune`",
        "rec val acc",
        views=("csv",),
        optional=True,
    ),
    Metric(
        "recovered_test_accuracy",
        "1",
        "max",
        "test accuracy after `autocompress finetune`",
        "rec acc",
        views=("table", "csv"),
        optional=True,
    ),
    Metric(
        "teacher_agreement",
        "1",
        "max",
        "top-1 agreement with the teacher on the test split",
        "agree",
        views=(),
    ),
    Metric(
        "latency_ms",
        "ms",
        "min",
        "simulated latency of one inference",
        "lat ms",
        html_label="latency ms",
        budget="latency_ms",
        objective=True,
        cost_field="latency_ms",
        views=(*ALL_VIEWS, "plot"),
    ),
    Metric(
        "energy_mj",
        "mJ",
        "min",
        "simulated energy of one inference",
        "mJ",
        html_label="energy mJ",
        budget="energy_mj",
        objective=True,
        cost_field="energy_mj",
        views=(*ALL_VIEWS, "plot"),
    ),
    Metric(
        "power_mw",
        "mW",
        "min",
        "average power while inferring",
        "mW",
        html_label="power mW",
        budget="power_mw",
        objective=True,
        cost_field="power_mw",
    ),
    Metric(
        "peak_memory_kb",
        "KB",
        "min",
        "peak memory (weights + the largest set of live activations)",
        "mem",
        html_label="peak mem KB",
        budget="memory_kb",
        objective=True,
        cost_field="peak_memory_kb",
        views=(*ALL_VIEWS, "plot"),
    ),
    Metric(
        "model_size_kb",
        "KB",
        "min",
        "weight storage at the chosen bit-widths",
        "KB",
        html_label="size KB",
        budget="model_size_kb",
        objective=True,
        cost_field="model_size_kb",
    ),
)


def metrics() -> tuple[Metric, ...]:
    """Every metric, in table order (read at call time, so a new entry shows up everywhere)."""
    return METRICS


def metric(name: str) -> Metric:
    """The metric called ``name`` (KeyError if there is none)."""
    for entry in METRICS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def metric_names() -> tuple[str, ...]:
    return tuple(m.name for m in METRICS)


def cost_metrics() -> tuple[Metric, ...]:
    """The metrics the cost model computes (they have a ``cost_field``)."""
    return tuple(m for m in METRICS if m.cost_field is not None)


def objective_metrics() -> tuple[Metric, ...]:
    """The metrics that may be search objectives."""
    return tuple(m for m in METRICS if m.objective)


def budget_metrics() -> tuple[Metric, ...]:
    """The metrics a budget may limit: upper bounds (costs) first, then lower bounds."""
    limited = [m for m in METRICS if m.budget is not None]
    return tuple(sorted(limited, key=lambda m: m.sense == "max"))


def metric_of_budget(field_name: str) -> Metric:
    """The metric a budget field limits (``memory_kb`` -> ``peak_memory_kb``)."""
    for entry in METRICS:
        if entry.budget == field_name:
            return entry
    raise KeyError(field_name)


def sense_of(name: str) -> str:
    """``max`` or ``min``; a name outside the table counts as ``min`` (a cost)."""
    for entry in METRICS:
        if entry.name == name:
            return entry.sense
    return "min"


def shown_in(view: View) -> tuple[Metric, ...]:
    """The metrics a report view (``table``, ``html``, ``csv``) shows, in table order."""
    return tuple(m for m in METRICS if view in m.views)

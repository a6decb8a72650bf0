"""Click options derived from the metric table: budget flags and ``--objective``.

``autocompress search`` and ``autocompress report`` take one flag per budget of
:mod:`autocompress.core.metrics` (``--latency-ms``, ``--memory-kb``, …, ``--min-accuracy``);
a new metric entry with a ``budget`` adds its flag to both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

import click

from autocompress.core.metrics import budget_metrics, objective_metrics

F = TypeVar("F", bound=Callable[..., Any])


def budget_options(command: Literal["search", "report"]) -> Callable[[F], F]:
    """One option per budget of the table, named after the Budget field (``memory_kb``).

    ``search`` budgets on costs are strings (a number, or ``NN%`` of the teacher at int8);
    ``report`` re-targets with plain numbers.
    """

    def decorate(function: F) -> F:
        for metric in reversed(budget_metrics()):
            assert metric.budget_flag is not None
            if command == "report":
                if metric.sense == "max":
                    text = f"Only trials with at least this {metric.description} (fraction)."
                else:
                    text = f"Re-target the budget on {metric.description} ({metric.unit})."
                option_type: Any = float
            else:
                text = metric.budget_help
                option_type = float if metric.sense == "max" else None
            function = click.option(metric.budget_flag, metric.budget, type=option_type, help=text)(
                function
            )
        return function

    return decorate


def objective_help(default: tuple[str, ...]) -> str:
    """Help of ``--objective``: the allowed names and the default."""
    names = ", ".join(m.name for m in objective_metrics())
    return f"Objective metric; repeat (default {', '.join(default)}). One of: {names}."

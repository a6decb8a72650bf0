"""One constraints adapter: Optuna 4 (``constraints_func``), Optuna 5 (``Trial.set_constraint``).

The objective calls :func:`record_constraints` once per trial with the budget
violations (Optuna's convention: ``<= 0`` met). The values are always kept in
the trial's user attributes too, so that :func:`constraints_from_trial` can
serve as the ``constraints_func`` samplers of Optuna < 5 need, and so that
Ray Tune's searcher can re-apply them in the driver process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

CONSTRAINTS_ATTR = "autocompress:constraints"

#: True on Optuna >= 5, where a trial sets its own constraints.
HAS_SET_CONSTRAINT: bool = hasattr(optuna.trial.Trial, "set_constraint")


def constraint_values(violations: Mapping[str, float], names: Sequence[str]) -> list[float]:
    """Values in the order of ``names``; a budget that could not be checked counts as met (0)."""
    return [float(violations.get(name, 0.0)) for name in names]


def record_constraints(trial: Any, violations: Mapping[str, float], names: Sequence[str]) -> None:
    """Attach the constraint values to a live Optuna trial, whatever the Optuna version."""
    values = constraint_values(violations, names)
    trial.set_user_attr(CONSTRAINTS_ATTR, values)
    if HAS_SET_CONSTRAINT and names:
        existing = trial.constraints  # set once: a settled orphan may have them already
        for name, value in zip(names, values, strict=True):
            if name not in existing:
                trial.set_constraint(name, value)


def constraints_from_trial(trial: optuna.trial.FrozenTrial) -> list[float]:
    """``constraints_func`` for Optuna < 5 samplers: the values the objective recorded."""
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR, []))


def sampler_constraint_kwargs(sampler_class: type, constrained: bool) -> dict[str, Any]:
    """Keyword arguments that switch a sampler's constraint handling on.

    Optuna 5 reads constraints from the trials (nothing to pass); Optuna 4 needs
    ``constraints_func`` on samplers that accept it.
    """
    if not constrained or HAS_SET_CONSTRAINT:
        return {}
    import inspect

    if "constraints_func" in inspect.signature(sampler_class.__init__).parameters:
        return {"constraints_func": constraints_from_trial}
    return {}


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Every recorded constraint met."""
    return all(v <= 0 for v in constraints_from_trial(trial))

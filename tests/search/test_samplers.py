"""Sampler factory and the constraints adapter (Optuna 4 and Optuna 5 APIs)."""

from __future__ import annotations

import optuna
import pytest

from autocompress.core.errors import UnknownNameError
from autocompress.search import constraints
from autocompress.search.samplers import SAMPLERS, check_sampler_name, make_sampler


def test_unknown_sampler_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="unknown sampler 'tpee'; did you mean 'tpe'"):
        make_sampler("tpee", seed=0, constrained=True)


@pytest.mark.parametrize("alias", ["NSGA-II", "nsgaii", "nsga_2", "NSGA2"])
def test_sampler_aliases(alias):
    assert check_sampler_name(alias) == "nsga2"


def _constrained_run(name: str, n: int = 24) -> optuna.Study:
    """Two objectives, one constraint: x + y <= 1 is feasible."""
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(name, seed=3, constrained=True)
    )
    for _ in range(n):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        y = trial.suggest_float("y", 0, 1)
        constraints.record_constraints(trial, {"sum": x + y - 1.0}, ["sum"])
        study.tell(trial, (x, y))
    return study


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_seeded_and_records_constraints(name):
    first = _constrained_run(name, 12 if name == "gp" else 24)
    second = _constrained_run(name, 12 if name == "gp" else 24)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]  # seeded
    for trial in first.trials:
        (value,) = constraints.constraints_from_trial(trial)
        assert value == pytest.approx(trial.params["x"] + trial.params["y"] - 1.0)
        assert constraints.is_feasible(trial) == (value <= 0)
        if constraints.HAS_SET_CONSTRAINT:  # Optuna 5: the study itself knows the constraint
            assert trial.constraints == {"sum": pytest.approx(value)}


def test_constraints_func_path_for_optuna4():
    """The Optuna 4 path: a constraints_func reading what record_constraints stored."""
    study = optuna.create_study()
    trial = study.ask()
    constraints.record_constraints(trial, {"b": 0.5, "a": -1.0}, ["a", "b", "c"])
    study.tell(trial, 1.0)
    frozen = study.trials[0]
    assert constraints.constraints_from_trial(frozen) == [-1.0, 0.5, 0.0]
    assert not constraints.is_feasible(frozen)
    kwargs = constraints.sampler_constraint_kwargs(optuna.samplers.NSGAIISampler, True)
    if constraints.HAS_SET_CONSTRAINT:
        assert kwargs == {}
    else:
        assert kwargs["constraints_func"] is constraints.constraints_from_trial
    assert constraints.sampler_constraint_kwargs(optuna.samplers.RandomSampler, False) == {}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_constrained_samplers_use_no_deprecated_optuna_api(name):
    """Optuna 5 deprecates ``constraints_func`` (a FutureWarning): the adapter must not use it."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _constrained_run(name, 4)
    shown = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not issubclass(w.category, optuna.exceptions.ExperimentalWarning)
    ]
    assert shown == []

"""Optuna samplers by name, seeded, with constraint handling switched on.

NSGA-II is the default: it handles several objectives and the budget
constraints natively. TPE and GP also honour constraints; random and QMC ignore
them (infeasible trials are still recorded as such).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna

from autocompress.core.errors import UnknownNameError
from autocompress.search.constraints import sampler_constraint_kwargs

# NSGA-III and QMC are "experimental" in Optuna's words; offered knowingly.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

DEFAULT_SAMPLER = "nsga2"


def _nsga2(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=10, **kwargs)


def _nsga3(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=10, **kwargs)


def _tpe(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10, **kwargs)


def _random(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _qmc(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def _gp(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, **kwargs)


# name -> (sampler class, factory, one-line description)
SAMPLERS: dict[str, tuple[type, Callable[[int | None, dict], optuna.samplers.BaseSampler], str]] = {
    "nsga2": (
        optuna.samplers.NSGAIISampler,
        _nsga2,
        "NSGA-II genetic search (default; constraints)",
    ),
    "nsga3": (optuna.samplers.NSGAIIISampler, _nsga3, "NSGA-III, for three or more objectives"),
    "tpe": (optuna.samplers.TPESampler, _tpe, "multivariate TPE (constraints)"),
    "gp": (optuna.samplers.GPSampler, _gp, "Gaussian-process Bayesian optimisation (constraints)"),
    "random": (optuna.samplers.RandomSampler, _random, "uniform random search"),
    "qmc": (optuna.samplers.QMCSampler, _qmc, "quasi-Monte-Carlo (Sobol) sampling"),
}


def check_sampler_name(name: str) -> str:
    """``name`` normalised, or UnknownNameError listing the known samplers."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {"nsgaii": "nsga2", "nsgaiii": "nsga3"}
    key = aliases.get(key, key)
    if key not in SAMPLERS:
        raise UnknownNameError(
            "sampler",
            name,
            SAMPLERS,
            list_hint=f"Known samplers: {', '.join(SAMPLERS)} (see docs/search.md).",
        )
    return key


def make_sampler(name: str, *, seed: int | None, constrained: bool) -> optuna.samplers.BaseSampler:
    """A seeded sampler by name; constraints on where the sampler supports them."""
    key = check_sampler_name(name)
    sampler_class, factory, _ = SAMPLERS[key]
    return factory(seed, sampler_constraint_kwargs(sampler_class, constrained))

"""Optuna samplers by name, seeded, with constraint handling switched on.

The default is chosen by measurement (bench/bench_search_efficiency.py, results
in bench/RESULTS.md): multivariate TPE with the constant liar (parallel
workers see each other's running trials), the sampler Optuna's own AutoSampler
picks for multi-objective spaces with categorical parameters. NSGA-II's first
generation is random sampling, so in runs of tens of trials it is random search.

TPE, NSGA-II and GP honour the budget constraints; random and QMC ignore them
(infeasible trials are still recorded as such). The Gaussian process models
numbers only: with ``gp`` every choice is asked as the index of its (ordered)
choice, and an infeasible configuration — never trained, so it has no accuracy —
is not told to it as a completed trial with a made-up accuracy (it is recorded
as pruned; see :func:`tells_infeasible`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna

from autocompress.core.errors import UnknownNameError
from autocompress.search.constraints import sampler_constraint_kwargs

# NSGA-III and QMC are "experimental" in Optuna's words; offered knowingly.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

DEFAULT_SAMPLER = "tpe"

#: Samplers that see every choice as the index of an ordered choice.
NUMERIC_SAMPLERS = frozenset({"gp"})


def _nsga2(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=10, **kwargs)


def _nsga3(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=10, **kwargs)


def _tpe(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, constant_liar=True, n_startup_trials=10, **kwargs
    )


def _random(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


def _qmc(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


def _gp(seed: int | None, kwargs: dict) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False, **kwargs)


# name -> (sampler class, factory, one-line description)
SAMPLERS: dict[str, tuple[type, Callable[[int | None, dict], optuna.samplers.BaseSampler], str]] = {
    "nsga2": (
        optuna.samplers.NSGAIISampler,
        _nsga2,
        "NSGA-II genetic search (constraints)",
    ),
    "nsga3": (optuna.samplers.NSGAIIISampler, _nsga3, "NSGA-III, for three or more objectives"),
    "tpe": (
        optuna.samplers.TPESampler,
        _tpe,
        "multivariate TPE with constant liar (default; constraints)",
    ),
    "gp": (
        optuna.samplers.GPSampler,
        _gp,
        "Gaussian-process Bayesian optimisation (numeric encoding; constraints)",
    ),
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


def uses_numeric_encoding(name: str) -> bool:
    """True when the sampler ``name`` is asked for choice indices (see the module docstring)."""
    return check_sampler_name(name) in NUMERIC_SAMPLERS


def tells_infeasible(name: str) -> bool:
    """True when an untrained infeasible configuration is told to the sampler as a completed
    trial (accuracy unknown, so placeholder 0; constraint-aware samplers split on the
    violation only). False for the Gaussian process, which would fit the placeholder."""
    return check_sampler_name(name) not in NUMERIC_SAMPLERS

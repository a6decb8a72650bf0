"""What ``search --resume`` may change, and which model files it may import.

A run's settings are fixed when it is created (they define what the trials
mean). On resume only *how* it goes on may change: ``--trials``, ``--timeout``,
``--workers``, ``--device``, progress display, and the execution backend
(``--backend``, ``--address``, ``--cpus-per-trial``, ``--gpus-per-trial``).
Any other setting given with a value different from the recorded one is refused
(exit 2) with the setting and its recorded value; giving the same value is fine.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autocompress.core.errors import ConfigError, RunDirectoryError
from autocompress.core.model_code import model_code_policy, model_file_of
from autocompress.core.models import checkpoint_model_name
from autocompress.core.run_config import RunConfig
from autocompress.core.workspace import RunDirectory
from autocompress.search.samplers import check_sampler_name, make_sampler
from autocompress.search.study import STUDY_NAME, open_study

#: Settings resume applies (how the run goes on, not what it searches).
APPLIED_ON_RESUME = (
    "trials",
    "timeout_s",
    "workers",
    "device",
    "backend",
    "address",
    "cpus_per_trial",
    "gpus_per_trial",
    "out",
)

_FLAGS = {"timeout_s": "--timeout", "objectives": "--objective", "data_root": "data_root"}


def _flag(key: str) -> str:
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def _same_number(given: Any, recorded: Any) -> bool:
    try:
        return math.isclose(float(given), float(recorded), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _same_path(given: Any, recorded: Any) -> bool:
    if recorded is None:
        return False
    return Path(str(given)).resolve() == Path(str(recorded)).resolve()


def _budget_same(key: str, config: RunConfig) -> Callable[[Any], bool]:
    def same(given: Any) -> bool:
        recorded = getattr(config.budget, key, None)
        text = str(given).strip()
        if text.endswith("%"):
            source = str(config.budget_sources.get(key, ""))
            return f"({text} of the teacher" in source.replace(" %", "%")
        return recorded is not None and _same_number(given, recorded)

    return same


def _recorded(config: RunConfig) -> dict[str, tuple[Any, Callable[[Any], bool]]]:
    """setting -> (recorded value as shown, does a given value equal it?)."""
    model, dataset, finetune = config.model, config.dataset, config.finetune
    teacher, space, sampler = config.teacher, config.space, config.sampler
    chips = list(config.chips)
    rungs = [float(x) for x in config.promotion.rungs]

    def same_space(given: Any) -> bool:
        text = str(given)
        if text == space.name:
            return True
        return space.path is not None and _same_path(text, space.path)

    def same_sampler(given: Any) -> bool:
        try:
            return check_sampler_name(str(given)) == sampler.name
        except ConfigError:
            return False

    def same_chips(given: Any) -> bool:
        listed = [given] if isinstance(given, str) else list(given)
        return listed == chips

    out: dict[str, tuple[Any, Callable[[Any], bool]]] = {
        "model": (model.name, lambda g: str(g) == model.name),
        "small_input": (model.small_input, lambda g: bool(g) == model.small_input),
        "dataset": (dataset.name, lambda g: str(g) == dataset.name),
        "data_root": (dataset.root, lambda g: _same_path(g, dataset.root)),
        "data_limit": (dataset.limit, lambda g: g == dataset.limit),
        "chip": (chips, same_chips),
        "objectives": (list(config.objectives), lambda g: list(g) == list(config.objectives)),
        "space": (space.name, same_space),
        "sampler": (sampler.name, same_sampler),
        "seed": (config.seed, lambda g: g == config.seed),
        "teacher": (teacher.given_path, lambda g: _same_path(g, teacher.given_path)),
        "teacher_epochs": (teacher.epochs, lambda g: g == teacher.epochs),
        "epochs": (finetune.epochs, lambda g: _same_number(g, finetune.epochs)),
        "batch_size": (finetune.batch_size, lambda g: g == finetune.batch_size),
        "lr": (finetune.lr, lambda g: _same_number(g, finetune.lr)),
        "feature_weight": (
            finetune.feature_weight,
            lambda g: _same_number(g, finetune.feature_weight),
        ),
        "name": (config.name, lambda g: str(g) == config.name),
        "rungs": (rungs, lambda g: [float(x) for x in g] == rungs),
        "anchors": (config.anchors, lambda g: bool(g) == config.anchors),
    }
    for budget in dataclasses.fields(config.budget):
        out[budget.name] = (getattr(config.budget, budget.name), _budget_same(budget.name, config))
    return out


def check_unchanged(config: RunConfig, arguments: Mapping[str, Any], where: Path) -> None:
    """ConfigError naming the first given setting that differs from the recorded one."""
    recorded = _recorded(config)
    for key, value in arguments.items():
        if value is None or key in APPLIED_ON_RESUME:
            continue
        if isinstance(value, (list, tuple)) and not value:
            continue
        if key not in recorded:
            raise ConfigError(f"--resume cannot change {_flag(key)} (recorded in {where})")
        shown, same = recorded[key]
        if same(value):
            continue
        raise ConfigError(
            f"--resume: {_flag(key)} {value!r} differs from the run's recorded {key} "
            f"{shown!r} ({where}); a run keeps the settings it was created with",
            hint=f"Leave {_flag(key)} out to continue the run, or start a new run with "
            "another --out. On resume only --trials, --timeout, --workers, --device and "
            "--backend may change.",
        )


def check_model_files(run: RunDirectory, config: RunConfig, *, trusted: bool) -> None:
    """UntrustedModelCodeError unless every model file the run would import is allowed:
    the one recorded at creation (same path + sha256), or any with ``trusted``."""
    names = [config.model.name]
    if run.teacher_pt.is_file():
        names.append(checkpoint_model_name(run.teacher_pt) or "")
    with model_code_policy(
        trusted=trusted, allowed=config.model_identities(), command="search --resume"
    ) as policy:
        for name in names:
            if model_file_of(name) is not None:
                policy.check(name)


def check_study(run: RunDirectory, config: RunConfig) -> None:
    """RunDirectoryError unless study.db is a readable study (created when the run has none
    and no trial has finished)."""
    import optuna
    import sqlalchemy.exc

    if not run.study_db.is_file():
        if run.trials_jsonl.is_file() and run.trials_jsonl.stat().st_size > 0:
            raise RunDirectoryError(
                f"{run.study_db} is missing but {run.trials_jsonl} has trials: resuming would "
                "number new trials from 0 again and hide the finished ones",
                hint="Restore study.db, or start a new run with another --out "
                "(the records stay readable with `autocompress report`).",
            )
        open_study(run, config.objectives, make_sampler("random", seed=0, constrained=False))
        return
    try:
        optuna.load_study(study_name=STUDY_NAME, storage=run.storage_url)
    except (sqlalchemy.exc.SQLAlchemyError, KeyError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunDirectoryError(
            f"{run.study_db} is not a readable Optuna study of this run ({detail})",
            hint="Restore study.db, or start a new run with another --out "
            "(the records stay readable with `autocompress report`).",
        ) from None

"""What ``search --resume`` may change, and which model files it may import.

A run's settings are fixed when it is created (they define what the trials
mean). On resume only *how* it goes on may change: ``--trials``, ``--timeout``,
``--workers``, ``--device``, progress display, and the execution backend
(``--backend``, ``--address``, ``--cpus-per-trial``, ``--gpus-per-trial``).
Any other setting given with a value different from the recorded one is refused
(exit 2) with the setting and its recorded value; giving the same value is fine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autocompress.core.budget import BUDGET_FIELDS
from autocompress.core.errors import ConfigError
from autocompress.core.model_code import model_code_policy, recorded_identities
from autocompress.core.workspace import RunDirectory

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


def _budget_same(key: str, config: Mapping[str, Any]) -> Callable[[Any], bool]:
    def same(given: Any) -> bool:
        recorded = (config.get("budget") or {}).get(key)
        text = str(given).strip()
        if text.endswith("%"):
            source = str((config.get("budget_sources") or {}).get(key, ""))
            return f"({text} of the teacher" in source.replace(" %", "%")
        return recorded is not None and _same_number(given, recorded)

    return same


def _recorded(config: Mapping[str, Any]) -> dict[str, tuple[Any, Callable[[Any], bool]]]:
    """setting -> (recorded value as shown, does a given value equal it?)."""
    model = config.get("model") or {}
    dataset = config.get("dataset") or {}
    finetune = config.get("finetune") or {}
    teacher = config.get("teacher") or {}
    space = config.get("space") or {}
    sampler = config.get("sampler") or {}
    promotion = config.get("promotion") or {}
    chips = list(config.get("chips") or [config.get("chip")])

    def same_space(given: Any) -> bool:
        text = str(given)
        if text == space.get("name"):
            return True
        return space.get("path") is not None and _same_path(text, space.get("path"))

    def same_sampler(given: Any) -> bool:
        from autocompress.search.samplers import check_sampler_name

        try:
            return check_sampler_name(str(given)) == sampler.get("name")
        except ConfigError:
            return False

    def same_chips(given: Any) -> bool:
        listed = [given] if isinstance(given, str) else list(given)
        return listed == chips

    out: dict[str, tuple[Any, Callable[[Any], bool]]] = {
        "model": (model.get("name"), lambda g: str(g) == model.get("name")),
        "small_input": (model.get("small_input"), lambda g: bool(g) == model.get("small_input")),
        "dataset": (dataset.get("name"), lambda g: str(g) == dataset.get("name")),
        "data_root": (dataset.get("root"), lambda g: _same_path(g, dataset.get("root"))),
        "data_limit": (dataset.get("limit"), lambda g: g == dataset.get("limit")),
        "chip": (chips, same_chips),
        "objectives": (
            list(config.get("objectives") or []),
            lambda g: list(g) == list(config.get("objectives") or []),
        ),
        "space": (space.get("name"), same_space),
        "sampler": (sampler.get("name"), same_sampler),
        "seed": (config.get("seed"), lambda g: g == config.get("seed")),
        "teacher": (teacher.get("given_path"), lambda g: _same_path(g, teacher.get("given_path"))),
        "teacher_epochs": (teacher.get("epochs"), lambda g: g == teacher.get("epochs")),
        "epochs": (finetune.get("epochs"), lambda g: _same_number(g, finetune.get("epochs"))),
        "batch_size": (finetune.get("batch_size"), lambda g: g == finetune.get("batch_size")),
        "lr": (finetune.get("lr"), lambda g: _same_number(g, finetune.get("lr"))),
        "name": (config.get("name"), lambda g: str(g) == config.get("name")),
        "rungs": (
            promotion.get("rungs"),
            lambda g: [float(x) for x in g] == [float(x) for x in promotion.get("rungs") or [1.0]],
        ),
        "anchors": (config.get("anchors", True), lambda g: bool(g) == config.get("anchors", True)),
    }
    for key in BUDGET_FIELDS:
        out[key] = ((config.get("budget") or {}).get(key), _budget_same(key, config))
    return out


def check_unchanged(config: Mapping[str, Any], arguments: Mapping[str, Any], where: Path) -> None:
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


def check_model_files(run: RunDirectory, config: Mapping[str, Any], *, trusted: bool) -> None:
    """UntrustedModelCodeError unless every model file the run would import is allowed:
    the one recorded at creation (same path + sha256), or any with ``trusted``."""
    from autocompress.core.model_code import model_file_of
    from autocompress.core.models import checkpoint_model_name

    names = [str((config.get("model") or {}).get("name", ""))]
    if run.teacher_pt.is_file():
        names.append(checkpoint_model_name(run.teacher_pt) or "")
    with model_code_policy(
        trusted=trusted, allowed=recorded_identities(config), command="search --resume"
    ) as policy:
        for name in names:
            if model_file_of(name) is not None:
                policy.check(name)


def check_study(run: RunDirectory, config: Mapping[str, Any]) -> None:
    """RunDirectoryError unless study.db is a readable study (created when the run has none
    and no trial has finished)."""
    import optuna
    import sqlalchemy.exc

    from autocompress.core.errors import RunDirectoryError
    from autocompress.search.samplers import make_sampler
    from autocompress.search.study import STUDY_NAME, open_study

    if not run.study_db.is_file():
        if run.trials_jsonl.is_file() and run.trials_jsonl.stat().st_size > 0:
            raise RunDirectoryError(
                f"{run.study_db} is missing but {run.trials_jsonl} has trials: resuming would "
                "number new trials from 0 again and hide the finished ones",
                hint="Restore study.db, or start a new run with another --out "
                "(the records stay readable with `autocompress report`).",
            )
        open_study(run, config["objectives"], make_sampler("random", seed=0, constrained=False))
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


#: run.yaml fields a resume needs (each a mapping, a list, or a value).
_REQUIRED = {
    "model": Mapping,
    "dataset": Mapping,
    "chip": str,
    "chips": list,
    "budget": Mapping,
    "objectives": list,
    "space": Mapping,
    "sampler": Mapping,
    "trials": int,
    "finetune": Mapping,
    "input_shape": list,
}


def check_run_fields(config: Mapping[str, Any], where: Path) -> None:
    """RunDirectoryError naming the first run.yaml field a resume needs that is missing or
    of the wrong type."""
    from autocompress.core.errors import RunDirectoryError

    for key, kind in _REQUIRED.items():
        value = config.get(key)
        if value is None:
            raise RunDirectoryError(f"{where}: field {key!r} is missing; the run cannot resume")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RunDirectoryError(
                f"{where}: field {key!r} has the wrong type ({type(value).__name__}); "
                "the run cannot resume"
            )

"""What a search was asked to do: :class:`SearchSettings`, from a YAML config, flags or Python.

Precedence: Python/CLI arguments > ``--config`` file > defaults. Everything is
validated here, before any run directory exists, so bad input never leaves a
half-written run behind. A config file may be a previous run's ``run.yaml``
(its recorded-only fields are ignored).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from autocompress.core.budget import BUDGET_FIELDS, Budget
from autocompress.core.errors import BudgetError, ConfigError
from autocompress.core.input_shape import parse_hw
from autocompress.core.metrics import metric_of_budget, objective_metrics
from autocompress.core.run_config import RunConfig
from autocompress.core.validation_split import DEFAULT_VAL_FRACTION
from autocompress.hardware.plugins import default_chip_id
from autocompress.search.promotion import check_rungs
from autocompress.search.samplers import DEFAULT_SAMPLER, check_sampler_name
from autocompress.search.space_catalog import builtin_space_dir
from autocompress.search.yaml_lines import LineDict, load_yaml_with_lines

DEFAULT_MODEL = "fc_cnn"
#: Arguments of the default model when no --model (or teacher) names one: a hidden layer of
#: 8192 units, so that its weights, not the RV1126's fixed 0.18 ms per inference, dominate
#: the latency and the default run's front spans more than 2x (0.20-0.44 ms) instead of
#: 1.24x with fc_cnn's own 2048 (bench/RESULTS.md, seventh session). ``--model fc_cnn``
#: keeps the function's defaults, and so do runs made before.
DEFAULT_MODEL_ARGS: dict[str, int] = {"hidden": 8192}
DEFAULT_DATASET = "digits"
DEFAULT_OBJECTIVES = ("accuracy", "latency_ms")
BACKENDS = ("optuna", "ray")
_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")

# Keys a run.yaml carries that are records, not requests.
_RECORD_ONLY_KEYS = {
    "format_version",
    "created_utc",
    "input_shape",
    "normalization",
    "budget_sources",
    "versions",
    "finished_utc",
    "status",
    "calibration",
    "model_code",
    "trials_count",
}


@dataclass(frozen=True)
class SearchSettings:
    """Every knob of a search (see docs/search.md). Budgets may be numbers or ``"NN%"``
    (a fraction of the teacher's int8 cost on the main chip; not for ``min_accuracy``).
    """

    model: str = DEFAULT_MODEL
    small_input: bool | None = None  # None: automatic (True for 32×32 inputs on torchvision models)
    model_args: Mapping[str, Any] = field(default_factory=dict)  # --model-arg key=value
    dataset: str = DEFAULT_DATASET
    input_size: tuple[int, int] | None = None  # (H, W); None: the images' own size
    mean: tuple[float, ...] | None = None  # None: the training split's statistics
    std: tuple[float, ...] | None = None
    data_root: str | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    data_limit: int | None = None
    # None given: AUTOCOMPRESS_DEFAULT_CHIP, else the chip a plugin declares the default
    # (rockchip/rv1126 with the bundled plugins); see hardware.plugins.default_chip_id.
    chips: tuple[str, ...] = field(default_factory=lambda: _default_chips())
    budget: Mapping[str, float | str | None] = field(default_factory=dict)
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    space: str = "default"
    trials: int = 30  # trained trials (infeasible and duplicate proposals do not count)
    timeout_s: float | None = None
    sampler: str = DEFAULT_SAMPLER
    backend: str = "optuna"
    workers: int = 1
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    out: str | None = None
    name: str | None = None
    resume: bool = False
    seed: int = 0
    teacher: str | None = None
    teacher_epochs: int | None = None  # None: per dataset (prepare.teacher_epochs)
    epochs: float | None = None  # fine-tune epochs per trial; None: per dataset
    batch_size: int | None = None  # None: per device (128 on the CPU, 512 on a GPU; fastpath)
    lr: float | None = None  # AdamW peak LR of a trial; None: per device (prepare.finetune_lr)
    # Weight of the trials' feature distillation (compress/feature_kd.py); 0: logits only.
    feature_weight: float = 0.0
    device: str = "auto"
    embedded_default: bool = False
    # Promotion rungs, factors of ``epochs``; (1,) = off; None: per dataset (prepare.py).
    rungs: tuple[float, ...] | None = None
    anchors: bool = True  # enqueue the uniform-scaling configurations first

    def with_overrides(self, **overrides: Any) -> SearchSettings:
        """A copy with every override that is not None applied."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(
                f"unknown search settings {sorted(unknown)}",
                hint=f"Known: {', '.join(sorted(known))}.",
            )
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> SearchSettings:
        """Check every value; returns a normalised copy."""
        if not self.chips:
            raise ConfigError("at least one chip is needed (--chip vendor/name)")
        if len(set(self.chips)) != len(self.chips):
            raise ConfigError(f"a chip is listed twice in {list(self.chips)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.trials < 1:
            raise ConfigError(f"trials must be at least 1, got {self.trials}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"timeout must be positive seconds, got {self.timeout_s}")
        if self.gpus_per_trial < 0 or self.cpus_per_trial <= 0:
            raise ConfigError("resources per trial must be positive (cpus) / non-negative (gpus)")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}")
        if not self.feature_weight >= 0:  # NaN too
            raise ConfigError(f"the feature weight must be 0 or more, got {self.feature_weight:g}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        allowed = [m.name for m in objective_metrics()]
        for name in self.objectives:
            if name not in allowed:
                raise ConfigError(
                    f"unknown objective {name!r}",
                    hint=f"Objectives are metric names: {', '.join(allowed)}.",
                )
        if "accuracy" not in self.objectives:
            raise ConfigError(
                "objectives must include accuracy",
                hint="e.g. --objective accuracy --objective latency_ms",
            )
        if len(set(self.objectives)) != len(self.objectives) or len(self.objectives) < 2:
            raise ConfigError(
                f"objectives must be two or more distinct metrics, got {list(self.objectives)}"
            )
        sampler = check_sampler_name(self.sampler)
        rungs = check_rungs(self.rungs) if self.rungs is not None else None
        if (self.mean is None) != (self.std is None):
            raise ConfigError("--mean and --std go together (one value, or one per channel)")
        if self.std is not None and any(v <= 0 for v in self.std):
            raise ConfigError(f"--std values must be positive, got {list(self.std)}")
        if self.input_size is not None and min(self.input_size) < 1:
            raise ConfigError(f"input size must be positive, got {list(self.input_size)}")
        budget = dict(self.budget)
        for key, value in budget.items():
            if key not in BUDGET_FIELDS:
                raise BudgetError(
                    f"unknown budget {key!r}", hint=f"Budgets: {', '.join(BUDGET_FIELDS)}."
                )
            parse_budget_value(key, value)
        dataset = self.dataset
        if dataset.startswith("imagefolder:"):
            folder = Path(dataset.split(":", 1)[1]).expanduser()
            if folder.exists():  # absolute: the run works from any directory
                dataset = f"imagefolder:{folder.resolve()}"
        return replace(self, sampler=sampler, budget=budget, rungs=rungs, dataset=dataset)


def parse_budget_value(key: str, value: Any) -> tuple[float, bool] | None:
    """``(number, is_percent)`` of a budget value, or None when unset."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _PERCENT_RE.match(value)
        if match:
            if metric_of_budget(key).is_fraction:
                raise BudgetError(f"{key} is a fraction in [0, 1], not a percentage of the teacher")
            number = float(match.group(1))
            if number <= 0:
                raise BudgetError(f"budget {key} must be positive, got {value!r}")
            return number / 100.0, True
        try:
            value = float(value)
        except ValueError:
            raise BudgetError(
                f"budget {key} must be a number or a percentage such as 60%, got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BudgetError(f"budget {key} must be a number, got {value!r}")
    Budget(**{key: float(value)})  # range checks with the shared messages
    return float(value), False


def _default_chips() -> tuple[str, ...]:
    chip = default_chip_id()
    return (chip,) if chip is not None else ()


def parse_input_size(value: Any) -> tuple[int, int]:
    """``32`` / ``"32"`` -> (32, 32); ``"224x192"`` / ``[224, 192]`` -> (224, 192) as (H, W)."""
    return parse_hw(value, what="input size")


def parse_floats(value: Any, what: str) -> tuple[float, ...]:
    """``"0.5,0.5,0.5"`` / ``[0.5, 0.5, 0.5]`` / ``0.5`` -> a tuple of floats."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        out = tuple(float(v) for v in items)
    except ValueError:
        raise ConfigError(
            f"--{what} must be numbers separated by commas (one, or one per channel), got {value!r}"
        ) from None
    if not out:
        raise ConfigError(f"--{what} needs at least one number")
    return out


def parse_model_args(items: Any) -> dict[str, Any]:
    """``["width=32", "act=relu"]`` -> ``{"width": 32, "act": "relu"}`` (YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--model-arg takes key=value (a Python name), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, (dict, list)):
            raise ConfigError(f"--model-arg {key}: a single number, bool or string, got {text!r}")
        out[key] = value
    return out


def _asked_budget(config: RunConfig) -> dict[str, float | str]:
    """The budgets a run was asked for: ``NN%`` as given, numbers the user or the embedded
    default set; the chip's own budgets are left to the chip."""
    asked: dict[str, float | str] = {}
    for key, source in config.budget_sources.items():
        value = getattr(config.budget, key, None)
        if value is None or source.startswith("chip"):
            continue
        match = re.match(r"user \((\d+(?:\.\d+)?)\s*%", source)
        asked[key] = f"{match.group(1)}%" if match else float(value)
    return asked


def settings_of_run(config: RunConfig) -> dict[str, Any]:
    """The :class:`SearchSettings` overrides that made the run ``config`` records
    (``--config previous/run.yaml``): the same settings give the same run."""
    dataset, finetune, teacher = config.dataset, config.finetune, config.teacher
    space = config.space
    # a built-in space by its name (its path is where that installation kept it)
    builtin = space.path is not None and Path(space.path).parent.name == builtin_space_dir().name
    out: dict[str, Any] = {
        "name": config.name,
        "model": config.model.name,
        "small_input": config.model.small_input,
        "model_args": dict(config.model.model_args),
        "dataset": dataset.name,
        "data_root": dataset.root,
        "val_fraction": dataset.val_fraction,
        "data_limit": dataset.limit,
        "input_size": dataset.input_size,
        "mean": dataset.mean,
        "std": dataset.std,
        "chips": tuple(config.chips),
        "budget": _asked_budget(config),
        "objectives": tuple(config.objectives),
        "space": space.name if builtin or space.path is None else space.path,
        "trials": config.trials,
        "timeout_s": config.timeout_s,
        "sampler": config.sampler.name,
        "backend": config.backend,
        "workers": config.workers,
        "address": config.address,
        "cpus_per_trial": config.resources.cpus_per_trial,
        "gpus_per_trial": config.resources.gpus_per_trial,
        "seed": config.seed,
        "teacher": teacher.given_path if teacher.source == "given" else None,
        "teacher_epochs": teacher.epochs,
        "epochs": finetune.epochs,
        "batch_size": finetune.batch_size,
        "lr": finetune.lr,
        "feature_weight": finetune.feature_weight,
        "device": finetune.device,
        "rungs": tuple(config.promotion.rungs),
        "anchors": config.anchors,
    }
    return {k: v for k, v in out.items() if v is not None}


# -- config file ---------------------------------------------------------------------------

_SIMPLE_KEYS = {
    "trials": int,
    "timeout_s": float,
    "backend": str,
    "workers": int,
    "address": str,
    "seed": int,
    "out": str,
    "name": str,
    "anchors": bool,
}


def _where(path: Path, data: Any, key: str) -> str:
    line = data.line_of(key) if isinstance(data, LineDict) else 1
    return f"{path}:{line}: field {key!r}"


def settings_from_file(path: str | Path) -> dict[str, Any]:
    """Read a search config (or a previous run.yaml) into SearchSettings overrides.

    Errors name the file, the line and the field.
    """
    path = Path(path)
    data = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a search config is a mapping (model:, dataset:, chip: ...)")
    if "format_version" in data:  # a previous run's run.yaml: read as the type it is
        return settings_of_run(RunConfig.from_dict(data, source=path))
    out: dict[str, Any] = {}

    def fail(key: str, message: str, hint: str | None = None, sub: Any = None) -> ConfigError:
        where = _where(path, sub if sub is not None else data, key)
        return ConfigError(f"{where}: {message}", hint=hint)

    for key, value in data.items():
        try:
            if key in _RECORD_ONLY_KEYS:
                continue
            if key in _SIMPLE_KEYS:
                if value is not None:
                    out[key] = _SIMPLE_KEYS[key](value)
            elif key == "model":
                if isinstance(value, dict):
                    out["model"] = str(value["name"])
                    if "small_input" in value:
                        out["small_input"] = bool(value["small_input"])
                    if value.get("model_args"):
                        out["model_args"] = dict(value["model_args"])
                else:
                    out["model"] = str(value)
            elif key == "dataset":
                if isinstance(value, dict):
                    out["dataset"] = str(value["name"])
                    if value.get("root") is not None:
                        out["data_root"] = str(value["root"])
                    if value.get("val_fraction") is not None:
                        out["val_fraction"] = float(value["val_fraction"])
                    if value.get("limit") is not None:
                        out["data_limit"] = int(value["limit"])
                    if value.get("input_size") is not None:
                        out["input_size"] = parse_input_size(value["input_size"])
                    for stat in ("mean", "std"):
                        if value.get(stat) is not None:
                            out[stat] = parse_floats(value[stat], stat)
                else:
                    out["dataset"] = str(value)
            elif key == "chip":
                out.setdefault("_main_chip", str(value))
            elif key == "chips":
                if not isinstance(value, list):
                    raise fail(key, "expected a list of chip ids")
                out["chips"] = tuple(str(c) for c in value)
            elif key == "budget":
                if not isinstance(value, dict):
                    raise fail(key, "expected a mapping such as {latency_ms: 4, memory_kb: 2048}")
                for budget_key, budget_value in value.items():
                    if budget_key not in BUDGET_FIELDS:
                        raise fail(
                            budget_key,
                            "unknown budget",
                            f"Budgets: {', '.join(BUDGET_FIELDS)}.",
                            sub=value,
                        )
                    try:
                        parse_budget_value(budget_key, budget_value)
                    except BudgetError as exc:
                        raise fail(budget_key, exc.message, exc.hint, sub=value) from None
                out["budget"] = {k: v for k, v in value.items()}
            elif key == "objectives":
                if not isinstance(value, list):
                    raise fail(key, "expected a list such as [accuracy, latency_ms]")
                out["objectives"] = tuple(str(v) for v in value)
            elif key == "space":
                if isinstance(value, dict):
                    value = value.get("path") or value.get("name")
                text = str(value)
                if text.endswith((".yaml", ".yml")) and not Path(text).is_absolute():
                    text = (
                        str((path.parent / text).resolve())
                        if (path.parent / text).is_file()
                        else text
                    )
                out["space"] = text
            elif key == "sampler":
                if isinstance(value, dict):
                    if value.get("seed") is not None:
                        out.setdefault("seed", int(value["seed"]))
                    value = value.get("name", DEFAULT_SAMPLER)
                check_sampler_name(str(value))
                out["sampler"] = str(value)
            elif key == "finetune":
                if not isinstance(value, dict):
                    raise fail(
                        key, "expected a mapping {epochs, batch_size, lr, feature_weight, device}"
                    )
                finetune_fields = (
                    ("epochs", float, "epochs"),
                    ("batch_size", int, "batch_size"),
                    ("lr", float, "lr"),
                    ("feature_weight", float, "feature_weight"),
                    ("device", str, "device"),
                )
                for sub_key, cast, target in finetune_fields:
                    if value.get(sub_key) is not None:
                        out[target] = cast(value[sub_key])
                unknown = set(value) - {sub_key for sub_key, _cast, _target in finetune_fields}
                if unknown:
                    raise fail(sorted(unknown)[0], "unknown field", sub=value)
            elif key == "teacher":
                if isinstance(value, dict):
                    if value.get("source") in ("trained", "cache") or value.get("path") in (
                        None,
                        "teacher.pt",
                    ):
                        if value.get("epochs") is not None:
                            out["teacher_epochs"] = int(value["epochs"])
                        continue
                    value = value.get("path")
                if value is not None:
                    teacher = Path(str(value))
                    if not teacher.is_absolute() and (path.parent / teacher).is_file():
                        teacher = path.parent / teacher
                    out["teacher"] = str(teacher)
            elif key == "resources":
                if not isinstance(value, dict):
                    raise fail(key, "expected {cpus_per_trial, gpus_per_trial}")
                if value.get("cpus_per_trial") is not None:
                    out["cpus_per_trial"] = float(value["cpus_per_trial"])
                if value.get("gpus_per_trial") is not None:
                    out["gpus_per_trial"] = float(value["gpus_per_trial"])
            elif key == "promotion":
                rungs = value.get("rungs") if isinstance(value, dict) else value
                if not isinstance(rungs, list):
                    raise fail(key, "expected {rungs: [1, 3, 9]} (factors of the fine-tune epochs)")
                out["rungs"] = tuple(float(r) for r in rungs)
                check_rungs(out["rungs"])
            elif key in ("space_protect",):
                continue
            else:
                raise fail(
                    key,
                    "unknown field",
                    "Known fields: model, dataset, chip, chips, budget, objectives, space, trials, "
                    "timeout_s, sampler, backend, workers, address, resources, finetune, "
                    "promotion, anchors, teacher, seed, out, name.",
                )
        except ConfigError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise fail(key, f"invalid value {value!r} ({exc})") from None
    main = out.pop("_main_chip", None)
    if main is not None:
        chips = list(out.get("chips", ()))
        out["chips"] = (main, *[c for c in chips if c != main])
    return out

"""Turn validated settings into a run directory: budgets resolved, space checked, run.yaml written.

Everything that can be wrong with the input is checked before the run
directory is created (chips, space, model, dataset, budgets, and whether the
smallest configuration of the space can meet the cost budgets at all).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from autocompress.compress.slim import channel_groups
from autocompress.compress.student import build_student, training_only_layers
from autocompress.core.budget import Budget
from autocompress.core.errors import BudgetError, CheckpointError, ConfigError
from autocompress.core.model_code import model_file_identity
from autocompress.core.model_files import is_file_model, resolve_model_file
from autocompress.core.models import (
    ModelSpec,
    auto_small_input,
    has_small_input_stem,
    load_weights,
    peek_checkpoint,
)
from autocompress.core.run_config import (
    DatasetSpec,
    FinetuneSettings,
    Normalization,
    PromotionRecord,
    Resources,
    RunConfig,
    SamplerRecord,
    SpaceRecord,
    TeacherEntry,
)
from autocompress.core.trial_config import TrialConfig
from autocompress.core.validation_split import teacher_split_mismatch
from autocompress.core.version import __version__
from autocompress.core.weights import plain_message
from autocompress.hardware.calibration_store import calibration_record
from autocompress.hardware.cost import Cost
from autocompress.hardware.estimate import estimate_costs
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.plugins import plugin_versions
from autocompress.hardware.spec import ChipSpec
from autocompress.search.anchors import cheapest_params
from autocompress.search.promotion import DEFAULT_RUNGS, promotion_settings
from autocompress.search.resolve import ResolvedSpace
from autocompress.search.settings import SearchSettings, parse_budget_value
from autocompress.search.space import SearchSpace, space_as_plain_dict

#: Embedded default latency budget: this fraction of the way from the cheapest
#: configuration of the space to the teacher at int8 (binds, yet leaves room).
EMBEDDED_DEFAULT_LATENCY_FRACTION = 0.5

# Fine-tune epochs per trial and teacher epochs, per dataset, when not given.
_DEFAULT_EPOCHS = {"digits": 1.0, "synthetic": 1.0}
_DEFAULT_TEACHER_EPOCHS = {"digits": 15, "synthetic": 3}
# Promotion rungs (factors of the fine-tune epochs), per dataset, when not given. On the
# digits every model reaches ~99 % after 9 epochs (bench/RESULTS.md), and 1 -> 3 keeps the
# embedded default within two minutes on a 2-core CPU.
_DEFAULT_RUNGS = {"digits": (1.0, 3.0), "synthetic": (1.0, 3.0)}
_CHIP_BUDGET_FIELDS = ("latency_ms", "memory_kb", "power_mw")


@dataclass
class PreparedRun:
    """What the driver knows before the first trial."""

    settings: SearchSettings
    data: Any
    spec: ModelSpec
    space: SearchSpace
    resolved: ResolvedSpace
    chips: dict[str, ChipSpec]
    budget: Budget
    device_type: str = "cpu"  # what the trials train on ("cuda" or "cpu"): per-device defaults


def finetune_epochs(settings: SearchSettings) -> float:
    return (
        settings.epochs
        if settings.epochs is not None
        else _DEFAULT_EPOCHS.get(settings.dataset, 3.0)
    )


#: AdamW peak learning rate of a trial's fine-tune, per device type, when not given. On the
#: GPU fast path (batch 512) a ResNet-18 student with per-tensor int8 weights (rv1126)
#: collapsed at 1e-3 in 1- and 3-epoch fine-tunes, with or without warm-up; 1e-4 never did
#: and ends within 0.4 points of the best rate tried (bench/RESULTS.md, fourth session).
#: The CPU default (batch 128, the digits default run) stays where it was measured.
DEFAULT_TRIAL_LR = {"cpu": 1e-3, "cuda": 1e-4}


def finetune_lr(settings: SearchSettings, device_type: str) -> float:
    """The trial fine-tune's peak learning rate: the settings', else the device type's."""
    if settings.lr is not None:
        return float(settings.lr)
    return DEFAULT_TRIAL_LR.get(device_type, DEFAULT_TRIAL_LR["cpu"])


def promotion_rungs(settings: SearchSettings) -> tuple[float, ...]:
    """Rung factors of the run: the settings', else the dataset's default, else 1, 3, 9."""
    if settings.rungs is not None:
        return tuple(settings.rungs)
    return _DEFAULT_RUNGS.get(settings.dataset, DEFAULT_RUNGS)


def teacher_epochs(settings: SearchSettings) -> int:
    if settings.teacher_epochs is not None:
        return settings.teacher_epochs
    return _DEFAULT_TEACHER_EPOCHS.get(settings.dataset, 30)


def default_run_name(settings: SearchSettings) -> str:
    chip = settings.chips[0].split("/")[-1]
    dataset = (
        re.sub(r"[^A-Za-z0-9]+", "-", settings.dataset.split(":")[-1]).strip("-")[:24] or "data"
    )
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{dataset}-{chip}-{stamp}"


def uniform_config(resolved: ResolvedSpace, quantizable: list[str], bits: int) -> TrialConfig:
    """Every quantizable layer at ``bits`` (the reference for percentage budgets)."""
    return TrialConfig(
        weight_bits=dict.fromkeys(quantizable, bits),
        activation_bits=dict.fromkeys(quantizable, bits),
    )


def smallest_config(resolved: ResolvedSpace) -> TrialConfig:
    """The cheapest corner of the space (:func:`~autocompress.search.anchors.cheapest_params`)."""
    return resolved.config_from_params(cheapest_params(resolved))


def _auto_small_input(settings: SearchSettings, size: tuple[int, int]) -> bool:
    if settings.small_input is not None:
        return settings.small_input
    return auto_small_input(settings.model, size)


def model_and_teacher(
    settings: SearchSettings, num_classes: int, channels: int, size: tuple[int, int]
) -> tuple[ModelSpec, nn.Module | None, dict[str, Any]]:
    """The run's :class:`ModelSpec` for data of ``num_classes`` / ``channels`` / ``size``,
    the given teacher loaded into it (None when none is given) and what that teacher's
    checkpoint says it was trained on (empty for a plain state dict or no teacher).

    A plain state dict of a torchvision model with ``small_input`` left automatic is
    tried with the small-input stem and with torchvision's own, whichever fits.

    Raises:
        ConfigError: the model cannot be built for this data.
        CheckpointError: the teacher cannot be read or does not fit (layers and shapes named).
    """
    auto = _auto_small_input(settings, size)
    spec = ModelSpec.for_model(
        settings.model,
        num_classes=num_classes,
        in_channels=channels,
        small_input=auto,
        model_args=settings.model_args,
    )
    spec.build()  # a model that cannot be built is reported before anything else
    if settings.teacher is None:
        return spec, None, {}
    try:
        model, spec, info = load_weights(settings.teacher, spec)
    except CheckpointError as first:
        if settings.small_input is not None or not has_small_input_stem(spec.name):
            raise
        other = dataclasses.replace(spec, small_input=not auto)
        try:
            model, spec, info = load_weights(settings.teacher, other)
        except CheckpointError:
            raise first from None
    return spec, model, dict(info.get("extra") or {})


def teacher_split_warning(settings: SearchSettings, trained_on: dict[str, Any]) -> str | None:
    """A warning when a given teacher (from ``autocompress train``) held out other validation
    images than this search does (see :mod:`autocompress.core.validation_split`);
    ``trained_on`` is the teacher checkpoint's record (:func:`model_and_teacher`)."""
    if not trained_on:
        return None
    why = teacher_split_mismatch(
        trained_on, dataset=settings.dataset, seed=settings.seed, val_fraction=settings.val_fraction
    )
    if why is None:
        return None
    return (
        f"--teacher {settings.teacher}: {why}. Search with --seed {int(trained_on['seed'])}, or "
        f"train the teacher with `autocompress train --seed {settings.seed}`."
    )


def check_before_decode(settings: SearchSettings) -> None:
    """What can be checked of the model and the teacher without the data's shape."""
    if is_file_model(settings.model):
        resolve_model_file(settings.model)
    if settings.teacher is not None:
        peek_checkpoint(settings.teacher)


def check_forward(
    model: nn.Module, spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int
) -> None:
    """ConfigError when ``model`` fails on one input of ``input_shape`` or does not
    return ``num_classes`` logits (e.g. an input too small for its down-sampling)."""
    import torch

    shape = (1, *input_shape)
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(shape))
    except Exception as exc:
        text = plain_message(str(exc)).strip().splitlines()
        raise ConfigError(
            f"model {spec.name!r} fails on inputs of shape {shape}: "
            f"{type(exc).__name__}: {text[0] if text else ''}",
            hint="The images may be too small for this model's down-sampling: pass a larger "
            "--input-size (e.g. 224 for ImageNet models, which need at least 32 pixels; "
            "ViT and MaxViT need their trained size), or pick a model for small inputs.",
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"model {spec.name!r} returns {got} for one image of shape {tuple(input_shape)}, "
            f"expected logits of shape (1, {num_classes}) (the data has {num_classes} classes)",
            hint="The model's forward must return a (batch, classes) tensor.",
        )


def full_width_layers(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, str]:
    """Layer -> why its channel group cannot be pruned (Torch-Pruning cannot trace the
    model or the group, or its channels do not split into its convolution groups)."""
    import copy

    import torch

    groups = channel_groups(copy.deepcopy(model).eval(), torch.zeros(1, *input_shape))
    dropped = training_only_layers(model, input_shape)  # not in students at all
    return {
        member: g.reason
        for g in groups
        if g.reason
        for member in g.members
        if member not in dropped
    }


def by_reason(full_width: dict[str, str]) -> dict[str, list[str]]:
    """The layers of :func:`full_width_layers` grouped by reason."""
    out: dict[str, list[str]] = {}
    for layer, reason in full_width.items():
        out.setdefault(reason, []).append(layer)
    return out


def cost_of(
    model: nn.Module,
    config: TrialConfig,
    chip: ChipSpec,
    input_shape: tuple[int, ...],
    protect: tuple[str, ...],
) -> dict[str, float]:
    """Main-chip cost metrics of ``config`` applied to ``model``."""
    return chip_cost(model, config, chip, input_shape, protect).metrics()


def chip_cost(
    model: nn.Module,
    config: TrialConfig,
    chip: ChipSpec,
    input_shape: tuple[int, ...],
    protect: tuple[str, ...],
) -> Cost:
    """The :class:`~autocompress.hardware.cost.Cost` (per-layer breakdown included) of
    ``config`` applied to ``model`` on ``chip``."""
    student = build_student(model, config, chip, input_shape, protect=protect)
    layers = extract_layers(student, input_shape)
    return estimate_costs(layers, [chip])[chip.chip_id]


def layer_weight_counts(model: nn.Module) -> dict[str, int]:
    """Parameters (bias included) each module of ``model`` holds itself, by module name
    (modules without parameters of their own are left out); no trace needed."""
    counts = {
        name: sum(p.numel() for p in module.parameters(recurse=False))
        for name, module in model.named_modules()
    }
    return {name: count for name, count in counts.items() if count}


def resolve_budget(
    settings: SearchSettings,
    chip: ChipSpec,
    reference_costs: dict[str, float],
    smallest_costs: dict[str, float] | None = None,
) -> tuple[Budget, dict[str, str]]:
    """Absolute budget + where each value came from (user, chip, default, user%).

    The embedded default (no arguments) gets a latency budget that binds:
    halfway between the cheapest configuration of the space and the teacher at int8.
    """
    asked = dict(settings.budget)
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    if settings.embedded_default and asked.get("latency_ms") is None and smallest_costs is not None:
        low, high = float(smallest_costs["latency_ms"]), float(reference_costs["latency_ms"])
        values["latency_ms"] = round(
            low + EMBEDDED_DEFAULT_LATENCY_FRACTION * max(high - low, 0.0), 6
        )
        sources["latency_ms"] = (
            f"derived: halfway between the cheapest configuration of the space ({low:.4g} ms)"
            f" and the teacher at int8 ({high:.4g} ms)"
        )
    for key, value in asked.items():
        parsed = parse_budget_value(key, value)
        if parsed is None:
            continue
        number, percent = parsed
        source = "user"
        if percent:
            metric = Budget.metric_of(key)
            values[key] = round(number * float(reference_costs[metric]), 6)
            sources[key] = f"{source} ({value} of the teacher at int8)"
        else:
            values[key] = number
            sources[key] = source
    for key in _CHIP_BUDGET_FIELDS:
        if key not in values:
            values[key] = float(getattr(chip.budgets, key))
            sources[key] = f"chip ({chip.chip_id})"
    return Budget(**values), sources


def check_budget_reachable(
    budget: Budget, smallest_costs: dict[str, float], space_name: str
) -> None:
    """BudgetError when even the cheapest configuration of the space breaks a cost budget."""
    broken = {
        k: v for k, v in budget.violations(smallest_costs).items() if v > 0 and k != "min_accuracy"
    }
    if not broken:
        return
    parts = []
    for key in sorted(broken):
        metric = Budget.metric_of(key)
        parts.append(
            f"{key} <= {getattr(budget, key):g} "
            f"(the cheapest configuration needs {smallest_costs[metric]:.4g})"
        )
    raise BudgetError(
        f"no configuration of search space {space_name!r} can meet the budget: " + "; ".join(parts),
        hint="Relax the budget, choose a smaller --model, or a space that compresses more.",
    )


def library_versions() -> dict[str, Any]:
    """Versions of autocompress, Python, the main libraries and the chip plugins."""
    import importlib.metadata

    versions: dict[str, Any] = {"autocompress": __version__, "python": platform.python_version()}
    for package in (
        "torch",
        "torchvision",
        "optuna",
        "ray",
        "onnx",
        "onnxruntime",
        "torch-pruning",
        "pluggy",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        versions["plugins"] = dict(plugin_versions())
    except Exception as exc:  # versions are informative; never fail a run on them
        versions["plugins"] = {"error": str(exc)}
    return versions


def dataset_spec(settings: SearchSettings) -> DatasetSpec:
    """The run's dataset spec (what :meth:`DatasetSpec.load` rebuilds the data from)."""
    return DatasetSpec(
        name=settings.dataset,
        seed=settings.seed,
        val_fraction=settings.val_fraction,
        root=settings.data_root,
        limit=settings.data_limit,
        input_size=tuple(settings.input_size) if settings.input_size else None,
        mean=tuple(settings.mean) if settings.mean else None,
        std=tuple(settings.std) if settings.std else None,
    )


def run_yaml_content(
    prepared: PreparedRun, *, name: str, budget_sources: dict[str, str]
) -> RunConfig:
    """The run's :class:`RunConfig` at creation (the teacher entry still pending)."""
    settings = prepared.settings
    data = prepared.data
    return RunConfig(
        name=name,
        created_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        model=prepared.spec,
        # a file.py:function model: the file this run trusts later (export, --resume)
        model_code=model_file_identity(prepared.spec.name),
        input_shape=tuple(data.input_shape),
        dataset=dataclasses.replace(
            dataset_spec(settings),
            num_classes=data.num_classes,
            class_names=tuple(data.class_names),
        ),
        normalization=Normalization(tuple(data.mean), tuple(data.std)),
        chips=tuple(settings.chips),
        budget=prepared.budget,
        budget_sources=dict(budget_sources),
        objectives=tuple(settings.objectives),
        space=SpaceRecord(
            name=prepared.space.name,
            path=prepared.space.path,
            protect=tuple(prepared.resolved.protect),
            definition=_plain_space(prepared.space),
            resolved=prepared.resolved.to_dict(),
        ),
        sampler=SamplerRecord(settings.sampler, settings.seed),
        trials=settings.trials,
        anchors=settings.anchors,
        promotion=PromotionRecord(**promotion_settings(promotion_rungs(settings))),
        timeout_s=settings.timeout_s,
        finetune=FinetuneSettings(
            epochs=finetune_epochs(settings),
            batch_size=settings.batch_size,
            lr=finetune_lr(settings, prepared.device_type),
            device=settings.device,
            feature_weight=settings.feature_weight,
        ),
        teacher=TeacherEntry(epochs=teacher_epochs(settings)),
        backend=settings.backend,
        workers=settings.workers,
        address=settings.address,
        resources=Resources(settings.cpus_per_trial, settings.gpus_per_trial),
        seed=settings.seed,
        versions=library_versions(),
        calibration=_calibration_record(),
    )


def _calibration_record() -> dict[str, Any]:
    """The calibration files the costs use (path + sha256), or mode none."""
    return calibration_record()


def _plain_space(space: SearchSpace) -> dict[str, Any]:
    return space_as_plain_dict(space)


def resolve_out_dir(settings: SearchSettings, name: str) -> Path:
    return Path(settings.out) if settings.out else Path("runs") / name

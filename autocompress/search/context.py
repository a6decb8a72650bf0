"""Everything a worker needs to run trials, rebuilt from the run directory alone.

The driver writes ``run.yaml`` (budgets resolved to absolute numbers, the space
definition inline, the teacher in ``teacher.pt``); any worker process — an
extra ``--workers`` process, a Ray actor — calls :func:`load_context` with the
run directory's path and gets the same data, teacher, chips, budget and space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.compress.student import (
    prunable_layers,
    quantizable_layers,
    teacher_logits,
    training_only_layers,
)
from autocompress.compress.training import resolve_device
from autocompress.core.budget import Budget
from autocompress.core.models import ModelSpec, load_checkpoint
from autocompress.core.run_config import FinetuneSettings, RunConfig
from autocompress.core.workspace import RunDirectory
from autocompress.hardware.plugins import get_chip
from autocompress.hardware.spec import ChipSpec
from autocompress.search.resolve import ResolvedSpace, resolve_space
from autocompress.search.space import parse_space


def pick_device(device: str) -> str:
    """The device name ``device`` resolves to (``auto`` -> ``cuda`` when a GPU is visible,
    else ``cpu``); the rule is :func:`autocompress.compress.training.resolve_device`."""
    return str(resolve_device(device))


@dataclass
class SearchContext:
    """The fixed inputs of every trial of one run (one per process)."""

    run: RunDirectory
    config: RunConfig
    data: Any  # DatasetSplits
    teacher: nn.Module
    teacher_spec: ModelSpec
    input_shape: tuple[int, int, int]
    chips: dict[str, ChipSpec]
    main_chip: ChipSpec
    budget: Budget
    objectives: tuple[str, ...]
    space: ResolvedSpace
    device: str
    finetune: FinetuneSettings
    backend: str
    train_logits: torch.Tensor | None = None
    val_logits: torch.Tensor | None = None
    test_logits: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def constraint_names(self) -> list[str]:
        return sorted(self.budget.active())


def model_layers(
    teacher: nn.Module, input_shape: tuple[int, ...]
) -> tuple[list[str], list[str], dict[str, int]]:
    """(quantizable, prunable, out_channels of prunable) of a model."""

    heads = training_only_layers(teacher, input_shape)  # students drop them: not searched
    quantizable = [n for n in quantizable_layers(teacher) if n not in heads]
    prunable = [n for n in prunable_layers(teacher, input_shape) if n not in heads]
    modules = dict(teacher.named_modules())
    out_channels = {}
    for name in prunable:
        module = modules[name]
        out_channels[name] = int(
            getattr(module, "out_channels", getattr(module, "out_features", 0))
        )
    return quantizable, prunable, out_channels


def resolve_for_model(
    space_definition: dict[str, Any],
    source: str,
    teacher: nn.Module,
    input_shape: tuple[int, ...],
    chip: ChipSpec,
) -> ResolvedSpace:
    """Parse a space definition and tie it to ``teacher`` on ``chip``."""
    space = parse_space(space_definition, source=source)
    quantizable, prunable, out_channels = model_layers(teacher, input_shape)
    return resolve_space(
        space, chip, quantizable=quantizable, prunable=prunable, out_channels=out_channels
    )


def load_context(
    run_path: str | Path,
    *,
    device: str | None = None,
    backend: str | None = None,
    with_data: bool = True,
) -> SearchContext:
    """Rebuild the trial inputs from ``run_path`` (run.yaml + teacher.pt).

    ``with_data=False``: no dataset and no teacher logits (``data`` is None), for a process
    that only builds and costs students.
    """

    run = RunDirectory(run_path).require()
    config = run.read_run_config()
    device = pick_device(device or config.finetune.device)
    data = config.dataset.load(device=device) if with_data else None
    teacher, spec, _extra = load_checkpoint(run.teacher_pt)
    teacher = teacher.to(device).eval()
    input_shape = config.input_shape
    chips = {chip_id: get_chip(chip_id) for chip_id in config.chips}
    main_chip = chips[config.chip]
    space = resolve_for_model(
        dict(config.space.definition), f"{run.run_yaml} (space)", teacher, input_shape, main_chip
    )
    batch_size = config.finetune.batch_size or 1024  # teacher forwards only
    ctx = SearchContext(
        run=run,
        config=config,
        data=data,
        teacher=teacher,
        teacher_spec=spec,
        input_shape=input_shape,  # type: ignore[arg-type]
        chips=chips,
        main_chip=main_chip,
        budget=config.budget,
        objectives=config.objectives,
        space=space,
        device=device,
        finetune=config.finetune,
        backend=backend or config.backend,
    )
    if data is not None:
        ctx.train_logits = teacher_logits(teacher, data.train.images, device, batch_size)
        ctx.val_logits = teacher_logits(teacher, data.val.images, device, batch_size)
        ctx.test_logits = teacher_logits(teacher, data.test.images, device, batch_size)
    return ctx

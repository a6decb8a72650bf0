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

from autocompress.core.budget import Budget
from autocompress.core.models import ModelSpec
from autocompress.core.workspace import RunDirectory
from autocompress.hardware.spec import ChipSpec
from autocompress.search.resolve import ResolvedSpace, resolve_space
from autocompress.search.space import parse_space


def pick_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass
class SearchContext:
    """The fixed inputs of every trial of one run (one per process)."""

    run: RunDirectory
    config: dict[str, Any]
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
    finetune: dict[str, Any]
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
    from autocompress.compress.student import prunable_layers, quantizable_layers

    quantizable = list(quantizable_layers(teacher))
    prunable = list(prunable_layers(teacher, input_shape))
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
    from autocompress.compress.student import teacher_logits
    from autocompress.core.data import load_dataset
    from autocompress.core.models import load_checkpoint
    from autocompress.hardware.plugins import get_chip

    run = RunDirectory(run_path).require()
    config = run.read_run_config()
    dataset = config["dataset"]
    device = pick_device(device or config["finetune"].get("device", "auto"))
    data = None
    if with_data:
        data = load_dataset(
            dataset["name"],
            seed=int(dataset.get("seed", 0)),
            val_fraction=float(dataset.get("val_fraction", 0.2)),
            root=dataset.get("root"),
            limit=dataset.get("limit"),
            device=device,
            input_size=dataset.get("input_size"),
            mean=dataset.get("mean"),
            std=dataset.get("std"),
        )
    teacher, spec, _extra = load_checkpoint(run.teacher_pt)
    teacher = teacher.to(device).eval()
    input_shape = tuple(int(v) for v in config["input_shape"])
    chips = {chip_id: get_chip(chip_id) for chip_id in config["chips"]}
    main_chip = chips[config["chip"]]
    budget = Budget(**{k: v for k, v in config["budget"].items() if v is not None})
    space_cfg = config["space"]
    space = resolve_for_model(
        space_cfg["definition"], f"{run.run_yaml} (space)", teacher, input_shape, main_chip
    )
    batch_size = int(config["finetune"].get("batch_size") or 1024)  # teacher forwards only
    ctx = SearchContext(
        run=run,
        config=config,
        data=data,
        teacher=teacher,
        teacher_spec=spec,
        input_shape=input_shape,  # type: ignore[arg-type]
        chips=chips,
        main_chip=main_chip,
        budget=budget,
        objectives=tuple(config["objectives"]),
        space=space,
        device=device,
        finetune=dict(config["finetune"]),
        backend=backend or config.get("backend", "optuna"),
    )
    if data is not None:
        ctx.train_logits = teacher_logits(teacher, data.train.images, device, batch_size)
        ctx.val_logits = teacher_logits(teacher, data.val.images, device, batch_size)
        ctx.test_logits = teacher_logits(teacher, data.test.images, device, batch_size)
    return ctx

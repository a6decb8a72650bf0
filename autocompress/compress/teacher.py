"""Training the baseline (teacher) model: ``train_teacher``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from autocompress.compress.evaluate import evaluate
from autocompress.compress.model_output import main_logits
from autocompress.compress.training import (
    TrainingSchedule,
    resized_crop_scale,
    resolve_device,
    train,
)
from autocompress.compress.training_heads import side_effect_free_forward
from autocompress.core.data import DatasetSplits, load_dataset
from autocompress.core.errors import ConfigError
from autocompress.core.models import ModelSpec, auto_small_input, save_checkpoint
from autocompress.core.validation_split import held_out_fraction


@dataclass
class TeacherResult:
    """A trained teacher.

    Attributes:
        model: the trained model (eval mode, on the training device).
        spec: what rebuilds its architecture.
        val_accuracy / test_accuracy: top-1 accuracy in [0, 1].
        epochs: epochs trained; seconds: wall-clock training time.
        dataset: the dataset name; checkpoint: where it was saved (or None).
    """

    model: nn.Module
    spec: ModelSpec
    val_accuracy: float
    test_accuracy: float
    epochs: float
    seconds: float
    dataset: str
    checkpoint: Path | None = None


def default_spec(model: str, data: DatasetSplits, small_input: bool | None = None) -> ModelSpec:
    """The ModelSpec for ``model`` on ``data``: classes and channels from the data;
    ``small_input`` None follows :func:`autocompress.core.models.auto_small_input`."""
    if small_input is None:
        small_input = auto_small_input(model, data.input_shape[1:])
    return ModelSpec(
        name=model,
        num_classes=data.num_classes,
        in_channels=data.input_shape[0],
        small_input=bool(small_input),
    )


def _check_training_forward(
    net: nn.Module, name: str, input_shape: tuple[int, ...], device: torch.device
) -> None:
    """A clear error when the model cannot run a training step at this input size (e.g.
    Inception v3's auxiliary classifier needs inputs larger than 96 pixels)."""
    try:
        output, _ = side_effect_free_forward(
            net, torch.zeros(2, *input_shape, device=device), training=True
        )
        main_logits(output)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"model {name!r} cannot be trained on inputs of shape {input_shape}: its training "
            f"forward pass fails ({type(exc).__name__}: {detail})",
            hint="use a larger --input-size, or train the model yourself and pass it as "
            "--teacher (a given teacher is only evaluated)",
        ) from None


def train_teacher(
    model: str | ModelSpec = "small_cnn",
    dataset: str | DatasetSplits = "digits",
    *,
    epochs: float = 15,
    lr: float | None = None,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "auto",
    out: str | os.PathLike[str] | None = None,
    optimizer: str = "sgd",
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.1,
    augment: bool | None = None,
    small_input: bool | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> TeacherResult:
    """Train a model from scratch on a dataset and report validation/test accuracy.

    SGD (Nesterov momentum 0.9) or AdamW, cosine learning-rate decay with a
    short warm-up, label smoothing; random crop + flip (on the device) for
    images of 16 pixels a side or more unless ``augment`` says otherwise (image
    folders of 64 pixels or more: random-resized-crop + flip, torchvision's convention).
    Deterministic on the CPU for a given seed.

    Args:
        model: a model name (see ``build_model``) or a :class:`ModelSpec`.
        dataset: a dataset name (see ``load_dataset``) or loaded splits.
        epochs: passes over the training split.
        lr: peak learning rate (default 0.05 for SGD, 2e-3 for AdamW).
        batch_size: images per step.
        seed: seeds initialisation, data split and batch order.
        device: ``auto``, ``cpu``, ``cuda`` …
        out: save the checkpoint here (``save_checkpoint`` format) when given.
        small_input: use the 32×32 stem for torchvision models (default: auto).
    """
    if epochs <= 0:
        raise ConfigError(f"epochs must be positive, got {epochs}")
    dev = resolve_device(device)
    data = load_dataset(dataset, seed=seed) if isinstance(dataset, str) else dataset
    spec = model if isinstance(model, ModelSpec) else default_spec(model, data, small_input)
    torch.manual_seed(seed)
    net = spec.build().to(dev)
    _check_training_forward(net, spec.name, tuple(data.input_shape), dev)
    if augment is None:
        augment = min(data.input_shape[1:]) >= 16
    if lr is None:
        lr = 0.05 if optimizer == "sgd" else 2e-3
    schedule = TrainingSchedule(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        warmup_fraction=0.03,
        augment_padding=4 if augment else 0,
        # image folders of 64 pixels a side or more: torchvision's random-resized-crop
        augment_resized_crop=resized_crop_scale(data.name, data.input_shape) if augment else None,
        seed=seed,
    )

    def loss_fn(m: nn.Module, x: torch.Tensor, y: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(main_logits(m(x)).float(), y, label_smoothing=label_smoothing)

    started = time.perf_counter()
    stats = train(
        net, data.train, loss_fn, schedule, device=dev, progress=progress, stage="teacher"
    )
    seconds = time.perf_counter() - started
    val = evaluate(net, data.val, device=dev)["accuracy"]
    test = evaluate(net, data.test, device=dev)["accuracy"]
    checkpoint = None
    if out is not None:
        checkpoint = save_checkpoint(
            out,
            net,
            spec,
            {
                "dataset": data.name,
                "val_accuracy": val,
                "test_accuracy": test,
                "epochs": float(epochs),
                "seed": seed,
                "val_fraction": held_out_fraction(len(data.train), len(data.val)),
                "augmentation": schedule.augmentation(),
                "input_shape": list(data.input_shape),
                "mean": list(data.mean),
                "std": list(data.std),
                "class_names": list(data.class_names),
            },
        )
    return TeacherResult(
        model=net,
        spec=spec,
        val_accuracy=val,
        test_accuracy=test,
        epochs=stats["epochs"],
        seconds=seconds,
        dataset=data.name,
        checkpoint=checkpoint,
    )


__all__ = ["TeacherResult", "default_spec", "train_teacher"]

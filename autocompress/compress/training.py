"""One training loop for teachers and students: tensors in memory, batches by index.

The whole split sits on the training device; each epoch draws a seeded
permutation there and slices batches out of it, so no ``DataLoader`` and no
per-sample Python work runs. On CUDA the forward/backward run under bf16
autocast with channels-last tensors; on the CPU everything is float32 and,
for a given seed and thread count, deterministic.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autocompress.compress.cuda_graphs import TrainingGraphs, capture_training_graphs
from autocompress.core.data import Split
from autocompress.core.errors import AutocompressWarning, ConfigError

Progress = Callable[[str, float], None]
"""``progress(stage, fraction_done)``, called a few times per epoch."""

BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(model, images, labels, indices) -> scalar loss`` for one batch."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; validates the rest."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
    return resolved


def autocast(device: torch.device, *, cache_enabled: bool = True):
    """bf16 autocast on CUDA; a no-op elsewhere. ``cache_enabled=False`` around CUDA graphs."""
    return torch.autocast(
        device_type=device.type,
        dtype=torch.bfloat16,
        enabled=device.type == "cuda",
        cache_enabled=cache_enabled,
    )


@torch.no_grad()
def random_crop_flip(
    images: torch.Tensor, *, padding: int, generator: torch.Generator, flip: bool = True
) -> torch.Tensor:
    """Random ``padding``-pixel shifted crop + horizontal flip (unless ``flip`` is False),
    batched on the images' device."""
    n, _c, h, w = images.shape
    device = images.device
    padded = nn.functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    chan = torch.arange(_c, device=device)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    if not flip:
        return out
    flipped = torch.rand(n, device=device, generator=generator) < 0.5
    return torch.where(flipped[:, None, None, None], out.flip(3), out)


#: Area range (fraction of the image) of the random-resized-crop image folders train with.
RESIZED_CROP_SCALE = (0.35, 1.0)
#: Aspect-ratio range (width / height) of that crop, torchvision's.
RESIZED_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
#: Image folders at least this many pixels a side train with random-resized-crop (at 32 px
#: it cost 4-5 points against 4-pixel shifts on CIFAR-10; docs/own-model.md).
RESIZED_CROP_MIN_SIDE = 64


def resized_crop_scale(dataset: str, input_shape: tuple[int, ...]) -> tuple[float, float] | None:
    """The random-resized-crop area range a dataset trains with, or None (shifted crop).

    ``imagefolder:`` datasets of at least :data:`RESIZED_CROP_MIN_SIDE` pixels a side
    follow the torchvision convention (random-resized-crop + flip for training; resize
    the short side + center crop for evaluation, done when the folder is read). The
    built-in datasets keep their own recipes (CIFAR-10: 4-pixel shifts + flip), and so do
    smaller image folders: at 32 pixels random-resized-crop trained worse than shifts.
    """
    if dataset.startswith("imagefolder:") and min(input_shape[-2:]) >= RESIZED_CROP_MIN_SIDE:
        return RESIZED_CROP_SCALE
    return None


@torch.no_grad()
def random_resized_crop_flip(
    images: torch.Tensor,
    *,
    scale: tuple[float, float] = RESIZED_CROP_SCALE,
    ratio: tuple[float, float] = RESIZED_CROP_RATIO,
    generator: torch.Generator,
    flip: bool = True,
) -> torch.Tensor:
    """Random-resized-crop + horizontal flip (unless ``flip`` is False), batched on the device.

    Per image a box of ``scale`` of the image's area and aspect ratio in ``ratio``
    (log-uniform; clamped to the image) at a random place, resampled bilinearly to the
    image's own size with one ``affine_grid`` + ``grid_sample`` for the whole batch
    (the flip is the sign of the box's x axis). No per-image Python work.
    """
    n, _c, h, w = images.shape
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, device=device, generator=generator)

    area = uniform(*scale)
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
    # box sides as fractions of the image's: bw*W * bh*H = area * W*H and bw*W / (bh*H) = aspect
    box_w = torch.sqrt(area * aspect * h / w).clamp(max=1.0)
    box_h = torch.sqrt(area / aspect * w / h).clamp(max=1.0)
    centre_x = (1.0 - box_w) * (2.0 * torch.rand(n, device=device, generator=generator) - 1.0)
    centre_y = (1.0 - box_h) * (2.0 * torch.rand(n, device=device, generator=generator) - 1.0)
    sign = torch.ones(n, device=device)
    if flip:
        sign = torch.where(torch.rand(n, device=device, generator=generator) < 0.5, -sign, sign)
    theta = torch.zeros(n, 2, 3, device=device, dtype=torch.float32)
    theta[:, 0, 0] = box_w * sign
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = box_h
    theta[:, 1, 2] = centre_y
    grid = nn.functional.affine_grid(theta, [n, _c, h, w], align_corners=False)
    out = nn.functional.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)  # the fast path's layout
    return out.to(images.dtype)


def augmentation_record(
    *, padding: int, resized_crop: tuple[float, float] | None, flip: bool
) -> dict[str, Any]:
    """The augmentation of a :class:`TrainingSchedule` with these fields, for records."""
    if resized_crop is not None:
        return {
            "kind": "random_resized_crop",
            "scale": [float(v) for v in resized_crop],
            "ratio": [float(v) for v in RESIZED_CROP_RATIO],
            "flip": bool(flip),
        }
    if padding > 0:
        return {"kind": "random_shift", "padding_px": int(padding), "flip": bool(flip)}
    return {"kind": "none"}


@dataclass(frozen=True)
class TrainingSchedule:
    """What to train for and how.

    Attributes:
        epochs: passes over the data (fractions allowed); ignored when ``steps`` is set.
        steps: optimizer steps (overrides ``epochs``).
        batch_size: images per step.
        lr: peak learning rate (cosine decay to 0, short linear warm-up).
        optimizer: ``"sgd"`` (momentum 0.9, Nesterov) or ``"adamw"``.
        weight_decay: decoupled (AdamW) or L2 (SGD) weight decay.
        warmup_fraction: fraction of the steps spent warming up linearly.
        augment_padding: random crop (pixels of padding) + flip when > 0.
        augment_resized_crop: random-resized-crop with this area range + flip instead
            (:func:`random_resized_crop_flip`; :func:`resized_crop_scale` says when).
        augment_flip: the augmentation flips images horizontally (not for digits or text).
        seed: seeds the batch order and augmentation.
    """

    epochs: float = 1.0
    steps: int | None = None
    batch_size: int = 128
    lr: float = 0.01
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.0
    augment_padding: int = 0
    augment_resized_crop: tuple[float, float] | None = None
    augment_flip: bool = True
    seed: int = 0

    def augmentation(self) -> dict[str, Any]:
        """What this schedule's augmentation does (:func:`augmentation_record`)."""
        return augmentation_record(
            padding=self.augment_padding,
            resized_crop=self.augment_resized_crop,
            flip=self.augment_flip,
        )

    def total_steps(self, n_images: int) -> int:
        if self.steps is not None:
            return max(1, int(self.steps))
        per_epoch = max(1, n_images // self.batch_size)
        return max(1, math.ceil(self.epochs * per_epoch))


def make_optimizer(model: nn.Module, schedule: TrainingSchedule) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": schedule.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = bool(params) and all(p.is_cuda for p in params)  # one kernel per step on CUDA
    if schedule.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=schedule.lr, momentum=0.9, nesterov=True, fused=fused)
    if schedule.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=schedule.lr, fused=fused)
    raise ConfigError(f"unknown optimizer {schedule.optimizer!r}; use sgd or adamw")


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss (or a model at chance): the run is not usable."""


@dataclass(frozen=True)
class EpochEnd:
    """What :func:`train` hands ``on_epoch`` after each full pass over the data.

    ``state`` is what :func:`train` needs to resume from here (``resume=state``):
    step, epoch, optimizer state and the batch-order generator's state. The
    model's own weights are the caller's to save. The optimizer tensors are live: save
    (or deep-copy) them inside the callback.
    """

    epoch: int
    step: int
    total_steps: int
    seconds: float
    mean_loss: float
    state: dict[str, Any]


def train(
    model: nn.Module,
    split: Split,
    loss_fn: BatchLoss,
    schedule: TrainingSchedule,
    *,
    device: torch.device,
    progress: Progress | None = None,
    stage: str = "train",
    after_step: Callable[[], None] | None = None,
    on_epoch: Callable[[EpochEnd], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    cuda_graphs: bool | None = None,
) -> dict[str, float]:
    """Train ``model`` on ``split`` (moved to ``device`` if needed) with ``loss_fn``.

    ``after_step`` runs after every optimizer step (e.g. keep learned step sizes
    positive); ``on_epoch`` after every full pass with an :class:`EpochEnd`
    (checkpoint there); ``resume`` is a previous ``EpochEnd.state`` — training
    continues from that step with the same learning-rate schedule and batch order.
    A non-finite epoch loss raises :class:`TrainingDiverged`.

    ``cuda_graphs`` (None: on CUDA unless the model is compiled) replays the
    model's forward/backward as CUDA graphs
    (:mod:`~autocompress.compress.cuda_graphs`); a model that cannot be captured
    trains eagerly, with one warning.

    Returns ``steps``, ``epochs``, ``seconds``, ``images_per_s``, ``final_loss``
    (mean over the last tenth of the steps) and ``seconds_per_epoch`` (full
    passes of this call only; ``seconds * n / (steps * batch)`` otherwise).
    """
    images, labels = split.images.to(device), split.labels.to(device)
    n = len(labels)
    if n == 0:
        raise ConfigError("cannot train on an empty split")
    batch_size = min(schedule.batch_size, n)
    total = schedule.total_steps(n)  # an epoch is n // batch_size full batches
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.to(device).train()
    graphs = _training_graphs(model, images[:batch_size], device, cuda_graphs)
    try:
        return _train_loop(
            model,
            images,
            labels,
            loss_fn,
            schedule,
            device=device,
            batch_size=batch_size,
            total=total,
            progress=progress,
            stage=stage,
            after_step=after_step,
            on_epoch=on_epoch,
            resume=resume,
            graphs=graphs,
        )
    finally:
        graphs.release()


def _training_graphs(
    model: nn.Module, sample: torch.Tensor, device: torch.device, wanted: bool | None
) -> TrainingGraphs:
    """Capture ``model``'s training step when wanted (None: CUDA and not compiled)."""
    compiled = hasattr(model, "_orig_mod")  # torch.compile's wrapper compiles its own graphs
    if wanted is False or device.type != "cuda" or (wanted is None and compiled):
        return TrainingGraphs(None, False, "not asked for")
    graphs = capture_training_graphs(model, sample.contiguous(memory_format=torch.channels_last))
    if not graphs.active and graphs.reason not in _WARNED:
        _WARNED.add(graphs.reason)
        warnings.warn(
            f"training without CUDA graphs (slower): {graphs.reason}",
            AutocompressWarning,
            stacklevel=3,
        )
    return graphs


_WARNED: set[str] = set()


def _train_loop(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: BatchLoss,
    schedule: TrainingSchedule,
    *,
    device: torch.device,
    batch_size: int,
    total: int,
    progress: Progress | None,
    stage: str,
    after_step: Callable[[], None] | None,
    on_epoch: Callable[[EpochEnd], None] | None,
    resume: Mapping[str, Any] | None,
    graphs: TrainingGraphs,
) -> dict[str, float]:
    n = len(labels)
    optimizer = make_optimizer(model, schedule)
    warmup = int(total * schedule.warmup_fraction)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * t))

    generator = torch.Generator(device=device).manual_seed(schedule.seed)
    step, epoch = 0, 0
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        generator.set_state(resume["generator"].to(generator.get_state().device))
        step, epoch = int(resume["step"]), int(resume["epoch"])
    losses: list[torch.Tensor] = []
    started = time.perf_counter()
    first_step = step
    report_every = max(1, total // 20)
    epoch_seconds: list[float] = []
    while step < total:
        epoch_started = time.perf_counter()
        epoch_losses: list[torch.Tensor] = []
        order = torch.randperm(n, device=device, generator=generator)
        full_pass = True
        for start in range(0, n - batch_size + 1, batch_size):
            if step >= total:
                full_pass = False
                break
            idx = order[start : start + batch_size]
            x, y = images[idx], labels[idx]
            if schedule.augment_resized_crop is not None:
                x = random_resized_crop_flip(
                    x,
                    scale=schedule.augment_resized_crop,
                    generator=generator,
                    flip=schedule.augment_flip,
                )
            elif schedule.augment_padding > 0:
                x = random_crop_flip(
                    x,
                    padding=schedule.augment_padding,
                    generator=generator,
                    flip=schedule.augment_flip,
                )
            for group in optimizer.param_groups:
                group["lr"] = schedule.lr * lr_at(step)
            with autocast(device, cache_enabled=not graphs.active):
                loss = loss_fn(model, x, y, idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            epoch_losses.append(loss.detach())
            if step >= total - max(1, total // 10):
                losses.append(loss.detach())
            step += 1
            if progress is not None and (step % report_every == 0 or step == total):
                progress(stage, step / total)
        mean_loss = float(torch.stack(epoch_losses).float().mean()) if epoch_losses else 0.0
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(
                f"the training loss is not finite ({mean_loss}) in epoch {epoch + 1} "
                f"(lr {schedule.lr:g}, {schedule.optimizer})"
            )
        if not full_pass:
            break
        epoch += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds.append(time.perf_counter() - epoch_started)
        if on_epoch is not None:
            on_epoch(
                EpochEnd(
                    epoch=epoch,
                    step=step,
                    total_steps=total,
                    seconds=epoch_seconds[-1],
                    mean_loss=mean_loss,
                    state={
                        "step": step,
                        "epoch": epoch,
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                    },
                )
            )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    seconds = time.perf_counter() - started
    model.eval()
    done = max(1, step - first_step)
    if epoch_seconds:
        per_epoch = sum(epoch_seconds) / len(epoch_seconds)
    else:
        per_epoch = seconds * n / (done * batch_size)
    return {
        "steps": float(total),
        "epochs": total * batch_size / n,
        "seconds": seconds,
        "images_per_s": done * batch_size / max(seconds, 1e-9),
        "final_loss": float(torch.stack(losses).float().mean()) if losses else float("nan"),
        "seconds_per_epoch": per_epoch,
        "cuda_graphs": 1.0 if graphs.active else 0.0,
    }


__all__ = [
    "EpochEnd",
    "TrainingDiverged",
    "TrainingSchedule",
    "autocast",
    "random_crop_flip",
    "resolve_device",
    "train",
]

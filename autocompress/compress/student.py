"""The compression API the search and the export call: a trial's student, end to end.

``build_student(teacher, config, chip, input_shape)`` deep-copies the teacher
and, in this order: slims it (width multiplier and per-layer prune ratios,
channel counts aligned to ``chip.channel_alignment``; :mod:`.slim`), replaces
every conv/linear by a fake-quantized twin with the trial's per-layer bits in
the chip's scheme (:mod:`.quantize`), folds batch-norms into them
(:mod:`.fold`), and applies 2:4 sparsity where the trial asks and the chip
supports it (:mod:`.sparsity`). Layer names stay the teacher's, so the cost
model's ``extract_layers`` sees the student's real channels, bits and sparsity.

``finetune`` distills the teacher into the student; ``evaluate`` scores it;
``save_student`` / ``load_student`` store it with what rebuilds its structure.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.compress.attention import route_attention
from autocompress.compress.cuda_graphs import InferenceGraph
from autocompress.compress.distill import kd_loss, teacher_logits
from autocompress.compress.evaluate import evaluate
from autocompress.compress.feature_kd import (
    feature_loss,
    feature_pairs,
    remember_teacher_channels,
    tap_pair,
)
from autocompress.compress.fold import fold_batch_norms
from autocompress.compress.model_output import main_logits
from autocompress.compress.quantize import (
    FLOAT_BITS,
    calibrate_activations,
    check_bits,
    enable_learned_steps,
    fake_quantize,
    make_room_for_learned_steps,
    quantized_layers,
    recalibrate_batch_norms,
)
from autocompress.compress.slim import channel_groups, slim
from autocompress.compress.sparsity import apply_sparsity
from autocompress.compress.training import (
    EpochEnd,
    TrainingSchedule,
    resized_crop_scale,
    resolve_device,
    train,
)
from autocompress.compress.training_heads import drop_training_only_heads, training_only_heads
from autocompress.core.data import DatasetSplits
from autocompress.core.errors import CheckpointError, ConfigError
from autocompress.core.models import (
    ModelSpec,
    build_for_file,
    load_state_dict_checked,
    read_tagged_file,
    save_payload_atomic,
)
from autocompress.core.trial_config import TrialConfig
from autocompress.core.weights import detached_state
from autocompress.hardware.spec import ChipSpec, QuantGranularity, QuantizationScheme

STUDENT_FORMAT = "autocompress-student"
STUDENT_VERSION = 1


def _example_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    device = next(iter(model.parameters())).device
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, *input_shape, generator=generator).to(device)


def prunable_layers(teacher: nn.Module, input_shape: Sequence[int]) -> list[str]:
    """Names of the layers whose output channels the search may prune.

    One name per dependency group (layers whose channels must change
    together, e.g. every conv feeding the same residual add): the group's
    first conv/linear layer in ``named_modules()`` order. The output layer's
    group is never listed. A ratio given for any member of a group applies to
    the whole group.
    """
    example = _example_input(teacher, input_shape)
    was_training = teacher.training
    teacher.eval()
    try:
        groups = channel_groups(copy.deepcopy(teacher), example)
    finally:
        teacher.train(was_training)
    return [g.name for g in groups if g.prunable]


def training_only_layers(teacher: nn.Module, input_shape: Sequence[int]) -> set[str]:
    """Conv/linear layers of heads that run only in training (auxiliary classifiers),
    which students drop (:mod:`~autocompress.compress.training_heads`)."""
    was_training = teacher.training
    try:
        heads = training_only_heads(teacher, _example_input(teacher, input_shape))
    finally:
        teacher.train(was_training)
    return {
        n
        for n in quantizable_layers(teacher)
        if any(n == h or n.startswith(f"{h}.") for h in heads)
    }


def quantizable_layers(teacher: nn.Module) -> list[str]:
    """Names of every Conv2d and Linear layer (each gets its own weight/activation bits)."""
    return [n for n, m in teacher.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _check_config(teacher: nn.Module, config: TrialConfig) -> None:
    layers = set(quantizable_layers(teacher))
    for field_name in ("prune_ratios", "weight_bits", "activation_bits", "sparsity"):
        for name in getattr(config, field_name):
            if name not in layers:
                close = difflib.get_close_matches(name, sorted(layers), n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ConfigError(
                    f"TrialConfig.{field_name} names layer {name!r}, which is not a conv/linear "
                    f"layer of the teacher{hint}"
                )
    for name, bits in config.weight_bits.items():
        check_bits(bits, layer=name, what="weight")
    for name, bits in config.activation_bits.items():
        check_bits(bits, layer=name, what="activation")


def _build(
    teacher: nn.Module,
    config: TrialConfig,
    *,
    channel_alignment: int,
    scheme: QuantizationScheme,
    sparsity_patterns: Collection[str],
    input_shape: Sequence[int],
    protect: Sequence[str],
    keep_channels: Mapping[str, int] | None = None,
    kept_indices: dict[str, list[int]] | None = None,
) -> nn.Module:
    _check_config(teacher, config)
    was_training = teacher.training
    teacher.eval()
    try:
        student = copy.deepcopy(teacher)
    finally:
        teacher.train(was_training)
    for p in student.parameters():
        p.requires_grad_(True)
    example = _example_input(student, input_shape)
    drop_training_only_heads(student, example)  # auxiliary classifiers: never deployed
    slim(
        student,
        example,
        width_multiplier=config.width_multiplier,
        prune_ratios=config.prune_ratios,
        channel_alignment=channel_alignment,
        protect=protect,
        keep_channels=keep_channels,
        kept_indices=kept_indices,
    )
    fake_quantize(student, scheme, config.weight_bits, config.activation_bits)
    route_attention(student)  # nn.MultiheadAttention computes through its quantized layers
    fold_batch_norms(student, example)
    apply_sparsity(student, config.sparsity, sparsity_patterns)
    return student.eval()


def build_student(
    teacher: nn.Module,
    config: TrialConfig,
    chip: ChipSpec,
    input_shape: Sequence[int],
    *,
    protect: Sequence[str] = (),
) -> nn.Module:
    """The trial's student: slimmed, pruned, BN-folded, fake-quantized, sparsified.

    Deterministic (same teacher, config and chip give the same architecture and
    weights); the teacher is not modified. The student is on the teacher's
    device, in eval mode; its activation ranges are uncalibrated until
    :func:`finetune` (or ``quantize.calibrate_activations``) runs.

    Args:
        teacher: the trained teacher (its layer names are the config's keys).
        config: width multiplier, prune ratios, bits, sparsity of the trial.
        chip: gives ``channel_alignment``, the quantization scheme and the
            sparsity patterns it accelerates.
        input_shape: (C, H, W) of one input image.
        protect: layer names whose channel group is never pruned.

    Raises:
        ConfigError: the config names an unknown layer or an invalid value.
    """
    kept: dict[str, list[int]] = {}
    student = _build(
        teacher,
        config,
        channel_alignment=chip.channel_alignment,
        scheme=chip.quantization,
        sparsity_patterns=chip.sparsity_patterns,
        input_shape=input_shape,
        protect=protect,
        kept_indices=kept,
    )
    remember_teacher_channels(student, kept)
    return student


def calibrate(student: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> None:
    """Re-estimate folded batch-norm statistics, then activation ranges, from ``images``.

    :func:`finetune` does this first; call it yourself to evaluate a student
    without fine-tuning.
    """
    recalibrate_batch_norms(student, images, batch_size=batch_size)
    calibrate_activations(student, images, batch_size=batch_size)


def finetune_augmentation(data: DatasetSplits, *, augment: bool, flip: bool = True) -> dict:
    """The :class:`TrainingSchedule` augmentation fields :func:`finetune` uses on ``data``.

    Without ``augment`` none; image folders of 64 pixels a side or more: random-resized-crop
    + flip (:func:`~autocompress.compress.training.resized_crop_scale`); otherwise shifts of
    1/8 of the image size (4 pixels at 32×32) + flip. ``flip`` False: no flips.
    """
    if not augment:
        return {"augment_padding": 0, "augment_resized_crop": None, "augment_flip": flip}
    return {
        "augment_padding": max(1, round(data.input_shape[-1] / 8)),
        "augment_resized_crop": resized_crop_scale(data.name, data.input_shape),
        "augment_flip": flip,
    }


def finetune(
    student: nn.Module,
    teacher: nn.Module,
    data: DatasetSplits,
    config: TrialConfig,
    *,
    epochs: float = 3.0,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: str | torch.device = "cpu",
    teacher_logits: torch.Tensor | None = None,
    progress: Callable[[str, float], None] | None = None,
    steps: int | None = None,
    augment: bool = False,
    seed: int = 0,
    optimizer: str = "adamw",
    weight_decay: float = 5e-5,
    warmup_fraction: float = 0.1,
    compile: bool = False,
    augment_flip: bool = True,
    learned_steps: bool = False,
    calibrated: bool = False,
    on_epoch: Callable[[EpochEnd], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    on_calibrated: Callable[[nn.Module], None] | None = None,
    feature_weight: float = 0.0,
) -> dict[str, float]:
    """Distill ``teacher`` into ``student`` on ``data.train`` (in place).

    The loss is :func:`~autocompress.compress.distill.kd_loss` with the config's
    ``kd_temperature`` and ``kd_alpha``. Without augmentation the teacher's
    logits on the training split are computed once (or taken from
    ``teacher_logits``, which must be in ``data.train`` order) and indexed per
    batch; with ``augment`` (on the device, :func:`finetune_augmentation`) the teacher
    runs on every augmented batch: shifts of 1/8 of the image size (4 pixels at 32×32),
    or random-resized-crop for image folders of 64 pixels a side or more, plus
    horizontal flips unless ``augment_flip`` is False. Activation ranges are
    calibrated on a few batches first, after the folded batch-norm statistics are re-estimated
    (see :func:`calibrate`). Budget: ``epochs`` (fractions allowed) or ``steps``.

    Defaults (AdamW, lr 1e-3, 10 % warm-up then cosine, batch 64, 3 epochs)
    suit the folded, fake-quantized students: AdamW is insensitive to the
    large per-channel gradient scales that folding frozen batch-norm
    statistics produces, where SGD at the teacher's learning rate diverges.

    ``compile`` runs the student through ``torch.compile`` (worth it on a GPU for
    runs of several epochs; the first steps pay the compilation).

    ``learned_steps`` turns the calibrated grid into LSQ step sizes for weights
    of at most 4 bits and learned clipping of every quantized input
    (:func:`~autocompress.compress.quantize.enable_learned_steps`). ``calibrated``
    skips the calibration (a student restored from a checkpoint); ``on_calibrated(student)``
    runs once the student is calibrated, before the first step (score the starting point
    there); ``on_epoch`` / ``resume`` are passed to
    :func:`~autocompress.compress.training.train` (checkpoint and resume).
    A non-finite loss raises :class:`~autocompress.compress.training.TrainingDiverged`.

    ``feature_weight`` > 0 adds that times the feature loss
    (:mod:`~autocompress.compress.feature_kd`): every convolution the student kept learns
    the teacher's output of the same layer at the kept channels. The teacher then runs on
    every batch, augmented or not. A student without a record of its kept channels (one
    not made by :func:`build_student`) trains on the logits alone.

    Returns ``seconds``, ``steps``, ``epochs``, ``images_per_s``, ``final_loss``.
    """
    dev = resolve_device(device)
    teacher.eval().to(dev)
    student.to(dev)
    train_images = data.train.images.to(dev)
    pairs = feature_pairs(teacher, student, train_images[:2]) if feature_weight > 0 else []
    cached: torch.Tensor | None = None
    if not augment and not pairs:
        cached = (
            teacher_logits
            if teacher_logits is not None
            else _teacher_logits(teacher, train_images, dev)
        )
        cached = cached.to(dev)
        if len(cached) != len(train_images):
            raise ConfigError(
                f"teacher_logits has {len(cached)} rows but the training split has "
                f"{len(train_images)} images"
            )
    if not calibrated:
        calibrate(student, train_images)
    if learned_steps:
        enable_learned_steps(student)
    if on_calibrated is not None:
        on_calibrated(student)
    temperature, alpha = config.kd_temperature, config.kd_alpha
    teacher_tap, student_tap = tap_pair(teacher, student, pairs) if pairs else (None, None)
    trained: nn.Module = student_tap if student_tap is not None else student
    fresh_teacher: Callable[[torch.Tensor], Any] = teacher_tap or teacher
    if cached is None and dev.type == "cuda":  # the teacher's forward on every batch: replayed
        step_batch = min(batch_size, len(train_images))
        sample = train_images[:step_batch].contiguous(memory_format=torch.channels_last)
        fresh_teacher = InferenceGraph(teacher_tap or teacher, sample)

    def loss_fn(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
    ) -> torch.Tensor:
        student_features: list[torch.Tensor] = []
        teacher_features: list[torch.Tensor] = []
        if cached is not None:
            target = cached[idx]
            output = model(x)
        else:
            with torch.no_grad():
                target = fresh_teacher(x)
            output = model(x)
            if pairs:  # the taps return (output, *features)
                target, *teacher_features = target
                output, *student_features = output
        loss = kd_loss(
            main_logits(output), main_logits(target), y, temperature=temperature, alpha=alpha
        )
        if pairs:
            loss = loss + feature_weight * feature_loss(student_features, teacher_features)
        return loss

    schedule = TrainingSchedule(
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        **finetune_augmentation(data, augment=augment, flip=augment_flip),
        warmup_fraction=warmup_fraction,
        seed=seed,
    )
    split = dataclasses.replace(data.train, images=train_images)
    model = torch.compile(trained, dynamic=False) if compile else trained
    try:
        return train(
            model,
            split,
            loss_fn,
            schedule,
            device=dev,
            progress=progress,
            stage="finetune",
            on_epoch=on_epoch,
            resume=resume,
        )
    finally:
        for tap in (teacher_tap, student_tap):
            if tap is not None:
                tap.close()


_teacher_logits = (
    teacher_logits  # the module-level name is part of the API, the argument shadows it
)


# ----------------------------------------------------------------------------------------------
# save / load


def _scheme_to_dict(scheme: QuantizationScheme) -> dict[str, Any]:
    data = dataclasses.asdict(scheme)
    data["weight_granularity"] = scheme.weight_granularity.value
    return data


def _scheme_from_dict(data: Mapping[str, Any]) -> QuantizationScheme:
    return QuantizationScheme(
        weight_symmetric=bool(data["weight_symmetric"]),
        activation_symmetric=bool(data["activation_symmetric"]),
        weight_granularity=QuantGranularity(data["weight_granularity"]),
        logarithmic=bool(data["logarithmic"]),
        log_steps_per_octave=int(data["log_steps_per_octave"]),
    )


def _structure_of(student: nn.Module, teacher_spec: ModelSpec, input_shape, protect) -> dict:
    """What rebuilds the student's structure, read from the student itself."""
    layers = dict(quantized_layers(student))
    if not layers:
        raise ConfigError("save_student expects a module made by build_student")
    first = next(iter(layers.values()))
    scheme = QuantizationScheme(
        weight_symmetric=first.weight_symmetric,
        activation_symmetric=first.activation_symmetric,
        weight_granularity=(
            QuantGranularity.PER_CHANNEL if first.per_channel else QuantGranularity.PER_TENSOR
        ),
        logarithmic=first.logarithmic,
        log_steps_per_octave=first.log_steps_per_octave,
    )
    reference = teacher_spec.build().eval()
    groups = channel_groups(reference, _example_input(reference, input_shape), protect)
    keep = {}
    for group in groups:
        module = layers.get(group.name)
        if module is None:
            raise ConfigError(f"student has no layer {group.name!r} of its teacher")
        keep[group.name] = int(
            module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        )
    patterns = sorted({m.sparsity_pattern for m in layers.values() if m.sparsity_pattern})
    return {
        "quantization": _scheme_to_dict(scheme),
        "sparsity_patterns": patterns,
        "keep_channels": keep,
    }


def save_student(
    path: str | os.PathLike[str],
    student: nn.Module,
    *,
    teacher_spec: ModelSpec,
    config: TrialConfig,
    chip_id: str,
    input_shape: Sequence[int],
    protect: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a student made by :func:`build_student` with what rebuilds it (atomic write).

    Stored: the teacher's :class:`ModelSpec`, the trial config, ``chip_id``,
    the input shape, the protected layers, the structure read from the student
    (channels kept per group, quantization scheme, sparsity patterns — so
    :func:`load_student` needs no chip plugin), ``extra`` (plain data) and the
    state dict. Loads with ``weights_only=True``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": STUDENT_FORMAT,
        "version": STUDENT_VERSION,
        "teacher_spec": teacher_spec.to_dict(),
        "config": config.to_dict(),
        "chip_id": str(chip_id),
        "structure": _structure_of(student, teacher_spec, input_shape, protect),
        "input_shape": [int(v) for v in input_shape],
        "protect": list(protect),
        "extra": dict(extra or {}),
        "state_dict": detached_state(student),
    }
    save_payload_atomic(payload, path, what="the trained student")
    return path


def read_student_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw contents of a student file (``weights_only=True``), validated.

    Keys: ``teacher_spec`` (ModelSpec), ``config`` (TrialConfig), ``chip_id``,
    ``structure`` (channels kept, quantization scheme, sparsity patterns), ``input_shape``,
    ``protect``, ``extra``, ``state_dict``.
    """
    path = Path(path)
    payload = read_tagged_file(
        path,
        tag=STUDENT_FORMAT,
        version=STUDENT_VERSION,
        what="student file",
        not_tagged="is not an autocompress student file",
    )
    try:
        payload["teacher_spec"] = ModelSpec.from_dict(payload["teacher_spec"])
        payload["config"] = TrialConfig.from_dict(payload["config"])
        payload["input_shape"] = tuple(payload["input_shape"])
        _scheme_from_dict(payload["structure"]["quantization"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"student file {str(path)!r} is incomplete: {exc}") from None
    return payload


def load_student(path: str | os.PathLike[str]) -> nn.Module:
    """Rebuild a student saved by :func:`save_student` (CPU, eval mode, calibrated).

    The structure is re-derived from the teacher spec, trial config and chip
    facts on a freshly built teacher architecture, then the saved state dict is
    loaded (a mismatch is a :class:`CheckpointError`).
    """
    payload = read_student_file(path)
    fresh = build_for_file(payload["teacher_spec"], path, what="student file")
    structure = payload["structure"]
    student = _build(
        fresh,
        payload["config"],
        channel_alignment=1,
        scheme=_scheme_from_dict(structure["quantization"]),
        sparsity_patterns=tuple(structure["sparsity_patterns"]),
        input_shape=payload["input_shape"],
        protect=tuple(payload["protect"]),
        keep_channels=structure["keep_channels"],
    )
    make_room_for_learned_steps(student, payload["state_dict"])
    load_state_dict_checked(student, payload["state_dict"], source=str(path))
    return student.eval()


__all__ = [
    "FLOAT_BITS",
    "build_student",
    "calibrate",
    "evaluate",
    "finetune",
    "finetune_augmentation",
    "load_student",
    "make_room_for_learned_steps",
    "prunable_layers",
    "quantizable_layers",
    "read_student_file",
    "save_student",
    "teacher_logits",
]

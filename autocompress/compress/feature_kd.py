"""Feature distillation: each layer the student keeps learns the teacher's features.

A student made by :func:`~autocompress.compress.student.build_student` is its teacher
with channels removed: each of its layers is the teacher's layer restricted to the
channels it kept (:func:`~autocompress.compress.slim.slim` records which, and
``build_student`` remembers them on the student). So besides the logits, the output of
every convolution the student keeps (convolution + folded batch-norm, before the
activation) has a target: the teacher's output of the same layer, its batch-norm's output,
at the kept channels. :func:`feature_loss` is the squared error relative to the teacher
feature's mean square, averaged over those layers; ``finetune(feature_weight=...)`` adds
it to the KD loss.

The features are read by forward hooks inside :class:`FeatureTap`, a wrapper whose
``forward`` returns ``(output, feature, ...)``; the wrapper, not the model, is what the
training loop trains and captures as a CUDA graph, and :meth:`FeatureTap.close` removes
the hooks, so the student leaves the fine-tune as it came.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from autocompress.compress.fold import find_conv_bn_pairs

#: Where ``build_student`` keeps layer name -> the teacher's output channels it kept.
_TEACHER_CHANNELS = "_autocompress_teacher_channels"


def remember_teacher_channels(student: nn.Module, kept: Mapping[str, Sequence[int]]) -> None:
    """Record which of the teacher's output channels each pruned layer of ``student`` keeps
    (layers not named kept all of them). A deep copy of the student keeps the record."""
    student.__dict__[_TEACHER_CHANNELS] = {name: list(idx) for name, idx in kept.items()}


def teacher_channels(student: nn.Module) -> dict[str, list[int]] | None:
    """What :func:`remember_teacher_channels` recorded, or None (a student rebuilt from a
    file without its teacher: its layers cannot be paired with a teacher's)."""
    return student.__dict__.get(_TEACHER_CHANNELS)


@dataclass(frozen=True)
class FeaturePair:
    """One feature the student learns from the teacher.

    Attributes:
        student_module: the student's convolution (its output has the BN folded in).
        teacher_module: the teacher's module with the same output: the batch-norm the
            student folded, or the same convolution when there was none.
        channels: the teacher's output channels the student kept (None: all of them).
    """

    student_module: str
    teacher_module: str
    channels: tuple[int, ...] | None


def feature_pairs(
    teacher: nn.Module, student: nn.Module, example_input: torch.Tensor
) -> list[FeaturePair]:
    """Every convolution of ``student`` whose output can be paired with ``teacher``'s.

    Empty when the student carries no record of its kept channels. A layer is left out
    when the teacher has no module of that name, its batch-norm was not folded the same
    way in both, or the channel counts do not agree with the record.
    """
    kept = teacher_channels(student)
    if kept is None:
        return []
    teacher_modules = dict(teacher.named_modules())
    student_modules = dict(student.named_modules())
    bn_of = dict(find_conv_bn_pairs(teacher, example_input))
    pairs = []
    for name, layer in student_modules.items():
        reference = teacher_modules.get(name)
        if not isinstance(layer, nn.Conv2d) or not isinstance(reference, nn.Conv2d):
            continue
        target = bn_of.get(name, name)
        if target != name and not isinstance(student_modules.get(target), nn.Identity):
            continue  # the student still runs this batch-norm: its conv output is pre-BN
        channels = kept.get(name)
        expected = reference.out_channels if channels is None else len(channels)
        if layer.out_channels != expected:
            continue
        pairs.append(FeaturePair(name, target, None if channels is None else tuple(channels)))
    return pairs


class FeatureTap(nn.Module):
    """``model`` whose forward returns ``(model's output, feature, ...)``.

    The features are the outputs of ``modules`` (names inside ``model``) during this
    forward, each restricted to ``channels[i]`` (None: all) along dimension 1.
    """

    def __init__(
        self,
        model: nn.Module,
        modules: Sequence[str],
        channels: Sequence[Sequence[int] | None] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self._count = len(modules)
        self._seen: list[torch.Tensor | None] = [None] * self._count
        self._armed = False
        channels = list(channels) if channels is not None else [None] * self._count
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self._selected: list[bool] = []
        for i, idx in enumerate(channels):
            self._selected.append(idx is not None)
            index = torch.tensor(list(idx) if idx is not None else [], dtype=torch.long)
            self.register_buffer(f"_channels_{i}", index.to(device), persistent=False)
        self._handles = [
            model.get_submodule(name).register_forward_hook(self._hook(i))
            for i, name in enumerate(modules)
        ]

    def _hook(self, i: int):
        def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if self._armed:
                self._seen[i] = output

        return keep

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        self._armed = True
        try:
            out = self.model(x)
        finally:
            self._armed = False
        features = []
        for i in range(self._count):
            feature = self._seen[i]
            if feature is None:
                raise RuntimeError(f"feature {i} was not produced by the forward pass")
            if self._selected[i]:
                index = getattr(self, f"_channels_{i}")
                if index.device != feature.device:  # the model moved after the tap was made
                    index = index.to(feature.device)
                    setattr(self, f"_channels_{i}", index)
                feature = feature.index_select(1, index)
            features.append(feature)
        self._seen = [None] * self._count
        return (out, *features)

    def close(self) -> None:
        """Remove the hooks from ``model``."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def tap_pair(
    teacher: nn.Module, student: nn.Module, pairs: Sequence[FeaturePair]
) -> tuple[FeatureTap, FeatureTap]:
    """The teacher's and the student's :class:`FeatureTap` for ``pairs`` (same order)."""
    return (
        FeatureTap(teacher, [p.teacher_module for p in pairs], [p.channels for p in pairs]),
        FeatureTap(student, [p.student_module for p in pairs]),
    )


def feature_loss(
    student_features: Sequence[torch.Tensor], teacher_features: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Mean over the layers of ``mean((s - t)²) / mean(t²)`` (float32): 1 is as far from the
    teacher as a zero feature; each layer counts the same whatever its scale."""
    losses = []
    for s, t in zip(student_features, teacher_features, strict=True):
        t = t.detach().float()
        losses.append((s.float() - t).pow(2).mean() / t.pow(2).mean().clamp_min(1e-8))
    return torch.stack(losses).mean()


__all__ = [
    "FeaturePair",
    "FeatureTap",
    "feature_loss",
    "feature_pairs",
    "remember_teacher_channels",
    "tap_pair",
    "teacher_channels",
]

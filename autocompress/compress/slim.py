"""Physical channel pruning: a width multiplier and per-layer ratios, with Torch-Pruning.

Channels are removed for real (the tensors shrink). Torch-Pruning's
dependency graph couples every layer whose channels must change together —
residual adds, depthwise convolutions, concatenations, flatten into a linear
layer — into one *group*; a group is pruned as a unit, keeping the channels
with the largest L2 magnitude over all the group's weights (convolutions, BN
scales, the consuming layers' input slices), so the student inherits the
teacher's most important channels.

Each group is named by its *representative*: the first conv/linear layer (in
``named_modules()`` order) whose output channels belong to the group. The
group holding the model's output layer is never pruned (its width is the
number of classes), and neither is a group holding a ``protect``-ed layer.

A group left at full width by the configuration is never touched: the chip's
alignment only rounds channel counts that are being reduced. A group whose
channels feed a grouped convolution (ResNeXt, RegNet) is pruned the same way in
every convolution group (its count stays a multiple of the groups). Where
Torch-Pruning cannot trace a model (e.g. ShuffleNet's channel shuffle) or a group,
those layers stay at full width and :attr:`ChannelGroup.reason` says why.

Window attention (Swin's, MaxViT's) reshapes, rolls and pads its embedding width in ways
Torch-Pruning's index mapping cannot follow (at some inputs its trace fails, at others a
group's index lists grow without bound), so a model with window attention is not traced
whole: each MLP block (Linear -> GELU -> Linear) is traced on its own, with the input it
receives in a forward pass, and its hidden width is pruned (the first Linear's outputs
with the second's inputs); the embedding width, the attention, the patch merging and
MaxViT's convolutions stay at full width.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from autocompress.core.errors import ConfigError

_LOG = logging.getLogger(__name__)


def channel_scores(group: tp.Group) -> torch.Tensor | None:
    """One score per channel of a Torch-Pruning ``group`` (higher: kept first).

    The group L2 magnitude (mean over the group's weights, normalised by its mean);
    None when the group has no weights to rank. Measured against L1, BN scale, LAMP,
    FPGM, first-order Taylor, mean activation and random channels on a CIFAR-10
    ResNet-18 (bench/bench_recipe_cpu.py --importance; bench/RESULTS.md, ninth session):
    none recovered a 50 %-channel W4A8 student better in 30 epochs.
    """
    return tp.importance.GroupMagnitudeImportance(p=2)(group)


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels that are pruned together.

    Attributes:
        name: the representative layer (first in ``named_modules()`` order).
        members: every conv/linear layer whose output channels are in the group.
        channels: the group's channel count.
        prunable: False for the output layer's group and protected groups.
        conv_groups: the group's channels are split in this many convolution groups
            (a grouped convolution reads them): pruning keeps a multiple of it.
        reason: why a group that is not the output's is kept at full width ("" otherwise).
    """

    name: str
    members: tuple[str, ...]
    channels: int
    prunable: bool
    conv_groups: int = 1
    reason: str = ""


def aligned_channels(channels: int, keep_fraction: float, alignment: int) -> int:
    """Channels kept when keeping ``keep_fraction`` of ``channels``, rounded to ``alignment``.

    Rounds to the nearest multiple of ``alignment``, never below one multiple
    (or one channel) and never above the original count.
    """
    if keep_fraction >= 1.0:
        return channels  # full width: alignment never widens or narrows an untouched layer
    alignment = max(1, int(alignment))
    target = channels * keep_fraction
    keep = max(alignment, round(target / alignment) * alignment)
    return max(1, min(channels, keep))


def grouped_channels(channels: int, keep_fraction: float, alignment: int, conv_groups: int) -> int:
    """Channels kept of a group read by a grouped convolution of ``conv_groups`` groups:
    the same count in every group, the total aligned where the groups allow."""
    if keep_fraction >= 1.0 or conv_groups <= 1:
        return aligned_channels(channels, keep_fraction, alignment)
    per_group = channels // conv_groups
    step = math.lcm(max(1, int(alignment)), conv_groups) // conv_groups
    if step >= per_group:  # the alignment would forbid any pruning: round per group only
        step = 1
    keep = max(step, round(per_group * keep_fraction / step) * step)
    return min(per_group, keep) * conv_groups


def _is_grouped(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups > 1
        and not (module.groups == module.in_channels == module.out_channels)
    )


def _layer_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def output_layer_name(model: nn.Module, example_input: torch.Tensor) -> str | None:
    """The last conv/linear layer to run in a forward pass (the classifier)."""
    order: list[str] = []
    handles = [
        m.register_forward_hook(lambda *_args, name=n: order.append(name))
        for n, m in _layer_modules(model)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return order[-1] if order else None


def _pruning_fn(module: nn.Module):
    return (
        tp.prune_conv_out_channels
        if isinstance(module, nn.Conv2d)
        else tp.prune_linear_out_channels
    )


def _out_channels(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features  # type: ignore[return-value]


# Swin's window attention (V1, V2), MaxViT's window/grid attention
_WINDOW_ATTENTION = (
    "ShiftedWindowAttention",
    "ShiftedWindowAttentionV2",
    "PartitionAttentionLayer",
)
_LOCAL_REASON = (
    "window attention (Swin, MaxViT): Torch-Pruning cannot follow its window partition of the "
    "embedding width (only the MLP hidden widths are pruned)"
)


def _has_window_attention(model: nn.Module) -> bool:
    return any(
        any(c.__name__ in _WINDOW_ATTENTION for c in type(m).__mro__) for m in model.modules()
    )


_MLP_PARTS = (nn.Linear, nn.LayerNorm, nn.GELU, nn.ReLU, nn.SiLU, nn.Dropout, nn.Identity)


def _is_mlp_block(name: str, module: nn.Module) -> bool:
    """torchvision's ``ops.MLP`` (Swin: Linear, GELU, Dropout, Linear, Dropout) or MaxViT's
    ``mlp_layer`` (LayerNorm, Linear, GELU, Linear, Dropout)."""
    if not isinstance(module, nn.Sequential):
        return False
    if any(c.__name__ == "MLP" for c in type(module).__mro__):
        return True
    return name.rpartition(".")[2] == "mlp_layer" and all(
        isinstance(part, _MLP_PARTS) for part in module
    )


class _Graph:
    """Torch-Pruning's dependency graph of a model, with its channel groups."""

    def __init__(
        self, model: nn.Module, example_input: torch.Tensor, protect: Sequence[str]
    ) -> None:
        self.model = model
        self.names = {m: n for n, m in model.named_modules()}
        output = output_layer_name(model, example_input)
        known = {n for n, _ in _layer_modules(model)}
        for name in protect:
            if name not in known:
                raise ConfigError(
                    f"protected layer {name!r} is not a conv/linear layer of the model"
                )
        self.groups: list[ChannelGroup] = []
        self.graph = None
        self.local: dict[str, tp.DependencyGraph] = {}  # group -> its MLP block's graph
        if _has_window_attention(model):
            self._mlp_groups(example_input, output, protect)
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.graph = tp.DependencyGraph().build_dependency(
                    model, example_inputs=example_input, verbose=False
                )
        except Exception as exc:  # a graph Torch-Pruning cannot trace: nothing is pruned
            reason = f"Torch-Pruning cannot trace the model ({_first_line(exc)})"
            _LOG.warning("every layer kept at full width: %s", reason)
            for name, module in _layer_modules(model):
                self.groups.append(
                    ChannelGroup(name, (name,), _out_channels(module), False, reason=reason)
                )
            return
        covered: set[str] = set()
        for name, module in _layer_modules(model):
            if name in covered:
                continue
            channels = _out_channels(module)
            members = [name]
            conv_groups, reason = 1, ""
            try:
                group = self.graph.get_pruning_group(
                    module, _pruning_fn(module), idxs=list(range(channels))
                )
            except Exception as exc:  # e.g. a layer outside the traced graph (an aux head)
                group = []
                reason = f"not in Torch-Pruning's dependency graph ({_first_line(exc)})"
            for dep, _idxs in group:
                target = dep.target.module
                if _is_grouped(target):
                    conv_groups = math.lcm(conv_groups, int(target.groups))
                if (
                    isinstance(target, nn.Conv2d | nn.Linear)
                    and self.graph.is_out_channel_pruning_fn(dep.handler)
                    and target in self.names
                    and self.names[target] not in members
                ):
                    members.append(self.names[target])
            if conv_groups > 1 and channels % conv_groups:
                reason = f"{channels} channels do not split into {conv_groups} conv groups"
            covered.update(members)
            prunable = output not in members and not set(protect) & set(members) and not reason
            self.groups.append(
                ChannelGroup(name, tuple(members), channels, prunable, conv_groups, reason)
            )

    def _mlp_groups(
        self, example_input: torch.Tensor, output: str | None, protect: Sequence[str]
    ) -> None:
        """Groups of the MLP blocks' hidden widths, each traced on its own; every other
        layer at full width (see the module docstring)."""
        blocks = [(n, m) for n, m in self.model.named_modules() if _is_mlp_block(n, m)]
        inputs: dict[str, torch.Tensor] = {}
        handles = [
            m.register_forward_pre_hook(
                lambda _m, args, name=n: inputs.setdefault(name, args[0].detach())
            )
            for n, m in blocks
        ]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(example_input)
        finally:
            for handle in handles:
                handle.remove()
            self.model.train(was_training)
        local: dict[str, ChannelGroup] = {}
        covered: set[str] = set()
        for block_name, block in blocks:
            layers = _layer_modules(block)
            if block_name not in inputs or len(layers) < 2:
                continue  # never runs, or no hidden width
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    graph = tp.DependencyGraph().build_dependency(
                        block, example_inputs=inputs[block_name], verbose=False
                    )
            except Exception as exc:
                _LOG.warning("MLP block %s kept at full width: %s", block_name, _first_line(exc))
                continue
            last = layers[-1][1]  # the block's output: the embedding width
            for _name, module in layers[:-1]:
                channels = _out_channels(module)
                try:
                    group = graph.get_pruning_group(
                        module, _pruning_fn(module), idxs=list(range(channels))
                    )
                except Exception:
                    continue
                targets = [
                    dep.target.module
                    for dep, _ in group
                    if isinstance(dep.target.module, nn.Conv2d | nn.Linear)
                    and graph.is_out_channel_pruning_fn(dep.handler)
                ]
                if last in targets or any(_is_grouped(t) for t in targets):
                    continue
                members = tuple(
                    dict.fromkeys([self.names[module]] + [self.names[t] for t in targets])
                )
                prunable = output not in members and not set(protect) & set(members)
                local[members[0]] = ChannelGroup(members[0], members, channels, prunable)
                self.local[members[0]] = graph
                covered.update(members)
        for name, module in _layer_modules(self.model):
            if name in local:
                self.groups.append(local[name])
            elif name not in covered:
                self.groups.append(
                    ChannelGroup(name, (name,), _out_channels(module), False, reason=_LOCAL_REASON)
                )

    def prune(self, group: ChannelGroup, keep: int) -> dict[str, list[int]]:
        """Prune ``group`` down to its ``keep`` most important channels.

        Returns, for every conv/linear layer whose output channels this removed, the
        indices (in that layer's unpruned outputs) of the channels it keeps.
        """
        module = self.model.get_submodule(group.name)
        channels = _out_channels(module)
        if keep >= channels:
            return {}
        fn = _pruning_fn(module)
        graph = self.local.get(group.name, self.graph)
        full = graph.get_pruning_group(module, fn, idxs=list(range(channels)))
        importance = channel_scores(full)
        scores = (
            torch.zeros(channels)
            if importance is None  # no weights to rank: keep the first channels
            else importance.detach().float().cpu()
        )
        if group.conv_groups > 1:
            # the same channels of every convolution group (a grouped conv's weight
            # holds one slice of input channels for all of them)
            per_group = channels // group.conv_groups
            local = scores.reshape(group.conv_groups, per_group).sum(0)
            order = torch.argsort(local, descending=True, stable=True)
            dropped = order[keep // group.conv_groups :].tolist()
            remove = sorted(g * per_group + i for g in range(group.conv_groups) for i in dropped)
        else:
            order = torch.argsort(scores, descending=True, stable=True)
            remove = sorted(order[keep:].tolist())
        pruning = graph.get_pruning_group(module, fn, idxs=remove)
        kept: dict[str, list[int]] = {}
        for dep, idxs in pruning:
            target = dep.target.module
            if (
                isinstance(target, nn.Conv2d | nn.Linear)
                and graph.is_out_channel_pruning_fn(dep.handler)
                and target in self.names
            ):
                removed = {int(i) for i in idxs}
                kept[self.names[target]] = [
                    i for i in range(_out_channels(target)) if i not in removed
                ]
        pruning.prune()
        return kept


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]


def channel_groups(
    model: nn.Module, example_input: torch.Tensor, protect: Sequence[str] = ()
) -> list[ChannelGroup]:
    """The model's channel groups (see the module docstring)."""
    return _Graph(model, example_input, protect).groups


def slim(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    width_multiplier: float,
    prune_ratios: Mapping[str, float],
    channel_alignment: int,
    protect: Sequence[str] = (),
    keep_channels: Mapping[str, int] | None = None,
    kept_indices: dict[str, list[int]] | None = None,
) -> dict[str, int]:
    """Prune ``model`` in place; returns representative layer name -> channels kept.

    ``keep_channels`` (representative name -> count), when given, sets the
    counts directly (used to rebuild a saved student's structure).
    ``kept_indices``, when given, is filled with layer name -> the indices of the
    unpruned model's output channels that layer keeps, for every conv/linear layer
    whose outputs were pruned (feature distillation pairs them with the teacher's).

    A prunable group with ``C`` channels keeps ``C · width_multiplier ·
    (1 - ratio)`` channels rounded to ``channel_alignment``, where ``ratio`` is
    the ratio given for the group's representative (or, failing that, the
    largest ratio given for any member).
    """
    if not 0.0 < width_multiplier <= 1.0:
        raise ConfigError(f"width_multiplier must be in (0, 1], got {width_multiplier}")
    for name, ratio in prune_ratios.items():
        if not 0.0 <= float(ratio) < 1.0:
            raise ConfigError(f"prune ratio for layer {name!r} must be in [0, 1), got {ratio}")
    backup = copy.deepcopy(model)
    graph = _Graph(model, example_input, protect)
    member_of = {m: g for g in graph.groups for m in g.members}
    unknown = [n for n in prune_ratios if n not in member_of]
    if unknown:
        raise ConfigError(
            f"prune ratio given for {unknown[0]!r}, which is not a conv/linear layer of the "
            f"teacher; prunable layers are: {', '.join(g.name for g in graph.groups if g.prunable)}"
        )
    targets = _targets(graph, width_multiplier, prune_ratios, channel_alignment, keep_channels)
    kept_now: dict[str, list[int]] = {}
    for group, keep in targets:
        kept_now.update(graph.prune(group, keep))
    if _runs(model, example_input):
        if kept_indices is not None:
            kept_indices.update(kept_now)
        return {group.name: keep for group, keep in targets}
    # Some group breaks the forward pass when pruned (a reshape to a hard-coded width,
    # e.g. ViT's hidden size): prune group by group, keeping the ones that run.
    _restore(model, backup)
    kept: dict[str, int] = {}
    current = _Graph(model, example_input, protect)  # valid until a restore replaces modules
    for group, keep in targets:
        if keep >= group.channels:
            kept[group.name] = keep
            continue
        snapshot = copy.deepcopy(model)
        indices = current.prune(group, keep)
        if _runs(model, example_input):
            kept[group.name] = keep
            if kept_indices is not None:
                kept_indices.update(indices)
        else:
            _restore(model, snapshot)
            current = _Graph(model, example_input, protect)
            kept[group.name] = group.channels
            _LOG.warning(
                "channel group %s kept at full width: pruning it breaks the forward pass",
                group.name,
            )
    return kept


def _targets(
    graph: _Graph,
    width_multiplier: float,
    prune_ratios: Mapping[str, float],
    channel_alignment: int,
    keep_channels: Mapping[str, int] | None,
) -> list[tuple[ChannelGroup, int]]:
    out = []
    for group in graph.groups:
        if not group.prunable:
            continue
        if group.name in prune_ratios:
            ratio = float(prune_ratios[group.name])
        else:
            ratio = max(
                (float(prune_ratios[m]) for m in group.members if m in prune_ratios), default=0.0
            )
        keep = grouped_channels(
            group.channels, width_multiplier * (1.0 - ratio), channel_alignment, group.conv_groups
        )
        if keep_channels is not None:
            keep = int(keep_channels.get(group.name, group.channels))
        out.append((group, keep))
    return out


def _runs(model: nn.Module, example_input: torch.Tensor) -> bool:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
        return True
    except Exception:
        return False
    finally:
        model.train(was_training)


def _restore(model: nn.Module, saved: nn.Module) -> None:
    """Put ``saved``'s modules and tensors back into ``model`` (the caller's object)."""
    model.__dict__.update(copy.deepcopy(saved).__dict__)


__all__ = [
    "ChannelGroup",
    "aligned_channels",
    "channel_groups",
    "grouped_channels",
    "output_layer_name",
    "slim",
]

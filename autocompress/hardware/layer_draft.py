"""A layer descriptor under construction, and the precision rules that fill it in.

Used by both extraction paths (``torch.fx`` in :mod:`autocompress.hardware.extract`,
forward hooks in :mod:`autocompress.hardware.extract_hooks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import nn

from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.op_kinds import FLOAT_BITS

BitsArg = int | Mapping[str, int] | None


class LayerDraft:
    """A descriptor under construction (mutable while ops fuse into it)."""

    __slots__ = (
        "activation_bits",
        "batch",
        "dilation",
        "extra_input_elements",
        "fused_ops",
        "groups",
        "in_channels",
        "input_elements",
        "input_hw",
        "kernel_size",
        "kind",
        "macs",
        "name",
        "out_channels",
        "output_elements",
        "output_hw",
        "reads",
        "sparsity_pattern",
        "stride",
        "weight_bits",
        "weight_count",
    )

    def __init__(self, name: str, kind: LayerKind) -> None:
        self.name = name
        self.kind = kind
        self.in_channels = self.out_channels = 1
        self.kernel_size = self.stride = self.dilation = (1, 1)
        self.groups = 1
        self.input_hw = self.output_hw = (1, 1)
        self.batch = 1
        self.macs = self.weight_count = 0
        self.input_elements = self.output_elements = self.extra_input_elements = 0
        self.weight_bits = self.activation_bits = FLOAT_BITS
        self.sparsity_pattern: str | None = None
        self.fused_ops: list[str] = []
        self.reads: list[int] = []

    def freeze(self, live_elements: int) -> LayerDescriptor:
        return LayerDescriptor(
            name=self.name,
            kind=self.kind,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            dilation=self.dilation,
            groups=self.groups,
            input_hw=self.input_hw,
            output_hw=self.output_hw,
            batch=self.batch,
            macs=self.macs,
            weight_count=self.weight_count,
            input_elements=self.input_elements,
            output_elements=self.output_elements,
            extra_input_elements=self.extra_input_elements,
            weight_bits=self.weight_bits,
            activation_bits=self.activation_bits,
            sparsity_pattern=self.sparsity_pattern,
            fused_ops=tuple(self.fused_ops),
            live_elements=live_elements,
        )


def numel(shape: Iterable[int]) -> int:
    total = 1
    for size in shape:
        total *= int(size)
    return total


def spatial_hw(shape: tuple[int, ...]) -> tuple[int, int]:
    """The last two spatial dims of an activation shape (N, C, *spatial)."""
    spatial = tuple(int(s) for s in shape[2:])
    if not spatial:
        return (1, 1)
    if len(spatial) == 1:
        return (1, spatial[0])
    return (numel(spatial[:-1]), spatial[-1])


def as_pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return (1, value[0])
    return (numel(value[:-1]), value[-1])


class PrecisionResolver:
    """Bits and sparsity of a layer: explicit argument > module attribute > float."""

    def __init__(self, weight_bits: BitsArg, activation_bits: BitsArg, sparsity) -> None:
        self.weight_bits = weight_bits
        self.activation_bits = activation_bits
        self.sparsity = sparsity
        self.used_names: set[str] = set()

    @staticmethod
    def _attribute(holders: list[nn.Module], attr: str):
        for holder in holders:
            value = getattr(holder, attr, None)
            if value is not None:
                return value
        return None

    def _bits(self, arg: BitsArg, name: str, holders: list[nn.Module], attr: str) -> int | None:
        if isinstance(arg, int):
            return arg
        if arg is not None and name in arg:
            self.used_names.add(name)
            return int(arg[name])
        value = self._attribute(holders, attr)
        return None if value is None else int(value)

    def weight_layer(self, draft: LayerDraft, holders: list[nn.Module]) -> None:
        weight = self._bits(self.weight_bits, draft.name, holders, "weight_bits")
        activation = self._bits(self.activation_bits, draft.name, holders, "activation_bits")
        draft.weight_bits = FLOAT_BITS if weight is None else weight
        draft.activation_bits = FLOAT_BITS if activation is None else activation
        if self.sparsity is not None and draft.name in self.sparsity:
            self.used_names.add(draft.name)
            draft.sparsity_pattern = self.sparsity[draft.name] or None
        else:
            pattern = self._attribute(holders, "sparsity_pattern")
            draft.sparsity_pattern = str(pattern) if pattern else None

    def plain_layer(self, draft: LayerDraft, input_bits: int) -> None:
        """A layer without weights: runs at its input's activation width."""
        bits = self._bits(self.activation_bits, draft.name, [], "activation_bits")
        draft.activation_bits = draft.weight_bits = input_bits if bits is None else bits

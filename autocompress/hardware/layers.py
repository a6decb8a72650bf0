"""Layer descriptors: the only view of a network the cost model ever sees.

``extract_layers`` (in :mod:`autocompress.hardware.extract`) builds them once
from an ``nn.Module`` and an input shape; the cost model turns them into a
:class:`~autocompress.hardware.cost.Cost` in microseconds, for any chip.

Precision and sparsity come from the modules themselves: a module may carry
the attributes ``weight_bits`` (int), ``activation_bits`` (int) and
``sparsity_pattern`` (e.g. ``"2:4"`` or ``None``); the compression engine's
quantized layers do. Explicit per-layer overrides passed to ``extract_layers``
win over the attributes; layers with neither are float32 (32 bits).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class LayerKind(str, Enum):
    """What a layer does, as far as an NPU is concerned."""

    CONV = "conv"  # any nn.Conv2d: regular, grouped, depthwise, strided, dilated
    LINEAR = "linear"
    POOL = "pool"  # max / average / adaptive pooling
    ELTWISE = "eltwise"  # residual add, multiply, concatenation copy
    ACTIVATION = "activation"  # a non-linearity that could not be fused


@dataclass(frozen=True)
class LayerDescriptor:
    """One operator as it runs on the chip, with batch-norm and fusable ops folded in.

    Shapes are per inference (``batch`` images). ``fused_ops`` names what was
    folded into this layer (``"bn"``, ``"relu"``, ``"add"`` …) and costs
    nothing on its own.

    Attributes:
        name: qualified module name in the model (``"layer1.0.conv1"``).
        kind: operator kind.
        in_channels / out_channels: channels in and out.
        kernel_size: (kh, kw); (1, 1) for linear and element-wise layers.
        stride, dilation: (h, w) pairs.
        groups: convolution groups (``in_channels`` for depthwise).
        input_hw / output_hw: spatial size in and out; (1, 1) for linear.
        batch: images per inference.
        macs: multiply-accumulates (or element operations for pool/eltwise).
        weight_count: number of weight parameters (bias included).
        input_elements / output_elements: activation elements read / written.
        extra_input_elements: elements of a second input (residual add).
        weight_bits / activation_bits: bit-widths (32 = float32).
        sparsity_pattern: e.g. ``"2:4"``, or None for dense weights.
        fused_ops: operators folded into this one.
        live_elements: activation elements alive while this layer runs (its
            inputs, its output and tensors kept for later layers, e.g. residual
            branches); 0 = unknown, the cost model then uses inputs + output.
    """

    name: str
    kind: LayerKind
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    batch: int
    macs: int
    weight_count: int
    input_elements: int
    output_elements: int
    extra_input_elements: int = 0
    weight_bits: int = 32
    activation_bits: int = 32
    sparsity_pattern: str | None = None
    fused_ops: tuple[str, ...] = ()
    live_elements: int = 0

    @property
    def is_depthwise(self) -> bool:
        """A convolution with one input channel per group."""
        return self.kind is LayerKind.CONV and self.groups > 1 and self.groups == self.in_channels

    @property
    def weight_bytes(self) -> float:
        """Bytes of weight storage at ``weight_bits``."""
        return self.weight_count * self.weight_bits / 8

    def with_precision(
        self,
        weight_bits: int | None = None,
        activation_bits: int | None = None,
        sparsity_pattern: str | None = None,
    ) -> LayerDescriptor:
        """A copy with the given precision (None keeps the current value)."""
        return replace(
            self,
            weight_bits=self.weight_bits if weight_bits is None else weight_bits,
            activation_bits=self.activation_bits if activation_bits is None else activation_bits,
            sparsity_pattern=(
                self.sparsity_pattern if sparsity_pattern is None else sparsity_pattern
            ),
        )

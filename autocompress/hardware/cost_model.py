"""The simulated NPU cost model: :func:`cost_layers` (descriptors × chip → :class:`Cost`).

An analytical roofline per layer (equations and their limits: docs/cost-model.md):

- precision: a bit-width the chip cannot run is costed at the next width it
  has (4-bit weights on an int8/int16 chip run as int8); wider than anything
  it has → its widest. The compute width is ``chip.compute_bits(w, a)``.
- compute time = MACs × alignment padding / (peak MACs/s at the compute width
  × ``compute_efficiency`` × ``depthwise_efficiency`` for depthwise ×
  ``sparsity_speedup`` when the layer's sparsity pattern is one the chip lists).
  Channels are processed in groups of ``channel_alignment``; the last group is
  padded, so 17 channels cost like 32 on a 16-wide array.
- weight residency: on a chip with ``weights_on_chip`` whose capacity holds
  every weight, weights never cross DRAM; when they do not fit, the network
  runs as several contexts (weights stream as below, + ``context_switch_us``
  per switch).
- DRAM bytes = weights (streamed once per inference; a supported N:M pattern
  stores N of every M plus log2(M) bits of index each: 2:4 → half + 2 bits)
  + activations in and out when they do not fit the on-chip buffer together
  (then read once, written once); the network input is read and the output
  written once. Fused ops (bn, activation, residual add) never round-trip:
  they are part of their layer.
- latency = max(compute, memory) + ``launch_overhead_us`` per conv/linear layer
  (``element_launch_overhead_us``, default the same, per pooling/element-wise layer),
  + ``inference_overhead_us`` once per inference (the runtime call, input/output
  conversion; counted in the first layer, so that the layers still add up to the total).
- energy = MACs × pJ/MAC at the compute width (element ops of pooling and
  element-wise layers at ``ELEMENT_OP_ENERGY_FRACTION`` of a MAC) + SRAM bytes ×
  pJ/B (weights, inputs, outputs all pass the buffers) + DRAM bytes × pJ/B +
  static power × latency. A width missing from the chip's energy table is
  scaled from the nearest wider entry by (w·w)/(k·k) (multiplier energy grows
  with the product of the operand widths).
- peak memory = all weights + the largest set of live activations;
  model size = all weights at their storage width.

Everything per chip that does not depend on the layer is computed once and
cached, and the per-layer loop uses plain floats, so a ResNet-50 costs in well
under a millisecond (bench/bench_cost_model.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from autocompress.core.errors import ConfigError
from autocompress.core.sparsity_pattern import is_nm, parse_nm
from autocompress.hardware.cost import Cost, LayerCost
from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.spec import ChipSpec

# Energy of an element op (add / compare of pooling and element-wise layers)
# relative to one MAC at the same width: Horowitz 45 nm int8 add 0.03 pJ vs
# int8 mult + add 0.23 pJ.
ELEMENT_OP_ENERGY_FRACTION = 0.03 / 0.23
MAX_BITS = 32

_KIND_NAMES = {kind: kind.value for kind in LayerKind}
_LAYER_COST_FIELDS = tuple(field.name for field in dataclasses.fields(LayerCost))


def _layer_cost(*values: object) -> LayerCost:
    """A :class:`LayerCost` built without the frozen-dataclass ``__init__``.

    That ``__init__`` makes one ``object.__setattr__`` call per field; filling
    ``__dict__`` directly gives an equal object in about half the time, which
    matters in the per-layer loop.
    """
    cost = object.__new__(LayerCost)
    cost.__dict__.update(zip(_LAYER_COST_FIELDS, values, strict=True))
    return cost


_WEIGHT_KINDS = (LayerKind.CONV, LayerKind.LINEAR)


def effective_bits(requested_bits: int, supported: Sequence[int]) -> int:
    """The width a chip runs ``requested_bits`` at: the next supported width up, else its widest."""
    widths = sorted(supported)
    for width in widths:
        if width >= requested_bits:
            return width
    return widths[-1]


class ChipConstants:
    """Per-chip figures of the hot loop, in SI units, computed once per chip.

    Attributes:
        weight_bits / activation_bits: requested bits (index 0..32) -> bits costed.
        compute_width: max(weight, activation) bits (index) -> compute width.
        macs_per_s: compute width -> achieved dense MACs per second.
        mac_energy_pj: compute width -> energy of one MAC in pJ.
    """

    __slots__ = (
        "activation_bits",
        "alignment",
        "buffer_bytes",
        "bytes_per_s",
        "chip",
        "compute_width",
        "context_switch_s",
        "depthwise_efficiency",
        "dram_pj_per_byte",
        "element_launch_s",
        "inference_s",
        "launch_s",
        "mac_energy_pj",
        "macs_per_s",
        "sparse_storage",
        "sparsity_patterns",
        "sparsity_speedup",
        "sram_pj_per_byte",
        "static_w",
        "weight_bits",
        "weight_capacity_bytes",
    )

    def __init__(self, chip: ChipSpec) -> None:
        self.chip = chip
        peak_widths = sorted(chip.peak_tops_by_bits)
        if not peak_widths:
            raise ConfigError(f"chip {chip.chip_id!r} has no peak throughput (peak_tops_by_bits)")
        weight_widths = tuple(chip.weight_bits_supported) or tuple(peak_widths)
        activation_widths = tuple(chip.activation_bits_supported) or tuple(peak_widths)
        bit_range = range(MAX_BITS + 1)
        self.weight_bits = tuple(effective_bits(max(b, 1), weight_widths) for b in bit_range)
        self.activation_bits = tuple(
            effective_bits(max(b, 1), activation_widths) for b in bit_range
        )
        self.compute_width = tuple(effective_bits(max(b, 1), peak_widths) for b in bit_range)
        self.macs_per_s = {
            width: chip.peak_tops_by_bits[width] * 0.5e12 * chip.compute_efficiency
            for width in peak_widths
        }
        self.mac_energy_pj = {
            width: _mac_energy_pj(chip, width) for width in range(1, MAX_BITS + 1)
        }
        self.alignment = max(int(chip.channel_alignment), 1)
        self.depthwise_efficiency = chip.depthwise_efficiency
        self.sparsity_patterns = frozenset(chip.sparsity_patterns)
        self.sparse_storage = {
            (pattern, bits): _sparse_storage_fraction(pattern, bits)
            for pattern in chip.sparsity_patterns
            for bits in range(1, MAX_BITS + 1)
        }
        self.sparsity_speedup = chip.sparsity_speedup if chip.sparsity_patterns else 1.0
        self.buffer_bytes = chip.onchip_buffer_kb * 1024.0
        self.bytes_per_s = chip.dram_bandwidth_gbps * 1e9 * chip.bandwidth_efficiency
        self.sram_pj_per_byte = chip.sram_energy_pj_per_byte
        self.dram_pj_per_byte = chip.dram_energy_pj_per_byte
        self.static_w = chip.static_power_mw * 1e-3
        self.launch_s = chip.launch_overhead_us * 1e-6
        element_launch = chip.element_launch_overhead_us
        self.element_launch_s = self.launch_s if element_launch is None else element_launch * 1e-6
        # Weight residency (0 = weights stream from DRAM on every inference).
        capacity_kb = chip.onchip_weight_kb or chip.onchip_buffer_kb
        self.weight_capacity_bytes = capacity_kb * 1024.0 if chip.weights_on_chip else 0.0
        self.context_switch_s = chip.context_switch_us * 1e-6
        self.inference_s = chip.inference_overhead_us * 1e-6


def _mac_energy_pj(chip: ChipSpec, width: int) -> float:
    table = chip.energy_per_mac_pj_by_bits
    if width in table:
        return float(table[width])
    if not table:
        raise ConfigError(f"chip {chip.chip_id!r} has no energy_per_mac_pj_by_bits table")
    key = effective_bits(width, tuple(table))
    return float(table[key]) * (width * width) / (key * key)


def _sparse_storage_fraction(pattern: str, weight_bits: int) -> float:
    """Stored bytes / dense bytes of an ``N:M`` pattern: N of M values + log2(M)-bit indices each.

    2:4 at 8 bits: 0.5 × (1 + 2/8) = 0.625 (NVIDIA sparse tensor cores keep 2-bit indices).
    """
    if not is_nm(pattern):
        return 1.0
    kept, block = parse_nm(pattern)
    index_bits = max(math.ceil(math.log2(block)), 1)
    return kept / block * (1.0 + index_bits / weight_bits)


_CONSTANTS: dict[int, ChipConstants] = {}


def chip_constants(chip: ChipSpec) -> ChipConstants:
    """The cached :class:`ChipConstants` of ``chip`` (keyed by object identity)."""
    constants = _CONSTANTS.get(id(chip))
    if constants is None or constants.chip is not chip:
        constants = ChipConstants(chip)
        if len(_CONSTANTS) > 256:
            _CONSTANTS.clear()
        _CONSTANTS[id(chip)] = constants
    return constants


def _weight_residency(
    layers: Sequence[LayerDescriptor], k: ChipConstants
) -> tuple[bool, frozenset[int]]:
    """(weights resident on chip?, indices of layers that start a new context).

    Only for chips with ``weights_on_chip``: when every weight fits the capacity
    none is read from DRAM; otherwise the layers are cut into contexts of at most
    the capacity each (a layer starts a new context when its weights overflow
    the current one) and weights stream from DRAM as on other chips.
    """
    capacity = k.weight_capacity_bytes
    if capacity <= 0:
        return False, frozenset()
    weight_map, patterns = k.weight_bits, k.sparsity_patterns
    sizes = []
    for layer in layers:
        bits = weight_map[min(max(layer.weight_bits, 1), MAX_BITS)]
        size = layer.weight_count * bits * 0.125
        if layer.sparsity_pattern is not None and layer.sparsity_pattern in patterns:
            size *= k.sparse_storage[layer.sparsity_pattern, bits]
        sizes.append(size)
    if sum(sizes) <= capacity:
        return True, frozenset()
    starts, used = [], 0.0
    for index, size in enumerate(sizes):
        if used > 0 and used + size > capacity:
            starts.append(index)
            used = 0.0
        used += size
    return False, frozenset(starts)


def cost_layers(layers: Sequence[LayerDescriptor], chip: ChipSpec) -> Cost:
    """Simulated cost of one inference of ``layers`` on ``chip`` (see the module docstring).

    Args:
        layers: descriptors from :func:`autocompress.hardware.extract.extract_layers`.
        chip: the chip to cost on.

    Returns:
        Totals (latency_ms, energy_mj, power_mw, peak_memory_kb, model_size_kb,
        macs) and one :class:`LayerCost` per descriptor, in order.

    Raises:
        ConfigError: a layer has a bit-width outside 1..32.
    """
    k = chip_constants(chip)
    alignment = k.alignment
    weight_map, activation_map, width_map = k.weight_bits, k.activation_bits, k.compute_width
    macs_per_s, mac_energy = k.macs_per_s, k.mac_energy_pj
    bytes_per_s, buffer_bytes = k.bytes_per_s, k.buffer_bytes
    sram_pj, dram_pj, static_w, launch_s = (
        k.sram_pj_per_byte,
        k.dram_pj_per_byte,
        k.static_w,
        k.launch_s,
    )
    patterns, speedup, dw_efficiency = (
        k.sparsity_patterns,
        k.sparsity_speedup,
        k.depthwise_efficiency,
    )
    sparse_storage = k.sparse_storage
    conv, linear = LayerKind.CONV, LayerKind.LINEAR
    last = len(layers) - 1
    resident, switch_at = _weight_residency(layers, k)
    switch_s, element_launch_s = k.context_switch_s, k.element_launch_s

    results: list[LayerCost] = []
    total_s = total_j = weight_total = peak_live = 0.0
    total_macs = 0
    for index, layer in enumerate(layers):
        requested_w, requested_a = layer.weight_bits, layer.activation_bits
        if not (0 < requested_w <= MAX_BITS and 0 < requested_a <= MAX_BITS):
            raise ConfigError(
                f"layer {layer.name!r} has weight/activation bits "
                f"{requested_w}/{requested_a}; bit-widths must be 1..{MAX_BITS}"
            )
        w_bits = weight_map[requested_w]
        a_bits = activation_map[requested_a]
        width = width_map[w_bits if w_bits > a_bits else a_bits]
        kind = layer.kind
        macs = layer.macs
        # Lanes padded to whole channel groups, in exact integer arithmetic so
        # that a smaller layer can never round to a longer time.
        out_channels = layer.out_channels or 1
        lanes_used = -(-out_channels // alignment) * alignment
        lanes_needed = out_channels
        rate = macs_per_s[width]
        sparse = False
        if kind is conv or kind is linear:
            groups = layer.groups
            if groups > 1 and groups == layer.in_channels:  # depthwise
                rate *= dw_efficiency
            else:
                per_group = layer.in_channels // groups or 1
                # The reduction (C_in/g x kernel area) is padded either per channel
                # group or as one unrolled im2col vector, whichever wastes less: a
                # 3-channel 7x7 stem pads 147 -> 160, not 3 -> 16 per tap.
                taps = 1
                for kernel in layer.kernel_size:
                    taps *= kernel
                reduction = per_group * taps
                lanes_used *= min(
                    -(-per_group // alignment) * alignment * taps,
                    -(-reduction // alignment) * alignment,
                )
                lanes_needed *= reduction
            sparse = layer.sparsity_pattern is not None and layer.sparsity_pattern in patterns
            energy_per_op = mac_energy[width]
        else:
            energy_per_op = mac_energy[width] * ELEMENT_OP_ENERGY_FRACTION
        weight_bytes = layer.weight_count * w_bits * 0.125
        if sparse:
            rate *= speedup
            weight_bytes *= sparse_storage[layer.sparsity_pattern, w_bits]
            effective_macs = macs / speedup
        else:
            effective_macs = macs
        compute_s = macs * lanes_used / lanes_needed / rate
        in_bytes = (layer.input_elements + layer.extra_input_elements) * a_bits * 0.125
        out_bytes = layer.output_elements * a_bits * 0.125
        if in_bytes + out_bytes > buffer_bytes:
            activation_dram = in_bytes + out_bytes
        else:
            activation_dram = (in_bytes if index == 0 else 0.0) + (
                out_bytes if index == last else 0.0
            )
        dram_bytes = activation_dram if resident else weight_bytes + activation_dram
        memory_s = dram_bytes / bytes_per_s
        busy_s = compute_s if compute_s >= memory_s else memory_s
        latency_s = busy_s + (launch_s if kind is conv or kind is linear else element_launch_s)
        if switch_at and index in switch_at:
            latency_s += switch_s
        if index == 0:
            latency_s += k.inference_s
        energy_j = (
            effective_macs * energy_per_op
            + (weight_bytes + in_bytes + out_bytes) * sram_pj
            + dram_bytes * dram_pj
        ) * 1e-12 + static_w * latency_s
        live = layer.live_elements or (
            layer.input_elements + layer.extra_input_elements + layer.output_elements
        )
        live_bytes = live * a_bits * 0.125
        if live_bytes > peak_live:
            peak_live = live_bytes
        total_s += latency_s
        total_j += energy_j
        weight_total += weight_bytes
        total_macs += macs
        results.append(
            _layer_cost(
                layer.name,
                _KIND_NAMES[kind],
                macs,
                compute_s * 1e3,
                memory_s * 1e3,
                latency_s * 1e3,
                energy_j * 1e3,
                dram_bytes,
                "compute" if compute_s >= memory_s else "memory",
                w_bits,
                a_bits,
                layer.sparsity_pattern if sparse else None,
            )
        )
    latency_ms = total_s * 1e3
    energy_mj = total_j * 1e3
    return Cost(
        chip_id=chip.chip_id,
        latency_ms=latency_ms,
        energy_mj=energy_mj,
        power_mw=energy_mj / latency_ms * 1e3 if latency_ms > 0 else 0.0,
        peak_memory_kb=(weight_total + peak_live) / 1024.0,
        model_size_kb=weight_total / 1024.0,
        macs=total_macs,
        layers=tuple(results),
    )


__all__ = ["ChipConstants", "chip_constants", "cost_layers", "effective_bits"]

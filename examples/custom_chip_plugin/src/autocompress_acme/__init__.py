"""autocompress chip plugin for the Acme NPU1 (a fictional chip, as a worked example).

Two hooks: ``autocompress_chips`` (the chip as data) and ``autocompress_layer_cost``
(NPU1 runs pooling on a separate fixed-function unit, so its pooling layers are
costed here instead of by the generic roofline model).
"""

from __future__ import annotations

from autocompress.hardware.cost import LayerCost
from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.spec import ChipSpec
from autocompress_acme.chips import NPU1_POOL_ELEMENTS_PER_US, acme_npu1

__version__ = "0.1.0"


@hookimpl
def autocompress_chips() -> list[ChipSpec]:
    """The chips this plugin contributes."""
    return [acme_npu1()]


@hookimpl
def autocompress_layer_cost(chip: ChipSpec, layer: LayerDescriptor) -> LayerCost | None:
    """Pooling runs on NPU1's pooling unit: time = output elements / unit throughput."""
    if chip.chip_id != "acme/npu1" or layer.kind is not LayerKind.POOL:
        return None  # foreign chip, or a layer the generic model costs well
    latency_ms = layer.output_elements / NPU1_POOL_ELEMENTS_PER_US / 1000.0
    activation_bytes = (layer.input_elements + layer.output_elements) * layer.activation_bits / 8
    energy_mj = activation_bytes * chip.sram_energy_pj_per_byte * 1e-9
    return LayerCost(
        name=layer.name,
        kind=layer.kind.value,
        macs=layer.macs,
        compute_ms=latency_ms,
        memory_ms=0.0,
        latency_ms=latency_ms,
        energy_mj=energy_mj,
        dram_bytes=0.0,
        bound="compute",
        weight_bits=layer.weight_bits,
        activation_bits=layer.activation_bits,
        sparsity_pattern=layer.sparsity_pattern,
    )

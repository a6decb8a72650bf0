"""The stable API for chip plugins: import everything a plugin needs from here.

A chip plugin (see ``docs/writing-a-chip-plugin.md``) should import only from
this module::

    from autocompress.plugin import ChipSpec, ChipBudgets, QuantizationScheme, hookimpl

Every name in :data:`__all__` keeps its meaning across minor releases of
autocompress; the modules behind it (``autocompress.hardware.*``) may move.
The deep import paths that older plugin docs taught
(``autocompress.hardware.spec``, ``.figures``, ``.hookspecs``, ``.cost``,
``.cost_model``, ``.layers``, ``.onnx_names``) keep working too.

What is here:

- the hook marker :data:`hookimpl` and :data:`ENTRY_POINT_GROUP`;
- the chip record: :class:`ChipSpec`, :class:`ChipBudgets`,
  :class:`QuantizationScheme`, :class:`QuantGranularity`;
- what the hooks receive and return: :class:`LayerDescriptor` (one layer of
  the model, shapes and bit-widths), :class:`LayerKind`, :class:`LayerCost`
  (one layer on the chip, microseconds / microjoules / kilobytes) and
  :class:`Cost` (the whole model);
- the analytical cost model, to call and adjust from an
  ``autocompress_estimate_cost`` hook: :func:`cost_layers`;
- figure helpers that derive datasheet numbers (:func:`peak_tops`,
  :func:`macs_per_cycle`, :func:`dram_bandwidth_gbps`, the energy tables);
- ONNX name helpers for export steps (:func:`read_graph_names`,
  :func:`map_modules_to_nodes`, :func:`card_compute_layers`);
- :func:`validate_chip_spec`, which lists what is wrong with a spec.
"""

from __future__ import annotations

from autocompress.hardware.cost import Cost, LayerCost
from autocompress.hardware.cost_model import cost_layers, effective_bits
from autocompress.hardware.figures import (
    dram_bandwidth_gbps,
    dram_energy_pj_per_byte,
    energy_sources,
    integer_mac_pj_45nm,
    mac_energy_pj,
    mac_energy_table,
    macs_per_cycle,
    node_energy_factor,
    peak_tops,
    sram_energy_pj_per_byte,
)
from autocompress.hardware.hookspecs import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl
from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.onnx_names import (
    COMPUTE_KINDS,
    COMPUTE_OPS,
    OnnxGraphNames,
    OnnxNode,
    card_compute_layers,
    map_modules_to_nodes,
    read_graph_names,
)
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantGranularity, QuantizationScheme
from autocompress.hardware.validate import validate_chip_spec

__all__ = [
    "COMPUTE_KINDS",
    "COMPUTE_OPS",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "ChipBudgets",
    "ChipSpec",
    "Cost",
    "LayerCost",
    "LayerDescriptor",
    "LayerKind",
    "OnnxGraphNames",
    "OnnxNode",
    "QuantGranularity",
    "QuantizationScheme",
    "card_compute_layers",
    "cost_layers",
    "dram_bandwidth_gbps",
    "dram_energy_pj_per_byte",
    "effective_bits",
    "energy_sources",
    "hookimpl",
    "integer_mac_pj_45nm",
    "mac_energy_pj",
    "mac_energy_table",
    "macs_per_cycle",
    "map_modules_to_nodes",
    "node_energy_factor",
    "peak_tops",
    "read_graph_names",
    "sram_energy_pj_per_byte",
    "validate_chip_spec",
]

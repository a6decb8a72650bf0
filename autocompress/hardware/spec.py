"""What a chip is, as data: :class:`ChipSpec` and its parts.

A chip plugin returns ``ChipSpec`` objects; the cost model, the search space
(which bit-widths, sparsity patterns and channel counts a chip can run) and the
default budgets all read from them. Units are in the field names. Each
published figure should carry its source in ``sources`` (field name -> where
the number comes from); figures nobody confirmed are listed in ``unverified``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any


class QuantGranularity(str, Enum):
    """How many scales a weight tensor gets."""

    PER_TENSOR = "per_tensor"
    PER_CHANNEL = "per_channel"


@dataclass(frozen=True)
class QuantizationScheme:
    """How the chip's toolchain represents quantized numbers.

    Attributes:
        weight_symmetric: weights use a zero point of 0.
        activation_symmetric: activations use a zero point of 0 (else asymmetric, e.g. uint8).
        weight_granularity: one scale per output channel or one per tensor.
        logarithmic: values are coded as sign + log2 magnitude (HiSilicon NNIE);
            ``log_steps_per_octave`` says how fine the log grid is.
        log_steps_per_octave: steps of the log2 grid per factor of two (NNIE: 16).
    """

    weight_symmetric: bool = True
    activation_symmetric: bool = False
    weight_granularity: QuantGranularity = QuantGranularity.PER_CHANNEL
    logarithmic: bool = False
    log_steps_per_octave: int = 16


@dataclass(frozen=True)
class ChipBudgets:
    """Budgets the chip implies; a search uses them unless the user overrides them.

    Attributes:
        memory_kb: memory a model may take (weights + live activations).
        power_mw: the power envelope available to the NPU.
        latency_ms: a default latency target (e.g. a 30 fps frame budget).
    """

    memory_kb: float
    power_mw: float
    latency_ms: float


@dataclass(frozen=True)
class ChipSpec:
    """A chip as the cost model and the search see it.

    Throughput is given per *compute width*: an operation whose weights have
    ``b_w`` bits and activations ``b_a`` bits runs at the peak of the smallest
    key in ``peak_tops_by_bits`` that is ``>= max(b_w, b_a)``. ``32`` stands
    for float32, ``16`` for int16 or fp16 (whichever the chip runs; see notes).
    One TOPS = 1e12 operations/s = 0.5e12 MACs/s.

    Attributes:
        chip_id: ``"vendor/name"``, lower case, e.g. ``"rockchip/rv1126"``.
        vendor: vendor name as users know it, e.g. ``"Rockchip"``.
        display_name: e.g. ``"RV1126"``.
        npu_clock_mhz: NPU clock the peak figures refer to.
        peak_tops_by_bits: compute width (bits) -> dense peak tera-operations/s.
        weight_bits_supported: weight bit-widths the toolchain deploys.
        activation_bits_supported: activation bit-widths the toolchain deploys.
        channel_alignment: channel count parallelism of the array; a layer
            whose channels are not a multiple of it wastes part of the last group.
        sparsity_patterns: semi-structured patterns the chip accelerates, e.g. ``("2:4",)``.
        sparsity_speedup: compute speed-up on a layer using a supported pattern.
        onchip_buffer_kb: on-chip SRAM the NPU can keep weights/activations in.
        dram_bandwidth_gbps: DRAM bandwidth in gigabytes per second.
        energy_per_mac_pj_by_bits: compute width (bits) -> energy of one MAC in pJ.
        sram_energy_pj_per_byte: energy per byte moved to/from on-chip buffers.
        dram_energy_pj_per_byte: energy per byte moved to/from DRAM.
        static_power_mw: leakage + always-on power while the NPU is busy.
        launch_overhead_us: fixed time per (fused) layer launched on the NPU.
        quantization: the toolchain's quantization scheme.
        budgets: what a model may take on this chip by default.
        compute_efficiency: fraction of peak a well-shaped layer reaches (calibration knob).
        bandwidth_efficiency: fraction of DRAM bandwidth reached (calibration knob).
        depthwise_efficiency: extra efficiency factor on depthwise convolutions (calibration knob).
        weights_on_chip: weights stay resident in on-chip memory across inferences
            (Hailo-8-type dataflow accelerators without DRAM traffic for weights):
            when all of a network's weights fit ``onchip_weight_kb``, no weight is
            read from DRAM. When they do not fit, the network runs as
            ⌈weights / capacity⌉ contexts: every weight streams from DRAM once per
            inference and each switch to a further context costs ``context_switch_us``.
        onchip_weight_kb: on-chip memory for resident weights (0 = ``onchip_buffer_kb``).
        context_switch_us: time of one context switch when the weights do not fit.
        element_launch_overhead_us: fixed time per pooling / element-wise / concatenation
            layer, when it differs from ``launch_overhead_us`` (None = the same); toolchains
            often run these in place or fused (calibration knob).
        inference_overhead_us: fixed time per inference, independent of the network: the
            runtime call, input/output conversion and transfer, a DSP remote call (calibration
            knob; 0 = not modelled). Costed as part of the first layer.
        npu_family: chips sharing one NPU design that differ only in clock or memory (e.g.
            RV1109 and RV1126); ``autocompress calibrate`` fits the rows of a family's chips
            together, with shared knobs ("" = the chip alone).
        sources: field name -> source of the figure (datasheet, paper, toolkit doc).
        unverified: names of fields whose figure no primary source confirmed.
        notes: free text shown by ``autocompress chips show``.
    """

    chip_id: str
    vendor: str
    display_name: str
    npu_clock_mhz: float
    peak_tops_by_bits: Mapping[int, float]
    weight_bits_supported: tuple[int, ...]
    activation_bits_supported: tuple[int, ...]
    channel_alignment: int
    onchip_buffer_kb: float
    dram_bandwidth_gbps: float
    energy_per_mac_pj_by_bits: Mapping[int, float]
    sram_energy_pj_per_byte: float
    dram_energy_pj_per_byte: float
    static_power_mw: float
    launch_overhead_us: float
    quantization: QuantizationScheme
    budgets: ChipBudgets
    sparsity_patterns: tuple[str, ...] = ()
    sparsity_speedup: float = 1.0
    compute_efficiency: float = 0.8
    bandwidth_efficiency: float = 0.7
    depthwise_efficiency: float = 0.25
    sources: Mapping[str, str] = field(default_factory=dict)
    unverified: tuple[str, ...] = ()
    notes: str = ""
    # Added after 0.1 (keep new fields last, with defaults: plugins may pass fields positionally).
    weights_on_chip: bool = False
    onchip_weight_kb: float = 0.0
    context_switch_us: float = 0.0
    element_launch_overhead_us: float | None = None
    inference_overhead_us: float = 0.0
    npu_family: str = ""

    def __hash__(self) -> int:  # mappings are not hashable; the id is unique
        return hash(self.chip_id)

    @property
    def vendor_key(self) -> str:
        """The ``vendor`` part of ``chip_id``."""
        return self.chip_id.split("/", 1)[0]

    def compute_bits(self, weight_bits: int, activation_bits: int) -> int:
        """The compute width a layer with these bit-widths runs at on this chip."""
        need = max(weight_bits, activation_bits)
        widths = sorted(self.peak_tops_by_bits)
        for width in widths:
            if width >= need:
                return width
        return widths[-1]

    def to_dict(self) -> dict[str, Any]:
        """Every field in JSON-ready form: enums as their values, tuples as lists and
        mapping keys (bit-widths) as strings; ``quantization`` and ``budgets`` as dicts."""
        data = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        data["quantization"] = _jsonable(asdict(self.quantization))
        data["budgets"] = asdict(self.budgets)
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value

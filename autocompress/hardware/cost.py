"""The result of costing a network on a chip: :class:`Cost` and :class:`LayerCost`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from autocompress.core.cost_totals import CostTotals
from autocompress.core.metrics import cost_metrics


@dataclass(frozen=True)
class LayerCost:
    """Simulated cost of one layer on one chip.

    Attributes:
        name / kind: as in the layer descriptor.
        macs: multiply-accumulates.
        compute_ms: time the arithmetic takes at the achieved efficiency.
        memory_ms: time the DRAM traffic takes.
        latency_ms: roofline max(compute, memory) + launch overhead.
        energy_mj: MAC + SRAM + DRAM + static energy of this layer.
        dram_bytes: bytes that cross DRAM.
        bound: ``"compute"`` or ``"memory"``, whichever dominated.
        weight_bits / activation_bits / sparsity_pattern: precision used.
    """

    name: str
    kind: str
    macs: int
    compute_ms: float
    memory_ms: float
    latency_ms: float
    energy_mj: float
    dram_bytes: float
    bound: str
    weight_bits: int
    activation_bits: int
    sparsity_pattern: str | None = None


@dataclass(frozen=True)
class Cost:
    """Simulated cost of one inference of a network on one chip.

    Attributes:
        chip_id: the chip it was costed on.
        latency_ms: end-to-end latency of one inference.
        energy_mj: energy of one inference.
        power_mw: average power while inferring (energy / latency).
        peak_memory_kb: weights + the largest set of live activations.
        model_size_kb: weight storage at the chosen bit-widths.
        macs: total multiply-accumulates.
        layers: per-layer breakdown, in execution order.
    """

    chip_id: str
    latency_ms: float
    energy_mj: float
    power_mw: float
    peak_memory_kb: float
    model_size_kb: float
    macs: int
    layers: tuple[LayerCost, ...] = ()

    def metrics(self) -> dict[str, float]:
        """The totals keyed by the shared metric names (the cost metrics of ``core.metrics``)."""
        return {m.name: float(getattr(self, str(m.cost_field))) * m.scale for m in cost_metrics()}

    def totals(self) -> CostTotals:
        """The totals a trial record keeps (:meth:`metrics` plus ``macs``)."""
        return CostTotals(**self.metrics(), macs=float(self.macs))

    def to_dict(self, *, with_layers: bool = True) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        if not with_layers:
            data.pop("layers")
        return data

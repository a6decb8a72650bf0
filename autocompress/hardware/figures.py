"""Derive chip figures from published ones, the same way for every vendor.

Chip plugins call these so that a derived number (MACs per cycle from TOPS and
clock, energy per MAC at a bit-width and process node, DRAM bandwidth from bus
width and transfer rate) is computed in one place, in code, from the figures a
datasheet gives. Nothing here names a vendor.

Energy figures start from Horowitz, "Computing's energy problem (and what we can
do about it)", ISSCC 2014, 45 nm:

==========================  ===========
operation                   energy (pJ)
==========================  ===========
int8 add / mult             0.03 / 0.2
int32 add / mult            0.1 / 3.1
fp16 add / mult             0.4 / 1.1
fp32 add / mult             0.9 / 3.7
64-bit SRAM read 8/32 KB/1 MB  10 / 20 / 100
64-bit DRAM access          1300–2600
==========================  ===========

Integer multipliers scale with ``b_w * b_a`` and adders linearly with their
width (Accelergy/Aladdin component models). A MAC on an NPU array costs more
than its ALU: Eyeriss (ISCA 2016) normalises a register-file access to 1× a MAC,
and each MAC reads a weight, an activation and a partial sum from registers;
:data:`ARRAY_OVERHEAD` (4×) folds that in. Newer process nodes scale logic
energy down roughly linearly with feature size (:func:`node_energy_factor`; a
first-order approximation, Stillmaker & Baas 2017 give factors of the same
order). DRAM energy is an interface property and does not scale with the node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

HOROWITZ_NODE_NM = 45.0
INT8_MULT_PJ = 0.2
INT8_ADD_PJ = 0.03
FP16_MAC_PJ = 1.1 + 0.4
FP32_MAC_PJ = 3.7 + 0.9
ARRAY_OVERHEAD = 4.0
"""ALU energy + three register-file accesses at 1× each (Eyeriss normalisation)."""

SRAM_PJ_PER_64BIT_BY_KB: tuple[tuple[float, float], ...] = (
    (8.0, 10.0),
    (32.0, 20.0),
    (1024.0, 100.0),
)
"""(array size KB, pJ per 64-bit read) at 45 nm, Horowitz ISSCC 2014."""

DRAM_PJ_PER_64BIT: Mapping[str, float] = {
    "DDR3": 2600.0,  # upper end of Horowitz's 1.3–2.6 nJ range
    "DDR4": 1950.0,  # middle of the range
    "LPDDR4": 1300.0,  # lower end of the range
    "LPDDR4X": 1300.0,
    "LPDDR5": 1300.0 * 0.7,  # LPDDR5 ~30 % less energy per bit than LPDDR4X (JEDEC/vendor claims)
    "LPDDR5X": 1300.0 * 0.6,
}
"""pJ per 64-bit DRAM access by memory type (controller + I/O + array)."""

HOROWITZ_SOURCE = "Horowitz, ISSCC 2014, 45 nm energy table"
EYERISS_SOURCE = "Chen et al., Eyeriss, ISCA 2016 (register file 1x MAC)"


def macs_per_cycle(peak_tops: float, clock_mhz: float) -> float:
    """MAC units of an array from its peak (1 MAC = 2 operations) and clock."""
    return peak_tops * 1e12 / 2.0 / (clock_mhz * 1e6)


def peak_tops(macs_per_cycle_count: float, clock_mhz: float) -> float:
    """Peak tera-operations per second of ``macs_per_cycle_count`` MACs at ``clock_mhz``."""
    return macs_per_cycle_count * 2.0 * clock_mhz * 1e6 / 1e12


def dram_bandwidth_gbps(bus_width_bits: int, mega_transfers_per_s: float) -> float:
    """Theoretical DRAM bandwidth in GB/s of a bus of ``bus_width_bits`` at MT/s."""
    return bus_width_bits / 8.0 * mega_transfers_per_s * 1e6 / 1e9


def node_energy_factor(process_node_nm: float) -> float:
    """Logic energy at ``process_node_nm`` relative to 45 nm (linear in feature size)."""
    return process_node_nm / HOROWITZ_NODE_NM


def integer_mac_pj_45nm(weight_bits: int, activation_bits: int) -> float:
    """ALU energy of one integer MAC at 45 nm: multiplier ~ b_w*b_a, adder ~ linear.

    The adder accumulates the ``b_w + b_a``-bit product (int8: 16-bit add).
    """
    mult = INT8_MULT_PJ * weight_bits * activation_bits / 64.0
    add = INT8_ADD_PJ * (weight_bits + activation_bits) / 8.0
    return mult + add


def mac_energy_pj(
    compute_bits: int,
    process_node_nm: float,
    *,
    float_math: bool = False,
    array_overhead: float = ARRAY_OVERHEAD,
) -> float:
    """Energy of one MAC on an NPU array at ``compute_bits`` (weights and activations).

    ``float_math`` selects Horowitz's fp16/fp32 figures for 16/32 bits instead of
    integer ones (chips whose 16-bit path is fp16, GPUs running fp32).
    """
    if float_math and compute_bits == 16:
        alu = FP16_MAC_PJ
    elif float_math and compute_bits == 32:
        alu = FP32_MAC_PJ
    else:
        alu = integer_mac_pj_45nm(compute_bits, compute_bits)
    return alu * array_overhead * node_energy_factor(process_node_nm)


def mac_energy_table(
    compute_widths: Iterable[int],
    process_node_nm: float,
    *,
    float_widths: Iterable[int] = (),
    array_overhead: float = ARRAY_OVERHEAD,
) -> dict[int, float]:
    """Compute width -> pJ per MAC for every width a chip runs (rounded to 4 digits).

    ``float_widths`` are the widths the chip computes in floating point (fp16/fp32);
    ``array_overhead`` is the energy of one MAC on the array relative to its ALU
    (4 for a spatial NPU array; GPUs spend more on register files and control).
    """
    floats = set(float_widths)
    return {
        bits: round(
            mac_energy_pj(
                bits, process_node_nm, float_math=bits in floats, array_overhead=array_overhead
            ),
            4,
        )
        for bits in sorted(compute_widths)
    }


def sram_energy_pj_per_byte(buffer_kb: float, process_node_nm: float) -> float:
    """Energy per byte read from an on-chip SRAM of ``buffer_kb`` (Horowitz, node-scaled).

    Uses the smallest tabulated array at least as large as the buffer (the largest
    entry, 1 MB, for bigger buffers: real NPUs bank them).
    """
    pj_per_64bit = SRAM_PJ_PER_64BIT_BY_KB[-1][1]
    for size_kb, energy in SRAM_PJ_PER_64BIT_BY_KB:
        if buffer_kb <= size_kb:
            pj_per_64bit = energy
            break
    return round(pj_per_64bit / 8.0 * node_energy_factor(process_node_nm), 4)


def dram_energy_pj_per_byte(memory_type: str) -> float:
    """Energy per byte of DRAM traffic for a memory type (``"LPDDR4X"`` …)."""
    return round(DRAM_PJ_PER_64BIT[memory_type.upper()] / 8.0, 2)


def energy_sources(array_overhead: float = ARRAY_OVERHEAD) -> dict[str, str]:
    """``sources`` entries for energy figures derived with this module."""
    return {
        "energy_per_mac_pj_by_bits": (
            f"derived: {HOROWITZ_SOURCE}; multiplier ~ b_w*b_a, adder linear; "
            f"x{array_overhead:g} array overhead ({EYERISS_SOURCE}); scaled linearly "
            "from 45 nm to the process node"
        ),
        "sram_energy_pj_per_byte": (
            f"derived: {HOROWITZ_SOURCE}, SRAM row for the buffer size, node-scaled"
        ),
        "dram_energy_pj_per_byte": (
            f"{HOROWITZ_SOURCE}: 64-bit DRAM access 1.3-2.6 nJ, chosen by memory type"
        ),
    }

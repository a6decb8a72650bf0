"""NVIDIA Jetson Orin Nano as :class:`ChipSpec` data.

The Orin Nano has no DLA: TensorRT runs the network on the Ampere GPU's tensor
cores. Figures are the 8 GB module's in its 15 W mode (GPU at 625 MHz).
"""

from __future__ import annotations

from autocompress.hardware.figures import (
    dram_bandwidth_gbps,
    dram_energy_pj_per_byte,
    energy_sources,
    mac_energy_table,
    peak_tops,
    sram_energy_pj_per_byte,
)
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantGranularity, QuantizationScheme

ORIN_NANO_DENSE_INT8_TOPS = 20.0
ORIN_NANO_SPARSE_INT8_TOPS = 40.0
ORIN_NANO_GPU_CLOCK_MHZ = 625.0
ORIN_NANO_CUDA_CORES = 1024
GPU_ARRAY_OVERHEAD = 8.0
"""A GPU spends more per MAC on register files and instruction issue than a spatial NPU array."""


def nvidia_chips() -> list[ChipSpec]:
    """Every NVIDIA chip this plugin contributes."""
    node_nm = 8.0
    l2_kb = 2048.0
    fp32_tops = round(peak_tops(ORIN_NANO_CUDA_CORES, ORIN_NANO_GPU_CLOCK_MHZ), 3)
    orin_nano = ChipSpec(
        chip_id="nvidia/orin-nano",
        vendor="NVIDIA",
        display_name="Jetson Orin Nano 8GB (GPU, 15 W mode)",
        npu_clock_mhz=ORIN_NANO_GPU_CLOCK_MHZ,
        peak_tops_by_bits={
            8: ORIN_NANO_DENSE_INT8_TOPS,
            16: ORIN_NANO_DENSE_INT8_TOPS / 2,
            32: fp32_tops,
        },
        weight_bits_supported=(4, 8, 16, 32),
        activation_bits_supported=(8, 16, 32),
        channel_alignment=16,
        sparsity_patterns=("2:4",),
        sparsity_speedup=ORIN_NANO_SPARSE_INT8_TOPS / ORIN_NANO_DENSE_INT8_TOPS,
        onchip_buffer_kb=l2_kb,
        # 128-bit LPDDR5 at 4266 MT/s = 68 GB/s.
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(128, 4266.0), 2),
        energy_per_mac_pj_by_bits=mac_energy_table(
            (8, 16, 32), node_nm, float_widths=(16, 32), array_overhead=GPU_ARRAY_OVERHEAD
        ),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(l2_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR5"),
        static_power_mw=1500.0,
        launch_overhead_us=5.0,
        quantization=QuantizationScheme(
            weight_symmetric=True,
            activation_symmetric=True,
            weight_granularity=QuantGranularity.PER_CHANNEL,
        ),
        budgets=ChipBudgets(memory_kb=1048576.0, power_mw=15000.0, latency_ms=16.7),
        compute_efficiency=0.5,
        bandwidth_efficiency=0.75,
        depthwise_efficiency=0.2,
        sources={
            "npu_clock_mhz": "NVIDIA Jetson Orin Nano datasheet: GPU max 625 MHz (15 W mode)",
            "peak_tops_by_bits": (
                "NVIDIA Jetson Orin Nano 8GB datasheet: 20 dense / 40 sparse int8 TOPS; fp16 "
                "tensor at half the int8 rate (estimate); fp32 derived: 1024 CUDA cores x 2 x "
                "625 MHz"
            ),
            "weight_bits_supported": "TensorRT: fp32, fp16, int8; int4 weight-only (TensorRT 10)",
            "activation_bits_supported": "TensorRT: fp32, fp16, int8",
            "channel_alignment": "NVIDIA DL performance guide: int8 tensor cores want C % 16 == 0",
            "sparsity_patterns": "NVIDIA Ampere: 2:4 semi-structured sparsity (TensorRT)",
            "sparsity_speedup": "datasheet: 40 sparse / 20 dense TOPS",
            "onchip_buffer_kb": "estimate: GPU L2 cache of the Orin Nano",
            "dram_bandwidth_gbps": "NVIDIA datasheet: 128-bit LPDDR5, 68 GB/s",
            "static_power_mw": "estimate: GPU + memory idle share of the 15 W module",
            "launch_overhead_us": "estimate: CUDA kernel launch inside a TensorRT engine",
            "quantization": "TensorRT: symmetric, per-channel weights, per-tensor activations",
            "budgets": "15 W power mode, 1 GB of the 8 GB for the model, 60 fps",
            "process_node": "Samsung 8 nm",
            **energy_sources(GPU_ARRAY_OVERHEAD),
        },
        unverified=(
            "onchip_buffer_kb",
            "static_power_mw",
            "launch_overhead_us",
        ),
        notes=(
            "Runs on the Ampere GPU (no DLA on Orin Nano) through TensorRT. 2:4 sparsity "
            "doubles tensor-core throughput; fp16 at about half the int8 rate (unverified). "
            "Super mode (1.02 GHz, 102 GB/s, 25 W) is not modelled."
        ),
    )
    return [orin_nano]

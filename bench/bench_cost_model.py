"""Benchmark of the simulated NPU cost model (issue 2, "Speed").

Targets: a full ResNet-50 estimate on one chip, after descriptor extraction,
under 1 ms; one model scored on every installed chip under 10 ms.

    python bench/bench_cost_model.py                 # ResNet-50, 224x224, int8
    python bench/bench_cost_model.py --runs 5000 --chip rockchip/rk3588

Prints the machine, then medians (and 90th percentiles) in microseconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), or the platform's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed_us(function: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and 90th percentile of ``runs`` calls, in microseconds (after 20 warm-up calls)."""
    for _ in range(20):
        function()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--chip", default="rockchip/rv1126")
    parser.add_argument("--bits", type=int, default=8, help="weight and activation bits")
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from autocompress.core.models import build_model
    from autocompress.hardware.cost_model import cost_layers
    from autocompress.hardware.estimate import estimate_costs
    from autocompress.hardware.extract import extract_layers
    from autocompress.hardware.plugins import get_chip, list_chips

    model = build_model(args.model)
    shape = (3, args.input_size, args.input_size)
    start = time.perf_counter()
    layers = extract_layers(model, shape, weight_bits=args.bits, activation_bits=args.bits)
    extract_ms = (time.perf_counter() - start) * 1e3
    chip = get_chip(args.chip)
    chips = list_chips()

    one_median, one_p90 = timed_us(lambda: cost_layers(layers, chip), args.runs)
    all_median, all_p90 = timed_us(lambda: estimate_costs(layers, chips), max(args.runs // 4, 50))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, load average {load:.2f}")
    print(f"python {platform.python_version()}, torch {torch.__version__}")
    print(
        f"model: {args.model} {shape}, w{args.bits}a{args.bits}, "
        f"{len(layers)} layers, {sum(x.macs for x in layers) / 1e9:.2f} G ops"
    )
    print(f"extraction (once per architecture): {extract_ms:.0f} ms")
    print(
        f"cost_layers on {args.chip}: median {one_median:.0f} us, p90 {one_p90:.0f} us "
        f"(target < 1000 us) over {args.runs} runs"
    )
    print(
        f"estimate_costs on all {len(chips)} installed chips: median {all_median:.0f} us, "
        f"p90 {all_p90:.0f} us (target < 10000 us)"
    )


if __name__ == "__main__":
    main()

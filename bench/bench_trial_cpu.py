"""Seconds per trial of the embedded default (digits, small_cnn) on this CPU.

A trial as the search runs it: build the student from a sampled config
(width, per-layer prune ratios and bits), extract its layer descriptors for
the cost model, distill it with the default fine-tune budget (teacher logits
cached once per run), and evaluate it on the validation split.

    python bench/bench_trial_cpu.py --trials 12 --threads 1

Prints one line per trial and a JSON summary (median / mean seconds per stage).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch

from autocompress.compress import student as S
from autocompress.compress.teacher import train_teacher
from autocompress.core.data import load_dataset
from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantizationScheme


def cpu_chip() -> ChipSpec:
    return ChipSpec(
        chip_id="bench/generic-npu",
        vendor="bench",
        display_name="generic NPU",
        npu_clock_mhz=1000.0,
        peak_tops_by_bits={8: 2.0, 16: 0.5, 32: 0.1},
        weight_bits_supported=(4, 8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=8,
        onchip_buffer_kb=512.0,
        dram_bandwidth_gbps=10.0,
        energy_per_mac_pj_by_bits={8: 0.2, 16: 0.8, 32: 3.0},
        sram_energy_pj_per_byte=1.0,
        dram_energy_pj_per_byte=100.0,
        static_power_mw=100.0,
        launch_overhead_us=5.0,
        quantization=QuantizationScheme(),
        budgets=ChipBudgets(memory_kb=1000.0, power_mw=1000.0, latency_ms=10.0),
    )


def sample_config(rng: random.Random, prunable: list[str], layers: list[str]) -> TrialConfig:
    return TrialConfig(
        width_multiplier=rng.choice([0.25, 0.5, 0.75, 1.0]),
        prune_ratios={n: rng.choice([0.0, 0.25, 0.5]) for n in prunable[1:]},
        weight_bits={n: rng.choice([4, 8, 16]) for n in layers},
        activation_bits={n: rng.choice([8, 16]) for n in layers},
        kd_temperature=rng.choice([2.0, 4.0]),
        kd_alpha=rng.choice([0.5, 0.7, 0.9]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--teacher-epochs", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from autocompress.hardware.extract import extract_layers

    t0 = time.perf_counter()
    data = load_dataset("digits", seed=args.seed)
    load_s = time.perf_counter() - t0
    teacher = train_teacher("small_cnn", data, epochs=args.teacher_epochs, device="cpu")
    logits = S.teacher_logits(teacher.model, data.train.images, "cpu")
    val_logits = S.teacher_logits(teacher.model, data.val.images, "cpu")
    prunable = S.prunable_layers(teacher.model, data.input_shape)
    layers = S.quantizable_layers(teacher.model)
    rng, chip = random.Random(args.seed), cpu_chip()
    rows = []
    for i in range(args.trials):
        config = sample_config(rng, prunable, layers)
        t = time.perf_counter()
        student = S.build_student(teacher.model, config, chip, data.input_shape)
        t_build = time.perf_counter()
        extract_layers(student, data.input_shape)
        t_extract = time.perf_counter()
        S.finetune(student, teacher.model, data, config, teacher_logits=logits)
        t_tune = time.perf_counter()
        result = S.evaluate(student, data.val, teacher_logits=val_logits)
        t_end = time.perf_counter()
        row = {
            "build_s": t_build - t,
            "extract_s": t_extract - t_build,
            "finetune_s": t_tune - t_extract,
            "evaluate_s": t_end - t_tune,
            "trial_s": t_end - t,
            "val_accuracy": result["accuracy"],
            "width": config.width_multiplier,
        }
        rows.append(row)
        print(f"trial {i:2d}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} thread(s)",
        "torch": torch.__version__,
        "load_dataset_s": load_s,
        "teacher_train_s": teacher.seconds,
        "teacher_val_accuracy": teacher.val_accuracy,
        "trials": len(rows),
    }
    for key in ("build_s", "extract_s", "finetune_s", "evaluate_s", "trial_s"):
        values = [r[key] for r in rows]
        summary[f"median_{key}"] = statistics.median(values)
        summary[f"mean_{key}"] = statistics.fmean(values)
    summary["median_val_accuracy"] = statistics.median(r["val_accuracy"] for r in rows)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

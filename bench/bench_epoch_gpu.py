"""Seconds per fine-tune epoch of one student on a GPU: eager, CUDA graphs, compiled, bare bf16.

The issue-10 target "per-trial fine-tune epoch ≤ 1.5× a bare bf16 epoch of the same
student" compares the search's own training step (``autocompress.compress.student.finetune``
with the settings a search trial uses: cached teacher logits, batch from
``choose_fast_path``) against a plain bf16 float epoch of the same pruned architecture
(batch-norm in the graph, no fake quantization, cross-entropy, data on the GPU). Also
the recovery step (augmentation + the teacher's forward on every batch).

    python bench/bench_epoch_gpu.py --data-root .data --chip rockchip/rv1126 --width 0.5

Modes run in one process, each timed on its second epoch (the first warms cudnn);
``AUTOCOMPRESS_CUDA_GRAPHS=0`` is set for the eager rows. Results go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import torch
from bench_compress_gpu import float_epoch  # the bare bf16 epoch (same directory)

from autocompress.compress import student as S
from autocompress.compress.cuda_graphs import CUDA_GRAPHS_ENV
from autocompress.compress.fastpath import choose_fast_path
from autocompress.compress.slim import slim
from autocompress.compress.training import resolve_device
from autocompress.core.data import load_dataset
from autocompress.core.models import ModelSpec, load_checkpoint
from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.plugins import get_chip


def uniform_config(teacher: torch.nn.Module, width: float, bits: int) -> TrialConfig:
    layers = S.quantizable_layers(teacher)
    return TrialConfig(
        width_multiplier=width,
        weight_bits={n: bits for n in layers},
        activation_bits={n: 8 for n in layers},
        kd_temperature=4.0,
        kd_alpha=0.9,
    )


def timed_finetune(student, teacher, data, config, *, graphs: bool, **kwargs) -> dict:
    os.environ[CUDA_GRAPHS_ENV] = "1" if graphs else "0"
    S.finetune(copy.deepcopy(student), teacher, data, config, steps=20, **kwargs)  # warm-up
    stats = S.finetune(copy.deepcopy(student), teacher, data, config, epochs=1, **kwargs)
    return {"seconds": stats["seconds"], "cuda_graphs": stats.get("cuda_graphs", 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", type=Path, help="checkpoint (default: untrained resnet18)")
    parser.add_argument("--data-root", type=Path, default=Path(".data"))
    parser.add_argument("--chip", default="rockchip/rv1126")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--out", type=Path, default=Path("epoch_gpu.json"))
    parser.add_argument("--limit", type=int, help="images per split (check the script)")
    args = parser.parse_args()

    device = resolve_device("auto")
    torch.backends.cudnn.benchmark = True
    data = load_dataset("cifar10", root=args.data_root, device=device, limit=args.limit)
    if args.teacher is not None:
        teacher, _spec, _ = load_checkpoint(args.teacher)
    else:
        teacher = ModelSpec("resnet18", num_classes=10, small_input=True).build()
    teacher.eval().to(device)
    chip = get_chip(args.chip)
    config = uniform_config(teacher, args.width, args.bits)
    student = S.build_student(teacher, config, chip, data.input_shape)
    fast = choose_fast_path(device, epochs=1, train_images=len(data.train))
    logits = S.teacher_logits(teacher, data.train.images, device)
    common = dict(batch_size=fast.batch_size, device=device, lr=1e-3)
    results: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "chip": args.chip,
        "width": args.width,
        "weight_bits": args.bits,
        "batch_size": fast.batch_size,
        "fast_path": fast.reason,
        "train_images": len(data.train),
    }
    cached = dict(common, teacher_logits=logits)
    results["search_step_eager"] = timed_finetune(
        student, teacher, data, config, graphs=False, **cached
    )
    results["search_step_graphs"] = timed_finetune(
        student, teacher, data, config, graphs=True, **cached
    )
    fresh = dict(common, augment=True)
    results["recovery_step_eager"] = timed_finetune(
        student, teacher, data, config, graphs=False, **fresh
    )
    results["recovery_step_graphs"] = timed_finetune(
        student, teacher, data, config, graphs=True, **fresh
    )
    if args.compile:
        os.environ[CUDA_GRAPHS_ENV] = "1"
        compiled = copy.deepcopy(student)
        t0 = time.perf_counter()
        S.finetune(compiled, teacher, data, config, epochs=1, compile=True, **cached)
        first = time.perf_counter() - t0
        second = S.finetune(compiled, teacher, data, config, epochs=1, compile=True, **cached)
        results["search_step_compiled"] = {"first_s": first, "seconds": second["seconds"]}
    float_student = copy.deepcopy(teacher)
    slim(
        float_student,
        torch.randn(1, *data.input_shape, device=device),
        width_multiplier=args.width,
        prune_ratios={},
        channel_alignment=chip.channel_alignment,
    )
    images, labels = data.train.images.to(device), data.train.labels.to(device)
    float_epoch(
        copy.deepcopy(float_student), images, labels, batch_size=fast.batch_size, device=device
    )
    bare = float_epoch(float_student, images, labels, batch_size=fast.batch_size, device=device)
    results["bare_bf16_epoch_s"] = bare
    for key in (
        "search_step_eager",
        "search_step_graphs",
        "recovery_step_eager",
        "recovery_step_graphs",
    ):
        results[key]["x_bare_bf16"] = results[key]["seconds"] / bare
    print(json.dumps(results, indent=2), flush=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

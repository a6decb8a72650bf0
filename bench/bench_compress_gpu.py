"""GPU benchmark of the compression engine (issue 3, "Performance").

One run, side by side, on CIFAR-10 (the JPEG ImageFolder archive) with a
ResNet-18 teacher (small-input stem) and its student at 50 % channels with
4-bit weights (8-bit on the first conv and the classifier) and 8-bit
activations:

- ours: one epoch of ``autocompress.compress.student.finetune`` — KD loss with
  the teacher's logits cached once, per-channel weight / per-tensor activation
  fake quantization, BN folded, data on the GPU, bf16 autocast, channels-last
  (eager, and with ``compile=True``); also with fresh teacher forwards
  (augmentation on);
- (a) a plain hand-written loop doing the same work: torchvision ImageFolder +
  DataLoader (8 workers, pinned memory), fp32, teacher forward on every batch;
- (b) a plain bf16 float training epoch of the same pruned student (BN in the
  graph, no fake quantization, cross-entropy) with the data already on the GPU.

Then the accuracy of that student after a short distillation (default 5
epochs) against the teacher's. Results go to a JSON file.

    python -m autocompress train --model resnet18 --dataset cifar10 --epochs 60 \\
        --batch-size 256 --lr 0.1 --out .data/r18.pt --data-root .data
    python bench/bench_compress_gpu.py --teacher .data/r18.pt --data-root .data

``--tiny`` runs every step on a few hundred images (on the CPU if no GPU) to
check the script itself.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tarfile
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from autocompress.compress import student as S
from autocompress.compress.distill import kd_loss
from autocompress.compress.slim import slim
from autocompress.compress.training import resolve_device
from autocompress.core.data import load_dataset
from autocompress.core.models import ModelSpec, load_checkpoint
from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantizationScheme


def bench_chip() -> ChipSpec:
    """A generic int4/int8 NPU: 16-channel alignment, symmetric per-channel weights."""
    return ChipSpec(
        chip_id="bench/generic-npu",
        vendor="bench",
        display_name="generic int4/int8 NPU",
        npu_clock_mhz=1000.0,
        peak_tops_by_bits={4: 8.0, 8: 4.0, 16: 1.0, 32: 0.25},
        weight_bits_supported=(4, 8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=16,
        onchip_buffer_kb=1024.0,
        dram_bandwidth_gbps=25.0,
        energy_per_mac_pj_by_bits={8: 0.2, 16: 0.8, 32: 3.0},
        sram_energy_pj_per_byte=1.0,
        dram_energy_pj_per_byte=100.0,
        static_power_mw=200.0,
        launch_overhead_us=5.0,
        quantization=QuantizationScheme(),
        budgets=ChipBudgets(memory_kb=4096.0, power_mw=3000.0, latency_ms=10.0),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def w4a8_config(teacher: torch.nn.Module) -> TrialConfig:
    layers = S.quantizable_layers(teacher)
    weight_bits = {n: 4 for n in layers}
    weight_bits[layers[0]] = weight_bits[layers[-1]] = 8
    return TrialConfig(
        width_multiplier=0.5,
        weight_bits=weight_bits,
        activation_bits={n: 8 for n in layers},
        kd_temperature=4.0,
        kd_alpha=0.9,
    )


def float_epoch(model, images, labels, *, batch_size, device) -> float:
    """(b): plain bf16 training epoch, data on the GPU, cross-entropy, SGD."""
    model.train().to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    order = torch.randperm(len(labels), device=device)
    sync(device)
    start = time.perf_counter()
    for i in range(0, len(labels) - batch_size + 1, batch_size):
        idx = order[i : i + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(model(images[idx]).float(), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - start


def dataloader_epoch(student, teacher, train_dir, mean, std, *, batch_size, device, config, limit):
    """(a): ImageFolder + DataLoader, fp32, teacher forward per batch, same KD + fake-quant."""
    import torchvision
    from torchvision import transforms

    dataset = torchvision.datasets.ImageFolder(
        str(train_dir),
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]),
    )
    if limit is not None:
        dataset = torch.utils.data.Subset(
            dataset, list(range(0, len(dataset), len(dataset) // limit))
        )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=min(8, os.cpu_count() or 1),
        pin_memory=device.type == "cuda",
        drop_last=True,
    )
    student.train().to(device)
    teacher.eval().to(device)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    images_seen = 0
    sync(device)
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.no_grad():
            target = teacher(x)
        loss = kd_loss(
            student(x), target, y, temperature=config.kd_temperature, alpha=config.kd_alpha
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        images_seen += len(y)
    sync(device)
    return time.perf_counter() - start, images_seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", type=Path, help="checkpoint from `autocompress train`")
    parser.add_argument("--data-root", type=Path, default=Path(".data"))
    parser.add_argument("--out", type=Path, default=Path("compress_gpu.json"))
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--kd-epochs", type=float, default=5.0)
    parser.add_argument("--kd-lrs", default="1e-3", help="comma-separated AdamW lrs")
    parser.add_argument(
        "--tiny", action="store_true", help="a few hundred images: check the script"
    )
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    device = resolve_device("auto")
    torch.backends.cudnn.benchmark = True
    limit = 512 if args.tiny else None
    results: dict = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor(),
        "torch": torch.__version__,
        "batch_size": args.batch_size,
    }
    t0 = time.perf_counter()
    data = load_dataset("cifar10", root=args.data_root, device=device, limit=limit)
    results["load_dataset_s"] = time.perf_counter() - t0
    results["train_images"] = len(data.train)

    if args.teacher is not None:
        teacher, spec, extra = load_checkpoint(args.teacher)
        results["teacher_checkpoint_extra"] = {
            k: v for k, v in extra.items() if k in ("val_accuracy", "test_accuracy", "epochs")
        }
    else:
        spec = ModelSpec("resnet18", num_classes=10, small_input=True)
        teacher = spec.build()
    teacher.eval().to(device)
    teacher_test = S.evaluate(teacher, data.test, device=device)["accuracy"]
    results["teacher_test_accuracy"] = teacher_test

    chip, config = bench_chip(), w4a8_config(teacher)
    t0 = time.perf_counter()
    student = S.build_student(teacher, config, chip, data.input_shape)
    results["build_student_s"] = time.perf_counter() - t0
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    results["teacher_params"], results["student_params"] = params(teacher), params(student)

    t0 = time.perf_counter()
    logits = S.teacher_logits(teacher, data.train.images, device)
    sync(device)
    results["teacher_logits_s"] = time.perf_counter() - t0

    # ---- ours: one KD + fake-quant epoch (second call timed; the first warms cudnn) ----------
    bs = args.batch_size
    common = dict(batch_size=bs, device=device, teacher_logits=logits, lr=1e-3)
    S.finetune(copy.deepcopy(student), teacher, data, config, steps=20, **common)
    ours = S.finetune(copy.deepcopy(student), teacher, data, config, epochs=1, **common)
    results["ours_epoch_s"] = ours["seconds"]
    results["ours_images_per_s"] = ours["images_per_s"]
    fresh = S.finetune(
        copy.deepcopy(student),
        teacher,
        data,
        config,
        epochs=1,
        batch_size=bs,
        device=device,
        augment=True,
        lr=1e-3,
    )
    results["ours_augment_fresh_teacher_epoch_s"] = fresh["seconds"]
    if not args.no_compile:
        compiled = copy.deepcopy(student)
        t0 = time.perf_counter()
        first = S.finetune(compiled, teacher, data, config, epochs=1, compile=True, **common)
        results["ours_compiled_first_epoch_s"] = first["seconds"]
        second = S.finetune(compiled, teacher, data, config, epochs=1, compile=True, **common)
        results["ours_compiled_epoch_s"] = second["seconds"]
        results["ours_compiled_images_per_s"] = second["images_per_s"]
        results["ours_compiled_total_s"] = time.perf_counter() - t0

    # ---- (b) plain bf16 float epoch of the same pruned architecture, data on GPU -------------
    float_student = copy.deepcopy(teacher)
    slim(
        float_student,
        torch.randn(1, *data.input_shape, device=device),
        width_multiplier=0.5,
        prune_ratios={},
        channel_alignment=chip.channel_alignment,
    )
    float_epoch(
        copy.deepcopy(float_student),
        data.train.images,
        data.train.labels,
        batch_size=bs,
        device=device,
    )  # warm-up
    seconds_b = float_epoch(
        float_student, data.train.images, data.train.labels, batch_size=bs, device=device
    )
    results["b_float_bf16_epoch_s"] = seconds_b
    results["b_images_per_s"] = (len(data.train) // bs) * bs / seconds_b

    # ---- (a) ImageFolder + DataLoader fp32 loop -------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(args.data_root / "cifar10-jpeg.tar.gz") as tar:
            tar.extractall(tmp, filter="data")
        seconds_a, seen = dataloader_epoch(
            copy.deepcopy(student),
            teacher,
            Path(tmp) / "cifar10" / "train",
            data.mean,
            data.std,
            batch_size=bs,
            device=device,
            config=config,
            limit=limit,
        )
    results["a_dataloader_fp32_epoch_s"] = seconds_a
    results["a_images_per_s"] = seen / seconds_a
    best = max(results["ours_images_per_s"], results.get("ours_compiled_images_per_s", 0.0))
    results["speedup_vs_a"] = best / results["a_images_per_s"]
    results["slowdown_vs_b"] = results["b_images_per_s"] / best
    results["eager_slowdown_vs_b"] = results["b_images_per_s"] / results["ours_images_per_s"]
    print(json.dumps(results, indent=2), flush=True)

    # ---- accuracy after a short distillation ----------------------------------------------
    kd_runs = []
    for lr in [float(v) for v in args.kd_lrs.split(",")]:
        for augment in (False, True):
            st = copy.deepcopy(student)
            stats = S.finetune(
                st,
                teacher,
                data,
                config,
                epochs=args.kd_epochs,
                batch_size=bs // 2,
                lr=lr,
                device=device,
                augment=augment,
                teacher_logits=None if augment else logits,
            )
            test = S.evaluate(st, data.test, device=device)["accuracy"]
            kd_runs.append(
                {
                    "lr": lr,
                    "augment": augment,
                    "epochs": args.kd_epochs,
                    "seconds": stats["seconds"],
                    "test_accuracy": test,
                }
            )
            print(json.dumps(kd_runs[-1]), flush=True)
    results["kd_runs"] = kd_runs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

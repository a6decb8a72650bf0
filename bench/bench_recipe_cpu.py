"""Which fine-tune recipe closes the gap? A CPU measurement (issue 10, recipe choice).

A teacher (small_cnn) is trained on the data; its 50 %-channel W4A8 student
(4-bit weights everywhere, 8-bit activations; 8-bit on the first and last layer)
on rockchip/rv1126 (asymmetric per-tensor weights) and on a symmetric
per-channel scheme is distilled for ``--epochs`` with each recipe below; the
table gives the test accuracy and the gap to the teacher.

    python bench/bench_recipe_cpu.py                          # digits, about 3 minutes
    python bench/bench_recipe_cpu.py --dataset cifar10 --limit 3000 --epochs 4
    # on a GPU, with a trained teacher checkpoint (autocompress train --out T.pt), the
    # issue-10 W4A8 row (rk3588 deploys 4-bit weights; batch 512 = the search's fast path):
    python bench/bench_recipe_cpu.py --dataset cifar10 --teacher T.pt --device cuda \
        --batch-size 512 --epochs 5 --schemes rockchip/rk3588

Recipes: the search's trial default (AdamW 1e-3, no LSQ, cached logits) and
variations of optimizer, learning rate, LSQ, augmentation and KD temperature.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from autocompress.compress import student as S
from autocompress.compress.recipe import distill_with_retry
from autocompress.compress.teacher import train_teacher
from autocompress.core.data import load_dataset
from autocompress.core.models import load_checkpoint
from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.plugins import get_chip
from autocompress.hardware.spec import QuantizationScheme

RECIPES: dict[str, dict] = {
    "adamw1e-3 (trial default)": dict(optimizer="adamw", lr=1e-3),
    "adamw1e-3 +lsq": dict(optimizer="adamw", lr=1e-3, learned_steps=True),
    "adamw1e-3 +lsq +aug": dict(optimizer="adamw", lr=1e-3, learned_steps=True, augment=True),
    "adamw3e-4 +lsq +aug": dict(optimizer="adamw", lr=3e-4, learned_steps=True, augment=True),
    "adamw3e-3 +lsq +aug": dict(optimizer="adamw", lr=3e-3, learned_steps=True, augment=True),
    "sgd1e-3 +lsq +aug": dict(optimizer="sgd", lr=1e-3, learned_steps=True, augment=True),
    "sgd3e-3 +lsq +aug": dict(optimizer="sgd", lr=3e-3, learned_steps=True, augment=True),
    "adamw1e-3 +lsq +aug T=2": dict(
        optimizer="adamw", lr=1e-3, learned_steps=True, augment=True, kd_temperature=2.0
    ),
    "adamw1e-3 +lsq +aug T=1": dict(
        optimizer="adamw", lr=1e-3, learned_steps=True, augment=True, kd_temperature=1.0
    ),
    "adamw3e-3 +lsq": dict(optimizer="adamw", lr=3e-3, learned_steps=True),
    "adamw1e-3 warmup5%": dict(optimizer="adamw", lr=1e-3, warmup_fraction=0.05),
    "adamw1e-3 warmup20%": dict(optimizer="adamw", lr=1e-3, warmup_fraction=0.2),
    "adamw3e-4": dict(optimizer="adamw", lr=3e-4),
    "adamw3e-4 warmup5%": dict(optimizer="adamw", lr=3e-4, warmup_fraction=0.05),
    "adamw1e-4": dict(optimizer="adamw", lr=1e-4),
    "adamw1e-4 +lsq": dict(optimizer="adamw", lr=1e-4, learned_steps=True),
    "adamw3e-4 +lsq": dict(optimizer="adamw", lr=3e-4, learned_steps=True),
    "adamw1e-4 +lsq +aug": dict(optimizer="adamw", lr=1e-4, learned_steps=True, augment=True),
    "adamw1e-3 +lsq T=2": dict(optimizer="adamw", lr=1e-3, learned_steps=True, kd_temperature=2.0),
    "adamw1e-3 +aug": dict(optimizer="adamw", lr=1e-3, augment=True),
    "adamw2e-3 +lsq +aug": dict(optimizer="adamw", lr=2e-3, learned_steps=True, augment=True),
    "sgd1e-2 +lsq +aug": dict(optimizer="sgd", lr=1e-2, learned_steps=True, augment=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="recipe names to run")
    parser.add_argument(
        "--schemes",
        nargs="*",
        default=["rv1126", "symmetric"],
        help="rv1126, symmetric and/or chip ids (their own quantization scheme)",
    )
    parser.add_argument("--teacher", default=None, help="a teacher checkpoint instead of training")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=float, default=0.5, help="the student's width multiplier")
    parser.add_argument("--weight-bits", type=int, default=4, help="bits of the inner layers")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the distillations (batch order, augmentation)"
    )
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data = load_dataset(args.dataset, seed=0, limit=args.limit)
    t0 = time.perf_counter()
    if args.teacher:
        model, spec, _extra = load_checkpoint(args.teacher)
        teacher_test = S.evaluate(model, data.test, device=args.device)["accuracy"]
        model = model.cpu()  # students are built on the CPU, trained on the device
        print(f"teacher {spec.name} ({args.teacher}): test {teacher_test:.2%}")
    else:
        teacher = train_teacher(
            "small_cnn", data, epochs=args.teacher_epochs, device=args.device, seed=0
        )
        model, teacher_test = teacher.model, teacher.test_accuracy
        print(
            f"teacher small_cnn: test {teacher_test:.2%} "
            f"({time.perf_counter() - t0:.0f} s, {args.teacher_epochs} epochs)"
        )
    layers = S.quantizable_layers(model)
    bits = {n: args.weight_bits for n in layers}
    bits[layers[0]] = bits[layers[-1]] = 8
    base = TrialConfig(
        width_multiplier=args.width,
        weight_bits=bits,
        activation_bits={n: 8 for n in layers},
        kd_temperature=4.0,
        kd_alpha=0.9,
    )
    rv1126 = get_chip("rockchip/rv1126")
    symmetric = dataclasses.replace(
        rv1126, chip_id="bench/symmetric", quantization=QuantizationScheme()
    )
    results = []
    flip = args.dataset != "digits"
    chips = {"rv1126": rv1126, "symmetric": symmetric}
    for chip in (chips[name] if name in chips else get_chip(name) for name in args.schemes):
        for name, recipe in RECIPES.items():
            if args.only and name not in args.only:
                continue
            recipe = dict(recipe)
            config = dataclasses.replace(
                base, kd_temperature=recipe.pop("kd_temperature", base.kd_temperature)
            )
            student = S.build_student(model, config, chip, data.input_shape)
            started = time.perf_counter()
            try:
                result = distill_with_retry(
                    student,
                    model,
                    data,
                    config,
                    epochs=args.epochs,
                    device=args.device,
                    batch_size=args.batch_size,
                    augment_flip=flip,
                    seed=args.seed,
                    **recipe,
                )
                accuracy = S.evaluate(result.student, data.test, device=args.device)["accuracy"]
                note = f"retried at lr {result.lr:g}" if result.retried else ""
            except RuntimeError as exc:
                accuracy, note = float("nan"), f"failed: {exc}"
            seconds = time.perf_counter() - started
            row = {
                "chip": chip.chip_id,
                "recipe": name,
                "test_accuracy": accuracy,
                "gap_points": 100 * (teacher_test - accuracy),
                "seconds": seconds,
                "note": note,
            }
            results.append(row)
            print(
                f"{chip.chip_id:18s} {name:28s} test {accuracy:7.2%}  gap "
                f"{row['gap_points']:5.2f} pt  {seconds:5.1f} s  {note}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"teacher_test": teacher_test, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()

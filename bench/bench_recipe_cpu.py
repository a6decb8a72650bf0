"""Which fine-tune recipe closes the gap? A CPU measurement (issue 10, recipe choice).

A teacher (small_cnn) is trained on the data; its 50 %-channel W4A8 student
(4-bit weights everywhere, 8-bit activations; 8-bit on the first and last layer)
on rockchip/rv1126 (asymmetric per-tensor weights) and on a symmetric
per-channel scheme is distilled for ``--epochs`` with each recipe below; the
table gives the test accuracy and the gap to the teacher.

    python bench/bench_recipe_cpu.py                          # digits, about 3 minutes
    python bench/bench_recipe_cpu.py --dataset cifar10 --limit 3000 --epochs 4

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
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="recipe names to run")
    parser.add_argument(
        "--schemes", nargs="*", default=["rv1126", "symmetric"], help="rv1126 and/or symmetric"
    )
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load_dataset(args.dataset, seed=0, limit=args.limit)
    t0 = time.perf_counter()
    teacher = train_teacher("small_cnn", data, epochs=args.teacher_epochs, device="cpu", seed=0)
    print(
        f"teacher small_cnn: test {teacher.test_accuracy:.2%} "
        f"({time.perf_counter() - t0:.0f} s, {args.teacher_epochs} epochs)"
    )
    model = teacher.model
    layers = S.quantizable_layers(model)
    bits = {n: 4 for n in layers}
    bits[layers[0]] = bits[layers[-1]] = 8
    base = TrialConfig(
        width_multiplier=0.5,
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
    for chip in (chips[name] for name in args.schemes):
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
                    device="cpu",
                    batch_size=128,
                    augment_flip=flip,
                    **recipe,
                )
                accuracy = S.evaluate(result.student, data.test)["accuracy"]
                note = f"retried at lr {result.lr:g}" if result.retried else ""
            except RuntimeError as exc:
                accuracy, note = float("nan"), f"failed: {exc}"
            seconds = time.perf_counter() - started
            row = {
                "chip": chip.chip_id,
                "recipe": name,
                "test_accuracy": accuracy,
                "gap_points": 100 * (teacher.test_accuracy - accuracy),
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
            json.dump({"teacher_test": teacher.test_accuracy, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()

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

``--importance`` compares how the pruned channels are chosen (the criterion of
``slim.channel_scores``): Torch-Pruning's group L2 magnitude (the default), L1, BN scale,
LAMP, FPGM, random, and two data-aware ones computed on the teacher before pruning:
first-order Taylor (gradients of the cross-entropy on training images) and the mean
absolute input of the consuming layers. Each row also gives the calibrated student's
accuracy before any fine-tuning. ``--feature-weights`` compares feature distillation
(``finetune(feature_weight=...)``: every kept convolution learns the teacher's output at
its kept channels) against the logits alone (0).

Recipes: the search's trial default (AdamW 1e-3, no LSQ, cached logits) and
variations of optimizer, learning rate, LSQ, augmentation and KD temperature.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time

import torch
import torch_pruning as tp
from torch import nn

from autocompress.compress import slim as slim_module
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
    "adamw2e-3 +aug": dict(optimizer="adamw", lr=2e-3, augment=True),
    "adamw2e-3 +lsq +aug": dict(optimizer="adamw", lr=2e-3, learned_steps=True, augment=True),
    "sgd1e-2 +lsq +aug": dict(optimizer="sgd", lr=1e-2, learned_steps=True, augment=True),
    "adamw1e-3 +aug alpha=1": dict(optimizer="adamw", lr=1e-3, augment=True, kd_alpha=1.0),
    # autocompress finetune's recipe for a <= 4-bit student (recipe.RECOVERY_RECIPE)
    "recovery (adamw5e-4 +lsq +aug)": dict(
        optimizer="adamw", lr=5e-4, learned_steps=True, augment=True, warmup_fraction=0.05
    ),
    "recovery alpha=1": dict(
        optimizer="adamw",
        lr=5e-4,
        learned_steps=True,
        augment=True,
        warmup_fraction=0.05,
        kd_alpha=1.0,
    ),
    "recovery wd5e-4": dict(
        optimizer="adamw",
        lr=5e-4,
        learned_steps=True,
        augment=True,
        warmup_fraction=0.05,
        weight_decay=5e-4,
    ),
}


IMPORTANCE: dict[str, object] = {
    "l2": tp.importance.GroupMagnitudeImportance(p=2),
    "l1": tp.importance.GroupMagnitudeImportance(p=1),
    "bn": tp.importance.BNScaleImportance(),
    "lamp": tp.importance.LAMPImportance(p=2),
    "fpgm": tp.importance.FPGMImportance(p=2),
    "random": tp.importance.RandomImportance(),
    "taylor": tp.importance.GroupTaylorImportance(),
    "activation": tp.importance.ActivationImportance(),
}
#: Training images the data-aware criteria see (gradients / activations of the teacher).
IMPORTANCE_IMAGES = 4096


#: What the data-aware criteria read, keyed by the teacher's parameter / module names
#: (set on the student's copy right before it is pruned: deep copies drop ``.grad``).
_SEEN: dict[str, dict[str, torch.Tensor]] = {"grad": {}, "activation": {}}


def _prepare_importance(name: str, model: nn.Module, data, device: str) -> None:
    """Gradients (taylor) or mean absolute layer inputs (activation) of the teacher."""
    _SEEN["grad"], _SEEN["activation"] = {}, {}
    if name not in ("taylor", "activation"):
        return
    images = data.train.images[:IMPORTANCE_IMAGES]
    labels = data.train.labels[:IMPORTANCE_IMAGES]
    work = copy.deepcopy(model).eval().to(device)
    for p in work.parameters():
        p.requires_grad_(name == "taylor")
    names = {m: n for n, m in work.named_modules()}
    sums: dict[str, torch.Tensor] = {}

    def hook(module, inputs, _output):
        x = inputs[0].detach().abs().float()
        x = x.mean((0, 2, 3)) if x.dim() == 4 else x.reshape(-1, x.shape[-1]).mean(0)
        sums[names[module]] = sums.get(names[module], 0) + x

    hooks = []
    if name == "activation":
        hooks = [
            m.register_forward_hook(hook)
            for m in work.modules()
            if isinstance(m, nn.Conv2d | nn.Linear)
        ]
    batches = 0
    for start in range(0, len(images), 256):
        x = images[start : start + 256].to(device)
        y = labels[start : start + 256].to(device)
        batches += 1
        if name == "taylor":
            loss = torch.nn.functional.cross_entropy(work(x), y, reduction="sum")
            (loss / len(images)).backward()
        else:
            with torch.no_grad():
                work(x)
    for h in hooks:
        h.remove()
    _SEEN["grad"] = {
        n: p.grad.detach().cpu() for n, p in work.named_parameters() if p.grad is not None
    }
    _SEEN["activation"] = {n: (t / batches).cpu() for n, t in sums.items()}


_real_slim = S.slim


def _slim_with_seen(model: nn.Module, *args, **kwargs):
    for n, p in model.named_parameters():
        if n in _SEEN["grad"]:
            p.grad = _SEEN["grad"][n].to(p.device)
    for n, m in model.named_modules():
        if n in _SEEN["activation"]:
            m._importance = _SEEN["activation"][n].to(next(m.parameters()).device)
    try:
        return _real_slim(model, *args, **kwargs)
    finally:
        for p in model.parameters():
            p.grad = None
        for m in model.modules():
            m.__dict__.pop("_importance", None)


S.slim = _slim_with_seen


def _use_importance(name: str) -> None:
    scorer = IMPORTANCE[name]
    slim_module.channel_scores = lambda group: scorer(group)


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
    parser.add_argument(
        "--importance",
        nargs="*",
        default=["l2"],
        choices=sorted(IMPORTANCE),
        help="channel criteria to compare (l2 is autocompress's)",
    )
    parser.add_argument(
        "--feature-weights",
        nargs="*",
        type=float,
        default=[0.0],
        help="weights of the feature loss to compare (finetune's feature_weight; 0: logits only)",
    )
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
    combos = [
        (chips[c] if c in chips else get_chip(c), importance, name, recipe, weight)
        for c in args.schemes
        for importance in args.importance
        for name, recipe in RECIPES.items()
        if not args.only or name in args.only
        for weight in args.feature_weights
    ]
    for chip, importance, name, recipe, weight in combos:
        recipe = dict(recipe, feature_weight=weight)
        config = dataclasses.replace(
            base,
            kd_temperature=recipe.pop("kd_temperature", base.kd_temperature),
            kd_alpha=recipe.pop("kd_alpha", base.kd_alpha),
        )
        _prepare_importance(importance, model, data, args.device)
        _use_importance(importance)
        torch.manual_seed(args.seed)  # the random criterion draws the same channels per seed
        student = S.build_student(model, config, chip, data.input_shape)
        _prepare_importance("l2", model, data, args.device)  # drop grads / activations
        for p in student.parameters():
            p.grad = None
        for m in student.modules():
            m.__dict__.pop("_importance", None)
        start_student = copy.deepcopy(student)
        S.calibrate(start_student.to(args.device), data.train.images.to(args.device))
        start_accuracy = S.evaluate(start_student, data.test, device=args.device)["accuracy"]
        del start_student
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
            "importance": importance,
            "recipe": name,
            "feature_weight": weight,
            "start_accuracy": start_accuracy,
            "test_accuracy": accuracy,
            "gap_points": 100 * (teacher_test - accuracy),
            "seconds": seconds,
            "note": note,
        }
        results.append(row)
        print(
            f"{chip.chip_id:18s} {importance:10s} {name:28s} feat {weight:<5g} "
            f"start {start_accuracy:7.2%}  "
            f"test {accuracy:7.2%}  gap "
            f"{row['gap_points']:5.2f} pt  {seconds:5.1f} s  {note}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"teacher_test": teacher_test, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()

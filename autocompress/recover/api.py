"""``recover``: train a chosen trial's configuration from the teacher for longer.

The search gives every trial a short proxy fine-tune; the model worth
deploying gets more. :func:`recover` rebuilds the trial's student from the
run's teacher (slimmed, calibrated post-training quantization: ranges and
folded batch-norms re-estimated after pruning), then distills it with the
:data:`~autocompress.compress.recipe.RECOVERY_RECIPE` — LSQ learned step sizes
for ≤ 4-bit weights and learned activation clipping, augmentation with fresh
teacher forwards on the augmented batches, AdamW with warm-up and cosine
decay, KD T=4 — and writes, in ``models/trial-NNNN/``:

- ``recovered.pt``: the student (the same weights_only format as the search's
  students, :func:`~autocompress.compress.student.load_student` reads it);
- ``recovered.json``: validation and test accuracy, the proxy's accuracy,
  epochs, seconds, seconds per epoch, the recipe, the device and the path.

Every epoch an atomic checkpoint (weights, optimizer, batch order) goes to
``recovery-state.pt``; a killed run started again with the same trial and
epochs resumes from it, and the file is removed when the run completes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autocompress.compress.fastpath import choose_fast_path
from autocompress.compress.recipe import (
    RECOVERY_RECIPE,
    default_recovery_epochs,
    distill_with_retry,
)
from autocompress.compress.student import (
    build_student,
    evaluate,
    finetune_augmentation,
    make_room_for_learned_steps,
    save_student,
)
from autocompress.compress.training import TrainingDiverged, TrainingSchedule, resolve_device
from autocompress.core.errors import ConfigError, TrainingError
from autocompress.core.model_code import model_code_policy
from autocompress.core.models import load_checkpoint
from autocompress.core.run_data import RunData, load_run
from autocompress.core.workspace import RunDirectory, write_atomic
from autocompress.export.api import check_exportable, pick_trial
from autocompress.hardware.plugins import get_chip

STATE_FORMAT = "autocompress-recovery-state"
STATE_VERSION = 1

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class RecoveryResult:
    """What :func:`recover` wrote.

    Attributes:
        trial: the trial number.
        path: ``recovered.pt``.
        json_path: ``recovered.json``.
        info: the contents of ``recovered.json``.
        resumed_from_epoch: the epoch a checkpoint let the run start from (0: fresh).
    """

    trial: int
    path: Path
    json_path: Path
    info: dict[str, Any]
    resumed_from_epoch: int = 0


def _choose_trial(run: Any, trial: int | None, pick: str | None) -> int:
    if (trial is None) == (pick is None):
        raise ConfigError("give exactly one of trial (--trial N) or pick (--pick RULE)")
    return trial if trial is not None else pick_trial(run, pick)  # type: ignore[arg-type]


def _save_state(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_state(path: Path, expect: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it belongs to this run (same trial, epochs, recipe)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torn or foreign: start afresh (the file is ours to replace)
        return None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        return None
    if payload.get("version") != STATE_VERSION:
        return None
    if any(payload.get(k) != v for k, v in expect.items()):
        return None
    return payload


def recover(
    run_dir: str | Path,
    *,
    trial: int | None = None,
    pick: str | None = None,
    epochs: float | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    lr: float | None = None,
    feature_weight: float | None = None,
    compile: bool | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    is_cuda: Callable[[str | torch.device], bool] | None = None,
    trust_model_code: bool = False,
) -> RecoveryResult:
    """Recovery-train one trial of ``run_dir``; resume from its checkpoint when there is one.

    Args:
        run_dir: a run directory (finished or running).
        trial / pick: the trial, by number or by a ``--pick`` rule (exactly one).
        epochs: recovery epochs (default: ``default_recovery_epochs`` of the run's
            dataset and the device, see :mod:`autocompress.compress.recipe`).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        batch_size / compile: override the device's fast path
            (:func:`~autocompress.compress.fastpath.choose_fast_path`).
        lr: override the recipe's peak learning rate.
        feature_weight: override the recipe's feature-distillation weight (0: logits only).
        seed: batch order and augmentation.
        progress: ``progress(stage, fraction)`` (fraction of the whole run).
        is_cuda: the device decision (tests pass a fake one).
        trust_model_code: import the run's ``file.py:function`` model even when it is
            not the file the run recorded at creation (see ``docs/safety-and-recovery.md``).

    Raises:
        ConfigError / RunDirectoryError: bad input (see ``export``'s checks).
        TrainingError: training diverged, also after one retry at a tenth of the LR.
    """
    run = load_run(run_dir)
    number = _choose_trial(run, trial, pick)
    record = check_exportable(run, number)
    directory: RunDirectory = run.directory
    dev = resolve_device(device)
    if epochs is None:
        epochs = float(default_recovery_epochs(run.config.dataset.name, dev.type))
    if epochs <= 0:
        raise ConfigError(f"recovery epochs must be positive, got {epochs:g}")
    data = run.config.dataset.load(device=dev)  # the splits the search used
    with model_code_policy(
        trusted=trust_model_code, allowed=run.config.model_identities(), command="finetune"
    ):
        teacher, spec, _ = load_checkpoint(directory.teacher_pt)
    teacher = teacher.to(dev).eval()
    chip = get_chip(run.main_chip)
    recipe = RECOVERY_RECIPE.for_epochs(epochs)  # a short run has its own settings
    if lr is not None:  # an --lr given is the peak LR for every student
        recipe = dataclasses.replace(recipe, lr=lr, low_bit_lr=None)
    if feature_weight is not None:
        if not feature_weight >= 0:
            raise ConfigError(f"the feature weight must be 0 or more, got {feature_weight:g}")
        recipe = dataclasses.replace(recipe, feature_weight=float(feature_weight))
    fast = choose_fast_path(
        dev,
        epochs=epochs,
        train_images=len(data.train),
        batch_size=batch_size if batch_size is not None else recipe.batch_size,
        default_batch_cap=recipe.max_batch_size,  # a short run's smaller default batch
        compile=compile,
        **({"is_cuda": is_cuda} if is_cuda is not None else {}),
    )
    config = recipe.trial_config(RunData.trial_config(record))
    student = build_student(teacher, config, chip, run.input_shape, protect=run.protect)

    state_path = directory.recovery_state_pt(number)
    identity = {
        "trial": number,
        "epochs": float(epochs),
        "recipe": recipe.to_dict(),
        "batch_size": fast.batch_size,
        "seed": seed,
    }
    saved = _load_state(state_path, identity)
    resume = None
    elapsed_before = 0.0
    if saved is not None:
        make_room_for_learned_steps(student, saved["student"])
        student.load_state_dict(saved["student"])
        resume = dict(saved["train"]) | {"lr": saved["lr"]}
        elapsed_before = float(saved.get("seconds", 0.0))
    resumed_from = int(resume["epoch"]) if resume else 0
    started = time.perf_counter()
    epoch_seconds: list[float] = []

    def checkpoint(end: Any, model: torch.nn.Module, used_lr: float) -> None:
        epoch_seconds.append(end.seconds)
        _save_state(
            state_path,
            identity
            | {
                "format": STATE_FORMAT,
                "version": STATE_VERSION,
                "lr": used_lr,
                "train": end.state,
                "seconds": elapsed_before + time.perf_counter() - started,
                "student": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            },
        )

    flip = run.config.dataset.name != "digits"  # a mirrored digit is another glyph
    try:
        result = distill_with_retry(
            student,
            teacher,
            data,
            config,
            epochs=epochs,
            lr=recipe.peak_lr(config),
            device=dev,
            resume=resume,
            on_epoch=checkpoint,
            progress=(lambda _stage, done: progress("recover", done)) if progress else None,
            batch_size=fast.batch_size,
            optimizer=recipe.optimizer,
            weight_decay=recipe.weight_decay,
            warmup_fraction=recipe.warmup_fraction,
            augment=recipe.augment,
            augment_flip=flip,
            learned_steps=recipe.learned_steps,
            feature_weight=recipe.feature_weight,
            compile=fast.compile,
            seed=seed,
        )
    except TrainingDiverged as exc:
        raise TrainingError(
            f"recovery training of trial {number} failed: {exc}",
            hint=f"Try a lower --lr; the checkpoint (if any) was kept in {state_path.parent}.",
        ) from None
    seconds = elapsed_before + time.perf_counter() - started
    trained = result.student.eval()
    val = result.val if result.val is not None else evaluate(trained, data.val, device=dev)
    test = evaluate(trained, data.test, device=dev)
    per_epoch = (
        sum(epoch_seconds) / len(epoch_seconds)
        if epoch_seconds
        else float(result.stats["seconds_per_epoch"])
    )
    info: dict[str, Any] = {
        "format_version": 1,
        "trial": number,
        "weights": "recovered.pt",
        "accuracy": float(val["accuracy"]),
        "test_accuracy": float(test["accuracy"]),
        "proxy_accuracy": record.metrics.get("accuracy"),
        "proxy_test_accuracy": record.metrics.get("test_accuracy"),
        "teacher_test_accuracy": (run.teacher or {}).get("test_accuracy"),
        "epochs": float(epochs),
        "resumed_from_epoch": resumed_from,
        "seconds": seconds,
        "seconds_per_epoch": per_epoch,
        "device": str(dev),
        "fast_path": dataclasses.asdict(fast),
        "recipe": recipe.to_dict()
        | {
            "lr_used": result.lr,
            "augment_flip": flip,
            "augmentation": TrainingSchedule(
                **finetune_augmentation(data, augment=recipe.augment, flip=flip)
            ).augmentation(),
            "seed": seed,
        },
        "kd": {"temperature": config.kd_temperature, "alpha": config.kd_alpha},
        "retried": result.retried,
        "first_failure": result.first_failure,
    }
    pt_path = directory.recovered_pt(number)
    save_student(
        pt_path,
        trained.cpu(),
        teacher_spec=spec,
        config=config,
        chip_id=chip.chip_id,
        input_shape=run.input_shape,
        protect=run.protect,
        extra={"recovered": {k: v for k, v in info.items() if k != "fast_path"}},
    )
    json_path = directory.recovered_json(number)
    import json

    write_atomic(json_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    state_path.unlink(missing_ok=True)  # ours: the run is complete
    return RecoveryResult(number, pt_path, json_path, info, resumed_from)


__all__ = ["RecoveryResult", "recover"]

"""The fine-tune recipe of recovery training, and distillation that survives a diverging LR.

:class:`Recipe` is everything but the budget: optimizer, peak learning rate,
schedule (linear warm-up then cosine decay to 0), batch size, augmentation,
KD temperature / weight and whether LSQ learned step sizes are used.
:func:`distill_with_retry` runs :func:`~autocompress.compress.student.finetune`
with it and watches for divergence — a non-finite loss, or validation accuracy
at chance after the first epoch — retrying once at a tenth of the learning rate
before giving up with :class:`~autocompress.compress.training.TrainingDiverged`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autocompress.compress.evaluate import evaluate
from autocompress.compress.quantize import LSQ_MAX_WEIGHT_BITS
from autocompress.compress.student import finetune
from autocompress.compress.training import EpochEnd, TrainingDiverged
from autocompress.core.data import DatasetSplits
from autocompress.core.trial_config import TrialConfig

#: Accuracy at most this multiple of chance (1 / classes) counts as "at chance".
CHANCE_MARGIN = 1.2
#: The chance check waits for this many optimizer steps (a short epoch proves nothing).
CHANCE_CHECK_MIN_STEPS = 50
#: A fine-tune that ends more than this share of its starting margin over chance below
#: where it started (the calibrated student), and at least COLLAPSE_MIN_DROP below, has
#: collapsed: it made the model worse than not training it. Measured on the GPU fast path:
#: AdamW 1e-3 took a ResNet-18 student from ~87 % to 36 % in 3 epochs, well above chance.
COLLAPSE_MARGIN_SHARE = 1 / 3
COLLAPSE_MIN_DROP = 0.05
#: Learning-rate factor of the one retry after a divergence.
RETRY_LR_FACTOR = 0.1

#: A recovery of at most this many epochs is a short run (:meth:`Recipe.for_epochs`).
SHORT_RUN_EPOCHS = 10.0
#: The feature weight and the batch-size cap of a short run. Measured on the 50 %-channel
#: W4A8 ResNet-18 (H200, bench/RESULTS.md, eleventh session): 5 epochs of ``finetune`` reach
#: 88.95 / 88.76 % (seeds 0, 1) at weight 30 and batch 256 against 87.77 % (seed 0) at weight 1
#: and batch 512. A short run at batch 512 has few steps (440 in 5 CIFAR-10 epochs), and
#: the feature loss helps most while the student is far from its teacher. 30-epoch runs keep
#: weight 1 and the device's batch (88.94 % on four seeds, 0.91 below the teacher).
SHORT_RUN_FEATURE_WEIGHT = 30.0
SHORT_RUN_MAX_BATCH_SIZE = 256


@dataclass(frozen=True)
class Recipe:
    """How a student is distilled (see docs/recovery.md for how the defaults were measured).

    Attributes:
        optimizer: ``"adamw"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        lr: peak learning rate.
        low_bit_lr: peak learning rate instead of ``lr`` for a student with weights of
            at most ``LSQ_MAX_WEIGHT_BITS`` bits when ``learned_steps`` trains their
            step sizes (None: ``lr`` for every student); see :meth:`peak_lr`.
        weight_decay: decoupled (AdamW) / L2 (SGD) decay.
        warmup_fraction: share of the steps with a linear warm-up (then cosine to 0).
        batch_size: images per step (None: the device's default, see ``fastpath``).
        augment: random crop (4 px) + flip (random-resized-crop + flip for image folders of
            64 px or more), with the teacher run on every augmented batch.
        learned_steps: LSQ step sizes for <= 4-bit weights and learned activation clipping.
        kd_temperature / kd_alpha: override the trial's KD settings when set.
        feature_weight: weight of the feature loss: every convolution the student kept
            learns the teacher's output at its kept channels
            (:mod:`~autocompress.compress.feature_kd`); 0 distills the logits only. On the
            50 %-channel W4A8 ResNet-18 (bench/RESULTS.md, tenth session) 1 measured best over
            30 epochs; 5-epoch runs gained most at 10-30 (88.3 % against 86.1 % logits only).
        max_batch_size: at most this many images per step when the batch size is the
            device's default (None: no cap); an explicit ``batch_size`` is not capped.

    :meth:`for_epochs` gives the recipe of a run of a given length: short runs
    (:data:`SHORT_RUN_EPOCHS` or fewer) distill features harder and take smaller batches.
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    low_bit_lr: float | None = 5e-4
    weight_decay: float = 5e-5
    warmup_fraction: float = 0.05
    batch_size: int | None = None
    augment: bool = True
    learned_steps: bool = True
    kd_temperature: float | None = 4.0
    kd_alpha: float | None = 0.9
    feature_weight: float = 1.0
    max_batch_size: int | None = None

    def for_epochs(self, epochs: float) -> Recipe:
        """This recipe for a run of ``epochs``: a short run (at most
        :data:`SHORT_RUN_EPOCHS`) gets :data:`SHORT_RUN_FEATURE_WEIGHT` and at most
        :data:`SHORT_RUN_MAX_BATCH_SIZE` images per step; a longer one is this recipe."""
        if float(epochs) > SHORT_RUN_EPOCHS:
            return self
        cap = SHORT_RUN_MAX_BATCH_SIZE
        if self.max_batch_size is not None:
            cap = min(cap, self.max_batch_size)
        return dataclasses.replace(
            self, feature_weight=SHORT_RUN_FEATURE_WEIGHT, max_batch_size=cap
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def peak_lr(self, config: TrialConfig) -> float:
        """The peak learning rate for ``config``'s student.

        ``low_bit_lr`` when learned step sizes train some of its weights (any layer at
        ``LSQ_MAX_WEIGHT_BITS`` bits or fewer), else ``lr``. Measured on the 50 %-channel
        W4A8 ResNet-18 of issue 10 (bench/RESULTS.md, eighth session): 30 recovery
        epochs at 5e-4 ended closer to the teacher than at 1e-3 (and 2e-3 further).
        """
        low_bit = self.learned_steps and any(
            int(bits) <= LSQ_MAX_WEIGHT_BITS for bits in config.weight_bits.values()
        )
        return float(self.low_bit_lr) if low_bit and self.low_bit_lr is not None else self.lr

    def trial_config(self, config: TrialConfig) -> TrialConfig:
        """``config`` with this recipe's KD settings (where set)."""
        changes: dict[str, float] = {}
        if self.kd_temperature is not None:
            changes["kd_temperature"] = float(self.kd_temperature)
        if self.kd_alpha is not None:
            changes["kd_alpha"] = float(self.kd_alpha)
        return dataclasses.replace(config, **changes) if changes else config


#: The recovery recipe (``autocompress finetune``).
RECOVERY_RECIPE = Recipe()

#: Recovery epochs by (dataset, device type); see :func:`default_recovery_epochs`.
_DEFAULT_RECOVERY_EPOCHS: dict[tuple[str, str], int] = {
    ("digits", "cpu"): 15,
    ("digits", "cuda"): 30,
    ("cifar10", "cpu"): 2,
    ("cifar10", "cuda"): 30,
}


def default_recovery_epochs(dataset: str, device_type: str) -> int:
    """Recovery epochs when ``--epochs`` is not given.

    digits: 15 on the CPU (about half a minute), 30 on a GPU; cifar10: 30 on a
    GPU (about a minute on an H200), 2 on the CPU (each epoch is minutes
    there); any other dataset: 10 on the CPU, 30 on a GPU.
    """
    name = dataset.split(":")[-1] if dataset.startswith("cifar10") else dataset
    kind = "cuda" if device_type.startswith("cuda") else "cpu"
    return _DEFAULT_RECOVERY_EPOCHS.get((name, kind), 30 if kind == "cuda" else 10)


def chance_accuracy(num_classes: int) -> float:
    """Top-1 accuracy of guessing: ``1 / num_classes``."""
    return 1.0 / max(1, int(num_classes))


def at_chance(accuracy: float, num_classes: int) -> bool:
    """True when ``accuracy`` is no better than guessing (within :data:`CHANCE_MARGIN`)."""
    return accuracy <= CHANCE_MARGIN * chance_accuracy(num_classes)


@dataclass
class DistillResult:
    """What :func:`distill_with_retry` produced.

    Attributes:
        student: the trained student (a fresh copy when the first attempt was retried).
        stats: :func:`~autocompress.compress.student.finetune`'s numbers.
        lr: the learning rate that worked.
        retried: the first attempt diverged; ``first_failure`` says how.
        val: :func:`~autocompress.compress.evaluate.evaluate` of the returned
            student on the validation split (with ``val_logits``' agreement
            figures), from the end-of-run chance check; None when
            ``check_chance`` was off. Callers reuse it instead of evaluating again.
    """

    student: nn.Module
    stats: dict[str, float]
    lr: float
    retried: bool = False
    first_failure: str | None = None
    val: dict[str, float] | None = None


def collapsed(start: float, end: float, num_classes: int) -> bool:
    """True when a fine-tune from validation accuracy ``start`` to ``end`` lost more than
    :data:`COLLAPSE_MARGIN_SHARE` of its margin over chance (and at least
    :data:`COLLAPSE_MIN_DROP`): training destroyed what calibration gave it."""
    margin = max(0.0, start - chance_accuracy(num_classes))
    return start - end > max(COLLAPSE_MIN_DROP, COLLAPSE_MARGIN_SHARE * margin)


def distill_with_retry(
    student: nn.Module,
    teacher: nn.Module,
    data: DatasetSplits,
    config: TrialConfig,
    *,
    epochs: float,
    lr: float,
    device: str | torch.device,
    retry: bool = True,
    check_chance: bool = True,
    on_epoch: Callable[[EpochEnd, nn.Module, float], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    val_logits: torch.Tensor | None = None,
    **finetune_kwargs: Any,
) -> DistillResult:
    """Distill with divergence detection and one retry at ``lr * RETRY_LR_FACTOR``.

    Divergence: :class:`TrainingDiverged` from the training loop (loss not
    finite), or validation accuracy at chance (:func:`at_chance`) after the
    first epoch that ends :data:`CHANCE_CHECK_MIN_STEPS` steps or more into the
    run, and again at the end of every run (a run can collapse later; a model at
    chance is no result), or a run that ends far below the calibrated student it
    started from (:func:`collapsed`; not for a resumed run), when ``check_chance``.
    ``on_epoch(end, student, lr)`` runs after every epoch (checkpoint there).
    ``resume`` (with a ``"lr"`` key from a checkpoint) continues a run; a resumed
    run does not retry. ``val_logits`` (the teacher's logits on ``data.val``) add
    the agreement figures to the returned ``val``. A check after the last epoch is
    the end check (the weights are the same): the end is scored once, not twice.

    Raises:
        TrainingDiverged: both attempts diverged (the message names both reasons).
    """
    pristine = copy.deepcopy(student) if retry and resume is None else None
    attempt_lr = float(resume["lr"]) if resume is not None else float(lr)
    failure: str | None = None
    current = student
    while True:
        checked: list[tuple[int, int, dict[str, float]]] = []  # (step, of steps, evaluation)
        started: list[float] = []  # validation accuracy of the calibrated student

        def score_start(model: nn.Module, started: list[float] = started) -> None:
            started.append(evaluate(model, data.val, device=device)["accuracy"])
            model.train()

        def epoch_done(
            end: EpochEnd,
            model: nn.Module = current,
            used: float = attempt_lr,
            checked: list[tuple[int, int, dict[str, float]]] = checked,
        ) -> None:
            if check_chance and not checked and end.step >= CHANCE_CHECK_MIN_STEPS:
                scored = evaluate(model, data.val, teacher_logits=val_logits, device=device)
                checked.append((end.step, end.total_steps, scored))
                accuracy = scored["accuracy"]
                model.train()
                if at_chance(accuracy, data.num_classes):
                    raise TrainingDiverged(
                        f"validation accuracy {accuracy:.1%} is at chance "
                        f"({chance_accuracy(data.num_classes):.0%}) after epoch {end.epoch} "
                        f"(lr {used:g})"
                    )
            if on_epoch is not None:
                on_epoch(end, model, used)

        try:
            stats = finetune(
                current,
                teacher,
                data,
                config,
                epochs=epochs,
                lr=attempt_lr,
                device=device,
                on_epoch=epoch_done,
                resume=resume,
                calibrated=resume is not None,
                on_calibrated=score_start if check_chance and resume is None else None,
                **finetune_kwargs,
            )
            val: dict[str, float] | None = None
            if check_chance:  # judge the end too: a run can collapse after its first epoch
                if checked and checked[0][0] == checked[0][1]:  # checked after the last step
                    val = checked[0][2]
                else:
                    val = evaluate(current, data.val, teacher_logits=val_logits, device=device)
                accuracy = val["accuracy"]
                if at_chance(accuracy, data.num_classes):
                    raise TrainingDiverged(
                        f"validation accuracy {accuracy:.1%} is at chance "
                        f"({chance_accuracy(data.num_classes):.0%}) after training "
                        f"(lr {attempt_lr:g})"
                    )
                if started and collapsed(started[0], accuracy, data.num_classes):
                    raise TrainingDiverged(
                        f"validation accuracy fell from {started[0]:.1%} (calibrated, before "
                        f"training) to {accuracy:.1%} (lr {attempt_lr:g})"
                    )
            return DistillResult(current, stats, attempt_lr, failure is not None, failure, val)
        except TrainingDiverged as exc:
            if failure is not None or pristine is None:
                reason = f"{failure}; retried at lr {attempt_lr:g}: {exc}" if failure else str(exc)
                raise TrainingDiverged(reason) from None
            failure = str(exc)
            attempt_lr *= RETRY_LR_FACTOR
            current = copy.deepcopy(pristine)


__all__ = [
    "RECOVERY_RECIPE",
    "SHORT_RUN_EPOCHS",
    "SHORT_RUN_FEATURE_WEIGHT",
    "SHORT_RUN_MAX_BATCH_SIZE",
    "DistillResult",
    "Recipe",
    "at_chance",
    "chance_accuracy",
    "collapsed",
    "default_recovery_epochs",
    "distill_with_retry",
]

"""One trial: build the student, cost it on every chip, check budgets, train only if it can fit.

Cheap path first: the compressed architecture is built and costed before any
training; a configuration that breaks a cost budget on the main chip is
recorded as ``infeasible`` with its costs and takes no training time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autocompress.compress.fastpath import choose_fast_path
from autocompress.compress.recipe import distill_with_retry
from autocompress.compress.student import build_student, evaluate, save_student
from autocompress.compress.training import TrainingDiverged
from autocompress.core.errors import AutocompressError
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import TrialRecord
from autocompress.hardware.estimate import estimate_costs
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.legality import check_layers, issues_text
from autocompress.search.context import SearchContext

StageCallback = Callable[[str, float], None]

#: Accuracy reported to the sampler for a configuration that was never trained.
UNTRAINED_ACCURACY = 0.0


@dataclass(frozen=True)
class TrialOutcome:
    """A finished trial: the record for trials.jsonl and what the sampler is told."""

    record: TrialRecord
    objective_values: tuple[float, ...]
    constraint_values: dict[str, float]


def objective_values(
    objectives: tuple[str, ...], metrics: Mapping[str, float], main_costs: Mapping[str, float]
) -> tuple[float, ...]:
    """Objective values in order (accuracy from metrics, the rest from the main chip's costs)."""
    merged = {**main_costs, **metrics}
    merged.setdefault("accuracy", UNTRAINED_ACCURACY)
    return tuple(float(merged[name]) for name in objectives)


@dataclass(frozen=True)
class BuiltStudent:
    """A trial's student, built and costed, that meets every cost budget: ready to train.

    What :func:`build_and_cost` hands to :func:`train_built`; picklable (a Ray worker
    builds it in one process and trains it in another).
    """

    number: int
    config: TrialConfig
    student: Any  # nn.Module, on the device it was built on
    costs: dict[str, dict[str, float]]
    timings: dict[str, float]  # compress, cost
    seconds: float  # building and costing (counted in the trial's total)
    student_key: str = ""  # :func:`student_key`: the same for configurations that build it


def student_key(layers: list[Any], config: TrialConfig) -> str:
    """Digest of what a trial trains: every layer as the chip runs it (channels, kernel,
    bits, sparsity: :class:`~autocompress.hardware.layers.LayerDescriptor`) and the KD
    settings. Two configurations can build the same student (a narrower width with less
    pruning, or prune ratios that the channel alignment rounds to the same counts): a
    student keeps ``width × (1 − ratio)`` of each channel group, chosen by the same
    importance order, so equal layers mean equal weights."""
    described = [dataclasses.asdict(d) for d in layers]  # enums by str(): json's default
    text = json.dumps(
        [described, float(config.kd_temperature), float(config.kd_alpha)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def run_trial(
    ctx: SearchContext,
    number: int,
    config: TrialConfig,
    *,
    stage: StageCallback | None = None,
    epochs: float | None = None,
) -> TrialOutcome:
    """Run trial ``number`` with ``config``; never raises for a trial-level failure
    (the record says ``failed``), but does raise :class:`AutocompressError` for bad input.

    ``epochs`` overrides the run's fine-tune epochs (promotion to a longer rung).
    """
    built = build_and_cost(ctx, number, config, stage=stage)
    if isinstance(built, TrialOutcome):  # infeasible (or failed): never trained
        return built
    return train_built(ctx, built, stage=stage, epochs=epochs)


def build_and_cost(
    ctx: SearchContext, number: int, config: TrialConfig, *, stage: StageCallback | None = None
) -> TrialOutcome | BuiltStudent:
    """The cheap half of a trial: build the student, cost it on every chip, check the budgets
    and the chip's legality. An infeasible (or failed) trial's final outcome, else the
    student to train. Needs no data (``ctx.data`` may be None)."""

    notify = stage or (lambda _s, _f: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    costs: dict[str, dict[str, float]] = {}
    try:
        notify("compress", 0.0)
        t = time.perf_counter()
        student = build_student(
            ctx.teacher, config, ctx.main_chip, ctx.input_shape, protect=ctx.space.protect
        )
        timings["compress"] = time.perf_counter() - t

        notify("cost", 0.0)
        t = time.perf_counter()
        layers = extract_layers(student, ctx.input_shape)
        cost_by_chip = estimate_costs(layers, list(ctx.chips.values()))
        costs = {chip_id: cost.totals() for chip_id, cost in cost_by_chip.items()}
        timings["cost"] = time.perf_counter() - t

        main_costs = costs[ctx.main_chip.chip_id]
        violations = ctx.budget.violations(main_costs)
        constraints = violations
        issues = check_layers(layers, ctx.main_chip)
        if issues:  # the chip's toolchain cannot deploy it: infeasible, never trained
            violations = {**violations, "legality": float(len(issues))}
            constraints = {name: max(v, 1.0) for name, v in violations.items()}
        if any(v > 0 for v in violations.values()):
            timings["total"] = time.perf_counter() - start
            record = TrialRecord(
                number=number,
                state="infeasible",
                config=config,
                costs=costs,
                violations=violations,
                feasible=False,
                timings_s=timings,
                error=issues_text(ctx.main_chip.chip_id, issues) or None,
                backend=ctx.backend,
            )
            return TrialOutcome(
                record, objective_values(ctx.objectives, {}, main_costs), constraints
            )

        return BuiltStudent(
            number,
            config,
            student,
            costs,
            timings,
            time.perf_counter() - start,
            student_key(layers, config),
        )
    except (AutocompressError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a trial-level failure: record it, keep searching
        return _failed(ctx, number, config, costs, timings, start, exc)


def train_built(
    ctx: SearchContext,
    built: BuiltStudent,
    *,
    stage: StageCallback | None = None,
    epochs: float | None = None,
) -> TrialOutcome:
    """The expensive half of a trial: fine-tune ``built`` (distillation from the teacher),
    evaluate it, save it; the trial's outcome (``total`` counts the building and costing,
    not time spent waiting between the halves)."""

    notify = stage or (lambda _s, _f: None)
    number, config, student, costs = built.number, built.config, built.student, built.costs
    timings = dict(built.timings)
    start = time.perf_counter() - built.seconds
    main_costs = costs[ctx.main_chip.chip_id]
    try:
        t = time.perf_counter()
        ft = ctx.finetune
        epochs = float(ft.epochs if epochs is None else epochs)
        fast = choose_fast_path(
            ctx.device,
            epochs=epochs,
            train_images=len(ctx.data.train),
            batch_size=ft.batch_size,
            compile=None,  # the fast path decides
        )
        try:
            distilled = distill_with_retry(
                student,
                ctx.teacher,
                ctx.data,
                config,
                epochs=epochs,
                batch_size=fast.batch_size,
                compile=fast.compile,
                lr=ft.lr,
                device=ctx.device,
                feature_weight=ft.feature_weight,
                teacher_logits=ctx.train_logits,
                val_logits=ctx.val_logits,
                progress=lambda what, fraction: notify(
                    "finetune" if what in ("finetune", "train") else f"finetune ({what})", fraction
                ),
            )
        except TrainingDiverged as exc:  # never a point on the front: failed, with the reason
            timings["finetune"] = time.perf_counter() - t
            return _failed(ctx, number, config, costs, timings, start, f"training diverged: {exc}")
        student = distilled.student
        timings["finetune"] = time.perf_counter() - t
        timings["finetune_s_per_epoch"] = float(distilled.stats["seconds_per_epoch"])
        timings["finetune_images_per_s"] = float(distilled.stats["images_per_s"])

        notify("evaluate", 0.0)
        t = time.perf_counter()
        val = distilled.val  # scored by the end-of-run check
        if val is None:
            val = evaluate(student, ctx.data.val, teacher_logits=ctx.val_logits, device=ctx.device)
        test = evaluate(student, ctx.data.test, teacher_logits=ctx.test_logits, device=ctx.device)
        timings["evaluate"] = time.perf_counter() - t
        metrics = {
            "accuracy": float(val["accuracy"]),
            "test_accuracy": float(test["accuracy"]),
        }
        if "teacher_agreement" in val:
            metrics["teacher_agreement"] = float(val["teacher_agreement"])
        if distilled.retried:  # the first LR diverged; say so next to the result
            metrics["finetune_lr"] = float(distilled.lr)
        violations = ctx.budget.violations({**main_costs, "accuracy": metrics["accuracy"]})
        feasible = all(v <= 0 for v in violations.values())

        save_student(
            ctx.run.student_pt(number),
            student,
            teacher_spec=ctx.teacher_spec,
            config=config,
            chip_id=ctx.main_chip.chip_id,
            input_shape=ctx.input_shape,
            protect=ctx.space.protect,
        )
        timings["total"] = time.perf_counter() - start
        record = TrialRecord(
            number=number,
            state="complete",
            config=config,
            metrics=metrics,
            costs=costs,
            violations=violations,
            feasible=feasible,
            timings_s=timings,
            backend=ctx.backend,
            rungs=[
                {
                    "epochs": epochs,
                    "accuracy": metrics["accuracy"],
                    "test_accuracy": metrics["test_accuracy"],
                    "seconds": round(timings["finetune"] + timings["evaluate"], 3),
                }
            ],
        )
        return TrialOutcome(
            record, objective_values(ctx.objectives, metrics, main_costs), violations
        )
    except (AutocompressError, KeyboardInterrupt):
        raise
    except Exception as exc:  # a trial-level failure: record it, keep searching
        return _failed(ctx, number, config, costs, timings, start, exc)


def _failed(
    ctx: SearchContext,
    number: int,
    config: TrialConfig,
    costs: dict[str, dict[str, float]],
    timings: dict[str, float],
    start: float,
    error: Exception | str,
) -> TrialOutcome:
    """A failed trial's outcome: ``error`` is the exception, or the message to record."""
    timings["total"] = time.perf_counter() - start
    if isinstance(error, str):
        detail = error
    else:
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
    record = TrialRecord(
        number=number,
        state="failed",
        config=config,
        costs=costs,
        timings_s=timings,
        error=detail,
        backend=ctx.backend,
    )
    return TrialOutcome(record, (), {})


def failed_outcome(number: int, config: TrialConfig, message: str, backend: str) -> TrialOutcome:
    """A failed record for a trial that died outside :func:`run_trial`."""
    return TrialOutcome(
        TrialRecord(number=number, state="failed", config=config, error=message, backend=backend),
        (),
        {},
    )


def outcome_to_dict(outcome: TrialOutcome) -> dict[str, Any]:
    """JSON-ready form (for Ray results)."""
    return {
        "record": outcome.record.to_dict(),
        "objective_values": list(outcome.objective_values),
        "constraint_values": dict(outcome.constraint_values),
    }

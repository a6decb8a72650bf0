"""Multi-fidelity promotion: successive-halving rungs over the trained trials of a run.

Short fine-tunes rank candidates noisily. After the search proper (either
backend), the driver promotes:

1. rung by rung (epochs ``factor × finetune.epochs`` for each factor of
   ``promotion.rungs``, e.g. 1 → 3 → 9): of the feasible trials that reached the
   previous rung, the best third (``keep_fraction``) by Pareto rank of their
   accuracy *at that rung* (then by accuracy) is fine-tuned again from the
   teacher for the next rung's epochs;
2. then the uniform-scaling and budget-filling anchors (feasible, trained; see
   :mod:`autocompress.search.budget_fill`) not at the top rung, so the front is
   never worse than uniform scaling at the front's own epochs;
3. then the current front: any front model not at the top rung is promoted
   to it, until every model on the front carries top-rung accuracy.

Each promotion appends the trial's record again (same number, the later record
wins) with one more entry in ``rungs`` and ``metrics`` of the new rung; the
student checkpoint is replaced by the longer-trained one. Selection at each rung
reads only the recorded rung accuracies, so a resumed run (``--resume``) picks
the same trials and skips the promotions already recorded. Optuna pruners do
not support multi-objective studies; this needs none, and it works the same
after a Ray Tune search. The sampler is not told promoted accuracies (its
trials keep the first rung's values, one fidelity for the model it fits).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autocompress.core.errors import ConfigError
from autocompress.core.pareto import pareto_front
from autocompress.core.run_config import RunConfig
from autocompress.core.workspace import RunDirectory, TrialRecord
from autocompress.search.anchors import ANCHOR_ATTR
from autocompress.search.budget_fill import BUDGET_FILL_ATTR
from autocompress.search.context import load_context
from autocompress.search.front import update_pareto
from autocompress.search.objective import run_trial
from autocompress.search.progress import SearchProgress

DEFAULT_RUNGS: tuple[float, ...] = (1.0, 3.0, 9.0)
DEFAULT_KEEP_FRACTION = 1.0 / 3.0
_EPS = 1e-9


@dataclass
class PromotionSummary:
    """What a promotion pass did."""

    promoted: list[tuple[int, float]] = field(default_factory=list)  # (trial, epochs)
    skipped_for_time: int = 0
    interrupted: bool = False
    seconds: float = 0.0


def rung_epochs(base_epochs: float, factors: Sequence[float]) -> list[float]:
    """Epochs of each rung: ``base_epochs`` times each factor (increasing, first is 1)."""
    return [round(float(base_epochs) * float(f), 6) for f in factors]


def check_rungs(factors: Sequence[float]) -> tuple[float, ...]:
    """Validated rung factors: start at 1, strictly increasing."""
    values = tuple(float(f) for f in factors)
    if not values or abs(values[0] - 1.0) > _EPS:
        raise ConfigError(
            f"promotion rungs must start at 1 (the trial's own --epochs), got {list(values)}",
            hint="e.g. --rungs 1,3,9 (or --rungs 1 for no promotion)",
        )
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ConfigError(f"promotion rungs must increase, got {list(values)}")
    return values


def rung_accuracy(record: TrialRecord, epochs: float) -> float | None:
    """Validation accuracy the record has at ``epochs`` (None: not trained at that rung,
    or the promotion to it failed)."""
    for rung in record.rungs:
        if abs(float(rung.get("epochs", -1)) - epochs) <= _EPS and "accuracy" in rung:
            return float(rung["accuracy"])
    return None


def has_rung(record: TrialRecord, epochs: float) -> bool:
    """The record was trained (or tried and failed) at ``epochs``."""
    return any(abs(float(r.get("epochs", -1)) - epochs) <= _EPS for r in record.rungs)


def top_epochs(record: TrialRecord) -> float:
    """Epochs of the record's longest rung (0 when it has none)."""
    return max((float(r.get("epochs", 0.0)) for r in record.rungs), default=0.0)


def _ranked(
    records: Sequence[TrialRecord],
    objectives: Sequence[str],
    chip: str,
    accuracy_of: Callable[[TrialRecord], float],
) -> list[TrialRecord]:
    """Records by non-dominated rank (Pareto layers), then by accuracy, then number."""
    remaining = list(records)
    ordered: list[TrialRecord] = []
    while remaining:
        points = [{**r.costs.get(chip, {}), "accuracy": accuracy_of(r)} for r in remaining]
        layer = set(pareto_front(points, objectives))
        if not layer:  # defensive: equal points
            layer = set(range(len(remaining)))
        chosen = [remaining[i] for i in sorted(layer)]
        chosen.sort(key=lambda r: (-accuracy_of(r), r.number))
        ordered.extend(chosen)
        remaining = [r for i, r in enumerate(remaining) if i not in layer]
    return ordered


def plan_rung(
    records: Sequence[TrialRecord],
    *,
    objectives: Sequence[str],
    chip: str,
    epochs: Sequence[float],
    rung: int,
    keep_fraction: float,
) -> list[TrialRecord]:
    """Trials to be trained at rung ``rung`` (index into ``epochs``) that are not yet.

    The population is every complete, feasible trial with an accuracy at rung
    ``rung - 1``; the best ``ceil(keep_fraction × population)`` of them move up.
    """
    below = epochs[rung - 1]
    population = [
        r
        for r in records
        if r.state == "complete" and r.feasible and rung_accuracy(r, below) is not None
    ]
    if not population:
        return []
    keep = max(1, math.ceil(keep_fraction * len(population) - _EPS))
    ranked = _ranked(population, objectives, chip, lambda r: rung_accuracy(r, below) or 0.0)
    return [r for r in ranked[:keep] if not has_rung(r, epochs[rung])]


def front_below_top(
    records: Sequence[TrialRecord], *, objectives: Sequence[str], chip: str, top: float
) -> list[TrialRecord]:
    """Models on the current feasible front of ``chip`` not yet trained at ``top`` epochs."""
    candidates = [r for r in records if r.state == "complete" and r.feasible and chip in r.costs]
    points = [{**r.costs[chip], **r.metrics} for r in candidates]
    front = [candidates[i] for i in pareto_front(points, objectives)]
    return sorted(
        (r for r in front if not has_rung(r, top)),
        key=lambda r: (-r.metrics.get("accuracy", 0.0), r.number),
    )


def anchors_below_top(
    run: RunDirectory, records: Sequence[TrialRecord], *, top: float
) -> list[TrialRecord]:
    """Feasible trained anchor trials (see :mod:`autocompress.search.anchors`) not yet
    trained at ``top`` epochs, by trial number."""
    import optuna

    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    anchors = {
        t.number
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(ANCHOR_ATTR) or t.user_attrs.get(BUDGET_FILL_ATTR)
    }
    return [
        r
        for r in records
        if r.number in anchors and r.state == "complete" and r.feasible and not has_rung(r, top)
    ]


def merged_record(previous: TrialRecord, fresh: TrialRecord) -> TrialRecord:
    """``fresh`` (a longer rung of the same trial) with the earlier rungs and timings kept."""
    timings = dict(previous.timings_s)
    promotion_s = float(timings.get("promotion", 0.0)) + float(fresh.timings_s.get("total", 0.0))
    timings["promotion"] = round(promotion_s, 3)
    rungs = [dict(r) for r in previous.rungs] + [dict(r) for r in fresh.rungs]
    rungs.sort(key=lambda r: float(r.get("epochs", 0.0)))
    return dataclasses.replace(fresh, rungs=rungs, timings_s=timings)


def _seconds_per_epoch(records: Sequence[TrialRecord]) -> float:
    rates = [
        float(r.rungs[-1]["seconds"]) / float(r.rungs[-1]["epochs"])
        for r in records
        if r.state == "complete" and r.rungs and float(r.rungs[-1].get("epochs", 0)) > 0
    ]
    return sum(rates) / len(rates) if rates else 0.0


def promote(
    run: RunDirectory,
    config: RunConfig,
    *,
    deadline: float | None = None,
    show_progress: bool = False,
    context: Any = None,
) -> PromotionSummary:
    """Run every pending promotion of ``run`` (see the module docstring).

    ``deadline`` (``time.monotonic()`` seconds): start no promotion after it.
    ``context``: a loaded :class:`~autocompress.search.context.SearchContext`
    (loaded from the run directory on the first promotion when not given).
    """
    factors = tuple(config.promotion.rungs)
    summary = PromotionSummary()
    if len(factors) < 2:
        return summary
    keep_fraction = config.promotion.keep_fraction
    if keep_fraction is None:
        keep_fraction = DEFAULT_KEEP_FRACTION
    epochs = rung_epochs(config.finetune.epochs, factors)
    objectives = list(config.objectives)
    chip = config.chip
    started = time.monotonic()
    ctx = context

    def train(record: TrialRecord, at_epochs: float, progress: SearchProgress) -> bool:
        nonlocal ctx
        if deadline is not None and time.monotonic() >= deadline:
            summary.skipped_for_time += 1
            return False
        if ctx is None:
            ctx = load_context(run.path)
        progress.stage(record.number, f"{at_epochs:g} epochs")
        t = time.monotonic()
        outcome = run_trial(
            ctx,
            record.number,
            record.config,
            epochs=at_epochs,
            stage=lambda text, frac: progress.stage(
                record.number, f"{at_epochs:g} epochs {text}", frac
            ),
        )
        if outcome.record.state != "complete":
            # Keep the shorter rung's result; record that this rung was tried and why it failed.
            failed = {
                "epochs": at_epochs,
                "failed": outcome.record.error or outcome.record.state,
                "seconds": round(time.monotonic() - t, 3),
            }
            run.append_trial(dataclasses.replace(record, rungs=[*record.rungs, failed]))
            return True
        run.append_trial(merged_record(record, outcome.record))
        summary.promoted.append((record.number, at_epochs))
        update_pareto(run, config)
        progress.finished(
            done=len(summary.promoted),
            front_size=0,
            feasible=0,
            seconds=time.monotonic() - t,
            last=f"trial {record.number} at {at_epochs:g} epochs",
        )
        return True

    records = run.read_trials()
    estimate = []
    for rung in range(1, len(epochs)):
        estimate.extend(
            plan_rung(
                records,
                objectives=objectives,
                chip=chip,
                epochs=epochs,
                rung=rung,
                keep_fraction=keep_fraction,
            )
        )
    per_epoch = _seconds_per_epoch(records)
    if show_progress and per_epoch:
        from rich.console import Console

        Console(stderr=True).print(
            f"[bold]promotion[/] rungs {' → '.join(f'{e:g}' for e in epochs)} epochs "
            f"(best {keep_fraction:.0%} of each rung move up, then the front)"
        )
    with SearchProgress(
        enabled=show_progress, planned=max(1, len(estimate)), label="promoted"
    ) as progress:
        try:
            for rung in range(1, len(epochs)):
                for record in plan_rung(
                    run.read_trials(),
                    objectives=objectives,
                    chip=chip,
                    epochs=epochs,
                    rung=rung,
                    keep_fraction=keep_fraction,
                ):
                    if not train(record, epochs[rung], progress):
                        break
            # The uniform-scaling anchors at the top rung too: the front is never worse
            # than uniform scaling at the front's own epochs.
            for record in anchors_below_top(run, run.read_trials(), top=epochs[-1]):
                if not train(record, epochs[-1], progress):
                    break
            # The front, at the top rung: repeat until every front model has it.
            for _ in range(len(records) + 1):
                pending = front_below_top(
                    run.read_trials(), objectives=objectives, chip=chip, top=epochs[-1]
                )
                if not pending or not train(pending[0], epochs[-1], progress):
                    break
        except KeyboardInterrupt:
            summary.interrupted = True
    summary.seconds = time.monotonic() - started
    return summary


def promotion_settings(factors: Sequence[float]) -> dict[str, Any]:
    """The run.yaml ``promotion`` entry for rung ``factors``."""
    return {"rungs": [float(f) for f in factors], "keep_fraction": round(DEFAULT_KEEP_FRACTION, 6)}


__all__ = [
    "DEFAULT_RUNGS",
    "PromotionSummary",
    "anchors_below_top",
    "check_rungs",
    "front_below_top",
    "has_rung",
    "merged_record",
    "plan_rung",
    "promote",
    "promotion_settings",
    "rung_accuracy",
    "rung_epochs",
    "top_epochs",
]

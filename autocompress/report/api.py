"""``load_report``: the Pareto front of a run directory, on any chip, under any budget.

The front is recomputed from ``trials.jsonl`` (so it reflects ``--chip`` and
re-targeted budgets); with the run's own chip and budget it equals the
search's ``pareto.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.core.budget import METRIC_SENSE, Budget
from autocompress.core.errors import AutocompressError, ConfigError, UnknownNameError
from autocompress.core.pareto import front_numbers, hypervolume, pareto_front
from autocompress.hardware.cost import Cost
from autocompress.hardware.plugins import get_chip, list_chips
from autocompress.report.rescore import Rescorer
from autocompress.report.rows import TrialRow, make_row
from autocompress.report.run_data import RunData, load_run


@dataclass(frozen=True)
class Report:
    """The report of one run on one chip under one budget.

    Attributes:
        run: the loaded run directory.
        chip_id: the chip the costs refer to.
        rescored: costs were computed here (the chip is not among the run's ``chips``).
        budget: the budget rows are judged against (run's budget + overrides).
        budget_overrides: what the caller re-targeted.
        objectives: metric names of the front.
        rows: every trial, by number.
        front: trial numbers on the feasible front, best first by the first objective.
        hypervolume_history: (trial number, normalised hypervolume of the feasible front so far).
        hypervolume_reference: the reference point used (metric -> value).
        teacher: ``accuracy`` (validation), ``test_accuracy`` and the teacher's costs
            on the chip (when known).
    """

    run: RunData
    chip_id: str
    rescored: bool
    budget: Budget
    budget_overrides: Mapping[str, float]
    objectives: Sequence[str]
    rows: Sequence[TrialRow]
    front: Sequence[int]
    hypervolume_history: Sequence[tuple[int, float]] = field(default_factory=tuple)
    hypervolume_reference: Mapping[str, float] = field(default_factory=dict)
    teacher: Mapping[str, float | None] = field(default_factory=dict)
    rescorer: Rescorer | None = field(default=None, repr=False, compare=False)

    @property
    def front_rows(self) -> list[TrialRow]:
        by_number = {r.number: r for r in self.rows}
        return [by_number[n] for n in self.front]

    def row(self, number: int) -> TrialRow:
        for row in self.rows:
            if row.number == number:
                return row
        self.run.record(number)  # raises the clear "not in trials.jsonl" error
        raise AssertionError("unreachable")

    def counts(self) -> dict[str, int]:
        """Trials per state, plus feasible and front sizes."""
        out = {"trials": len(self.rows), "complete": 0, "infeasible": 0, "failed": 0}
        for row in self.rows:
            out[row.state] = out.get(row.state, 0) + 1
        out["feasible"] = sum(r.feasible for r in self.rows)
        out["front"] = len(self.front)
        return out

    @property
    def has_recovered(self) -> bool:
        """Some trial has a recovered accuracy (``autocompress finetune`` ran)."""
        return any(r.value("recovered_test_accuracy") is not None for r in self.rows)

    def finetune_throughput(self) -> dict[str, float] | None:
        """Median fine-tune seconds per epoch over the trained trials (None if not recorded)."""
        values = sorted(v for r in self.rows if (v := r.value("finetune_s_per_epoch")) is not None)
        if not values:
            return None
        median = values[len(values) // 2]
        return {"trials": float(len(values)), "median_s_per_epoch": median}

    def layer_cost(self, number: int) -> Cost:
        """Per-layer cost of trial ``number`` on the report's chip (rebuilt, not retrained)."""
        rescorer = self.rescorer or Rescorer(self.run)
        return rescorer.trial_cost(self.run.record(number), self.chip_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "run": str(self.run.path),
            "name": self.run.name,
            "chip": self.chip_id,
            "main_chip": self.run.main_chip,
            "rescored": self.rescored,
            "in_progress": self.run.in_progress,
            "trials_planned": self.run.trials_planned,
            "objectives": list(self.objectives),
            "budget": self.budget.active(),
            "budget_overrides": dict(self.budget_overrides),
            "counts": self.counts(),
            "finetune_throughput": self.finetune_throughput(),
            "front": list(self.front),
            "teacher": dict(self.teacher),
            "hypervolume": {
                "reference": dict(self.hypervolume_reference),
                "history": [{"trial": n, "hypervolume": hv} for n, hv in self.hypervolume_history],
            },
            "trials": [r.to_dict() for r in self.rows],
        }


_OVERRIDE_FIELDS = {f.name for f in dataclasses.fields(Budget)}


def _effective_budget(run: RunData, chip_id: str, overrides: Mapping[str, float | None]) -> Budget:
    unknown = set(overrides) - _OVERRIDE_FIELDS
    if unknown:
        raise ConfigError(
            f"unknown budget override(s) {sorted(unknown)}; known: {sorted(_OVERRIDE_FIELDS)}"
        )
    budget = run.budget()
    if chip_id != run.main_chip:
        # Budgets the search took from the main chip's defaults follow the chip asked for.
        chip_budgets = get_chip(chip_id).budgets
        from_chip = {
            name: getattr(chip_budgets, name)
            for name, source in run.budget_sources().items()
            if source.startswith("chip") and hasattr(chip_budgets, name)
        }
        budget = budget.replace(**from_chip)
    return budget.replace(**{k: v for k, v in overrides.items() if v is not None})


def _reference_point(
    rows: Sequence[TrialRow], objectives: Sequence[str], budget: Budget
) -> dict[str, float]:
    limits = {Budget.metric_of(k): v for k, v in budget.active().items()}
    reference: dict[str, float] = {}
    for name in objectives:
        if METRIC_SENSE.get(name, "min") == "max":
            reference[name] = 0.0
            continue
        values = [r.value(name) for r in rows if r.value(name) is not None]
        worst = max(values) * 1.1 if values else 1.0
        reference[name] = float(limits.get(name, worst)) if name in limits else worst
    return reference


def _hypervolume_history(
    rows: Sequence[TrialRow], objectives: Sequence[str], reference: Mapping[str, float]
) -> list[tuple[int, float]]:
    box = 1.0
    for name in objectives:
        box *= 1.0 if METRIC_SENSE.get(name, "min") == "max" else max(reference[name], 1e-12)
    history: list[tuple[int, float]] = []
    points: list[dict[str, float]] = []
    for row in rows:
        if row.feasible:
            points.append({name: row.value(name) for name in objectives})  # type: ignore[misc]
        if row.trained or row.state == "infeasible":
            front = [points[i] for i in pareto_front(points, objectives)]
            history.append((row.number, hypervolume(front, objectives, reference) / box))
    return history


def load_report(
    run_dir: str | Path,
    *,
    chip: str | None = None,
    budget_overrides: Mapping[str, float | None] | None = None,
) -> Report:
    """The Pareto front of ``run_dir`` (finished or running) on ``chip`` under re-targeted budgets.

    Args:
        run_dir: a run directory written by ``autocompress search``.
        chip: chip id to report on (default: the run's main chip). A chip the
            run did not cost trials on is re-scored by rebuilding each trained
            trial's architecture (no retraining).
        budget_overrides: Budget field -> limit (``latency_ms``, ``memory_kb``,
            ``power_mw``, ``energy_mj``, ``model_size_kb``, ``min_accuracy``)
            replacing the run's budget for this report only.

    Raises:
        RunDirectoryError: not a run directory.
        UnknownNameError: ``chip`` is not installed.
        ConfigError / BudgetError: a malformed override.
    """
    run = load_run(run_dir)
    overrides = {k: v for k, v in (budget_overrides or {}).items() if v is not None}
    chip_id = chip or run.main_chip
    recorded = chip_id in run.chips
    rescorer = Rescorer(run)
    if not recorded:
        known = [c.chip_id for c in list_chips()]
        if chip_id not in known:
            raise UnknownNameError(
                "chip", chip_id, known, list_hint="Run `autocompress chips` to list all."
            )
    budget = _effective_budget(run, chip_id, overrides)
    objectives = run.objectives

    rows: list[TrialRow] = []
    for record in run.records:
        if recorded:
            costs = record.costs.get(chip_id)
        elif record.state == "complete":
            costs = rescorer.trial_cost(record, chip_id).metrics()
        else:
            costs = None
        recovered = run.directory.read_recovered(record.number)
        rows.append(make_row(record, costs, budget, recovered))

    by_number = {r.number: r for r in rows}
    feasible = {r.number: {n: r.value(n) for n in objectives} for r in rows if r.feasible}
    first = objectives[0]
    sign = -1.0 if METRIC_SENSE.get(first, "min") == "max" else 1.0
    front = sorted(  # best first by the first objective, for the table
        front_numbers(feasible, objectives),  # type: ignore[arg-type]
        key=lambda n: sign * (by_number[n].value(first) or 0.0),
    )
    front_set = set(front)
    rows = [dataclasses.replace(r, on_front=r.number in front_set) for r in rows]

    reference = _reference_point(rows, objectives, budget)
    teacher = _teacher_reference(run, rescorer, chip_id)
    return Report(
        run=run,
        chip_id=chip_id,
        rescored=not recorded,
        budget=budget,
        budget_overrides=overrides,
        objectives=objectives,
        rows=rows,
        front=front,
        hypervolume_history=_hypervolume_history(rows, objectives, reference),
        hypervolume_reference=reference,
        teacher=teacher,
        rescorer=rescorer,
    )


def _teacher_reference(run: RunData, rescorer: Rescorer, chip_id: str) -> dict[str, float | None]:
    info = run.teacher
    out: dict[str, float | None] = {
        "accuracy": info.get("val_accuracy"),
        "test_accuracy": info.get("test_accuracy"),
    }
    if info and run.directory.teacher_pt.is_file():
        try:
            out.update(rescorer.teacher_cost(chip_id).metrics())
        except (AutocompressError, RuntimeError) as exc:  # optional: say why it is missing
            out["cost_error"] = f"{type(exc).__name__}: {exc}"  # type: ignore[assignment]
    return out

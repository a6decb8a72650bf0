"""Rebuild records that study.db has as finished but trials.jsonl lacks.

A writer killed between Optuna's commit and the append (or a trials.jsonl line
torn, overwritten or unreadable) leaves a trial the study counts and the run's
records miss. On every (re)start the first worker compares the two and appends
a record for each such trial:

- exactly the record the trial wrote, when study.db holds it (the objective
  stores it as the ``autocompress:record`` user attribute);
- otherwise rebuilt from the trial's parameters (the configuration), its costs
  computed again on every chip of the run (cheap: no training) and its accuracy
  from the objective values Optuna stored.
"""

from __future__ import annotations

from typing import Any

import optuna

from autocompress.compress.student import build_student
from autocompress.core.workspace import TrialRecord
from autocompress.hardware.estimate import estimate_costs
from autocompress.hardware.extract import extract_layers
from autocompress.search.context import SearchContext
from autocompress.search.study import FAILED_ATTR, INFEASIBLE_ATTR

RECORD_ATTR = "autocompress:record"


def _stored_record(trial: optuna.trial.FrozenTrial) -> TrialRecord | None:
    data = trial.user_attrs.get(RECORD_ATTR)
    if not isinstance(data, dict):
        return None
    try:
        record = TrialRecord.from_dict(data)
    except (ValueError, TypeError):
        return None
    return record if record.number == trial.number else None


def _rebuilt_record(ctx: SearchContext, trial: optuna.trial.FrozenTrial) -> TrialRecord | None:
    try:
        config = ctx.space.config_from_params(dict(trial.params))
    except Exception:  # parameters of another space: nothing to rebuild from
        return None
    if trial.state == optuna.trial.TrialState.FAIL:
        return TrialRecord(
            number=trial.number,
            state="failed",
            config=config,
            error=str(trial.user_attrs.get(FAILED_ATTR) or "failed"),
            backend=ctx.backend,
        )
    student = build_student(
        ctx.teacher, config, ctx.main_chip, ctx.input_shape, protect=ctx.space.protect
    )
    layers = extract_layers(student, ctx.input_shape)
    costs = {
        chip_id: cost.totals()
        for chip_id, cost in estimate_costs(layers, list(ctx.chips.values())).items()
    }
    main_costs = costs[ctx.main_chip.chip_id]
    infeasible = bool(trial.user_attrs.get(INFEASIBLE_ATTR))
    metrics: dict[str, Any] = {}
    values = list(trial.values or [])
    if not infeasible and "accuracy" in ctx.objectives and len(values) == len(ctx.objectives):
        metrics["accuracy"] = float(values[ctx.objectives.index("accuracy")])
    violations = ctx.budget.violations({**main_costs, **metrics})
    if infeasible:
        violations = ctx.budget.violations(main_costs)
    return TrialRecord(
        number=trial.number,
        state="infeasible" if infeasible else "complete",
        config=config,
        metrics=metrics,
        costs=costs,
        violations=violations,
        feasible=not infeasible and all(v <= 0 for v in violations.values()),
        backend=ctx.backend,
    )


def recover_missing_records(ctx: SearchContext, study: optuna.Study) -> list[int]:
    """Append a record for every counted trial of ``study`` missing from trials.jsonl."""
    have = {record.number for record in ctx.run.read_trials()}
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=states):
        if trial.number in have:
            continue
        if trial.state == optuna.trial.TrialState.FAIL and not trial.user_attrs.get(FAILED_ATTR):
            continue  # killed mid-run, not finished: retried, not recorded
        record = _stored_record(trial) or _rebuilt_record(ctx, trial)
        if record is not None:
            ctx.run.append_trial(record)
            recovered.append(trial.number)
    return recovered

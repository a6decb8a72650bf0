"""Rebuild records that study.db has as finished but trials.jsonl lacks, and settle
trials whose result was written but never told.

A writer killed between Optuna's commit and the append (or a trials.jsonl line
torn, overwritten or unreadable) leaves a trial the study counts and the run's
records miss. On every (re)start the first worker compares the two and appends
a record for each such trial:

- exactly the record the trial wrote, when study.db holds it (the objective
  stores it as the ``autocompress:record`` user attribute);
- otherwise rebuilt from the trial's parameters (the configuration), its costs
  computed again on every chip of the run (cheap: no training) and its accuracy
  from the objective values Optuna stored.

A writer killed after a trained trial's result was written (its record stored in
study.db, or appended to trials.jsonl) but before Optuna was told leaves that trial
RUNNING. :func:`settle_finished_orphans` tells it from its record when a session
starts or ends, so a resume does not train the same configuration again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from autocompress.compress.student import build_student
from autocompress.core.workspace import RunDirectory, TrialRecord
from autocompress.hardware.estimate import estimate_costs
from autocompress.hardware.extract import extract_layers
from autocompress.search.anchors import config_key
from autocompress.search.constraints import record_constraints
from autocompress.search.context import SearchContext
from autocompress.search.objective import objective_values
from autocompress.search.study import FAILED_ATTR, INFEASIBLE_ATTR, KEY_ATTR, TRAINED_ATTR

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


def settle_finished_orphans(
    run: RunDirectory,
    study: optuna.Study,
    *,
    objectives: Sequence[str],
    main_chip: str,
    constraint_names: Sequence[str],
) -> list[int]:
    """Tell every RUNNING trial of ``study`` that finished training before its writer died.

    Such a trial has a ``complete`` record, stored in study.db (the Optuna backend
    stores it before the append) or in trials.jsonl (the Ray driver appends before the
    tell), and its student file. It is told the record's objective values and
    constraints and counts as trained; a record missing from trials.jsonl is appended.
    Call only where no live worker can be telling trials: when a session starts, or
    after its workers ended. Returns the numbers of the trials settled.
    """
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        return []  # the common case: nothing to settle, trials.jsonl not read
    records = {record.number: record for record in run.read_trials()}
    settled: list[int] = []
    for frozen in running:
        record = _stored_record(frozen) or records.get(frozen.number)
        if record is None or record.state != "complete" or main_chip not in record.costs:
            continue  # interrupted mid-trial: failed and retried as before
        key = frozen.user_attrs.get(KEY_ATTR)
        if key is not None and key != config_key(record.config):
            continue
        if not run.student_pt(frozen.number).is_file():
            continue  # no model to show for it: train it again
        if frozen.number not in records:
            run.append_trial(record)
        trial = optuna.Trial(study, frozen._trial_id)
        trial.set_user_attr(RECORD_ATTR, record.to_dict())
        trial.set_user_attr(TRAINED_ATTR, True)
        record_constraints(trial, record.violations, constraint_names)
        values = objective_values(tuple(objectives), record.metrics, record.costs[main_chip])
        try:
            study.tell(trial, list(values))
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # told or failed meanwhile: nothing to settle
        settled.append(frozen.number)
    return settled

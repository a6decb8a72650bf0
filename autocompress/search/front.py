"""The Pareto fronts of a run, per chip, written to ``pareto.json`` as trials finish.

Main chip: completed trials that meet every budget. Other chips: completed
trials that meet the accuracy budget (the cost budgets refer to the main chip),
scored with that chip's costs. Built on :mod:`autocompress.core.pareto`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from autocompress.core.budget import Budget
from autocompress.core.pareto import front_numbers as pareto_front_numbers
from autocompress.core.run_config import RunConfig
from autocompress.core.workspace import RunDirectory, TrialRecord


def front_numbers(
    records: Sequence[TrialRecord],
    objectives: Sequence[str],
    chip_id: str,
    *,
    main_chip: str,
    budget: Budget,
) -> list[int]:
    """Trial numbers on the feasible front of ``chip_id``."""
    points: dict[int, dict[str, float]] = {}
    for record in records:
        if record.state != "complete" or chip_id not in record.costs:
            continue
        if chip_id == main_chip:
            if not record.feasible:
                continue
        elif (
            budget.min_accuracy is not None
            and record.metrics.get("accuracy", 0.0) < budget.min_accuracy
        ):
            continue
        points[record.number] = {**record.costs[chip_id], **record.metrics}
    return pareto_front_numbers(points, objectives)


def compute_fronts(run: RunDirectory, config: RunConfig) -> dict[str, Any]:
    """The pareto.json content for the run as it is on disk now."""
    records = run.read_trials()
    objectives = list(config.objectives)
    fronts = {
        chip_id: front_numbers(
            records, objectives, chip_id, main_chip=config.chip, budget=config.budget
        )
        for chip_id in config.chips
    }
    return {
        "objectives": objectives,
        "chip": config.chip,
        "fronts": fronts,
        "trials_finished": len(records),
        "updated_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def update_pareto(run: RunDirectory, config: RunConfig) -> dict[str, Any]:
    """Recompute and atomically rewrite ``pareto.json``; returns its content."""
    data = compute_fronts(run, config)
    run.write_pareto(data)
    return data

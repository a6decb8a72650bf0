"""The in-process backend: Optuna on the run's SQLite study, one or several worker processes.

Each worker process rebuilds the trial inputs from the run directory
(:func:`~autocompress.search.context.load_context`) and runs
``study.optimize`` against the shared ``study.db`` until the run has its
planned number of trials (workers may finish up to ``workers - 1`` extra
trials). Ctrl-C stops every worker; finished trials stay recorded.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from autocompress.core.workspace import RunDirectory
from autocompress.search.constraints import record_constraints
from autocompress.search.context import SearchContext, load_context
from autocompress.search.front import update_pareto
from autocompress.search.objective import run_trial
from autocompress.search.progress import SearchProgress
from autocompress.search.recover import RECORD_ATTR, recover_missing_records
from autocompress.search.samplers import make_sampler
from autocompress.search.study import (
    FAILED_ATTR,
    INFEASIBLE_ATTR,
    counted_trials,
    make_storage,
    open_study,
    suggest_config,
)


class _TrialFailed(Exception):
    """A trial failed on its own (recorded); the search goes on."""


@dataclass
class WorkerSummary:
    interrupted: bool = False
    trials_run: int = 0


def session_seed(seed: int, worker_index: int, existing_trials: int) -> int:
    """Distinct but reproducible sampler seeds per worker and per resumed session."""
    return seed + 7919 * worker_index + existing_trials


def _make_objective(ctx: SearchContext, progress: SearchProgress, state: WorkerSummary) -> Any:
    names = ctx.constraint_names

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        config = suggest_config(trial, ctx.space)
        outcome = run_trial(
            ctx,
            trial.number,
            config,
            stage=lambda text, frac: progress.stage(trial.number, text, frac),
        )
        # study.db keeps the record too, so a lost trials.jsonl line can be rebuilt exactly
        trial.set_user_attr(RECORD_ATTR, outcome.record.to_dict())
        ctx.run.append_trial(outcome.record)
        state.trials_run += 1
        if outcome.record.state == "failed":
            trial.set_user_attr(FAILED_ATTR, outcome.record.error or "failed")
            raise _TrialFailed(outcome.record.error)
        if outcome.record.state == "infeasible":
            trial.set_user_attr(INFEASIBLE_ATTR, True)
        record_constraints(trial, outcome.constraint_values, names)
        return outcome.objective_values

    return objective


def _progress_callback(ctx: SearchContext, progress: SearchProgress, planned: int) -> Any:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        pareto = update_pareto(ctx.run, ctx.config)
        records = ctx.run.read_trials()
        done = counted_trials(study)
        feasible = sum(1 for r in records if r.feasible and r.state == "complete")
        state = (
            "failed"
            if trial.state == optuna.trial.TrialState.FAIL
            else ("infeasible" if trial.user_attrs.get(INFEASIBLE_ATTR) else "complete")
        )
        progress.finished(
            done=done,
            front_size=len(pareto["fronts"].get(ctx.config["chip"], [])),
            feasible=feasible,
            last=f"trial {trial.number} {state}",
        )
        if done >= planned:
            study.stop()

    return callback


def run_worker(
    run_path: str | Path,
    *,
    worker_index: int,
    planned: int,
    timeout_s: float | None,
    show_progress: bool,
    deadline: float | None = None,
) -> WorkerSummary:
    """One worker: optimise until the run has ``planned`` trials (or timeout / Ctrl-C)."""
    # Failed trials are recorded in trials.jsonl; Optuna's own traceback logging
    # (a Ctrl-C shows up as a failed trial) would only print a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ctx = load_context(run_path, backend="optuna")
    run = ctx.run
    config = ctx.config
    storage = make_storage(run)
    probe = optuna.load_study(study_name="autocompress", storage=storage)
    existing = len(probe.trials)
    sampler = make_sampler(
        config["sampler"]["name"],
        seed=session_seed(int(config["sampler"].get("seed", 0)), worker_index, existing),
        constrained=bool(ctx.constraint_names),
    )
    study = open_study(run, ctx.objectives, sampler, storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if worker_index == 0:
        recover_missing_records(ctx, study)
    summary = WorkerSummary()
    done = counted_trials(study)
    if done >= planned:
        return summary
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return summary
        timeout_s = remaining if timeout_s is None else min(timeout_s, remaining)
    with SearchProgress(enabled=show_progress, planned=planned, done=done) as progress:
        try:
            study.optimize(
                _make_objective(ctx, progress, summary),
                n_trials=None,
                timeout=timeout_s,
                callbacks=[_progress_callback(ctx, progress, planned)],
                catch=(_TrialFailed,),
                gc_after_trial=False,
                show_progress_bar=False,
            )
        except KeyboardInterrupt:
            summary.interrupted = True
    return summary


def _worker_main(
    run_path: str, worker_index: int, planned: int, timeout_s: float | None, threads: int
) -> None:
    import torch

    from autocompress.hardware.plugins import PluginWarning

    # The parent process already told the user about plugin problems.
    warnings.filterwarnings("ignore", category=PluginWarning)

    from autocompress.core.errors import RunFileWarning

    warnings.simplefilter("ignore", RunFileWarning)  # the driver reports damaged lines once
    torch.set_num_threads(threads)
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(
            run_path,
            worker_index=worker_index,
            planned=planned,
            timeout_s=timeout_s,
            show_progress=False,
        )


def run_optuna_search(
    run: RunDirectory,
    *,
    planned: int,
    workers: int,
    timeout_s: float | None,
    show_progress: bool,
) -> WorkerSummary:
    """Run with ``workers`` processes (this one included); returns this process's summary."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // workers)
    others = []
    if workers > 1:
        context = multiprocessing.get_context("spawn")
        for index in range(1, workers):
            process = context.Process(
                target=_worker_main,
                args=(str(run.path), index, planned, timeout_s, threads),
                name=f"autocompress-worker-{index}",
            )
            process.start()
            others.append(process)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    summary: WorkerSummary | None = None
    try:
        summary = run_worker(
            run.path,
            worker_index=0,
            planned=planned,
            timeout_s=timeout_s,
            show_progress=show_progress,
        )
    except KeyboardInterrupt:
        summary = WorkerSummary(interrupted=True)
    finally:
        torch.set_num_threads(previous)
        if summary is None or summary.interrupted:
            _interrupt(others)  # Ctrl-C reaches the driver only: stop the others too
        for process in others:
            try:
                process.join()
            except KeyboardInterrupt:
                process.terminate()
                process.join()
                summary = WorkerSummary(interrupted=True)
    return summary


def _interrupt(processes: list[Any]) -> None:
    """SIGINT to worker processes still alive (they stop after recording what finished)."""
    import signal

    for process in processes:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGINT)

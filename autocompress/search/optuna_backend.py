"""The in-process backend: Optuna on the run's SQLite study, one or several worker processes.

Each worker process rebuilds the trial inputs from the run directory
(:func:`~autocompress.search.context.load_context`) and runs
``study.optimize`` against the shared ``study.db`` until the run has its
planned number of trained trials (workers may finish up to ``workers - 1``
extra trials), or the proposal cap. A proposal whose configuration an earlier
trial already has (same :func:`~autocompress.search.anchors.config_key`, read
from the study, so every worker and every resumed session sees it) is not
trained again: it is recorded as ``duplicate`` and the sampler is told the
earlier result. Ctrl-C stops every worker; finished trials stay recorded.
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

from autocompress.core.workspace import RunDirectory, TrialRecord
from autocompress.search.anchors import config_key
from autocompress.search.constraints import constraints_from_trial, record_constraints
from autocompress.search.context import SearchContext, load_context
from autocompress.search.front import update_pareto
from autocompress.search.objective import run_trial
from autocompress.search.progress import SearchProgress
from autocompress.search.recover import RECORD_ATTR, recover_missing_records
from autocompress.search.samplers import make_sampler, tells_infeasible, uses_numeric_encoding
from autocompress.search.study import (
    DUPLICATE_ATTR,
    FAILED_ATTR,
    INFEASIBLE_ATTR,
    KEY_ATTR,
    TRAINED_ATTR,
    make_storage,
    open_study,
    proposal_cap,
    proposals,
    suggest_config,
    trained_trials,
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


def _earlier_same(
    trial: optuna.Trial, key: str, *, poll_s: float = 0.5
) -> optuna.trial.FrozenTrial | None:
    """The earliest other trial of the study with configuration ``key`` that finished
    (complete or pruned), waiting for one that another worker is still running.
    None when no other trial has that configuration (or it failed)."""
    study = trial.study
    running = optuna.trial.TrialState.RUNNING
    usable = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    while True:
        same = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and t.user_attrs.get(KEY_ATTR) == key
        ]
        done = sorted((t for t in same if t.state in usable), key=lambda t: t.number)
        if done:
            return done[0]
        if not any(t.state == running and t.number < trial.number for t in same):
            return None
        time.sleep(poll_s)  # another worker is training it: wait for its result
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def _reuse(
    ctx: SearchContext, trial: optuna.Trial, config: Any, earlier: optuna.trial.FrozenTrial
) -> tuple[float, ...]:
    """Record trial ``trial`` as a duplicate of ``earlier`` and tell the sampler its result."""
    previous = {r.number: r for r in ctx.run.read_trials()}.get(earlier.number)
    record = TrialRecord(
        number=trial.number,
        state="duplicate",
        config=config,
        metrics=dict(previous.metrics) if previous else {},
        costs=dict(previous.costs) if previous else {},
        violations=dict(previous.violations) if previous else {},
        feasible=bool(previous.feasible) if previous else False,
        backend=ctx.backend,
        duplicate_of=earlier.number,
    )
    ctx.run.append_trial(record)
    trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
    if earlier.user_attrs.get(INFEASIBLE_ATTR):
        trial.set_user_attr(INFEASIBLE_ATTR, True)
    if earlier.state == optuna.trial.TrialState.PRUNED:
        raise optuna.TrialPruned(f"same configuration as trial {earlier.number}")
    names = ctx.constraint_names
    values = dict(zip(names, constraints_from_trial(earlier), strict=False))
    record_constraints(trial, values, names)
    return tuple(earlier.values)


def _make_objective(ctx: SearchContext, progress: SearchProgress, state: WorkerSummary) -> Any:
    names = ctx.constraint_names
    sampler_name = ctx.config.sampler.name
    numeric = uses_numeric_encoding(sampler_name)
    tell_infeasible = tells_infeasible(sampler_name)

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        config = suggest_config(trial, ctx.space, numeric=numeric)
        key = config_key(config)
        trial.set_user_attr(KEY_ATTR, key)
        earlier = _earlier_same(trial, key)
        state.trials_run += 1
        if earlier is not None:
            return _reuse(ctx, trial, config, earlier)
        outcome = run_trial(
            ctx,
            trial.number,
            config,
            stage=lambda text, frac: progress.stage(trial.number, text, frac),
        )
        # study.db keeps the record too, so a lost trials.jsonl line can be rebuilt exactly
        trial.set_user_attr(RECORD_ATTR, outcome.record.to_dict())
        ctx.run.append_trial(outcome.record)
        if outcome.record.state == "failed":
            trial.set_user_attr(FAILED_ATTR, outcome.record.error or "failed")
            raise _TrialFailed(outcome.record.error)
        if outcome.record.state == "infeasible":
            trial.set_user_attr(INFEASIBLE_ATTR, True)
            if not tell_infeasible:
                raise optuna.TrialPruned("infeasible: not trained, no accuracy to tell")
        else:
            trial.set_user_attr(TRAINED_ATTR, True)
        record_constraints(trial, outcome.constraint_values, names)
        return outcome.objective_values

    return objective


def _progress_callback(ctx: SearchContext, progress: SearchProgress, planned: int) -> Any:
    cap = proposal_cap(planned)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        pareto = update_pareto(ctx.run, ctx.config)
        records = ctx.run.read_trials()
        trained = trained_trials(study)
        if trial.state == optuna.trial.TrialState.FAIL:
            state = "failed"
        elif trial.user_attrs.get(DUPLICATE_ATTR) is not None:
            state = f"same as trial {trial.user_attrs[DUPLICATE_ATTR]}"
        elif trial.user_attrs.get(INFEASIBLE_ATTR):
            state = "infeasible"
        else:
            state = "trained"
        progress.finished(
            done=trained,
            front_size=len(pareto["fronts"].get(ctx.config.chip, [])),
            feasible=sum(1 for r in records if r.feasible and r.state == "complete"),
            infeasible=sum(1 for r in records if r.state == "infeasible"),
            duplicates=sum(1 for r in records if r.state == "duplicate"),
            seconds=_trial_seconds(trial),
            trained_now=state == "trained" or state == "failed",
            last=f"trial {trial.number} {state}",
        )
        if trained >= planned or proposals(study) >= cap:
            study.stop()

    return callback


def _trial_seconds(trial: optuna.trial.FrozenTrial) -> float:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def run_worker(
    run_path: str | Path,
    *,
    worker_index: int,
    planned: int,
    timeout_s: float | None,
    show_progress: bool,
    deadline: float | None = None,
    workers: int = 1,
) -> WorkerSummary:
    """One worker: optimise until the run has ``planned`` trained trials, or
    :func:`~autocompress.search.study.proposal_cap` proposals (or timeout / Ctrl-C)."""
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
        config.sampler.name,
        seed=session_seed(config.sampler.seed, worker_index, existing),
        constrained=bool(ctx.constraint_names),
    )
    study = open_study(run, ctx.objectives, sampler, storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if worker_index == 0:
        recover_missing_records(ctx, study)
    summary = WorkerSummary()
    done = trained_trials(study)
    if done >= planned or proposals(study) >= proposal_cap(planned):
        return summary
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return summary
        timeout_s = remaining if timeout_s is None else min(timeout_s, remaining)
    with SearchProgress(
        enabled=show_progress, planned=planned, done=done, workers=workers
    ) as progress:
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

    # Never more threads than this process was given (OMP_NUM_THREADS, torch.set_num_threads):
    # on a shared or loaded machine extra threads make each trial several times slower.
    threads = max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // workers))
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
            workers=workers,
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

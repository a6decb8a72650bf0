"""The in-process backend: Optuna on the run's SQLite study, one or several worker processes.

Each worker process rebuilds the trial inputs from the run directory
(:func:`~autocompress.search.context.load_context`) and runs
``study.optimize`` against the shared ``study.db`` until the run has its
planned number of trained trials (workers may finish up to ``workers - 1``
extra trials), or the proposal cap. A proposal whose configuration an earlier
trial already has (same :func:`~autocompress.search.anchors.config_key`, read
from the study, so every worker and every resumed session sees it) is not
trained again: it is recorded as ``duplicate`` and the sampler is told the
earlier result. The same holds for a configuration that builds the very student
a trained trial built (same :func:`~autocompress.search.objective.student_key`):
it is costed, not trained. Ctrl-C stops every worker; finished trials stay recorded.

Ctrl-C (SIGINT) interrupts a trial only while it trains or waits for another
worker (:class:`SigintGate`): one that lands while Optuna asks for, tells or
records a trial is held until that is done, and the search stops there. Optuna's
``study.optimize`` is not safe against a ``KeyboardInterrupt`` at those points
(Optuna 5.0 ``_run_trial``: ``UnboundLocalError: updated_state``, a trial left
RUNNING, or a heartbeat thread that never stops, so the process hangs at exit).
"""

from __future__ import annotations

import _thread
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
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
from autocompress.search.objective import BuiltStudent, build_and_cost, train_built
from autocompress.search.progress import SearchProgress
from autocompress.search.recover import (
    RECORD_ATTR,
    recover_missing_records,
    settle_finished_orphans,
)
from autocompress.search.samplers import make_sampler, tells_infeasible, uses_numeric_encoding
from autocompress.search.study import (
    DUPLICATE_ATTR,
    FAILED_ATTR,
    INFEASIBLE_ATTR,
    KEY_ATTR,
    STUDENT_KEY_ATTR,
    STUDY_NAME,
    TRAINED_ATTR,
    make_storage,
    open_study,
    proposal_cap,
    proposals,
    record_first_heartbeat,
    retry_orphaned_trials,
    suggest_config,
    trained_complete,
    trained_trials,
)


class _TrialFailed(Exception):
    """A trial failed on its own (recorded); the search goes on."""


@dataclass
class WorkerSummary:
    interrupted: bool = False
    trials_run: int = 0


class SigintGate:
    """Ctrl-C (SIGINT) of one process's search, raised only where a trial may stop.

    While :meth:`installed`, a SIGINT inside an :meth:`open` block (training, waiting)
    raises ``KeyboardInterrupt`` at once; anywhere else (Optuna asking for, telling or
    storing a trial, a record being written) it only sets :attr:`pending`, which the
    search reads at its next safe point (:meth:`raise_if_pending`, the trial callback).
    A second SIGINT is never lost: it sets :attr:`pending` again. Worker processes start
    with SIGINT ignored (:func:`_start_workers`) until their gate is installed; the driver
    sends it again until they end (:func:`_join`).
    """

    def __init__(self) -> None:
        self.pending = False
        self._open = False
        self._in_block = False  # inside an open() block (whether or not it raised yet)

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending = True
        if self._open:
            self._open = False  # one KeyboardInterrupt; Optuna's tell that follows is held
            raise KeyboardInterrupt

    def _unraisable(self, unraisable: Any, default: Any) -> None:
        """A KeyboardInterrupt of this gate raised inside a callback that cannot pass it on
        (a weakref or garbage-collector callback running when the SIGINT came): Python would
        print "Exception ignored … Traceback" and the block would go on. Raise it again in
        the block's own code instead; anything else goes to the previous hook."""
        if issubclass(unraisable.exc_type, KeyboardInterrupt) and self.pending:
            if self._in_block:
                self._open = True
                # from a new thread (one that this hook does not wait for): the handler then
                # runs in the main thread's own code; called here, it would run inside this
                # hook and be swallowed again
                _thread.start_new_thread(_thread.interrupt_main, (signal.SIGINT,))
            return
        default(unraisable)

    @contextlib.contextmanager
    def installed(self) -> Any:
        """This gate as the SIGINT handler (in the main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        hook = sys.unraisablehook
        sys.unraisablehook = lambda unraisable: self._unraisable(unraisable, hook)
        try:
            yield self
        finally:
            sys.unraisablehook = hook
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def open(self) -> Any:
        """A block a SIGINT interrupts at once (also one that came just before it)."""
        self._open = True  # before the check: a SIGINT in between raises in the handler
        self._in_block = True
        try:
            self.raise_if_pending()
            yield
        finally:
            self._open = False
            self._in_block = False

    def raise_if_pending(self) -> None:
        """KeyboardInterrupt when a SIGINT was held."""
        if self.pending:
            raise KeyboardInterrupt


def session_seed(seed: int, worker_index: int, existing_trials: int) -> int:
    """Distinct but reproducible sampler seeds per worker and per resumed session."""
    return seed + 7919 * worker_index + existing_trials


def _earlier_same(
    trial: optuna.Trial, key: str, gate: SigintGate, *, poll_s: float = 0.5
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
        with gate.open():
            time.sleep(poll_s)  # another worker is training it: wait for its result
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


def _earlier_same_student(trial: optuna.Trial, key: str) -> optuna.trial.FrozenTrial | None:
    """The earliest other trained (complete) trial of the study that built the student
    ``key`` (:func:`~autocompress.search.objective.student_key`), or None."""
    done = [
        t
        for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.number != trial.number
        and t.user_attrs.get(STUDENT_KEY_ATTR) == key
        and trained_complete(t)
    ]
    return min(done, key=lambda t: t.number) if done else None


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


def _make_objective(
    ctx: SearchContext,
    progress: SearchProgress,
    state: WorkerSummary,
    gate: SigintGate,
    started: list[int],
) -> Any:
    names = ctx.constraint_names
    sampler_name = ctx.config.sampler.name
    numeric = uses_numeric_encoding(sampler_name)
    tell_infeasible = tells_infeasible(sampler_name)

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        started.append(trial.number)
        gate.raise_if_pending()  # a Ctrl-C while Optuna asked for this trial
        record_first_heartbeat(trial)
        config = suggest_config(trial, ctx.space, numeric=numeric)
        key = config_key(config)
        trial.set_user_attr(KEY_ATTR, key)
        earlier = _earlier_same(trial, key, gate)
        state.trials_run += 1
        if earlier is not None:
            return _reuse(ctx, trial, config, earlier)
        stage = lambda text, frac: progress.stage(trial.number, text, frac)  # noqa: E731
        with gate.open():  # Ctrl-C stops the work; from here on it waits for the tell
            built = build_and_cost(ctx, trial.number, config, stage=stage)
        if isinstance(built, BuiltStudent):
            trial.set_user_attr(STUDENT_KEY_ATTR, built.student_key)
            same = _earlier_same_student(trial, built.student_key)
            if same is not None:  # another configuration built this very student
                return _reuse(ctx, trial, config, same)
            with gate.open():
                outcome = train_built(ctx, built, stage=stage)
        else:
            outcome = built
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


def _progress_callback(
    ctx: SearchContext,
    progress: SearchProgress,
    planned: int,
    gate: SigintGate,
    summary: WorkerSummary,
) -> Any:
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
        if gate.pending:  # a Ctrl-C while the trial was told or recorded: stop here
            summary.interrupted = True
            study.stop()
        elif trained >= planned or proposals(study) >= cap:
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
    gate: SigintGate | None = None,
) -> WorkerSummary:
    """One worker: optimise until the run has ``planned`` trained trials, or
    :func:`~autocompress.search.study.proposal_cap` proposals (or timeout / Ctrl-C).

    ``gate``: one the caller installed already (else this call installs its own)."""
    # Failed trials are recorded in trials.jsonl; Optuna's own traceback logging
    # (a Ctrl-C shows up as a failed trial) would only print a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if gate is None:
        with SigintGate().installed() as own:
            return run_worker(
                run_path,
                worker_index=worker_index,
                planned=planned,
                timeout_s=timeout_s,
                show_progress=show_progress,
                deadline=deadline,
                workers=workers,
                gate=own,
            )
    with gate.open():
        ctx = load_context(run_path, backend="optuna")
    summary = _optimize(
        ctx,
        gate,
        worker_index=worker_index,
        planned=planned,
        timeout_s=timeout_s,
        show_progress=show_progress,
        deadline=deadline,
        workers=workers,
    )
    summary.interrupted = summary.interrupted or gate.pending
    return summary


def _optimize(
    ctx: SearchContext,
    gate: SigintGate,
    *,
    worker_index: int,
    planned: int,
    timeout_s: float | None,
    show_progress: bool,
    deadline: float | None,
    workers: int,
) -> WorkerSummary:
    """:func:`run_worker` once its inputs are loaded, with SIGINT held by ``gate``."""
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
    if done >= planned or proposals(study) >= proposal_cap(planned) or gate.pending:
        return summary
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return summary
        timeout_s = remaining if timeout_s is None else min(timeout_s, remaining)
    with SearchProgress(
        enabled=show_progress, planned=planned, done=done, workers=workers
    ) as progress:
        started: list[int] = []
        try:
            study.optimize(
                _make_objective(ctx, progress, summary, gate, started),
                n_trials=None,
                timeout=timeout_s,
                callbacks=[_progress_callback(ctx, progress, planned, gate, summary)],
                catch=(_TrialFailed,),
                gc_after_trial=False,
                show_progress_bar=False,
            )
        except KeyboardInterrupt:
            summary.interrupted = True
            if started:
                _retry_interrupted(study, started[-1])
    return summary


def _retry_interrupted(study: optuna.Study, number: int) -> None:
    """Enqueue trial ``number`` again with its parameters when Ctrl-C stopped it (Optuna
    told it FAIL, not failed on its own), so that a resume trains that configuration."""
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if (
        trial is None
        or trial.state != optuna.trial.TrialState.FAIL
        or trial.user_attrs.get(FAILED_ATTR)
    ):
        return
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k != KEY_ATTR}
    if trial.params:
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=user_attrs,
                system_attrs={"failed_trial": trial.number},
            )
        )
    elif trial.system_attrs.get("fixed_params"):  # an enqueued trial stopped before it began
        study.enqueue_trial(trial.system_attrs["fixed_params"], user_attrs=user_attrs)


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
    """Run with ``workers`` processes (this one included); returns this process's summary.

    The other workers start only when trials are left to run. When every process has
    ended, no trial is left RUNNING: one a worker left (killed, or stopped by a second
    Ctrl-C) is failed and retried with its parameters on resume."""
    with SigintGate().installed() as gate:
        return _run_processes(
            run,
            gate,
            planned=planned,
            workers=workers,
            timeout_s=timeout_s,
            show_progress=show_progress,
        )


def _run_processes(
    run: RunDirectory,
    gate: SigintGate,
    *,
    planned: int,
    workers: int,
    timeout_s: float | None,
    show_progress: bool,
) -> WorkerSummary:
    import torch

    # Never more threads than this process was given (OMP_NUM_THREADS, torch.set_num_threads):
    # on a shared or loaded machine extra threads make each trial several times slower.
    threads = max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // workers))
    study = optuna.load_study(study_name=STUDY_NAME, storage=make_storage(run))
    _settle(run, study)  # before any worker: a trial left RUNNING is no live worker's
    others: list[Any] = []
    previous = torch.get_num_threads()
    summary: WorkerSummary | None = None
    try:
        if workers > 1 and _trials_left(study, planned):
            _start_workers(others, run, workers, planned, timeout_s, threads)
        torch.set_num_threads(threads)
        summary = run_worker(
            run.path,
            worker_index=0,
            planned=planned,
            timeout_s=timeout_s,
            show_progress=show_progress,
            workers=workers,
            gate=gate,
        )
    except KeyboardInterrupt:
        summary = WorkerSummary(interrupted=True)
    finally:
        torch.set_num_threads(previous)
        stopping = summary is None or summary.interrupted or gate.pending
        gate.pending = False  # handled: another Ctrl-C while the workers stop terminates them
        if _join(others, gate, stopping=stopping) and summary is not None:
            summary.interrupted = True
        _settle(run, study)  # every process has ended
        retry_orphaned_trials(study)
    summary.interrupted = summary.interrupted or gate.pending
    return summary


def _settle(run: RunDirectory, study: optuna.Study) -> None:
    """Tell the trials a killed writer trained and recorded but left RUNNING (see
    :func:`~autocompress.search.recover.settle_finished_orphans`)."""
    config = run.read_run_config()
    settle_finished_orphans(
        run,
        study,
        objectives=config.objectives,
        main_chip=config.chip,
        constraint_names=sorted(config.budget.active()),
    )


def _start_workers(
    started: list[Any],
    run: RunDirectory,
    workers: int,
    planned: int,
    timeout_s: float | None,
    threads: int,
) -> None:
    """Start worker processes 1 … ``workers - 1`` into ``started``, SIGINT ignored until
    their :class:`SigintGate` is installed (a KeyboardInterrupt while Python imports torch
    would print a traceback; :func:`_join` sends SIGINT again until they end)."""
    context = multiprocessing.get_context("spawn")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec
    try:
        for index in range(1, workers):
            process = context.Process(
                target=_worker_main,
                args=(str(run.path), index, planned, timeout_s, threads),
                name=f"autocompress-worker-{index}",
            )
            process.start()
            started.append(process)
    finally:
        signal.signal(signal.SIGINT, previous)


def _trials_left(study: optuna.Study, planned: int) -> bool:
    """Whether the run still plans trials (as :func:`run_worker` decides)."""
    return trained_trials(study) < planned and proposals(study) < proposal_cap(planned)


def _join(processes: list[Any], gate: SigintGate, *, stopping: bool) -> bool:
    """Wait for the worker processes; True when they were told to stop (``stopping``, or a
    Ctrl-C meanwhile).

    While stopping, SIGINT goes to the workers every second (they stop after recording what
    finished; one still starting ignores it); another Ctrl-C terminates them."""
    for process in processes:
        while process.is_alive():
            if stopping:
                _interrupt(processes)
            try:
                with gate.open():
                    process.join(timeout=1.0)
            except KeyboardInterrupt:
                gate.pending = False
                if stopping:
                    for other in processes:
                        other.terminate()
                stopping = True
        process.join()
    return stopping


def _interrupt(processes: list[Any]) -> None:
    """SIGINT to worker processes still alive (they stop after recording what finished)."""
    for process in processes:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGINT)

"""The Ray backend's driver loop: Optuna ask/tell on the run's study, trials on Ray actors.

The driver is the only process that asks and tells the study. It keeps
:data:`~autocompress.search.ray_worker.TRIALS_PER_WORKER` trials on every
ready worker (one training, the next being built and costed), so a GPU never
waits for the sampler; TPE runs with the constant liar, so concurrent asks see
each other's running trials and differ.

Per proposal, exactly as the Optuna backend (:mod:`.optuna_backend`):

- the configuration's key (:func:`~autocompress.search.anchors.config_key`) is
  stored with the trial; a key an earlier trial already finished is not
  trained again: recorded ``duplicate``, the sampler told the earlier values
  and constraints. A key a running trial has waits for that trial's result.
- ``--trials`` counts trained trials (:func:`~.study.trained_trials`): the
  driver never has more trials pending than could still be trained, so a run
  ends with exactly the planned number (infeasible and duplicate proposals are
  recorded, not counted), or after :func:`~.study.proposal_cap` proposals.
- anchors enqueued at creation are asked first (``study.ask`` takes enqueued
  trials before sampling).
- every result is appended to ``trials.jsonl`` (and kept in ``study.db``) before
  it is told, with its constraint values and state attributes; a tell that
  raises marks the trial failed (never left RUNNING).
- while a trial runs the driver beats its heartbeat in ``study.db`` (the first
  beat as it is asked), so a run resumed with the Optuna backend after the
  driver was killed retries it too.

Ctrl-C: running trials are failed (dropped, as the Optuna backend does),
finished ones stay; a worker that dies leaves its trial failed and re-enqueued
with the same parameters, so ``--resume`` runs it again first.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from autocompress.core.errors import AutocompressError
from autocompress.core.run_config import RunConfig
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import RunDirectory, TrialRecord
from autocompress.search.anchors import config_key
from autocompress.search.constraints import constraints_from_trial, record_constraints
from autocompress.search.front import update_pareto
from autocompress.search.progress import SearchProgress
from autocompress.search.recover import RECORD_ATTR
from autocompress.search.resolve import ResolvedSpace
from autocompress.search.study import (
    DUPLICATE_ATTR,
    FAILED_ATTR,
    HEARTBEAT_INTERVAL_S,
    INFEASIBLE_ATTR,
    KEY_ATTR,
    STUDENT_KEY_ATTR,
    TRAINED_ATTR,
    proposal_cap,
    proposals,
    record_first_heartbeat,
    retry_orphaned_trials,
    suggest_config,
    trained_complete,
    trained_trials,
)

#: Why a trial's result could not be told to Optuna (the trial is then FAIL).
TELL_ERROR_ATTR = "autocompress:tell_error"
#: The driver loop looks for a Ctrl-C at least this often (seconds between ray.wait calls).
SIGINT_POLL_S = 0.5
_RUNNING = optuna.trial.TrialState.RUNNING
_USABLE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class WorkerCrashed(Exception):
    """Ray workers died with trials on them (their trials are failed and re-enqueued)."""

    def __init__(self, count: int, detail: str) -> None:
        super().__init__(detail)
        self.count = count
        self.detail = detail


@dataclass
class _Pending:
    """A trial asked and not yet told."""

    trial: optuna.Trial
    config: TrialConfig
    key: str
    worker: int | None = None  # None: waiting for a running trial with the same key
    submitted: float = 0.0
    built: Any = None  # ObjectRef of the BuiltStudent, from the builder to the trainer


@dataclass
class DriverSummary:
    """What one driver session did."""

    interrupted: bool = False
    proposals_run: int = 0
    trained: int = 0
    workers_ready: int = 0
    worker_info: list[dict[str, Any]] = field(default_factory=list)


class AskTellDriver:
    """Asks the study, dispatches to Ray actors, tells the results (see the module docstring)."""

    def __init__(
        self,
        run: RunDirectory,
        study: optuna.Study,
        *,
        space: ResolvedSpace,
        config: RunConfig,
        constraint_names: Sequence[str],
        numeric: bool,
        tell_infeasible: bool,
        planned: int,
        deadline: float | None,
        progress: SearchProgress,
    ) -> None:
        self.run = run
        self.study = study
        self.space = space
        self.config = config
        self.names = list(constraint_names)
        self.numeric = numeric
        self.tell_infeasible = tell_infeasible
        self.planned = planned
        self.cap = proposal_cap(planned)
        self.deadline = deadline
        self.progress = progress
        self.summary = DriverSummary()
        self.pending: dict[int, _Pending] = {}  # trial number -> pending trial
        # ObjectRef -> ("start", worker) | ("build", trial number) | ("train", trial number)
        self.refs: dict[Any, tuple[str, int]] = {}
        self.workers: list[Any] = []  # TrialTrainer actors
        self.builders: dict[int, Any] = {}  # their StudentBuilder actors, once started
        self.ready: set[int] = set()
        self.load: dict[int, int] = {}
        self.crashed: list[str] = []
        self.lost: set[int] = set()  # trials whose worker died under them
        self.stopping = False
        self._trained = trained_trials(study)
        self._proposals = proposals(study)
        self._finished_by_key: dict[str, optuna.trial.FrozenTrial] = {}
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            key = t.user_attrs.get(KEY_ATTR)
            if key and t.state in _USABLE:
                self._finished_by_key.setdefault(key, t)
        # student key -> the trained trial that built that student (the same student from
        # another configuration is not trained again)
        self._trained_by_student: dict[str, optuna.trial.FrozenTrial] = {}
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            student = t.user_attrs.get(STUDENT_KEY_ATTR)
            if student and trained_complete(t):
                self._trained_by_student.setdefault(student, t)

    # -- workers ---------------------------------------------------------------------------

    def add_worker(self, actor: Any) -> None:
        """Start ``actor`` (its context loads in the background; trials go to it once ready)."""
        index = len(self.workers)
        self.workers.append(actor)
        self.load[index] = 0
        self.refs[actor.start.remote()] = ("start", index)

    def _free_worker(self, per_worker: int) -> int | None:
        free = [i for i in self.ready if self.load[i] < per_worker]
        return min(free, key=lambda i: (self.load[i], i)) if free else None

    # -- asking ----------------------------------------------------------------------------

    def _may_ask(self) -> bool:
        if self.stopping:
            return False
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        running = sum(1 for p in self.pending.values() if p.worker is not None)
        if self._trained + running >= self.planned:
            return False  # what is running could still make the plan: no extra trial
        return self._proposals + len(self.pending) < self.cap

    def fill(self, per_worker: int) -> None:
        """Ask until every ready worker has ``per_worker`` trials (or nothing more may be asked)."""
        while self._free_worker(per_worker) is not None and self._may_ask():
            trial = self.study.ask()
            record_first_heartbeat(trial)
            config = suggest_config(trial, self.space, numeric=self.numeric)
            key = config_key(config)
            item = _Pending(trial, config, key)
            self.pending[trial.number] = item
            trial.set_user_attr(KEY_ATTR, key)
            earlier = self._finished_by_key.get(key)
            if earlier is not None:
                self._tell_duplicate(item, earlier)
            elif not any(p.key == key and p.worker is not None for p in self.pending.values()):
                self._submit(item, self._free_worker(per_worker))  # type: ignore[arg-type]
            # else: another worker trains this configuration; its result is reused

    def _submit(self, item: _Pending, worker: int) -> None:
        item.worker = worker
        item.submitted = time.monotonic()
        self.load[worker] += 1
        summary, item.built = (
            self.builders[worker]
            .build.options(num_returns=2)
            .remote(item.trial.number, item.config.to_dict())
        )
        self.refs[summary] = ("build", item.trial.number)
        self.progress.stage(item.trial.number, "compress and cost on a Ray worker")

    # -- the loop --------------------------------------------------------------------------

    def loop(self, per_worker: int) -> None:
        """Run until the plan, the proposal cap, the deadline or a crash stops it."""
        import ray

        last_beat = 0.0
        with _sigint_noted() as interrupted:
            while True:
                if interrupted:
                    raise KeyboardInterrupt
                self.fill(per_worker)
                kinds = {kind for kind, _ in self.refs.values()}
                if kinds <= {"start"} and (not self._may_ask() or "start" not in kinds):
                    break  # nothing running, and nothing more to ask (or no worker to run it)
                done, _ = ray.wait(list(self.refs), num_returns=1, timeout=SIGINT_POLL_S)
                for ref in done:
                    self._collect(ref)
                if time.monotonic() - last_beat >= HEARTBEAT_INTERVAL_S:
                    self._heartbeat()
                    last_beat = time.monotonic()
            if interrupted:  # came after the last look
                raise KeyboardInterrupt
        if self.crashed:
            raise WorkerCrashed(len(self.crashed), self.crashed[0])

    def _collect(self, ref: Any) -> None:
        import ray

        kind, index = self.refs.pop(ref)
        try:
            value = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, AutocompressError):  # bad input: stop, say what and where
                self.stopping = True
                raise cause from None
            self._lost(kind, index, exc)
            return
        except ray.exceptions.RayError as exc:  # the actor died (out of memory, killed …)
            self._lost(kind, index, exc)
            return
        if kind == "start":
            self.builders[index] = value.pop("builder")
            self.ready.add(index)
            self.summary.workers_ready = len(self.ready)
            self.summary.worker_info.append(value)
            return
        item = self.pending[index]
        if kind == "build" and "outcome" not in value:  # feasible: to the trainer's queue
            student = value.get("student_key")
            if student:
                item.trial.set_user_attr(STUDENT_KEY_ATTR, student)
                same = self._trained_by_student.get(student)
                if same is not None:  # another configuration built this very student
                    item.built = None
                    self.load[item.worker] -= 1  # type: ignore[index]
                    self._tell_duplicate(item, same)
                    return
            worker = self.workers[item.worker]  # type: ignore[index]
            ref = worker.train.remote(item.built, value.get("built_at"))
            item.built = None
            self.refs[ref] = ("train", index)
            self.progress.stage(index, "fine-tune on a Ray worker")
            return
        self.load[item.worker] -= 1  # type: ignore[index]
        self._tell_result(item, value["outcome"] if kind == "build" else value)

    def _lost(self, kind: str, index: int, exc: BaseException) -> None:
        self.stopping = True  # no new trials; the others finish
        self.crashed.append(gist(exc))
        if kind in ("build", "train"):
            self.lost.add(index)
            item = self.pending.pop(index)
            self.load[item.worker] -= 1  # type: ignore[index]
            self._release_waiters(item.key)

    def _heartbeat(self) -> None:
        storage = self.study._storage
        for item in self.pending.values():
            storage.record_heartbeat(item.trial._trial_id)

    # -- telling ---------------------------------------------------------------------------

    def _tell_result(self, item: _Pending, outcome: dict[str, Any]) -> None:
        with _sigint_deferred():  # a record in trials.jsonl is always told too
            self._tell_result_now(item, outcome)

    def _tell_result_now(self, item: _Pending, outcome: dict[str, Any]) -> None:
        record = TrialRecord.from_dict(outcome["record"])
        values = [float(v) for v in outcome["objective_values"]]
        trial = item.trial

        def tell() -> None:
            # study.db keeps the record too, so a lost trials.jsonl line can be rebuilt exactly
            trial.set_user_attr(RECORD_ATTR, record.to_dict())
            if record.state == "failed":
                trial.set_user_attr(FAILED_ATTR, record.error or "failed")
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                return
            if record.state == "infeasible":
                trial.set_user_attr(INFEASIBLE_ATTR, True)
            else:
                trial.set_user_attr(TRAINED_ATTR, True)
            record_constraints(trial, outcome["constraint_values"], self.names)
            if record.state == "infeasible" and not self.tell_infeasible:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(trial, values)

        self.run.append_trial(record)
        trained = record.state in ("complete", "failed")
        self._finish(item, tell, trained=trained, state=record.state, record=record)

    def _tell_duplicate(self, item: _Pending, earlier: optuna.trial.FrozenTrial) -> None:
        with _sigint_deferred():
            self._tell_duplicate_now(item, earlier)

    def _tell_duplicate_now(self, item: _Pending, earlier: optuna.trial.FrozenTrial) -> None:
        previous = {r.number: r for r in self.run.read_trials()}.get(earlier.number)
        record = TrialRecord(
            number=item.trial.number,
            state="duplicate",
            config=item.config,
            metrics=dict(previous.metrics) if previous else {},
            costs=dict(previous.costs) if previous else {},
            violations=dict(previous.violations) if previous else {},
            feasible=bool(previous.feasible) if previous else False,
            backend="ray",
            duplicate_of=earlier.number,
        )
        trial = item.trial

        def tell() -> None:
            trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
            if earlier.user_attrs.get(INFEASIBLE_ATTR):
                trial.set_user_attr(INFEASIBLE_ATTR, True)
            if earlier.state == optuna.trial.TrialState.PRUNED:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return
            values = dict(zip(self.names, constraints_from_trial(earlier), strict=False))
            record_constraints(trial, values, self.names)
            self.study.tell(trial, list(earlier.values))

        self.run.append_trial(record)
        self._finish(item, tell, trained=False, state=f"same as trial {earlier.number}")

    def _finish(
        self,
        item: _Pending,
        tell: Any,
        *,
        trained: bool,
        state: str,
        record: TrialRecord | None = None,
    ) -> None:
        """Tell (or, when that raises, mark failed), then update counts, waiters and progress."""
        trial = item.trial
        try:
            tell()
        except Exception as exc:  # the result is in trials.jsonl; study.db must not keep RUNNING
            reason = f"the result could not be told to Optuna: {gist(exc)}"
            mark_failed(self.study, trial, reason, counts=trained)
            state = "failed (tell)"
        self.pending.pop(trial.number, None)
        self._proposals += 1
        self.summary.proposals_run += 1
        if trained:
            self._trained += 1
            self.summary.trained += 1
        frozen = self.study._storage.get_trial(trial._trial_id)
        if frozen.state in _USABLE:
            self._finished_by_key.setdefault(item.key, frozen)
        student = frozen.user_attrs.get(STUDENT_KEY_ATTR)
        if student and trained_complete(frozen):
            self._trained_by_student.setdefault(student, frozen)
        self._release_waiters(item.key)
        self._progress(frozen, state, record)
        if self._trained >= self.planned or self._proposals >= self.cap:
            self.stopping = True

    def _release_waiters(self, key: str) -> None:
        """Trials parked on ``key``: a duplicate of the finished one, or trained after all."""
        for item in [p for p in self.pending.values() if p.key == key and p.worker is None]:
            if self.pending.get(item.trial.number) is not item or item.worker is not None:
                continue  # told (or sent) by a nested call
            earlier = self._finished_by_key.get(key)
            if earlier is not None:
                self._tell_duplicate(item, earlier)
            elif self.crashed or self.stopping:
                continue  # failed at the end of the session (dropped)
            else:
                worker = self._free_worker(10**6)
                if worker is None:
                    continue
                self._submit(item, worker)

    def _progress(
        self, frozen: optuna.trial.FrozenTrial, state: str, record: TrialRecord | None
    ) -> None:

        pareto = update_pareto(self.run, self.config)
        records = self.run.read_trials()
        self.progress.finished(
            done=self._trained,
            front_size=len(pareto["fronts"].get(self.config.chip, [])),
            feasible=sum(1 for r in records if r.feasible and r.state == "complete"),
            infeasible=sum(1 for r in records if r.state == "infeasible"),
            duplicates=sum(1 for r in records if r.state == "duplicate"),
            seconds=float(record.timings_s.get("total", 0.0)) if record else 0.0,
            trained_now=state in ("complete", "failed", "failed (tell)"),
            last=f"trial {frozen.number} {'trained' if state == 'complete' else state}",
        )

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """No trial of this session stays RUNNING: trials of a dead worker are failed and
        re-enqueued with the same parameters; every other unfinished one is dropped."""
        for trial in self.study.get_trials(deepcopy=False, states=(_RUNNING,)):
            if trial.number not in self.lost:
                mark_failed(self.study, trial, None)
        retry_orphaned_trials(self.study)  # only the dead workers' trials are RUNNING now


@contextlib.contextmanager
def _sigint_noted() -> Iterator[list[int]]:
    """Ctrl-C inside the block is only noted (in the list it yields); the driver loop checks
    it between waits and raises KeyboardInterrupt there. A KeyboardInterrupt raised by the
    default handler lands wherever Python code runs when the signal is handled: inside Ray's
    own calls (``ray.wait`` checks for signals while it blocks), an ObjectRef's finalizer or
    another callback, where it can be swallowed, and the search then ran on to its end.
    Main thread only (else a no-op)."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = signal.signal(signal.SIGINT, lambda number, _frame: caught.append(number))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Ctrl-C inside the block takes effect at its end (KeyboardInterrupt then), so a result
    appended to trials.jsonl is always told to Optuna too. Main thread only (else a no-op)."""
    with _sigint_noted() as caught:
        yield
    if caught:
        raise KeyboardInterrupt


def gist(exc: BaseException) -> str:
    """The last non-empty line of an error's text (Ray wraps the cause in a traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def mark_failed(
    study: optuna.Study, trial: Any, reason: str | None, *, counts: bool = False
) -> None:
    """Set a still-running trial FAIL. ``reason`` is kept as :data:`TELL_ERROR_ATTR`; with
    ``counts`` also as the failure attribute, so the trial counts as trained (it was)."""
    storage = study._storage
    trial_id = trial._trial_id
    if storage.get_trial(trial_id).state != _RUNNING:
        return
    if reason is not None:
        storage.set_trial_user_attr(trial_id, TELL_ERROR_ATTR, reason)
        if counts:
            storage.set_trial_user_attr(trial_id, FAILED_ATTR, reason)
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)

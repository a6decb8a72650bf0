"""The Optuna study of a run: SQLite storage in the run directory, heartbeats, retries.

- Storage: ``study.db`` (SQLite) with a heartbeat, so a worker killed with
  SIGKILL leaves RUNNING trials that another worker (or ``--resume``) marks
  failed after the grace period and re-enqueues with the same parameters.
- Study name ``autocompress``; directions from the run's objectives.
- :func:`suggest_config` is the define-by-run space (also used inside Ray Tune).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import optuna

from autocompress.core.budget import METRIC_SENSE
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import RunDirectory
from autocompress.search.anchors import ordered_choices
from autocompress.search.resolve import ResolvedSpace

# Heartbeats and stale-trial retries are "experimental" in Optuna's words; used knowingly.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)

STUDY_NAME = "autocompress"
HEARTBEAT_INTERVAL_S = 2
GRACE_PERIOD_S = 6
MAX_RETRY = 2
FAILED_ATTR = "autocompress:failed"
INFEASIBLE_ATTR = "autocompress:infeasible"
TRAINED_ATTR = "autocompress:trained"
KEY_ATTR = "autocompress:config_key"
DUPLICATE_ATTR = "autocompress:duplicate_of"
#: Digest of the student a trial built (:func:`~autocompress.search.objective.student_key`):
#: two configurations that build the same student are trained once.
STUDENT_KEY_ATTR = "autocompress:student_key"
#: A run stops proposing after this many proposals per planned trained trial
#: (infeasible and duplicate proposals are cheap but not free; an almost
#: impossible space must still end).
MAX_PROPOSALS_PER_TRIAL = 10


def directions(objectives: Sequence[str]) -> list[str]:
    """Optuna directions of the objectives."""
    return ["maximize" if METRIC_SENSE[name] == "max" else "minimize" for name in objectives]


def _retry_callback() -> Any:
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    if cls is None:  # Optuna < 4.9
        cls = optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=MAX_RETRY)


def record_first_heartbeat(trial: optuna.Trial) -> None:
    """Record a newly asked trial's heartbeat now, before any of its parameters is written.

    Optuna's heartbeat thread (and the Ray driver's loop) beat after the trial has started;
    on a busy machine its parameters can reach study.db first. A process killed in that
    window leaves a RUNNING trial with parameters and no heartbeat, which Optuna never finds
    stale: a resume would train new trials first and retry this one only when the run ends
    (seen in CI: the retry was left WAITING). With a beat on record, the resume fails it
    after the grace period and retries it first. A storage without heartbeats is left alone.
    """
    storage = trial.study._storage  # RDBStorage, inside Optuna's cache wrapper: both beat
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if interval:
        storage.record_heartbeat(trial._trial_id)


def make_storage(run: RunDirectory) -> optuna.storages.RDBStorage:
    """RDB storage on the run's study.db with heartbeats and stale-trial retries."""
    kwargs: dict[str, Any] = {
        "engine_kwargs": {"connect_args": {"timeout": 60}},
        "heartbeat_interval": HEARTBEAT_INTERVAL_S,
        "grace_period": GRACE_PERIOD_S,
    }
    params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    key = (
        "heartbeat_stale_trial_callback"
        if "heartbeat_stale_trial_callback" in params
        else "failed_trial_callback"
    )
    kwargs[key] = _retry_callback()
    run.path.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(run.storage_url, **kwargs)


def open_study(
    run: RunDirectory,
    objectives: Sequence[str],
    sampler: optuna.samplers.BaseSampler,
    storage: optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """Create or load the run's study."""
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage or make_storage(run),
        sampler=sampler,
        directions=directions(objectives),
        load_if_exists=True,
    )


def suggest_config(trial: Any, space: ResolvedSpace, *, numeric: bool = False) -> TrialConfig:
    """Ask ``trial`` for every free dimension of ``space`` (define-by-run).

    ``numeric``: ask each choice dimension as the index of its choice (an
    ordered integer) instead of a categorical, for samplers that model numbers
    (the Gaussian process); numeric choices in increasing order.
    """
    params: dict[str, Any] = {}
    for dim in space.free_dimensions:
        spec = dim.spec
        if spec.choices is not None and numeric:
            index = trial.suggest_int(dim.name, 0, len(spec.choices) - 1)
            params[dim.name] = ordered_choices(spec.choices)[index]
        elif spec.choices is not None:
            params[dim.name] = trial.suggest_categorical(dim.name, list(spec.choices))
        else:
            params[dim.name] = trial.suggest_float(
                dim.name, float(spec.low), float(spec.high), step=spec.step, log=spec.log
            )
    return space.config_from_params(params)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward the plan: finished ones, and trials that failed on their own
    (not those killed mid-run, which are retried)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    count = 0
    for trial in study.get_trials(deepcopy=False, states=states):
        if trial.state == optuna.trial.TrialState.COMPLETE or trial.user_attrs.get(FAILED_ATTR):
            count += 1
    return count


def retry_orphaned_trials(study: optuna.Study) -> list[int]:
    """Fail every RUNNING trial of ``study`` and re-enqueue it with its parameters.

    For backends whose one driver process asks and tells every trial (Ray Tune):
    when a session starts, a RUNNING trial was left by a driver that was killed.
    The retry carries Optuna's ``failed_trial`` system attribute, like a
    heartbeat-stale retry of the Optuna backend, and is retried at most
    :data:`MAX_RETRY` times. Returns the numbers of the failed trials.
    """
    retry = _retry_callback()
    failed: list[int] = []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        try:
            if not storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        failed.append(trial.number)
        retry(study, storage.get_trial(trial._trial_id))
    return failed


def trained_trials(study: optuna.Study) -> int:
    """Trials that count toward ``--trials``: candidates that were trained (or failed
    while being built or trained). Infeasible and duplicate proposals do not count."""
    wanted = {
        optuna.trial.TrialState.COMPLETE: TRAINED_ATTR,
        optuna.trial.TrialState.FAIL: FAILED_ATTR,
    }
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in wanted and t.user_attrs.get(wanted[t.state])
    )


def proposals(study: optuna.Study) -> int:
    """Finished proposals of every kind (trained, infeasible, duplicate, failed)."""
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in done
        or (t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get(FAILED_ATTR))
    )


def proposal_cap(planned: int) -> int:
    """The most proposals a run with ``planned`` trained trials makes."""
    return MAX_PROPOSALS_PER_TRIAL * max(1, planned)


def trained_complete(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that trained its own student and told its result (not a duplicate of one):
    what a later trial building the same student (:data:`STUDENT_KEY_ATTR`) reuses."""
    return trial.state == optuna.trial.TrialState.COMPLETE and bool(
        trial.user_attrs.get(TRAINED_ATTR)
    )

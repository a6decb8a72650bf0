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


def suggest_config(trial: Any, space: ResolvedSpace) -> TrialConfig:
    """Ask ``trial`` for every free dimension of ``space`` (define-by-run)."""
    params: dict[str, Any] = {}
    for dim in space.free_dimensions:
        spec = dim.spec
        if spec.choices is not None:
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

"""A trial's first heartbeat is on record as soon as it is asked (study.record_first_heartbeat):
Optuna's own stale-trial check never fails a RUNNING trial that has no heartbeat, so a process
killed before its heartbeat thread's first beat would leave a trial no resume retries first."""

from __future__ import annotations

import time

import optuna
import pytest

from autocompress.search.study import record_first_heartbeat

# Heartbeats are "experimental" in Optuna's words; study.py uses them knowingly, as here.
# Optuna also warns that ask() on a heartbeat storage is "supposed to be used with
# Study.optimize": the Ray driver asks and tells on one, and this test asks as it does.
pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning"),
]


def _storage(tmp_path) -> optuna.storages.RDBStorage:
    # Optuna's smallest heartbeat and grace period (1 s): the test waits for staleness.
    return optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1
    )


def test_a_trial_killed_before_its_first_beat_is_found_stale_only_with_the_first_beat(tmp_path):
    study = optuna.create_study(storage=_storage(tmp_path))
    beaten, silent = study.ask(), study.ask()  # both RUNNING; no heartbeat thread runs
    beaten.suggest_float("x", 0, 1)
    silent.suggest_float("x", 0, 1)
    record_first_heartbeat(beaten)
    time.sleep(2.1)  # past the grace period (heartbeat times have 1 s resolution)
    optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[beaten.number] == optuna.trial.TrialState.FAIL
    assert states[silent.number] == optuna.trial.TrialState.RUNNING  # Optuna's blind spot


def test_a_storage_without_heartbeats_is_left_alone(tmp_path):
    for storage in (None, optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'plain.db'}")):
        trial = optuna.create_study(storage=storage).ask()
        record_first_heartbeat(trial)  # no heartbeat configured: nothing recorded, no error
        assert trial.study.trials[0].state == optuna.trial.TrialState.RUNNING

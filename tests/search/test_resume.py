"""A search killed with SIGKILL loses at most its running trial, which --resume retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from autocompress.core.workspace import RunDirectory
from autocompress.search.study import GRACE_PERIOD_S

pytestmark = pytest.mark.slow


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autocompress", "search", *args]


# The search as `autocompress search`, but Optuna's heartbeat thread never records: the worst
# case of a busy machine, where the kill lands before that thread's first beat (CI hit it).
_NO_HEARTBEAT_THREAD = """
import sys
from optuna.storages import _heartbeat
_heartbeat.HeartbeatThread.start = lambda self: None
_heartbeat.HeartbeatThread.join = lambda self: None
from autocompress.cli import main
main(["search", *sys.argv[1:]])
"""


def test_sigkill_then_resume_keeps_every_finished_trial(tmp_path, teacher_checkpoint, capsys):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--out", str(out), "--no-progress"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _NO_HEARTBEAT_THREAD,
            *common,
            "--trials",
            "5",
            "--epochs",
            "1",
            "--teacher",
            str(teacher_checkpoint),
            "--latency-ms",
            "97%",
            "--rungs",
            "1",  # no promotion: the resumed run must leave every finished record unchanged
            "--no-anchors",  # enqueued anchors would run before the retry (and meet the plan)
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    run = RunDirectory(out)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        records = run.read_trials() if run.trials_jsonl.is_file() else []
        if len(records) >= 3:
            # kill mid-trial: a trial is RUNNING with all its parameters (asked, not being
            # suggested) and no record yet (a kill between the record and Optuna's tell leaves
            # a trial whose result is already on disk)
            numbers = {r.number for r in records}
            study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
            asked = max(len(t.params) for t in study.trials)
            if any(
                t.state == optuna.trial.TrialState.RUNNING
                and t.number not in numbers
                and len(t.params) == asked
                for t in study.trials
            ):
                break
        if process.poll() is not None:
            pytest.fail(f"search ended early: {process.stderr.read().decode()}")
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the search did not finish 3 trials in time")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    before = {r.number: r for r in run.read_trials()}
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    running = {
        t.number: t.params for t in study.trials if t.state == optuna.trial.TrialState.RUNNING
    }
    assert len(before) >= 3 and len(running) <= 1

    time.sleep(GRACE_PERIOD_S + 1)  # the killed trial's heartbeat goes stale (1 s stamps)
    from autocompress.cli import main

    # the resume reads what the killed process left: in this process (a start is ~4 s)
    with pytest.raises(SystemExit) as resumed:
        main(["search", *common, "--resume"])
    stderr = capsys.readouterr().err
    assert (resumed.value.code or 0) == 0, stderr
    assert "Traceback" not in stderr

    after = {r.number: r for r in run.read_trials()}
    for number, record in before.items():  # nothing finished was lost or changed
        assert after[number].to_dict() == record.to_dict()
    assert len(after) >= 5
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    states = {t.number: t.state for t in study.trials}
    assert optuna.trial.TrialState.RUNNING not in states.values()
    for (
        number,
        params,
    ) in running.items():  # the running trial was failed and retried with its parameters
        assert states[number] == optuna.trial.TrialState.FAIL
        retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
        assert retries and retries[0].params == params
        assert retries[0].state == optuna.trial.TrialState.COMPLETE
    pareto = json.loads(run.pareto_json.read_text())
    assert pareto["trials_finished"] == len(after)


def test_resume_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    from autocompress.cli import main

    with pytest.raises(SystemExit) as info:  # in this process: a real one only adds its start
        main(["search", "--resume", "--out", str(tmp_path / "nope")])
    message = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 2
    assert "does not exist" in message and "Traceback" not in message

"""Searches that share, reuse or lose parts of a run directory (issue 8): one lock per run,
Ctrl-C exits 130, --resume continues what it can and refuses changed settings, records that
study.db has but trials.jsonl lost are rebuilt."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from autocompress.core.run_config import RunConfig
from autocompress.core.workspace import RunDirectory

pytestmark = pytest.mark.slow


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autocompress", "search", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _main(capsys, *args: str) -> tuple[int, str]:
    """The CLI entry point in this process: (exit code, stderr + stdout with wraps undone)."""
    from autocompress.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), " ".join((captured.err + captured.out).split())


def _copy_run(digits_run, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(digits_run.run_dir, out, ignore=shutil.ignore_patterns(".lock"))
    return out


def _wait_for(predicate, process: subprocess.Popen, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            pytest.fail(f"search ended before {what}: {process.stderr.read()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"timed out waiting for {what}")


def _running_unrecorded(run: RunDirectory) -> set[int]:
    """Trials study.db has RUNNING that trials.jsonl does not hold yet (read-only look)."""
    with contextlib.closing(
        sqlite3.connect(f"file:{run.path / 'study.db'}?mode=ro", uri=True)
    ) as db:
        running = {n for (n,) in db.execute("SELECT number FROM trials WHERE state = 'RUNNING'")}
    return running - {r.number for r in run.read_trials()}


def _interrupt_while_training(process: subprocess.Popen, run: RunDirectory) -> None:
    """SIGINT once a trial has been training for a moment, as a user's Ctrl-C lands.

    Not right after a record is written: a Ctrl-C while Optuna is still telling the finished
    trial is a separate case (today it can end in an UnboundLocalError inside Optuna's
    _run_trial, exit 1, or hang; not what this test is about)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = _running_unrecorded(run)
        if running:
            time.sleep(0.3)
            if running & _running_unrecorded(run):
                process.send_signal(signal.SIGINT)
                return
        if process.poll() is not None:
            pytest.fail(f"search ended before Ctrl-C: {process.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("no trial was training within 120 s")


def test_a_second_search_on_a_running_run_exits_2_and_ctrl_c_exits_130(
    tmp_path, teacher_checkpoint, capsys
):
    out = tmp_path / "busy"
    first = subprocess.Popen(
        [
            *_cli("--out", str(out), "--trials", "40", "--epochs", "1", "--no-progress"),
            *("--teacher", str(teacher_checkpoint), "--latency-ms", "97%"),
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = RunDirectory(out)
    try:
        _wait_for(lambda: run.trials_jsonl.is_file(), first, 120, "the first trial")
        before = {
            p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.startswith("study.db")
        }
        for extra in ([], ["--resume"]):  # the second search: in this process (a start is ~4 s)
            started = time.monotonic()
            code, message = _main(capsys, "search", "--out", str(out), "--no-progress", *extra)
            assert code == 2, message
            assert f"is in use by process {first.pid}" in message
            assert "Traceback" not in message
            assert time.monotonic() - started < 30
        after = {
            p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.startswith("study.db")
        }
        assert set(after) >= set(before) and after["run.yaml"] == before["run.yaml"]
        assert first.poll() is None  # the first search goes on

        _interrupt_while_training(first, run)  # Ctrl-C
        first.wait(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, first.stderr.read()
    saved = run.read_trials()
    assert saved and len(saved) < 40

    from autocompress.core.run_lock import RunLock

    RunLock(out).acquire().release()  # the lock went with the process


def test_search_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "teacher.pt").write_text("a user's own file")
    code, message = _main(capsys, "search", "--out", str(mine), "--trials", "1", "--no-progress")
    assert code == 2 and "not empty and is not a run" in message, message
    assert "Traceback" not in message
    assert "teacher.pt" in message
    assert [p.name for p in mine.iterdir()] == ["teacher.pt"]
    assert (mine / "teacher.pt").read_text() == "a user's own file"


def test_resume_refuses_changed_settings_and_applies_the_others(digits_run, tmp_path):
    from autocompress.core.errors import ConfigError
    from autocompress.search.api import search

    out = _copy_run(digits_run, tmp_path)
    config = yaml.safe_load((out / "run.yaml").read_text())
    changed = {
        "chip": (["nvidia/orin-nano"], "['rockchip/rv1126', 'rockchip/rk3588']"),
        "latency_ms": (1.0, str(config["budget"]["latency_ms"])),
        "model": ("resnet18", "'small_cnn'"),
        "dataset": ("cifar10", "'digits'"),
        "sampler": ("random", repr(config["sampler"]["name"])),
        "space": ("pruning", "'default'"),
        "epochs": (3.0, "1.0"),
        "seed": (7, "0"),
    }
    for key, (value, recorded) in changed.items():
        with pytest.raises(ConfigError) as info:
            search(out=out, resume=True, **{key: value})
        assert key in str(info.value) and recorded in str(info.value), str(info.value)
    records = RunDirectory(out).read_trials()
    done = len(records)
    trained = sum(1 for r in records if r.state in ("complete", "failed"))
    result = search(  # same values as recorded, plus settings resume applies
        out=out,
        resume=True,
        trials=trained,  # --trials counts trained candidates: nothing left to do
        latency_ms="97%",
        chip=["rockchip/rv1126", "rockchip/rk3588"],
        workers=2,
        timeout_s=30,
        device="cpu",
    )
    assert len(result.trials) == done
    applied = yaml.safe_load((out / "run.yaml").read_text())
    assert applied["workers"] == 2 and applied["timeout_s"] == 30
    assert applied["finetune"]["device"] == "cpu"


def test_resume_of_a_run_killed_while_its_teacher_trained_trains_it_again(digits_run, tmp_path):
    from autocompress.search.api import search

    out = tmp_path / "pending"
    out.mkdir()
    config = yaml.safe_load((Path(digits_run.run_dir) / "run.yaml").read_text())
    config["teacher"] = {"path": "teacher.pt", "source": "pending", "epochs": 2}
    config["seed"] = config["sampler"]["seed"] = config["dataset"]["seed"] = 3  # not cached
    # what a kill during teacher training leaves
    RunDirectory(out).write_run_config(RunConfig.from_dict(config))
    result = search(out=out, resume=True, trials=1)
    assert (out / "teacher.pt").is_file()
    recorded = yaml.safe_load((out / "run.yaml").read_text())["teacher"]
    assert recorded["source"] == "trained" and recorded["val_accuracy"] > 0
    assert len(result.trials) == 1


def test_resume_rebuilds_records_study_db_has_but_trials_jsonl_lost(promoted_run, tmp_path):
    from autocompress.search.api import search

    out = _copy_run(promoted_run, tmp_path)  # a run with promotion: rebuilt records promote again
    run = RunDirectory(out)
    original = {r.number: r for r in run.read_trials()}
    complete = [n for n, r in original.items() if r.state == "complete"]
    infeasible = [n for n, r in original.items() if r.state == "infeasible"]
    promoted = [n for n in complete if len(original[n].rungs) > 1]
    assert promoted and infeasible, "the shared run promotes some trials and rules some out"
    # one lost record rebuilt from params and values, one promoted and one infeasible record
    # rebuilt from what study.db stored
    lost = [next(n for n in complete if n != promoted[0]), promoted[0], infeasible[0]]
    lines = run.trials_jsonl.read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["number"] not in lost]
    run.trials_jsonl.write_text("".join(kept) + '{"number": 99, "sta')  # and a torn last line
    with sqlite3.connect(out / "study.db") as db:  # an older run: no stored record for one
        db.execute(
            "DELETE FROM trial_user_attributes WHERE key = 'autocompress:record' AND trial_id = "
            "(SELECT trial_id FROM trials WHERE number = ?)",
            (lost[0],),
        )
    trained = sum(1 for r in original.values() if r.state in ("complete", "failed"))
    result = search(out=out, resume=True, trials=trained)  # --trials counts trained ones
    rebuilt = {r.number: r for r in result.trials}
    assert set(rebuilt) == set(original)
    for number in lost[1:]:  # stored in study.db: the record the trial wrote
        # study.db holds the record of the trial's first rung (a finished Optuna trial takes
        # no new attributes); promotion trains the longer rung again, deterministically, so
        # every figure but the seconds is the one that was lost.
        got, want = _without_seconds(rebuilt[number]), _without_seconds(original[number])
        assert got == want
    again, before = rebuilt[lost[0]], original[lost[0]]  # rebuilt from params and values
    assert again.state == before.state and again.config == before.config
    assert again.metrics["accuracy"] == pytest.approx(before.metrics["accuracy"])
    for chip, costs in before.costs.items():
        assert again.costs[chip]["latency_ms"] == pytest.approx(costs["latency_ms"])
    assert again.feasible == before.feasible


def test_a_trial_trained_and_recorded_but_never_told_is_told_on_resume_not_retrained(
    digits_run, tmp_path
):
    """The writer killed after a trained trial's result was written and before Optuna was told
    (the Optuna backend stores the record in study.db, then appends it; the Ray driver appends,
    then stores and tells): the trial stays RUNNING. A resume tells it from its record."""
    import optuna

    from autocompress.search.api import search

    out = _copy_run(digits_run, tmp_path)
    run = RunDirectory(out)
    original = {r.number: r for r in run.read_trials()}
    single = [n for n, r in original.items() if r.state == "complete" and len(r.rungs) == 1]
    assert len(single) >= 2, "the shared run has trained trials that were not promoted"
    in_db_only, in_jsonl_only = single[-1], single[-2]
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    told = {t.number: t.values for t in study.trials if t.number in (in_db_only, in_jsonl_only)}
    with sqlite3.connect(out / "study.db") as db:  # as the kill left them: never told
        for number in (in_db_only, in_jsonl_only):
            (trial_id,) = db.execute("SELECT trial_id FROM trials WHERE number = ?", (number,))
            db.execute(
                "UPDATE trials SET state = 'RUNNING', datetime_complete = NULL WHERE trial_id = ?",
                trial_id,
            )
            db.execute("DELETE FROM trial_values WHERE trial_id = ?", trial_id)
        db.execute(
            "DELETE FROM trial_user_attributes WHERE key = 'autocompress:record' AND trial_id = "
            "(SELECT trial_id FROM trials WHERE number = ?)",
            (in_jsonl_only,),
        )
    lines = run.trials_jsonl.read_text().splitlines(keepends=True)
    run.trials_jsonl.write_text(
        "".join(line for line in lines if json.loads(line)["number"] != in_db_only)
    )
    trained = sum(1 for r in original.values() if r.state in ("complete", "failed"))

    result = search(out=out, resume=True, trials=trained)  # the plan is already met

    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    states = {t.number: t for t in study.trials}
    for number in (in_db_only, in_jsonl_only):
        assert states[number].state == optuna.trial.TrialState.COMPLETE
        assert states[number].values == pytest.approx(told[number])
    assert not [t for t in study.trials if "failed_trial" in t.system_attrs]  # no retry
    records = {r.number: r for r in result.trials}
    assert set(records) == set(original)  # nothing trained again, the lost line is back
    assert _without_seconds(records[in_db_only]) == _without_seconds(original[in_db_only])


def _without_seconds(record) -> dict:
    data = record.to_dict()
    data.pop("timings_s")
    data["rungs"] = [{k: v for k, v in rung.items() if k != "seconds"} for rung in data["rungs"]]
    return data


def test_a_full_disk_at_run_creation_removes_only_what_it_wrote(
    tmp_path, teacher_checkpoint, monkeypatch
):
    import errno

    from autocompress.core.errors import WriteError
    from autocompress.search.api import search

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    for out, existed in ((tmp_path / "new" / "run", False), (tmp_path / "empty", True)):
        if existed:
            out.mkdir()
        with pytest.raises(WriteError, match=r"run\.yaml.*No space left on device") as info:
            search(out=out, trials=1, teacher=teacher_checkpoint, epochs=1.0)
        assert "disk is full" in str(info.value)
        assert out.exists() == existed
        if existed:
            assert list(out.iterdir()) == []
    assert not (tmp_path / "new").exists()


def test_a_run_on_a_model_file_records_it_and_resumes_only_with_that_file(tmp_path):
    from autocompress.core.errors import UntrustedModelCodeError
    from autocompress.core.model_code import model_file_identity
    from autocompress.search.api import search

    model_file = tmp_path / "net.py"
    model_file.write_text(
        "from autocompress.core.models import small_cnn\n\n\n"
        "def build(num_classes=10):\n"
        "    return small_cnn(num_classes=num_classes, in_channels=1, width=8)\n"
    )
    name = f"{model_file}:build"
    out = tmp_path / "own-model"
    search(out=out, model=name, trials=1, teacher_epochs=1, epochs=0.2, latency_ms=1.0)
    recorded = yaml.safe_load((out / "run.yaml").read_text())["model_code"]
    assert recorded == model_file_identity(name)
    search(out=out, resume=True, trials=1)  # the recorded file: trusted

    model_file.write_text(model_file.read_text() + "\n# edited after the run was made\n")
    with pytest.raises(UntrustedModelCodeError, match=r"net\.py.*not the file the run recorded"):
        search(out=out, resume=True, trials=1)
    result = search(out=out, resume=True, trials=1, trust_model_code=True)
    assert len(result.trials) == 1


# Ctrl-C at the exact points where Optuna is not safe against a KeyboardInterrupt. Each
# SIGINT is real (os.kill of this process: Python runs the handler before os.kill returns),
# sent once at one point of the first trial.
_SIGINT_POINTS = {
    # optuna 5.0 _run_trial: UnboundLocalError 'updated_state', exit 1 with a traceback
    "telling": ("optuna.study._optimize", "_tell_with_warning", "before"),
    "stored": ("optuna.storages.RDBStorage", "set_trial_state_values", "after finished"),
    # the trial was recorded in trials.jsonl, Optuna has not told it yet
    "recorded": ("autocompress.core.workspace.RunDirectory", "append_trial", "after"),
    # the trial was asked (RUNNING) and not started: it stayed RUNNING
    "asked": ("optuna.Study", "ask", "after"),
    "callback": ("autocompress.search.optuna_backend", "update_pareto", "after"),
    "training": ("autocompress.search.optuna_backend", "train_built", "before"),
}


def _sigint_at(monkeypatch, point: str) -> list[str]:
    """Send SIGINT to this process once, at ``point`` of :data:`_SIGINT_POINTS`."""
    import importlib

    where, name, when = _SIGINT_POINTS[point]
    try:
        target = importlib.import_module(where)
    except ImportError:
        module, _, attr = where.rpartition(".")
        target = getattr(importlib.import_module(module), attr)
    original = getattr(target, name)
    fired: list[str] = []

    def send(args, kwargs) -> None:
        state = kwargs.get("state", args[2] if len(args) > 2 else None)
        if when.endswith("finished") and not state.is_finished():
            return  # the state of a trial being asked (WAITING -> RUNNING)
        if not fired:
            fired.append(point)
            os.kill(os.getpid(), signal.SIGINT)

    def wrapper(*args, **kwargs):
        if when == "before":
            send(args, kwargs)
        result = original(*args, **kwargs)
        if when.startswith("after"):
            send(args, kwargs)
        return result

    monkeypatch.setattr(target, name, wrapper)
    return fired


def _study_states(out: Path) -> dict[int, tuple[str, bool]]:
    """Trial number -> (state, failed on its own) as study.db holds them (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{out / 'study.db'}?mode=ro", uri=True)) as db:
        states = dict(db.execute("SELECT number, state FROM trials"))
        failed = {
            n
            for (n,) in db.execute(
                "SELECT t.number FROM trials t JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id WHERE a.key = 'autocompress:failed'"
            )
        }
    return {n: (s, n in failed) for n, s in states.items()}


def _assert_stopped_cleanly(out: Path, code: int, message: str) -> None:
    """Exit 130, the one line, no traceback; nothing RUNNING; every record told to the study."""
    assert code == 130, message
    assert "interrupted: the finished trials are saved" in message
    assert "Traceback" not in message and "Error" not in message, message
    states = _study_states(out)
    assert "RUNNING" not in {s for s, _ in states.values()}, states
    for record in RunDirectory(out).read_trials():  # recorded means finished in the study too
        state, failed = states[record.number]
        assert state in ("COMPLETE", "PRUNED") or (state == "FAIL" and failed), (record, state)


@pytest.mark.parametrize("point", list(_SIGINT_POINTS))
def test_ctrl_c_at_any_point_of_a_trial_exits_130_with_every_trial_settled(
    point, tmp_path, teacher_checkpoint, capsys, monkeypatch
):
    out = tmp_path / "run"
    fired = _sigint_at(monkeypatch, point)
    code, message = _main(
        capsys,
        *("search", "--out", str(out), "--trials", "3", "--epochs", "0.5", "--rungs", "1"),
        *("--teacher", str(teacher_checkpoint), "--latency-ms", "97%", "--no-progress"),
    )
    assert fired == [point]
    _assert_stopped_cleanly(out, code, message)
    records = RunDirectory(out).read_trials()
    if point in ("recorded", "telling", "stored", "callback"):  # the trial had finished
        assert [r.number for r in records] == [0]
    else:  # stopped before its record: enqueued again with its parameters, for resume
        assert records == []
        import optuna

        study = optuna.load_study(study_name="autocompress", storage=RunDirectory(out).storage_url)
        first, *rest = study.trials
        waiting = [t for t in rest if t.state == optuna.trial.TrialState.WAITING]
        fixed = first.params or first.system_attrs["fixed_params"]
        assert first.state == optuna.trial.TrialState.FAIL
        last = waiting[-1]  # added after the anchors
        assert (last.params or last.system_attrs.get("fixed_params")) == fixed, last
    if point == "telling":
        monkeypatch.undo()
        code, message = _main(capsys, "search", "--resume", "--out", str(out), "--no-progress")
        assert code == 0, message
        after = RunDirectory(out).read_trials()
        assert after[0].to_dict() == records[0].to_dict()
        assert sum(r.state in ("complete", "failed") for r in after) >= 3


def test_ctrl_c_of_the_driver_stops_its_workers_and_exits_130(
    tmp_path, teacher_checkpoint, capsys, monkeypatch
):
    import multiprocessing

    from autocompress.search import optuna_backend

    started = []
    start_workers = optuna_backend._start_workers
    monkeypatch.setattr(
        optuna_backend,
        "_start_workers",
        lambda *args: started.append(args) or start_workers(*args),
    )
    out = tmp_path / "run"
    fired = _sigint_at(monkeypatch, "telling")  # in the driver only: the worker is spawned
    code, message = _main(
        capsys,
        *("search", "--out", str(out), "--trials", "4", "--epochs", "0.5", "--rungs", "1"),
        *("--teacher", str(teacher_checkpoint), "--latency-ms", "97%", "--no-progress"),
        *("--workers", "2"),
    )
    assert fired and started
    assert multiprocessing.active_children() == []  # the worker stopped and was joined
    _assert_stopped_cleanly(out, code, message)


def test_a_resume_with_no_trials_left_starts_no_worker_processes(digits_run, tmp_path, monkeypatch):
    from autocompress.search import optuna_backend
    from autocompress.search.api import search

    def refuse(*args):
        raise AssertionError("worker processes started with no trials left")

    monkeypatch.setattr(optuna_backend, "_start_workers", refuse)
    out = _copy_run(digits_run, tmp_path)
    done = RunDirectory(out).read_trials()
    result = search(out=out, resume=True, workers=2)
    assert [r.to_dict() for r in result.trials] == [r.to_dict() for r in done]


def test_a_real_ctrl_c_as_the_first_record_lands_stops_driver_and_workers_with_130(
    tmp_path, teacher_checkpoint
):
    """A real process with a worker process, SIGINT to the driver the moment trials.jsonl
    appears (where Optuna is still telling that trial): 130, no traceback, nothing RUNNING."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        [
            *_cli("--out", str(out), "--trials", "40", "--epochs", "0.5", "--no-progress"),
            *("--teacher", str(teacher_checkpoint), "--latency-ms", "97%", "--workers", "2"),
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = RunDirectory(out)
    try:
        _wait_for(lambda: run.trials_jsonl.is_file(), process, 120, "the first record")
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    _assert_stopped_cleanly(out, process.returncode, " ".join(stderr.split()))


def test_a_ctrl_c_that_lands_in_a_weakref_callback_still_stops_the_block_quietly(capfd):
    """The SIGINT handler runs wherever Python is: inside a garbage-collector or weakref
    callback its KeyboardInterrupt cannot propagate (Python prints "Exception ignored …
    Traceback" and goes on). The gate raises it again in the block itself, and nothing is
    printed."""
    import os
    import signal
    import weakref

    from autocompress.search.optuna_backend import SigintGate

    class Thing:
        pass

    def callback(_ref):  # what a WeakKeyDictionary's cleanup runs when a key dies
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside the callback

    gate = SigintGate()
    reached_end = False
    with gate.installed():
        with pytest.raises(KeyboardInterrupt), gate.open():
            thing = Thing()
            ref = weakref.ref(thing, callback)
            del thing  # the callback runs now; its KeyboardInterrupt is swallowed
            for _ in range(200):  # the re-raised interrupt lands in this loop
                time.sleep(0.005)
            reached_end = True
        assert ref() is None
    assert not reached_end and gate.pending
    err = capfd.readouterr().err
    assert "Exception ignored" not in err and "Traceback" not in err, err

"""The Ray backend on a real local Ray runtime (and a real `ray start` cluster): long-lived
workers, the Optuna ask/tell loop in the driver, the same run directory as the Optuna backend."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from autocompress.core.workspace import RunDirectory

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# What Optuna and Ray print when an API is deprecated or experimental.
WARNING_TEXT = re.compile(
    r"ExperimentalWarning|FutureWarning|DeprecationWarning|UserWarning|deprecated", re.I
)

# The default model with a smaller hidden layer: these tests are about the backend, and the
# embedded default's 8,192 units make every trial and teacher epoch several times slower.
SMALLER_DEFAULT_MODEL = ("--model-arg", "hidden=1024")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "RAY_ADDRESS")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _search(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``autocompress search ARGS`` in a fresh process, with the user's default warning filters."""
    return subprocess.run(
        [sys.executable, "-m", "autocompress", "search", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _running(run: RunDirectory) -> list[int]:
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    return [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def _trained(run: RunDirectory) -> int:
    return sum(1 for r in run.read_trials() if r.state in ("complete", "failed"))


# The CLI tests come first: their runs start their own Ray runtime or join a `ray start`
# cluster, before this module's in-process runtime (local_ray) is up.


@pytest.fixture(scope="class")
def ray_cluster():
    """A real Ray cluster as `ray start --head` makes one (its own temp dir and port, so no
    other Ray on this machine finds it), shared by the CLI tests of one class; stopped by
    process group afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="acr", dir="/tmp")  # short: Ray's socket paths live here
    # Ray >= 2.52 turns token authentication on for `ray start` when ~/.ray/auth_token exists; a
    # driver given an explicit address must then say so (RAY_AUTH_MODE=token), as on a cluster.
    auth = {"RAY_AUTH_MODE": "token"} if (Path.home() / ".ray" / "auth_token").is_file() else {}
    os.environ.update(auth)  # the CLI below inherits it (_env)
    head = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
            "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}",
            "--disable-usage-stats", "--block",
        ],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "ray start --head exited"
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "ray start --head did not listen"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        for name in auth:
            os.environ.pop(name, None)
        # Every process `ray start` makes (GCS, raylet, agents, workers) stays in its process
        # group; SIGTERM takes `ray start --block` > 10 s to act on, SIGKILL ends them all at once.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=20)
        shutil.rmtree(temp, ignore_errors=True)


class TestCliOnRay:
    """The CLI with the Ray backend: a run on its own runtime, runs on a `ray start` cluster."""

    def test_cli_ray_ctrl_c_exits_130_and_resume_retries_the_trial_a_killed_driver_left_running(
        self, tmp_path, ray_cluster
    ):
        """One CLI run on its own local Ray runtime (the default): Ctrl-C, then a resume that
        joins the class's `ray start` cluster with two workers and also retries a trial a
        SIGKILLed driver would have left RUNNING (two CLI runs instead of five, and one Ray
        start-up fewer: each costs ~15 s on two cores)."""
        out = tmp_path / "ray-cli"
        process = subprocess.Popen(
            [
                sys.executable, "-m", "autocompress", "search", "--backend", "ray",
                "--workers", "1", "--trials", "40", "--out", str(out), "--teacher-epochs", "3",
                "--epochs", "1", "--latency-ms", "1000%", *SMALLER_DEFAULT_MODEL,
                "--no-anchors", "--rungs", "1",  # enqueued anchors would run before the retry
            ],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )  # fmt: skip
        # The live progress line is on (the default): it once made tune.Tuner fail to pickle.
        run = RunDirectory(out)
        deadline = time.monotonic() + 240
        while not (run.trials_jsonl.is_file() and run.read_trials()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert not WARNING_TEXT.search(stdout + stderr), stderr
        assert _running(run) == []  # the trials in flight were dropped, not left RUNNING
        finished = _trained(run)
        assert 1 <= finished < 40

        # A driver killed mid-trial (SIGKILL: no chance to clean up) leaves its trial RUNNING in
        # study.db, with its parameters.
        study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
        template = next(t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
        orphan = study.ask(fixed_distributions=template.distributions)
        params = dict(orphan.params)

        # A search that joins an existing cluster (--address) with two workers. --trials counts
        # trained trials, as with the Optuna backend: two more are the retry and one new trial,
        # two pending at once (one training, one being built), and not one trial more.
        resumed = _search(
            "--resume", "--out", str(out), "--trials", str(finished + 2), "--no-progress",
            "--address", ray_cluster, "--workers", "2",
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert not WARNING_TEXT.search(resumed.stdout + resumed.stderr), resumed.stderr
        study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
        states = {t.number: t.state for t in study.trials}
        assert optuna.trial.TrialState.RUNNING not in states.values()
        assert states[orphan.number] == optuna.trial.TrialState.FAIL
        (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == orphan.number]
        assert retry.params == params and retry.state == optuna.trial.TrialState.COMPLETE
        records = {r.number: r for r in run.read_trials()}
        assert _trained(run) == finished + 2 and retry.number in records
        assert _running(run) == []
        assert {r.backend for r in records.values()} == {"ray"}
        assert yaml.safe_load(run.run_yaml.read_text())["workers"] == 2


def test_cli_ray_runtime_that_cannot_start_is_a_clear_error(tmp_path):
    out = tmp_path / "no-ray"
    result = _search(
        "--backend", "ray", "--address", "localhost:notaport", "--trials", "1",
        "--out", str(out), "--teacher-epochs", "3", "--epochs", "1", "--no-progress",
        *SMALLER_DEFAULT_MODEL,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "Traceback" not in message
    assert "error: could not join the Ray cluster at 'localhost:notaport'" in message
    assert "--resume" in message
    assert RunDirectory(out).teacher_pt.is_file()  # what was computed is kept for --resume


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_backend_writes_the_same_run_directory_format(
    local_ray, tmp_path, digits_run, teacher_checkpoint
):
    from autocompress.search.api import search

    result = search(
        out=tmp_path / "ray",
        backend="ray",
        workers=1,  # two workers: the CLI resume on the `ray start` cluster
        trials=4,
        chip=["rockchip/rv1126", "rockchip/rk3588"],
        latency_ms="97%",
        teacher=teacher_checkpoint,
        epochs=1.0,
    )
    run, reference = RunDirectory(result.run_dir), RunDirectory(digits_run.run_dir)
    names = lambda r: sorted(p.name for p in r.path.iterdir())  # noqa: E731
    assert names(run) == names(
        reference
    )  # run.yaml, study.db, teacher.pt, trials.jsonl, pareto.json, students
    config = yaml.safe_load(run.run_yaml.read_text())
    assert config["backend"] == "ray" and config["teacher"]["source"] == "given"
    assert set(config) == set(yaml.safe_load(reference.run_yaml.read_text()))
    records = run.read_trials()
    assert _trained(run) == 4 and {r.backend for r in records} == {"ray"}
    assert {r.number for r in records} == set(range(len(records)))
    reference_record = reference.read_trials()[0].to_dict()
    for record in records:
        assert set(record.to_dict()) == set(reference_record)
        assert set(record.costs) == {"rockchip/rv1126", "rockchip/rk3588"}
        if record.state == "complete":
            assert run.student_pt(record.number).is_file()
        else:
            assert record.state == "infeasible" and "finetune" not in record.timings_s
    # the Optuna study saw every result with its constraints (told in the driver)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(records)
    assert sum(1 for t in complete if t.user_attrs.get("autocompress:trained")) == 4
    from autocompress.search.constraints import HAS_SET_CONSTRAINT, constraints_from_trial

    for t in complete:  # Optuna 5 keeps named constraints; Optuna 4 reads the adapter's values
        if HAS_SET_CONSTRAINT:
            assert set(t.constraints) == {"latency_ms", "memory_kb", "power_mw"}
        assert len(constraints_from_trial(t)) == 3
    for number in result.fronts["rockchip/rv1126"]:
        assert next(r for r in records if r.number == number).feasible

    # A resume restores the records trials.jsonl lost (a driver killed between Optuna's commit
    # and the append loses the line) from study.db, and trains nothing: the plan is met. The
    # promoted trials' lines are kept (their study.db record is their first rung's).
    before = {r.number: r.to_dict() for r in run.read_trials()}
    lines = run.trials_jsonl.read_text().splitlines(keepends=True)
    kept = [lines[0]] + [line for line in lines[1:] if len(json.loads(line)["rungs"]) > 1]
    assert len(kept) < len(lines)
    run.trials_jsonl.write_text("".join(kept))
    again = search(out=result.run_dir, resume=True)
    assert {r.number: r.to_dict() for r in again.trials} == before
    assert _running(run) == []


def test_trial_resources_the_cluster_does_not_have_are_a_clear_error(
    local_ray, tmp_path, teacher_checkpoint
):
    from autocompress.search.api import search
    from autocompress.search.ray_backend import RayBackendError

    with pytest.raises(RayBackendError, match=r"--cpus-per-trial 64 can never be scheduled"):
        search(
            out=tmp_path / "greedy",
            backend="ray",
            trials=1,
            cpus_per_trial=64,
            teacher=teacher_checkpoint,
            epochs=1.0,
        )
    assert RayBackendError.exit_code == 2


def test_a_failure_inside_ray_is_a_clear_error_and_leaves_no_running_trial(
    local_ray, tmp_path, teacher_checkpoint, monkeypatch
):
    from autocompress.search.api import search
    from autocompress.search.ray_backend import RayBackendError

    def broken_wait(*args, **kwargs):
        raise ray.exceptions.RaySystemError("the object store could not be reached")

    monkeypatch.setattr(ray, "wait", broken_wait)
    out = tmp_path / "ray-fails"
    with pytest.raises(RayBackendError) as caught:
        search(out=out, backend="ray", trials=1, teacher=teacher_checkpoint, epochs=1.0)
    message = str(caught.value)
    assert "Ray stopped the search" in message and "could not be reached" in message
    assert f"--resume --out {out}" in message
    run = RunDirectory(out)
    assert run.run_yaml.is_file()  # the run is kept for --resume
    assert _running(run) == []  # the trials it had asked are failed, not left RUNNING


def test_duplicates_are_not_retrained_and_the_proposal_cap_ends_the_run(
    local_ray, tmp_path, halves_space, teacher_checkpoint
):
    """Same configuration or same student: trained once. Of the 8 configurations (2 widths x 2
    prune ratios of small_cnn's 2 unprotected groups), width 1.0 with both groups halved builds
    the width-0.5 student: 7 students."""
    from autocompress.search.api import search
    from autocompress.search.study import KEY_ATTR, STUDENT_KEY_ATTR

    space = halves_space
    result = search(
        out=tmp_path / "run",
        backend="ray",
        workers=1,  # still two trials in flight (two pending per worker): the dedupe is tested
        model="small_cnn",
        space=str(space),
        trials=8,
        rungs=[1],
        latency_ms="1000%",
        teacher=teacher_checkpoint,  # small_cnn's: the shared run's teacher, not trained again
        epochs=1.0,
        batch_size=128,
    )
    assert result.counts["complete"] == 7  # 8 configurations, 7 students, each trained once
    assert result.counts["duplicate"] == 80 - 7
    assert result.stop_reason is not None and "10 × --trials" in result.stop_reason
    run = RunDirectory(result.run_dir)
    assert _running(run) == []
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    by_number = {t.number: t for t in study.trials}
    same_student = 0
    for record in result.trials:
        if record.state == "duplicate":
            told = by_number[record.number]
            earlier = by_number[record.duplicate_of]
            assert told.user_attrs["autocompress:duplicate_of"] == record.duplicate_of
            assert told.values == earlier.values
            assert not run.student_pt(record.number).exists()
            if told.user_attrs[KEY_ATTR] != earlier.user_attrs[KEY_ATTR]:
                assert told.user_attrs[STUDENT_KEY_ATTR] == earlier.user_attrs[STUDENT_KEY_ATTR]
                same_student += 1
    assert same_student >= 1


def _own_ray_process(title: str) -> int | None:
    """A process of this test's local Ray runtime whose title starts with ``title``."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            if not cmdline.startswith(title):
                continue
            pid, ancestors = int(entry.name), []
            parent = pid
            for _ in range(4):  # worker -> raylet -> this process (ray.init started the raylet)
                stat = (Path("/proc") / str(parent) / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                ancestors.append(parent)
            if me in ancestors:
                return pid
        except (OSError, ValueError, IndexError):
            continue
    return None


def test_a_worker_that_dies_is_a_clear_error_and_the_resume_on_one_worker_reruns_its_trial(
    local_ray, tmp_path, teacher_checkpoint, monkeypatch
):
    """A worker killed mid-trial: a clear error, its trials queued again with their parameters.
    The resume runs them on one long-lived worker that holds two trials (the next is built and
    costed in its builder process while one trains), and a result whose tell raises leaves its
    trial FAIL, not RUNNING."""
    import threading

    from autocompress.search.api import search
    from autocompress.search.ray_backend import RayBackendError
    from autocompress.search.ray_driver import TELL_ERROR_ATTR

    killed: list[int] = []

    def kill_the_trainer_mid_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pid = _own_ray_process("ray::TrialTrainer.train")
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # out of memory, a lost node ...
                killed.append(pid)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_the_trainer_mid_trial, daemon=True)
    watcher.start()
    out = tmp_path / "dies"
    settings = dict(backend="ray", workers=1, latency_ms="1000%", rungs=[1], epochs=1.0)
    settings["anchors"] = False  # waiting anchors would run before the retries
    with pytest.raises(RayBackendError, match=r"Ray trial\(s\) of .* crashed on their worker"):
        search(out=out, trials=3, teacher=teacher_checkpoint, **settings)
    watcher.join()
    assert killed
    run = RunDirectory(out)
    assert _running(run) == []
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    waiting = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.WAITING and "failed_trial" in t.system_attrs
    ]
    assert waiting  # the killed trial (and the one built for it next) are queued again
    lost = {t.system_attrs["failed_trial"] for t in waiting}
    retries = {t.number for t in waiting}
    earlier = {r.number for r in run.read_trials()}

    # the resume: the first result of a new trial (not a retry) with values meets a storage error
    real_tell = optuna.study.Study.tell
    refused: list[int] = []

    def tell(self, trial, values=None, state=None, **kwargs):
        number = trial if isinstance(trial, int) else trial.number
        if values is not None and not refused and number not in retries:
            refused.append(number)
            raise RuntimeError("database is locked")
        return real_tell(self, trial, values, state, **kwargs)

    monkeypatch.setattr(optuna.study.Study, "tell", tell)
    result = search(out=out, resume=True)
    assert _trained(run) == 3 and _running(run) == []  # the refused one was trained: it counts
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    by_number = {t.number: t for t in study.trials}
    for t in waiting:  # the retries ran, with the lost trials' parameters
        assert by_number[t.number].state == optuna.trial.TrialState.COMPLETE
        assert by_number[t.number].params == by_number[t.system_attrs["failed_trial"]].params
    assert lost.isdisjoint(r.number for r in result.trials)
    (failed,) = [t for t in study.trials if TELL_ERROR_ATTR in t.user_attrs]
    assert failed.number == refused[0] and failed.state == optuna.trial.TrialState.FAIL
    assert "database is locked" in failed.user_attrs[TELL_ERROR_ATTR]
    records = [r for r in run.read_trials() if r.number not in earlier]  # this session's
    assert refused[0] in {r.number for r in records}  # recorded before it was told
    # one long-lived worker: the next student was built and costed (in the builder) while one
    # trained, so it was ready before the worker was free
    later = [r for r in records if "worker_idle" in r.timings_s]
    assert len(later) == len(records) - 1 >= 1  # every trial but the worker's first
    for record in later:
        assert record.timings_s["built_ahead"] > 0, record.timings_s
        assert record.timings_s["worker_idle"] >= 0

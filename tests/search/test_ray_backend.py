"""The Ray Tune backend on a local Ray runtime with 2 workers writes the same run directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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


def _search(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``autocompress search ARGS`` in a fresh process, with the user's default warning filters."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "RAY_ADDRESS")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "autocompress", "search", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# The CLI tests come first: each starts its own Ray runtime, before this module's fixture does.


def test_cli_ray_search_then_resume_retries_the_trial_a_killed_driver_left_running(tmp_path):
    out = tmp_path / "ray-cli"
    first = _search(
        "--backend", "ray", "--workers", "2", "--trials", "2", "--out", str(out),
        "--teacher-epochs", "3", "--epochs", "1", "--latency-ms", "97%",
        "--no-anchors", "--rungs", "1",  # enqueued anchors would run before the retry
    )  # fmt: skip
    # The live progress line is on (the default): it once made tune.Tuner fail to pickle.
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert not WARNING_TEXT.search(first.stdout + first.stderr), first.stderr
    run = RunDirectory(out)
    assert len(run.read_trials()) == 2

    # A driver killed mid-trial leaves its trial RUNNING in study.db, with its parameters.
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    template = next(t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    orphan = study.ask(fixed_distributions=template.distributions)
    params = dict(orphan.params)

    resumed = _search("--resume", "--out", str(out), "--trials", "3", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert not WARNING_TEXT.search(resumed.stdout + resumed.stderr), resumed.stderr
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    states = {t.number: t.state for t in study.trials}
    assert optuna.trial.TrialState.RUNNING not in states.values()
    assert states[orphan.number] == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == orphan.number]
    assert retry.params == params and retry.state == optuna.trial.TrialState.COMPLETE
    records = {r.number: r for r in run.read_trials()}
    assert len(records) == 3 and retry.number in records
    assert {r.backend for r in records.values()} == {"ray"}


def test_cli_ray_runtime_that_cannot_start_is_a_clear_error(tmp_path):
    out = tmp_path / "no-ray"
    result = _search(
        "--backend", "ray", "--address", "localhost:notaport", "--trials", "1",
        "--out", str(out), "--teacher-epochs", "3", "--epochs", "1", "--no-progress",
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
        workers=2,
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
    assert len(records) == 4 and {r.backend for r in records} == {"ray"}
    assert {r.number for r in records} == {0, 1, 2, 3}
    reference_record = reference.read_trials()[0].to_dict()
    for record in records:
        assert set(record.to_dict()) == set(reference_record)
        assert set(record.costs) == {"rockchip/rv1126", "rockchip/rk3588"}
        if record.state == "complete":
            assert run.student_pt(record.number).is_file()
        else:
            assert record.state == "infeasible" and "finetune" not in record.timings_s
    # the Optuna study saw every result with its constraints (the adapter ran in the driver)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    from autocompress.search.constraints import HAS_SET_CONSTRAINT, constraints_from_trial

    for t in complete:  # Optuna 5 keeps named constraints; Optuna 4 reads the adapter's values
        if HAS_SET_CONSTRAINT:
            assert set(t.constraints) == {"latency_ms", "memory_kb", "power_mw"}
        assert len(constraints_from_trial(t)) == 3
    for number in result.fronts["rockchip/rv1126"]:
        assert next(r for r in records if r.number == number).feasible


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


def test_a_failure_inside_ray_tune_is_a_clear_error(
    local_ray, tmp_path, teacher_checkpoint, monkeypatch
):
    from ray import tune

    from autocompress.search.api import search
    from autocompress.search.ray_backend import RayBackendError

    def broken_fit(self):
        raise tune.TuneError("the experiment state could not be written")

    monkeypatch.setattr(tune.Tuner, "fit", broken_fit)
    out = tmp_path / "tune-fails"
    with pytest.raises(RayBackendError) as caught:
        search(out=out, backend="ray", trials=1, teacher=teacher_checkpoint, epochs=1.0)
    message = str(caught.value)
    assert "Ray Tune stopped the search" in message and "could not be written" in message
    assert f"--resume --out {out}" in message
    assert RunDirectory(out).run_yaml.is_file()  # the run is kept for --resume

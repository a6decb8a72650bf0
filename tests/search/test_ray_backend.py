"""The Ray Tune backend on a local Ray runtime with 2 workers writes the same run directory."""

from __future__ import annotations

import optuna
import pytest
import yaml

from autocompress.core.workspace import RunDirectory

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]


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
    assert all(set(t.constraints) == {"latency_ms", "memory_kb", "power_mw"} for t in complete)
    for number in result.fronts["rockchip/rv1126"]:
        assert next(r for r in records if r.number == number).feasible

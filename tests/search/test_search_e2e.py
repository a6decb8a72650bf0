"""End-to-end search on the digits: budgets respected, run directory complete, fronts per chip."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from autocompress.core.pareto import pareto_front
from autocompress.core.workspace import RunDirectory
from autocompress.search.api import load_result

CHIPS = ["rockchip/rv1126", "rockchip/rk3588"]  # as in conftest.digits_run

pytestmark = pytest.mark.slow


def test_front_holds_only_feasible_trained_models(digits_run):
    result = digits_run
    run = RunDirectory(result.run_dir)
    config = run.read_run_config()
    budget = config.budget
    assert budget.latency_ms is not None and config.budget_sources["latency_ms"].startswith(
        "user (97%"
    )
    front = result.front()
    assert front, "a front of at least one feasible model"
    for record in front:
        assert record.state == "complete" and record.feasible
        assert budget.is_met({**record.costs[result.chip], **record.metrics})
    # the front is really non-dominated among the feasible trained trials
    feasible = [r for r in result.trials if r.state == "complete" and r.feasible]
    points = [{**r.costs[result.chip], **r.metrics} for r in feasible]
    expected = sorted(feasible[i].number for i in pareto_front(points, result.objectives))
    assert result.fronts[result.chip] == expected


def test_budget_binds_and_infeasible_trials_took_no_training(digits_run):
    run = RunDirectory(digits_run.run_dir)
    states = {r.state for r in digits_run.trials}
    assert "infeasible" in states, "a 97% latency budget must rule some configurations out"
    for record in digits_run.trials:
        if record.state == "infeasible":
            assert "finetune" not in record.timings_s and not record.metrics
            assert any(v > 0 for v in record.violations.values())
            assert not run.student_pt(record.number).exists()
            assert set(record.costs) == set(CHIPS)  # cost recorded on every chip
        elif record.state == "complete":
            assert run.student_pt(record.number).is_file()
            assert record.timings_s["finetune"] > 0
            assert 0.0 <= record.metrics["accuracy"] <= 1.0 and "test_accuracy" in record.metrics


def test_run_directory_has_the_contracted_format(digits_run):
    run = RunDirectory(digits_run.run_dir)
    config = yaml.safe_load(run.run_yaml.read_text())
    for key in (
        "format_version",
        "name",
        "created_utc",
        "model",
        "input_shape",
        "dataset",
        "normalization",
        "chip",
        "chips",
        "budget",
        "budget_sources",
        "objectives",
        "space",
        "sampler",
        "trials",
        "finetune",
        "teacher",
        "backend",
        "seed",
        "versions",
    ):
        assert key in config, key
    assert config["chips"] == CHIPS and config["chip"] == CHIPS[0]
    assert (
        config["teacher"]["source"] in ("trained", "cache")
        and config["teacher"]["val_accuracy"] > 0.5
    )
    assert set(config["space"]["protect"]) == {"0", "12"}
    assert config["versions"]["optuna"] == optuna.__version__
    assert "rockchip" in config["versions"]["plugins"]
    pareto = json.loads(run.pareto_json.read_text())
    assert set(pareto["fronts"]) == set(CHIPS)
    assert pareto["objectives"] == ["accuracy", "latency_ms"]
    # the Optuna study in study.db holds every trial, with its constraints
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(digits_run.trials) >= 10
    assert all(set(t.constraints) == {"latency_ms", "memory_kb", "power_mw"} for t in complete)
    # load_result reads the same thing back
    again = load_result(run.path)
    assert again.fronts == digits_run.fronts


def test_second_chip_has_its_own_front(digits_run):
    other = CHIPS[1]
    numbers = digits_run.fronts[other]
    assert numbers
    assert all(r.state == "complete" for r in digits_run.front(other))


def test_impossible_budget_is_refused_before_any_run_directory(tmp_path):
    from autocompress.core.errors import BudgetError
    from autocompress.search.api import search

    out = tmp_path / "never"
    with pytest.raises(
        BudgetError,
        match=r"no configuration of search space 'default' can meet the budget: latency_ms",
    ):
        search(out=out, latency_ms=0.001, trials=2, teacher_epochs=1)
    assert not out.exists()


def test_existing_run_is_not_overwritten(digits_run):
    from autocompress.core.errors import RunDirectoryError
    from autocompress.search.api import search

    with pytest.raises(RunDirectoryError, match="already holds a run"):
        search(out=digits_run.run_dir, trials=2, teacher_epochs=3, epochs=1.0)

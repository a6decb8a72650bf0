"""load_report on real runs: fronts, other chips, re-targeted budgets, runs in progress."""

from __future__ import annotations

import itertools
import json
import shutil

import pytest

from autocompress.core.errors import RunDirectoryError, UnknownNameError
from autocompress.core.pareto import pareto_front
from autocompress.report.api import load_report
from autocompress.report.rescore import Rescorer
from autocompress.report.run_data import load_run
from autocompress.report.table import CSV_COLUMNS, THROUGHPUT_COLUMNS, report_csv


def _records(run):
    return [json.loads(line) for line in (run / "trials.jsonl").read_text().splitlines()]


def test_front_on_the_main_chip_equals_the_search_pareto_json(search_run):
    report = load_report(search_run)
    pareto = json.loads((search_run / "pareto.json").read_text())
    assert report.chip_id == "rockchip/rv1126" and not report.rescored
    assert sorted(report.front) == sorted(pareto["fronts"]["rockchip/rv1126"])
    records = {r["number"]: r for r in _records(search_run)}
    for row in report.rows:
        record = records[row.number]
        assert row.state == record["state"]
        assert row.feasible == record["feasible"]
        if record["costs"]:
            assert row.value("latency_ms") == record["costs"]["rockchip/rv1126"]["latency_ms"]
    limit = report.run.config.budget.latency_ms
    for row in report.front_rows:
        assert row.feasible and row.trained and row.value("latency_ms") <= limit
    counts = report.counts()
    assert counts["infeasible"] >= 1 and counts["complete"] >= 2  # the budget binds


def test_a_recorded_second_chip_uses_its_recorded_costs(search_run):
    report = load_report(search_run, chip="nvidia/orin-nano")
    assert not report.rescored
    # budgets that came from the main chip's defaults follow the chip; the user's latency stays
    assert report.budget.latency_ms == report.run.config.budget.latency_ms
    assert report.budget.power_mw == 15000.0
    expected = []
    for record in _records(search_run):
        costs = record["costs"]["nvidia/orin-nano"]
        if record["state"] == "complete" and report.budget.is_met({**costs, **record["metrics"]}):
            expected.append(
                {"trial": record["number"], "accuracy": record["metrics"]["accuracy"], **costs}
            )
    assert [r.number for r in report.rows if r.feasible] == [e["trial"] for e in expected]
    front = [expected[i]["trial"] for i in pareto_front(expected, ["accuracy", "latency_ms"])]
    assert sorted(report.front) == sorted(front)
    for row in report.rows:
        assert (
            row.value("energy_mj")
            == _records(search_run)[row.number]["costs"]["nvidia/orin-nano"]["energy_mj"]
        )


def test_rescoring_rebuilds_architectures_and_reproduces_recorded_costs(search_run):
    run = load_run(search_run)
    rescorer = Rescorer(run)
    complete = [record for record in run.records if record.state == "complete"]
    assert complete
    for record in complete:
        cost = rescorer.trial_cost(record, "nvidia/orin-nano").metrics()
        for metric, value in cost.items():
            assert value == pytest.approx(record.costs["nvidia/orin-nano"][metric], rel=1e-6)
    report = load_report(search_run, chip="rockchip/rk3588")
    assert report.rescored
    for row in report.rows:
        assert (row.value("latency_ms") is not None) == row.trained
    points = [
        {"accuracy": r.value("accuracy"), "latency_ms": r.value("latency_ms")}
        for r in report.rows
        if r.feasible
    ]
    feasible = [r.number for r in report.rows if r.feasible]
    assert sorted(report.front) == sorted(
        feasible[i] for i in pareto_front(points, ["accuracy", "latency_ms"])
    )


def test_retargeted_budgets_change_the_front_from_stored_trials(search_run):
    base = load_report(search_run)
    trained_latencies = sorted(r.value("latency_ms") for r in base.rows if r.trained)
    limit = (trained_latencies[0] + trained_latencies[1]) / 2
    tight = load_report(search_run, budget_overrides={"latency_ms": limit})
    assert tight.budget.latency_ms == limit
    assert [r.number for r in tight.rows if r.feasible] == [
        r.number for r in base.rows if r.trained and r.value("latency_ms") <= limit
    ]
    assert all(r.value("latency_ms") <= limit for r in tight.front_rows)
    loose = load_report(search_run, budget_overrides={"latency_ms": 10.0})
    untrained = {r.number for r in base.rows if r.state == "infeasible"}
    assert untrained and not untrained & set(loose.front)  # never trained: never on a front
    best = max(r.value("accuracy") for r in base.rows if r.trained)
    picky = load_report(search_run, budget_overrides={"min_accuracy": best})
    assert [r.value("accuracy") for r in picky.front_rows] == [best]


def test_hypervolume_never_decreases_and_json_is_serialisable(search_run):
    report = load_report(search_run)
    values = [hv for _, hv in report.hypervolume_history]
    assert len(values) == len(report.rows)
    assert all(b >= a for a, b in itertools.pairwise(values)) and values[-1] > 0
    data = json.loads(json.dumps(report.to_dict()))
    assert data["front"] == list(report.front) and data["chip"] == "rockchip/rv1126"
    assert data["teacher"]["accuracy"] > 0.5 and data["teacher"]["latency_ms"] > 0
    lines = report_csv(report).splitlines()
    # trained trials record their fine-tune throughput: its column follows the fixed ones
    assert lines[0].split(",") == [*CSV_COLUMNS, *THROUGHPUT_COLUMNS]
    assert len(lines) == len(report.rows) + 1


def test_a_run_in_progress_is_reported(progress_run):
    report = load_report(progress_run)
    assert report.run.in_progress and report.run.trials_planned == 6
    assert len(report.rows) == 3  # the torn fourth line is skipped
    assert report.front and not (progress_run / "pareto.json").exists()


def test_a_run_before_its_first_trial(search_run, tmp_path):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(search_run / "run.yaml", fresh / "run.yaml")
    report = load_report(fresh)
    assert report.rows == [] and report.front == [] and report.hypervolume_history == []
    assert report.teacher["accuracy"] is not None and "latency_ms" not in report.teacher


def test_bad_inputs(search_run, tmp_path):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        load_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirectoryError, match=r"run\.yaml is missing"):
        load_report(tmp_path / "empty")
    with pytest.raises(UnknownNameError, match="rockchip/rv1127"):
        load_report(search_run, chip="rockchip/rv1127")
    with pytest.raises(Exception, match="latency_ms must be a positive number"):
        load_report(search_run, budget_overrides={"latency_ms": -1})

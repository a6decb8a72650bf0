import pytest

from autocompress.core.errors import RunDirectoryError
from autocompress.core.run_config import RunConfig
from autocompress.core.workspace import RunDirectory, TrialRecord


def minimal_run_config(name: str) -> RunConfig:
    """The least run.yaml a reader accepts (what these file tests need)."""
    return RunConfig.from_yaml(
        f"format_version: 1\nname: {name}\nmodel: {{name: small_cnn}}\ninput_shape: [1, 8, 8]\n"
        "dataset: {name: digits}\nchip: acme/npu1\nbudget: {}\n"
        "objectives: [accuracy, latency_ms]\nspace: {name: default}\nsampler: {name: tpe}\n"
        "finetune: {epochs: 1}\ntrials: 1\n"
    )


def _record(number: int, state: str = "complete") -> TrialRecord:
    return TrialRecord(
        number=number,
        state=state,
        config={"type": "TrialConfig", "version": 1, "width_multiplier": 0.5},
        metrics={"accuracy": 0.9},
        costs={"acme/npu1": {"latency_ms": 1.0}},
        feasible=True,
    )


def test_trials_round_trip_and_latest_record_wins(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.append_trial(_record(0))
    run.append_trial(_record(1, "failed"))
    run.append_trial(_record(1))  # retried after a crash
    records = run.read_trials()
    assert [r.number for r in records] == [0, 1]
    assert records[1].state == "complete"


def test_torn_last_line_is_skipped(tmp_path):
    run = RunDirectory(tmp_path)
    run.append_trial(_record(0))
    with open(run.trials_jsonl, "a") as handle:
        handle.write('{"number": 1, "state": "compl')  # writer killed mid-line
    assert [r.number for r in run.read_trials()] == [0]


def test_run_config_requires_a_run_directory(tmp_path):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        RunDirectory(tmp_path / "nope").read_run_config()
    with pytest.raises(RunDirectoryError, match=r"run\.yaml is missing"):
        RunDirectory(tmp_path).read_run_config()
    run = RunDirectory(tmp_path)
    run.write_run_config(minimal_run_config("x"))
    assert run.read_run_config().name == "x"
    run.run_yaml.write_text("format_version: 99\n")
    with pytest.raises(RunDirectoryError, match="format 99"):
        run.read_run_config()


def test_pareto_is_replaced_atomically(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.read_pareto() is None
    run.write_pareto({"fronts": {"a/b": [1, 2]}})
    run.write_pareto({"fronts": {"a/b": [3]}})
    assert run.read_pareto() == {"fronts": {"a/b": [3]}}
    assert not list(tmp_path.glob(".*.tmp"))

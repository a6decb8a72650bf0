"""run.yaml as a type: RunConfig reads what earlier versions wrote, byte for byte, and
names the file, the line and the field of what is wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from autocompress.core.errors import RunDirectoryError
from autocompress.core.run_config import RunConfig, TeacherEntry
from autocompress.core.workspace import RunDirectory

# A run.yaml written by autocompress before RunConfig existed (search --data-limit 300,
# two chips, memory_kb 90 %).
FORMAT_1 = Path(__file__).parent / "data" / "run-format1.yaml"


def test_a_run_yaml_of_the_previous_code_reads_and_writes_back_byte_for_byte():
    text = FORMAT_1.read_text()
    config = RunConfig.from_yaml(text, source=FORMAT_1)
    assert config.to_yaml() == text
    assert config.chip == "rockchip/rv1126" and config.chips[1] == "nvidia/orin-nano"
    assert config.dataset.limit == 300 and config.dataset.val_fraction == 0.2
    assert config.budget.memory_kb is not None
    assert config.budget_sources["memory_kb"].startswith("user (90%")
    assert config.teacher.source == "trained" and not config.teacher.pending
    assert config.model.name == "small_cnn" and config.input_shape == (1, 8, 8)
    assert RunConfig.from_yaml(config.to_yaml()) == config


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  seed: 0\n  val_fraction",
            "  seed: zero\n  val_fraction",
            "field 'dataset.seed': expected an integer",
        ),
        ("trials: 1\n", "trials: many\n", "field 'trials': expected an integer"),
        ("trials: 1\n", "", "field 'trials': is missing"),
        ("  epochs: 0.2\n  batch_size", "  epochs: [1]\n  batch_size", "field 'finetune.epochs'"),
        ("  memory_kb: ", "  memory_kb: -", "field 'budget'"),
    ],
)
def test_a_wrong_field_is_named_with_file_and_line(tmp_path, old, new, message):
    text = FORMAT_1.read_text()
    assert old in text
    broken = text.replace(old, new, 1)
    path = tmp_path / "run.yaml"
    path.write_text(broken)
    with pytest.raises(RunDirectoryError, match=message) as info:
        RunConfig.read(path)
    where = info.value.message.split(": field")[0]
    line = int(where.rsplit(":", 1)[1])
    assert where.startswith(f"{path}:") and line >= 1
    key = message.split("'")[1].split(".")[-1]
    assert key in broken.splitlines()[line - 1] or line == 1  # the line of the field


def test_the_later_changes_are_typed_and_written_by_the_run_directory(tmp_path):
    config = RunConfig.from_yaml(FORMAT_1.read_text())
    pending = config.with_teacher(TeacherEntry(epochs=1))
    assert pending.teacher.pending and "val_accuracy" not in pending.to_dict()["teacher"]
    run = RunDirectory(tmp_path)
    run.write_run_config(pending)
    assert run.read_run_config() == pending
    resumed = config.with_resume(
        trials=9, backend="optuna", workers=2, timeout_s=30.0, device="cpu"
    )
    assert (resumed.trials, resumed.workers, resumed.finetune.device) == (9, 2, "cpu")
    assert (
        dataclasses.replace(resumed, trials=1, workers=1, timeout_s=None, finetune=config.finetune)
        == config
    )
    done = config.with_status("complete", "2026-01-01T00:00:00Z")
    run.write_run_config(done)
    assert run.read_run_config().status == "complete"
    assert RunConfig.from_yaml(done.to_yaml()) == done
    again = done.with_resume(trials=9, backend="optuna", workers=1, timeout_s=None)
    assert again.status is None and again.finished_utc is None  # running again


def test_an_unsupported_format_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(FORMAT_1.read_text().replace("format_version: 1", "format_version: 99"))
    with pytest.raises(RunDirectoryError, match="format 99"):
        RunConfig.read(path)


def test_trial_records_are_typed_and_trials_jsonl_stays_byte_for_byte(tmp_path):
    from autocompress.core.cost_totals import CostTotals
    from autocompress.core.trial_config import TrialConfig

    lines = (FORMAT_1.parent / "trials-format1.jsonl").read_text().splitlines(keepends=True)
    run = RunDirectory(tmp_path / "copy")
    source = tmp_path / "source"
    source.mkdir()
    (source / "trials.jsonl").write_text("".join(lines))
    records = RunDirectory(source).read_trials()
    assert records and all(isinstance(r.config, TrialConfig) for r in records)
    for record in records:
        for totals in record.costs.values():
            assert isinstance(totals, CostTotals) and totals.latency_ms == totals["latency_ms"]
        run.append_trial(record)
    assert run.trials_jsonl.read_text() == "".join(lines)

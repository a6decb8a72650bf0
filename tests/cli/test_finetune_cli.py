"""`autocompress finetune`: recovery recorded, exported, reported, resumable; divergence."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from autocompress.cli import cli, main
from autocompress.compress.recipe import SHORT_RUN_FEATURE_WEIGHT, SHORT_RUN_MAX_BATCH_SIZE
from autocompress.compress.student import load_student

_spec = importlib.util.spec_from_file_location(
    "_real_run_loader", Path(__file__).parents[1] / "report" / "real_run.py"
)
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
real_run = _loader.load()


@pytest.fixture()
def run_dir(tmp_path_factory, tmp_path) -> Path:
    """A private copy of the shared tiny search (finetune writes into the run)."""
    source = real_run.search_run(tmp_path_factory.getbasetemp() / "autocompress-runs")
    copy = tmp_path / "run"
    shutil.copytree(source, copy)
    return copy


def _best_trial(run: Path) -> int:
    records = [r for r in real_run.read_records(run) if r["state"] == "complete" and r["feasible"]]
    return max(records, key=lambda r: r["metrics"]["accuracy"])["number"]


def test_finetune_records_recovered_accuracy_and_export_and_report_use_it(run_dir):
    torch.set_num_threads(1)
    number = _best_trial(run_dir)
    result = CliRunner().invoke(
        cli, ["finetune", str(run_dir), "--pick", "max accuracy", "--epochs", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["trial"] == number and out["epochs"] == 4 and out["seconds"] > 0
    model_dir = run_dir / "models" / f"trial-{number:04d}"
    info = json.loads((model_dir / "recovered.json").read_text())
    assert 0 < info["test_accuracy"] <= 1 and 0 < info["accuracy"] <= 1
    assert info["recipe"]["learned_steps"] and info["recipe"]["augment"]
    # feature distillation is on by default; 4 epochs is a short run: its weight is higher
    assert info["recipe"]["feature_weight"] == SHORT_RUN_FEATURE_WEIGHT
    # an int8 student (rv1126): the recipe's LR, not the one for learned 4-bit steps
    assert info["recipe"]["lr_used"] == info["recipe"]["lr"] != info["recipe"]["low_bit_lr"]
    assert not (model_dir / "recovery-state.pt").exists()  # removed when complete
    torch.load(model_dir / "recovered.pt", weights_only=True)
    student = load_student(model_dir / "recovered.pt")
    assert student(torch.zeros(2, 1, 8, 8)).shape == (2, 10)

    exported = CliRunner().invoke(cli, ["export", str(run_dir), "--trial", str(number), "--json"])
    assert exported.exit_code == 0, exported.output
    card = json.loads((model_dir / "card.json").read_text())
    assert card["weights"]["source"] == "recovered"
    assert card["accuracy"]["test"] == pytest.approx(info["test_accuracy"])
    assert card["accuracy"]["recovered_test"] == pytest.approx(info["test_accuracy"])
    record = next(r for r in real_run.read_records(run_dir) if r["number"] == number)
    assert card["accuracy"]["proxy_test"] == pytest.approx(record["metrics"]["test_accuracy"])
    markdown = (model_dir / "card.md").read_text()
    assert "recovered by `autocompress finetune` (4 epochs" in markdown
    assert "| search proxy fine-tune |" in markdown and "| recovered (" in markdown
    # the export kept finetune's files in the folder it replaced
    assert (model_dir / "recovered.pt").is_file() and (model_dir / "recovered.json").is_file()

    csv_out = CliRunner().invoke(cli, ["report", str(run_dir), "--csv"]).output
    header, *lines = csv_out.splitlines()
    columns = header.split(",")
    assert "recovered_test_accuracy" in columns
    row = next(line.split(",") for line in lines if line.split(",")[0] == str(number))
    assert float(row[columns.index("recovered_test_accuracy")]) == pytest.approx(
        info["test_accuracy"]
    )
    table = CliRunner().invoke(cli, ["report", str(run_dir)], env={"COLUMNS": "200"}).output
    assert "rec acc" in table
    data = json.loads(CliRunner().invoke(cli, ["report", str(run_dir), "--json"]).output)
    trial = next(t for t in data["trials"] if t["trial"] == number)
    assert trial["recovered_test_accuracy"] == pytest.approx(info["test_accuracy"])


def test_export_recover_epochs_runs_finetune_first(run_dir):
    torch.set_num_threads(1)
    number = _best_trial(run_dir)
    result = CliRunner().invoke(
        cli, ["export", str(run_dir), "--trial", str(number), "--recover-epochs", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "weights: recovered (2 epochs)" in result.output
    info = json.loads((run_dir / "models" / f"trial-{number:04d}" / "recovered.json").read_text())
    assert info["epochs"] == 2


def test_finetune_resumes_after_sigkill(run_dir):
    number = _best_trial(run_dir)
    state = run_dir / "models" / f"trial-{number:04d}" / "recovery-state.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, "-m", "autocompress", "finetune", str(run_dir)]
    command += ["--trial", str(number), "--epochs", "6", "--device", "cpu"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not state.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.is_file(), process.stderr.read().decode() if process.poll() else "no state"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    saved = torch.load(state, weights_only=True)
    assert 1 <= saved["train"]["epoch"] < 6
    assert not (state.parent / "recovered.pt").exists()

    # the resume reads what the killed process left: in this process (a start is ~4 s)
    torch.set_num_threads(1)
    done = CliRunner().invoke(cli, [*command[3:], "--json"])
    assert done.exit_code == 0, done.output
    info = json.loads(done.stdout)
    assert info["resumed_from_epoch"] >= saved["train"]["epoch"] and info["epochs"] == 6
    assert not state.exists() and (state.parent / "recovered.pt").is_file()


def test_finetune_that_diverges_is_retried_then_reported(run_dir, capsys):
    number = _best_trial(run_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", str(run_dir), "--trial", str(number), "--epochs", "1", "--lr", "1e6"])
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"recovery training of trial {number} failed" in message
    assert "(lr 1e+06, adamw); retried at lr 100000:" in message
    assert not (run_dir / "models" / f"trial-{number:04d}" / "recovered.pt").exists()


def test_a_short_recovery_caps_the_devices_default_batch_but_not_a_given_one(run_dir):
    from autocompress.recover.api import recover

    torch.set_num_threads(1)
    number = _best_trial(run_dir)
    gpu = lambda _device: True  # noqa: E731 — the GPU's default batch (512), trained on the CPU
    short = recover(run_dir, trial=number, epochs=0.5, device="cpu", is_cuda=gpu).info
    assert short["fast_path"]["batch_size"] == SHORT_RUN_MAX_BATCH_SIZE < 512
    assert short["recipe"]["feature_weight"] == SHORT_RUN_FEATURE_WEIGHT
    given = recover(run_dir, trial=number, epochs=0.5, device="cpu", is_cuda=gpu, batch_size=300)
    assert given.info["fast_path"]["batch_size"] == 300


def test_a_negative_feature_weight_is_refused_before_any_training(run_dir, capsys):
    number = _best_trial(run_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", str(run_dir), "--trial", str(number), "--feature-weight", "-1"])
    assert exit_info.value.code == 2
    assert "the feature weight must be 0 or more, got -1" in capsys.readouterr().err
    assert not (run_dir / "models" / f"trial-{number:04d}" / "recovery-state.pt").exists()


def test_a_diverging_search_trial_is_failed_with_the_reason_not_a_result(tmp_path):
    from autocompress.search.api import search

    torch.set_num_threads(1)
    out = tmp_path / "diverge"
    search(  # the shared run's teacher (small_cnn, 4 epochs): from the cache, not trained again
        trials=2,
        out=out,
        model="small_cnn",
        chip=["rockchip/rv1126"],
        teacher_epochs=4,
        epochs=0.5,
        lr=1e6,
    )
    records = real_run.read_records(out)
    assert len(records) == 2
    for record in records:
        assert record["state"] == "failed", record
        assert record["error"].startswith("training diverged:")
        assert "retried at lr 100000" in record["error"]
        assert not (out / "students" / f"trial-{record['number']:04d}.pt").exists()
    assert not any(json.loads((out / "pareto.json").read_text())["fronts"].values())

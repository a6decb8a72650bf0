"""`autocompress train` as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autocompress.core.models import load_checkpoint


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUTOCOMPRESS_CACHE": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "autocompress", "train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_train_saves_a_loadable_teacher_and_prints_accuracy(tmp_path):
    result = _run("--epochs", "4", "--out", "teacher.pt", "--json", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dataset"] == "digits" and summary["test_accuracy"] > 0.8
    _model, spec, extra = load_checkpoint(tmp_path / "teacher.pt")
    assert spec.name == "small_cnn" and extra["input_shape"] == [1, 8, 8]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--epochs", "0"], "--epochs must be positive"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_input_exits_2_without_traceback(args, message, capsys, tmp_path, monkeypatch):
    from autocompress.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err

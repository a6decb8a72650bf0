"""`autocompress search` / `spaces` from the command line: clear errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autocompress.cli import main


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run the real entry point in-process: (exit code, stdout+stderr with line wraps undone)."""
    monkeypatch.setenv("COLUMNS", "250")

    def run(args: list[str]) -> tuple[int, str]:
        with pytest.raises(SystemExit) as info:
            main(args)
        captured = capsys.readouterr()
        return int(info.value.code or 0), " ".join((captured.out + captured.err).split())

    return run


def test_unknown_sampler_exits_2_without_traceback_in_a_real_process(tmp_path, run_cli):
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "autocompress",
            "search",
            "--sampler",
            "tpee",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    output = " ".join((process.stdout + process.stderr).split())
    assert process.returncode == 2
    assert "unknown sampler 'tpee'; did you mean 'tpe'" in output and "Traceback" not in output
    assert not (tmp_path / "r").exists()


def test_malformed_config_names_file_line_and_field(tmp_path, run_cli):
    config = tmp_path / "search.yaml"
    config.write_text("model: small_cnn\ntrials: 5\nbudget:\n  latency_ms: 2\n  memroy_kb: 100\n")
    code, output = run_cli(["search", "--config", str(config)])
    assert code == 2
    assert f"{config}:5: field 'memroy_kb': unknown budget" in output and "Traceback" not in output


def test_malformed_space_yaml_names_file_and_line(tmp_path, run_cli):
    space = tmp_path / "space.yaml"
    space.write_text("layers:\n  - match: '*'\n    weight_bits: {choices: [4, 8]\n")
    code, output = run_cli(["search", "--space", str(space), "--out", str(tmp_path / "r")])
    assert code == 2
    assert f"{space}:" in output and "not valid YAML" in output and "Traceback" not in output


def test_impossible_budget_is_a_clear_error(tmp_path, run_cli):
    code, output = run_cli(["search", "--latency-ms", "0.0001", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "no configuration of search space 'default' can meet the budget: latency_ms" in output
    assert "Traceback" not in output and not (tmp_path / "r").exists()


def test_bad_budget_value_is_a_clear_error(tmp_path, run_cli):
    code, output = run_cli(["search", "--memory-kb", "lots", "--out", str(tmp_path / "r")])
    assert code == 2 and "budget memory_kb must be a number or a percentage" in output


def test_negative_feature_weight_is_refused_before_any_run_directory(tmp_path, run_cli):
    code, output = run_cli(["search", "--feature-weight", "-1", "--out", str(tmp_path / "r")])
    assert code == 2 and "the feature weight must be 0 or more, got -1" in output
    assert "Traceback" not in output and not (tmp_path / "r").exists()


def test_unknown_chip_is_a_clear_error(tmp_path, run_cli):
    code, output = run_cli(["search", "--chip", "rockchip/rv1162", "--out", str(tmp_path / "r")])
    assert code == 2 and "unknown chip 'rockchip/rv1162'" in output and "Traceback" not in output


def test_spaces_lists_checks_and_shows(run_cli):
    code, output = run_cli(["spaces"])
    assert code == 0
    for name in ("default", "mixed_precision", "pruning", "distillation"):
        assert name in output
    code, output = run_cli(["spaces", "show", "default", "--chip", "rockchip/rv1126"])
    assert code == 0 and "weight_bits[3]" in output and "{8, 16}" in output


def test_spaces_check_reports_line_and_field(tmp_path, run_cli):
    good = tmp_path / "good.yaml"
    good.write_text("name: mine\nlayers:\n  - match: '*'\n    weight_bits: {choices: [4, 8]}\n")
    code, output = run_cli(["spaces", "check", str(good)])
    assert code == 0 and "ok" in output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\nlayers:\n  - match: '*'\n    weight_bits: {choices: [4, 99]}\n")
    code, output = run_cli(["spaces", "check", str(bad)])
    assert code == 2
    assert f"{bad}:4: field 'layers[0].weight_bits.choices[1]': 99 is outside [2, 16]" in output


@pytest.mark.slow
def test_search_cli_end_to_end_prints_the_front_and_no_optuna_warnings(tmp_path):
    """A tiny real search in a real process, as a user runs it: the Pareto table, and no
    deprecation or experimental warning text from Optuna (the user's default warning filters,
    no PYTHONWARNINGS)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(OMP_NUM_THREADS="1", AUTOCOMPRESS_CACHE=str(tmp_path / "cache"), COLUMNS="250")
    result = subprocess.run(
        [sys.executable, "-m", "autocompress", "search", "--trials", "2", "--epochs", "1",
         "--teacher-epochs", "3", "--latency-ms", "97%", "--out", str(tmp_path / "run"),
         "--model-arg", "hidden=1024"],  # the default model, smaller; the live progress line on
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Pareto front on rockchip/rv1126" in result.stdout, result.stdout
    assert "trials: " in result.stdout and (tmp_path / "run" / "pareto.json").is_file()
    for text in ("ExperimentalWarning", "FutureWarning", "DeprecationWarning", "deprecated"):
        assert text not in result.stdout + result.stderr, result.stderr

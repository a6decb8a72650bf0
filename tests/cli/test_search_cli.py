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
def test_search_cli_end_to_end_prints_the_front(tmp_path, monkeypatch):
    """A tiny real search through the CLI, printing the Pareto table."""
    monkeypatch.setenv("AUTOCOMPRESS_CACHE", str(tmp_path / "cache"))
    from click.testing import CliRunner

    from autocompress.cli import cli

    runner = CliRunner()

    result = runner.invoke(
        cli,
        [
            "search",
            "--trials",
            "3",
            "--teacher-epochs",
            "2",
            "--epochs",
            "0.5",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "--latency-ms",
            "200%",
            "--model-arg",
            "hidden=1024",  # the default model, smaller: the command's output is the point
        ],
        catch_exceptions=False,
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "Pareto front on rockchip/rv1126" in result.output
    assert "trials: " in result.output and (tmp_path / "run" / "pareto.json").is_file()

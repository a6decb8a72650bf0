"""`autocompress export`: --trial, --pick, --out, and clear errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from autocompress.cli import cli, main

_spec = importlib.util.spec_from_file_location(
    "_real_run_loader", Path(__file__).parents[1] / "report" / "real_run.py"
)
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
real_run = _loader.load()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return real_run.search_run(tmp_path_factory.getbasetemp() / "autocompress-runs")


def test_export_by_pick_rule(run_dir, tmp_path):
    out = tmp_path / "deploy"
    result = CliRunner().invoke(
        cli,
        [
            "export",
            str(run_dir),
            "--pick",
            "max accuracy where latency_ms <= 1",
            "--out",
            str(out),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["directory"] == str(out)
    assert {Path(f).name for f in data["files"]} >= {
        "model.onnx",
        "model.pt",
        "card.json",
        "card.md",
    }
    assert data["check"]["top1_agreement"] >= 0.99
    card = json.loads((out / "card.json").read_text())
    assert card["trial"] == data["trial"]


def _main(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code, " ".join(capsys.readouterr().err.split())  # rich wraps long lines


def test_errors_exit_2_with_a_clear_message(run_dir, capsys):
    records = real_run.read_records(run_dir)
    untrained = next(r["number"] for r in records if r["state"] == "infeasible")
    cases = {
        ("--trial", "999"): "trial 999 is not in",
        ("--trial", str(untrained)): "never trained",
        (
            "--pick",
            "max accuracy where latency_ms <= three",
        ): "column 34: expected a number, got 'three'",
        (): "exactly one of --trial N or --pick RULE",
    }
    for args, words in cases.items():
        code, err = _main(capsys, "export", str(run_dir), *args)
        assert code == 2 and err.startswith("error:") and words in err, (args, err)


def test_a_real_process_prints_no_traceback(run_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "autocompress",
            "export",
            str(run_dir),
            "--pick",
            "max accuracy where speed > 1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "column 20: expected a metric" in " ".join(result.stderr.split())

"""`autocompress report`: table, --json, --csv, --html, re-targeted budgets, errors."""

from __future__ import annotations

import csv
import importlib.util
import io
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


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, terminal_width=160)


def test_table_json_csv(run_dir):
    records = real_run.read_records(run_dir)
    result = _invoke("report", str(run_dir))
    assert result.exit_code == 0
    assert (
        "Pareto front on rockchip/rv1126" in result.output and "budget: latency_ms" in result.output
    )
    data = json.loads(_invoke("report", str(run_dir), "--json").output)
    assert {t["trial"] for t in data["trials"]} == {r["number"] for r in records}
    for trial in data["front"]:
        assert f"\n {trial:>5} " in "\n" + result.output or f" {trial} " in result.output
    rows = list(csv.DictReader(io.StringIO(_invoke("report", str(run_dir), "--csv").output)))
    assert [int(r["trial"]) for r in rows] == [r["number"] for r in records]
    assert {r["trial"] for r in rows if r["on_front"] == "True"} == {str(t) for t in data["front"]}


def test_retargeted_budget_and_other_chip(run_dir):
    data = json.loads(_invoke("report", str(run_dir), "--json", "--latency-ms", "0.19").output)
    assert data["budget"]["latency_ms"] == 0.19 and data["budget_overrides"] == {"latency_ms": 0.19}
    assert all(t["latency_ms"] <= 0.19 for t in data["trials"] if t["on_front"])
    other = json.loads(
        _invoke("report", str(run_dir), "--json", "--chip", "nvidia/orin-nano").output
    )
    assert other["chip"] == "nvidia/orin-nano" and not other["rescored"]
    result = _invoke("report", str(run_dir), "--all", "--chip", "rockchip/rk3588")
    assert result.exit_code == 0 and "(re-scored)" in result.output and "untrained" in result.output


def test_html_default_and_explicit_path(run_dir, tmp_path):
    result = _invoke("report", str(run_dir), "--html")
    assert result.exit_code == 0 and (run_dir / "report.html").is_file()
    target = tmp_path / "page.html"
    data = json.loads(_invoke("report", str(run_dir), "--html", str(target), "--json").output)
    assert data["html"] == str(target) and 'id="scatter-latency_ms"' in target.read_text()


def test_errors_exit_2_with_a_clear_message(run_dir, tmp_path, capsys):
    cases = {
        (str(tmp_path / "missing"),): "does not exist",
        (str(run_dir), "--chip", "acme/none"): "unknown chip 'acme/none'",
        (str(run_dir), "--latency-ms", "-3"): "latency_ms must be a positive number",
        (str(run_dir), "--html", str(tmp_path / "x.html"), "--trial", "999"): "trial 999 is not in",
        (str(run_dir), "--json", "--csv"): "exclusive",
    }
    for args, words in cases.items():
        with pytest.raises(SystemExit) as info:
            main(["report", *args])
        err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
        assert info.value.code == 2 and err.startswith("error:") and words in err, (args, err)
    assert not (tmp_path / "x.html").exists()


def test_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "autocompress", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "run.yaml is missing" in " ".join(result.stderr.split())

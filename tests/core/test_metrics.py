"""The one metric table: everything that lists metrics derives from it.

The end-to-end test adds a real derived metric (``macs_m``: the multiply-accumulates
every trial record already carries, in millions) as one table entry, in a fresh
process, and finds it in the CLI flags, the ``--pick`` rule, the report table,
CSV, JSON and HTML of a real run.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.core import metrics
from autocompress.core.budget import BUDGET_FIELDS, COST_METRICS, METRIC_SENSE, Budget
from autocompress.export.rule import parse_rule
from autocompress.report.table import CSV_COLUMNS

ROOT = Path(__file__).parents[2]


def test_budget_fields_senses_and_costs_come_from_the_table():
    assert tuple(f.name for f in dataclasses.fields(Budget)) == BUDGET_FIELDS
    assert BUDGET_FIELDS == (
        "latency_ms",
        "energy_mj",
        "power_mw",
        "memory_kb",
        "model_size_kb",
        "min_accuracy",
    )
    assert {m.name: m.sense for m in metrics.objective_metrics()} == METRIC_SENSE
    assert tuple(m.name for m in metrics.cost_metrics()) == COST_METRICS
    assert Budget.metric_of("memory_kb") == "peak_memory_kb"
    for entry in metrics.metrics():
        assert entry.sense in ("min", "max") and entry.label and entry.description
        assert entry.name in CSV_COLUMNS or "csv" not in entry.views or entry.optional
        parse_rule(f"{entry.sense} {entry.name} where {entry.name} >= 0")


def test_formats_follow_the_unit():
    assert metrics.metric("accuracy").format(0.9234) == "92.3"
    assert metrics.metric("latency_ms").format(0.123456) == "0.123"
    assert metrics.metric("peak_memory_kb").format(2048.4) == "2048"
    assert metrics.metric("energy_mj").format(None) == "–"
    assert metrics.metric("peak_memory_kb").axis_label == "peak memory (KB)"
    assert metrics.metric("peak_memory_kb").budget_flag == "--memory-kb"


def test_the_docs_list_the_table():
    text = re.sub(r" +", " ", (ROOT / "docs" / "report-and-export.md").read_text())
    for entry in metrics.metrics():
        flag = f"`{entry.budget_flag}`" if entry.budget_flag else ""
        cells = [f"`{entry.name}`", entry.unit, entry.sense, flag, "yes" if entry.objective else ""]
        row = re.sub(r" +", " ", "| " + " | ".join(cells) + " |")
        assert row in text, f"docs/report-and-export.md lacks the row of {entry.name}: {row}"


def test_search_help_shows_the_real_defaults():
    from click.testing import CliRunner

    from autocompress.cli.search import command

    text = " ".join(CliRunner().invoke(command, ["--help"], terminal_width=200).output.split())
    assert "Teacher training epochs when none is given (default 15 on digits, 30 otherwise)" in text
    assert "(default 1 on digits, 3 otherwise)" in text
    assert "(default 1,3 on digits, 1,3,9 otherwise)" in text


_EXTRA_METRIC = """
import json, sys
from click.testing import CliRunner
from autocompress.core import metrics

metrics.METRICS = (
    *metrics.METRICS,
    metrics.Metric(
        "macs_m", "M", "min", "multiply-accumulates of one inference, millions", "MMAC",
        html_label="MACs M", budget="macs_m", objective=True, cost_field="macs", scale=1e-6,
    ),
)
from autocompress.cli import cli, main
from autocompress.core.budget import Budget
from autocompress.export.api import pick_trial
from autocompress.report.run_data import load_run
from autocompress.core.errors import BudgetError
from autocompress.search.api import search
from autocompress.search.settings import SearchSettings

run, page, new_run = sys.argv[1], sys.argv[2], sys.argv[3]
def invoke(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, terminal_width=250)
    assert result.exit_code == 0, result.output
    return result.output

out = {
    "search_help": invoke("search", "--help"),
    "report_help": invoke("report", "--help"),
    "table": invoke("report", run, "--all"),
    "csv": invoke("report", run, "--csv"),
    "json": json.loads(invoke("report", run, "--json", "--html", page)),
    "budget_fields": list(Budget.__dataclass_fields__),
    "objectives_ok": list(SearchSettings(objectives=("accuracy", "macs_m")).validate().objectives),
    "pick": pick_trial(load_run(run), "min macs_m where accuracy >= 0.1"),
}
limit = min(t["macs_m"] for t in out["json"]["trials"] if t["on_front"]) * 1.0001
out["limit"] = limit
try:  # search() takes the new budget; a bad value fails before any run directory exists
    search(macs_m="lots", out=new_run)
except BudgetError as exc:
    out["search_error"] = str(exc)
try:  # the real entry point: a user error is exit 2 and a message on stderr
    main(["search", "--macs-m", "0", "--out", new_run])
except SystemExit as exc:
    out["cli_exit"] = exc.code
out["retargeted"] = json.loads(invoke("report", run, "--json", "--macs-m", str(limit)))
print("RESULT" + json.dumps(out))
"""


def test_a_new_table_entry_shows_up_everywhere(search_run, tmp_path):
    page = tmp_path / "page.html"
    env = {**os.environ, "COLUMNS": "250"}
    process = subprocess.run(
        [sys.executable, "-c", _EXTRA_METRIC, str(search_run), str(page), str(tmp_path / "new")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    out = json.loads(process.stdout.split("RESULT", 1)[1])
    records = [json.loads(line) for line in (search_run / "trials.jsonl").read_text().splitlines()]
    main = out["json"]["chip"]
    macs = {r["number"]: r["costs"][main]["macs"] / 1e6 for r in records if r.get("costs")}
    assert macs and all(v > 0 for v in macs.values())

    # CLI flags: a budget flag (search and report) and an objective choice
    search_help = " ".join(out["search_help"].split())
    assert "--macs-m TEXT Budget on the main chip: multiply-accumulates" in search_help
    assert re.search(r"One of: accuracy, .*model_size_kb, macs_m\.", search_help)
    assert "--macs-m FLOAT" in out["report_help"]
    assert "macs_m" in out["budget_fields"] and out["objectives_ok"] == ["accuracy", "macs_m"]
    assert "budget macs_m must be a number or a percentage" in out["search_error"]
    assert out["cli_exit"] == 2 and "budget macs_m must be a positive number" in process.stderr
    assert not (tmp_path / "new").exists()

    # report table (header and legend), CSV, JSON
    assert "MMAC" in out["table"] and "MMAC: macs M" in " ".join(out["table"].split())
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert rows and all(
        float(r["macs_m"]) == pytest.approx(macs[int(r["trial"])])
        for r in rows
        if int(r["trial"]) in macs
    )
    trials = {t["trial"]: t for t in out["json"]["trials"]}
    assert all(trials[n]["macs_m"] == pytest.approx(v) for n, v in macs.items())

    # HTML front table
    html = page.read_text()
    assert "<th>MACs M</th>" in html
    front = out["json"]["front"]
    assert front and f"<td>{trials[front[0]]['macs_m']:.4g}</td>" in html

    # --pick: the feasible trained trial with the fewest MACs
    feasible = [t for t in trials.values() if t["feasible"] and t["accuracy"] >= 0.1]
    assert out["pick"] == min(feasible, key=lambda t: (t["macs_m"], t["trial"]))["trial"]

    # a re-targeted budget on the new metric limits the front
    retargeted = out["retargeted"]
    assert retargeted["budget"]["macs_m"] == pytest.approx(out["limit"])
    on_front = [t for t in retargeted["trials"] if t["on_front"]]
    assert on_front and all(t["macs_m"] <= out["limit"] for t in on_front)
    assert any(t["macs_m"] > out["limit"] and not t["feasible"] for t in retargeted["trials"])

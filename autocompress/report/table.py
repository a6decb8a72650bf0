"""The report as a rich table (terminal) and as CSV text (scripts)."""

from __future__ import annotations

import csv
import io

from rich import box
from rich.table import Table

from autocompress.report.api import Report
from autocompress.report.rows import TrialRow

CSV_COLUMNS: tuple[str, ...] = (
    "trial",
    "state",
    "feasible",
    "on_front",
    "accuracy",
    "test_accuracy",
    "latency_ms",
    "energy_mj",
    "power_mw",
    "peak_memory_kb",
    "model_size_kb",
    "width_multiplier",
    "bits",
    "pruning",
    "epochs",
)
#: Added to :data:`CSV_COLUMNS` when a trial has a recovered accuracy / a fine-tune timing.
RECOVERED_COLUMNS: tuple[str, ...] = ("recovered_accuracy", "recovered_test_accuracy")
THROUGHPUT_COLUMNS: tuple[str, ...] = ("finetune_s_per_epoch",)


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def front_table(report: Report, *, all_trials: bool = False) -> Table:
    """The front (or every trial): accuracy, costs on the chip, width, bits, pruning."""
    rows: list[TrialRow] = list(report.rows) if all_trials else report.front_rows
    what = "trials" if all_trials else "Pareto front"
    chip = report.chip_id + (" (re-scored)" if report.rescored else "")
    table = Table(
        title=f"{report.run.name}: {what} on {chip}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="acc: validation top-1 %; ep: fine-tune epochs behind acc; lat: latency ms; "
        "mJ: energy; mW: power; mem: peak memory KB; KB: model size",
        caption_justify="left",
    )
    recovered = report.has_recovered
    if recovered:
        table.caption = (
            f"{table.caption}; rec acc: recovered test top-1 % (`autocompress finetune`)"
        )
    throughput = report.finetune_throughput()
    if throughput:
        table.caption = (
            f"{table.caption}\nfine-tune: median {throughput['median_s_per_epoch']:.3g} s/epoch "
            f"over {throughput['trials']:.0f} trained trials"
        )
    table.add_column("trial", justify="right", no_wrap=True)
    if all_trials:
        table.add_column("status", no_wrap=True)
    headers = ["acc", "rec acc"] if recovered else ["acc"]
    for header in (*headers, "ep", "lat ms", "mJ", "mW", "mem", "KB", "width"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("bits", ratio=2, min_width=7)
    table.add_column("pruning", ratio=1, min_width=7)
    for row in rows:
        cells = [
            _percent(row.value("accuracy")),
            *([_percent(row.value("recovered_test_accuracy"))] if recovered else []),
            "–" if row.epochs is None else f"{row.epochs:g}",
            _num(row.value("latency_ms"), 3),
            _num(row.value("energy_mj"), 3),
            _num(row.value("power_mw"), 3),
            _num(row.value("peak_memory_kb"), 3),
            _num(row.value("model_size_kb"), 3),
            f"{row.width_multiplier:g}",
            row.bits,
            row.pruning,
        ]
        if all_trials:
            status = "front" if row.on_front else ("feasible" if row.feasible else row.state)
            if row.state == "infeasible":
                status = "not deployable" if row.error else "untrained"
            elif row.state == "complete" and not row.feasible:
                status = "over budget"
            cells.insert(0, status)
        cells.insert(0, str(row.number))
        table.add_row(*cells, style="bold" if row.on_front and all_trials else None)
    return table


def report_csv(report: Report) -> str:
    """Every trial, one line each, columns :data:`CSV_COLUMNS` (plus
    :data:`RECOVERED_COLUMNS` after ``test_accuracy`` when a trial was recovered, and
    :data:`THROUGHPUT_COLUMNS` when the trials recorded them)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(CSV_COLUMNS)
    if report.has_recovered:
        columns[columns.index("test_accuracy") + 1 : columns.index("test_accuracy") + 1] = (
            RECOVERED_COLUMNS
        )
    if report.finetune_throughput():
        columns += THROUGHPUT_COLUMNS
    writer.writerow(columns)
    for row in report.rows:
        data = row.to_dict()
        writer.writerow(["" if data.get(c) is None else data.get(c) for c in columns])
    return buffer.getvalue()

"""The trial tables: rich (terminal: ``autocompress report`` and the end of ``search``) and CSV.

The metric columns, their labels, formats and the legend come from the metric table
(:mod:`autocompress.core.metrics`): a new metric entry shows up here by itself.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

from rich import box
from rich.table import Table

from autocompress.core.budget import Budget
from autocompress.core.metrics import Metric, View, shown_in
from autocompress.core.workspace import TrialRecord
from autocompress.report.api import Report
from autocompress.report.rows import TrialRow, make_row

#: Columns of every trial before the metrics, and after them.
CSV_LEADING: tuple[str, ...] = ("trial", "state", "feasible", "on_front")
CSV_TRAILING: tuple[str, ...] = ("width_multiplier", "bits", "pruning", "epochs")
#: Added at the end when the trials recorded a fine-tune timing.
THROUGHPUT_COLUMNS: tuple[str, ...] = ("finetune_s_per_epoch",)


def csv_columns(*, with_optional: bool = False) -> tuple[str, ...]:
    """The CSV header: leading fields, the CSV metrics of the table, trailing fields.

    Optional metrics (``recovered_*``) are included with ``with_optional``.
    """
    names = [m.name for m in shown_in("csv") if with_optional or not m.optional]
    return (*CSV_LEADING, *names, *CSV_TRAILING)


#: The CSV header of a run without optional metrics (``recovered_*``) or timings.
CSV_COLUMNS: tuple[str, ...] = csv_columns()
#: The optional metric columns (a trial recovered by ``autocompress finetune``).
RECOVERED_COLUMNS: tuple[str, ...] = tuple(m.name for m in shown_in("csv") if m.optional)


def _has_value(rows: Sequence[TrialRow], metric: Metric) -> bool:
    return any(r.value(metric.name) is not None for r in rows)


def table_metrics(rows: Sequence[TrialRow], view: View = "table") -> list[Metric]:
    """The metric columns of ``view`` for ``rows`` (optional ones only when some row has one)."""
    return [m for m in shown_in(view) if not m.optional or _has_value(rows, m)]


def _legend(columns: Sequence[Metric]) -> str:
    parts = []
    for m in columns:
        what = m.description if m.is_fraction else m.quantity
        parts.append(f"{m.label}: {what} {'%' if m.is_fraction else m.unit}")
        if m.name == "accuracy":
            parts.append("ep: fine-tune epochs behind acc")
    return "; ".join(parts)


def rows_table(
    rows: Sequence[TrialRow],
    *,
    title: str,
    all_trials: bool = False,
    throughput: Mapping[str, float] | None = None,
    legend_rows: Sequence[TrialRow] | None = None,
) -> Table:
    """``rows`` as a rich table: trial, [status], metrics of the table view, width, bits, pruning.

    ``legend_rows`` decide which optional metric columns appear (default ``rows``).
    """
    columns = table_metrics(legend_rows if legend_rows is not None else rows)
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=_legend(columns),
        caption_justify="left",
    )
    if throughput:
        table.caption = (
            f"{table.caption}\nfine-tune: median {throughput['median_s_per_epoch']:.3g} s/epoch "
            f"over {throughput['trials']:.0f} trained trials"
        )
    table.add_column("trial", justify="right", no_wrap=True)
    if all_trials:
        table.add_column("status", no_wrap=True)
    headers: list[str] = []
    for m in columns:
        headers.append(m.label)
        if m.name == "accuracy":
            headers.append("ep")
    for header in (*headers, "width"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("bits", ratio=2, min_width=7)
    table.add_column("pruning", ratio=1, min_width=7)
    for row in rows:
        cells: list[str] = []
        for m in columns:
            cells.append(m.format(row.value(m.name)))
            if m.name == "accuracy":
                cells.append("–" if row.epochs is None else f"{row.epochs:g}")
        cells += [f"{row.width_multiplier:g}", row.bits, row.pruning]
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


def front_table(report: Report, *, all_trials: bool = False) -> Table:
    """The front (or every trial) of a report: accuracy, costs on the chip, width, bits, pruning."""
    rows: list[TrialRow] = list(report.rows) if all_trials else report.front_rows
    what = "trials" if all_trials else "Pareto front"
    chip = report.chip_id + (" (re-scored)" if report.rescored else "")
    return rows_table(
        rows,
        title=f"{report.run.name}: {what} on {chip}",
        all_trials=all_trials,
        throughput=report.finetune_throughput(),
        legend_rows=report.rows,
    )


def records_table(
    records: Sequence[TrialRecord], chip_id: str, budget: Budget, *, title: str
) -> Table:
    """Front ``records`` (e.g. a search's result) on ``chip_id``, with the report's columns."""
    rows = [make_row(record, record.costs.get(chip_id), budget) for record in records]
    return rows_table(rows, title=title)


def report_csv(report: Report) -> str:
    """Every trial, one line each: :func:`csv_columns` (optional metrics such as
    ``recovered_*`` when a trial has them, :data:`THROUGHPUT_COLUMNS` when the trials
    recorded them)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metrics = [m.name for m in table_metrics(report.rows, "csv")]
    columns = [*CSV_LEADING, *metrics, *CSV_TRAILING]
    if report.finetune_throughput():
        columns += THROUGHPUT_COLUMNS
    writer.writerow(columns)
    for row in report.rows:
        data = row.to_dict()
        writer.writerow(["" if data.get(c) is None else data.get(c) for c in columns])
    return buffer.getvalue()

"""``report.html``: one self-contained page (inline CSS and SVG; no script, font or CDN).

Sections: summary, Pareto scatter plots (accuracy vs latency, energy, peak
memory; feasible/infeasible marked, teacher as reference), the front as a
table, the per-layer picture of a chosen model, hypervolume over trials, and
the run's configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from html import escape
from pathlib import Path

from autocompress.core.errors import AutocompressError
from autocompress.core.metrics import Metric, shown_in
from autocompress.core.metrics import metric as metric_named
from autocompress.core.version import __version__
from autocompress.core.workspace import write_atomic
from autocompress.hardware.extract import extract_layers
from autocompress.report.api import Report
from autocompress.report.svg import (
    BarRow,
    Point,
    axis_for,
    layer_bars,
    legend_svg,
    line_plot,
    scatter_plot,
)
from autocompress.report.table import table_metrics


def scatter_metrics() -> tuple[Metric, ...]:
    """The metrics plotted against accuracy (``plot`` in their views)."""
    return shown_in("plot")


_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.muted{color:#666}.plots{display:flex;flex-wrap:wrap;gap:12px}
table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f4f4f4}td.text{text-align:left}pre{background:#f7f7f7;padding:10px;font-size:11px;overflow:auto}
.warn{color:#a04000}
"""


@dataclass(frozen=True)
class _Cell:
    text: str
    align_left: bool = False


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _points(report: Report, metric: str) -> list[Point]:
    points = []
    for row in report.rows:
        x = row.value(metric)
        if x is None:
            continue
        accuracy = row.value("accuracy")
        if row.on_front:
            style = "front"
        elif row.feasible:
            style = "feasible"
        else:
            style = "infeasible"
        label = f"trial {row.number}: {metric} {x:.4g}"
        label += (
            f", accuracy {accuracy:.4f}" if accuracy is not None else ", not trained (over budget)"
        )
        points.append(Point(x, accuracy if accuracy is not None else float("nan"), style, label))
    teacher_x = report.teacher.get(metric)
    teacher_acc = report.teacher.get("accuracy")
    if isinstance(teacher_x, (int, float)) and isinstance(teacher_acc, (int, float)):
        points.append(
            Point(
                float(teacher_x),
                float(teacher_acc),
                "teacher",
                f"teacher: {metric} {teacher_x:.4g}",
            )
        )
    return points


def _scatter(report: Report, entry: Metric) -> str:
    metric, label = entry.name, entry.axis_label
    points = _points(report, metric)
    accuracies = [p.y for p in points if p.y == p.y]
    y_axis = axis_for("validation accuracy", accuracies)
    # Untrained (over-budget) trials have no accuracy: draw them on the bottom edge.
    points = [p if p.y == p.y else Point(p.x, y_axis.low, p.style, p.label) for p in points]
    x_axis = axis_for(label, [p.x for p in points], include_zero=True)
    budget = report.budget.active()
    x_limit = budget.get(entry.budget) if entry.budget else None
    if x_limit is not None and x_axis.high < x_limit <= 2 * x_axis.high:
        x_axis = axis_for(label, [p.x for p in points] + [x_limit], include_zero=True)
    if x_limit is not None and x_limit > x_axis.high:
        x_axis = dataclasses.replace(x_axis, label=f"{label} (budget {x_limit:g}: off scale)")
    return scatter_plot(
        points,
        x_axis,
        y_axis,
        title=f"accuracy vs {label}",
        chart_id=f"scatter-{metric}",
        x_limit=x_limit,
        y_limit=budget.get(str(metric_named("accuracy").budget)),
    )


def _table(headers: list[str], rows: list[list[_Cell]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=text' if c.align_left else ''}>{escape(c.text)}</td>" for c in r)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _front_table(report: Report) -> str:
    columns = table_metrics(report.rows, "html")
    rows = []
    for row in report.front_rows:
        rows.append(
            [
                _Cell(str(row.number)),
                *(_Cell(m.format_html(row.value(m.name))) for m in columns),
                _Cell(f"{row.width_multiplier:g}"),
                _Cell(row.bits, True),
                _Cell(row.pruning, True),
            ]
        )
    headers = ["trial", *(m.html_label or m.label for m in columns), "width", "bits", "pruning"]
    return _table(headers, rows) if rows else '<p class="muted">No feasible trained trial yet.</p>'


def _layers_section(report: Report, trial: int | None) -> str:
    if trial is None:
        return '<p class="muted">No model to show yet (the front is empty).</p>'
    try:
        rescorer = report.rescorer
        assert rescorer is not None
        record = report.run.record(trial)
        student = rescorer.student(record)
        cost = rescorer.trial_cost(record, report.chip_id)
        shape = report.run.input_shape
        teacher_channels = {d.name: d.out_channels for d in extract_layers(rescorer.teacher, shape)}
        student_layers = {d.name: d for d in extract_layers(student, shape)}
    except (AutocompressError, ImportError, RuntimeError) as exc:
        reason = escape(str(exc))
        return (
            f'<p class="warn">The per-layer picture of trial {trial} is not available: {reason}</p>'
        )
    total_latency = sum(lc.latency_ms for lc in cost.layers) or 1.0
    total_energy = sum(lc.energy_mj for lc in cost.layers) or 1.0
    top = {lc.name for lc in sorted(cost.layers, key=lambda lc: -lc.latency_ms)[:3]}
    top |= {lc.name for lc in sorted(cost.layers, key=lambda lc: -lc.energy_mj)[:3]}
    bars = []
    for lc in cost.layers:
        descriptor = student_layers.get(lc.name)
        teacher_out = teacher_channels.get(lc.name)
        if descriptor is not None and teacher_out and lc.kind in ("conv", "linear"):
            kept, kept_text = (
                descriptor.out_channels / teacher_out,
                f"{descriptor.out_channels}/{teacher_out}",
            )
        else:
            kept, kept_text = 0.0, "–"
        bits = (
            f"w{lc.weight_bits} a{lc.activation_bits}"
            if lc.kind in ("conv", "linear")
            else f"a{lc.activation_bits}"
        )
        if lc.sparsity_pattern:
            bits += f" {lc.sparsity_pattern}"
        bars.append(
            BarRow(
                label=lc.name,
                kept_fraction=kept,
                kept_text=kept_text,
                bits_text=bits,
                latency_share=lc.latency_ms / total_latency,
                energy_share=lc.energy_mj / total_energy,
                highlight=lc.name in top,
            )
        )
    dominant = ", ".join(sorted(top))
    return (
        f"<p>Trial {trial} on {escape(report.chip_id)}: latency {cost.latency_ms:.4g} ms, energy "
        f"{cost.energy_mj:.4g} mJ, peak memory {cost.peak_memory_kb:.4g} KB. Layers that "
        "dominate latency or "
        f"energy (bold): {escape(dominant)}.</p>" + layer_bars(bars, chart_id="layers")
    )


def _hypervolume_chart(report: Report) -> str:
    history = [(float(n), hv) for n, hv in report.hypervolume_history]
    if not history:
        return '<p class="muted">No finished trial yet.</p>'
    x_axis = axis_for("trial", [p[0] for p in history], include_zero=True)
    y_axis = axis_for("normalised hypervolume", [p[1] for p in history], include_zero=True)
    reference = ", ".join(f"{k} {v:.4g}" for k, v in report.hypervolume_reference.items())
    return (
        line_plot(
            history,
            x_axis,
            y_axis,
            title="hypervolume of the feasible front",
            chart_id="hypervolume",
        )
        + f'<p class="muted">Objectives {escape(", ".join(report.objectives))}; reference point '
        f"{escape(reference)}.</p>"
    )


def render_html(report: Report, *, trial: int | None = None) -> str:
    """The page as a string; ``trial``: the per-layer model (default: best on the front)."""
    chosen = trial if trial is not None else (report.front[0] if report.front else None)
    counts = report.counts()
    run = report.run
    status = "in progress" if run.in_progress else "finished"
    planned = f" of {run.trials_planned}" if run.trials_planned is not None else ""
    chip_note = (
        " (re-scored from the recorded configurations, no retraining)" if report.rescored else ""
    )
    budget = ", ".join(f"{k} {v:.6g}" for k, v in report.budget.active().items()) or "none"
    overrides = ", ".join(f"{k} {v:.6g}" for k, v in report.budget_overrides.items())
    teacher_acc = report.teacher.get("accuracy")
    teacher_value = teacher_acc if isinstance(teacher_acc, float) else None
    scatters = "".join(_scatter(report, entry) for entry in scatter_metrics())
    config_yaml = run.config.to_yaml()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>autocompress report: {escape(run.name)}</title>
<style>{_CSS}</style></head><body>
<h1>autocompress report: {escape(run.name)}</h1>
<p class="muted">Run {escape(str(run.path))} · {status}: {counts["trials"]}{planned} trials
({counts["complete"]} trained, {counts["infeasible"]} over budget untrained,
{counts["failed"]} failed) ·
autocompress {escape(__version__)}</p>
<p>Chip <b>{escape(report.chip_id)}</b>{escape(chip_note)} · budget: {escape(budget)}
{f"(re-targeted: {escape(overrides)})" if overrides else ""} · front: {counts["front"]} of
{counts["feasible"]} feasible trials · teacher validation accuracy {_num(teacher_value)}</p>
<h2 id="pareto">Pareto front</h2>
{legend_svg()}
<div class="plots">{scatters}</div>
<p class="muted">Dashed red lines: budget limits. Trials over a cost budget during the search
were never trained; they sit on the bottom edge.</p>
{_front_table(report)}
<h2 id="layers">Per-layer picture{f" of trial {chosen}" if chosen is not None else ""}</h2>
{_layers_section(report, chosen)}
<h2 id="hypervolume">Progress of the search</h2>
{_hypervolume_chart(report)}
<h2 id="configuration">Configuration (run.yaml)</h2>
<pre>{escape(config_yaml)}</pre>
</body></html>
"""


def write_html(report: Report, path: Path | None = None, *, trial: int | None = None) -> Path:
    """Write the page (default ``RUN/report.html``) atomically; return its path."""
    target = Path(path) if path is not None else report.run.directory.report_html
    write_atomic(target, render_html(report, trial=trial))
    return target

"""``autocompress calibrate``: fit the cost model's knobs to measured latencies."""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.table import Table

from autocompress.cli.console import print_json, stdout
from autocompress.core.errors import ConfigError


def _pct(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1f}"


def _err(predicted: float | None, measured: float) -> str:
    if predicted is None:
        return "—"
    return f"{(predicted - measured) / measured * 100:+.1f}%"


def _check_out(path: Path) -> None:
    if path.exists():
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
        if "format: autocompress-calibration" not in head:
            raise ConfigError(
                f"--out {path} exists and is not an autocompress calibration file; "
                "it is left untouched",
                hint="Choose another --out path.",
            )


@click.command("calibrate")
@click.argument("measurements", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--chip",
    "chips",
    multiple=True,
    help="Calibrate only this chip (repeatable; default: every chip in the CSV).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("calibration.yaml"),
    show_default=True,
    help="Calibration file to write.",
)
@click.option(
    "--per-chip",
    is_flag=True,
    help="Fit every chip alone (default: chips of one NPU family, e.g. RV1109 and RV1126, "
    "share knobs fitted on the rows of all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def command(
    measurements: Path, chips: tuple[str, ...], out: Path, per_chip: bool, as_json: bool
) -> None:
    """Fit each chip's cost-model knobs to measured latencies (robust fit on log latency).

    MEASUREMENTS is a CSV with the columns
    model,input_size,chip,weight_bits,activation_bits,latency_ms
    (optional: width_multiplier,source,toolchain,energy_mj,power_mw). See docs/calibration.md.

    \b
    Examples:
      autocompress calibrate plugins/autocompress_qualcomm/measurements.csv --out qc.yaml
      autocompress calibrate my_board.csv --chip rockchip/rv1126 --out rv1126.yaml
      autocompress cost --model resnet18 --chip rockchip/rv1126 --weight-bits 8 \\
          --activation-bits 8 --calibration rv1126.yaml
    """
    from autocompress.hardware.calibration import write_calibration
    from autocompress.hardware.calibration_run import calibrate

    _check_out(out)
    report = calibrate(measurements, chips=list(chips) or None, per_chip=per_chip)
    written = write_calibration(report.file, out)
    if as_json:
        print_json(
            {
                "out": str(written),
                "chips": {chip_id: result.to_dict() for chip_id, result in report.chips.items()},
            }
        )
        return
    console = stdout if stdout.is_terminal else Console(highlight=False, width=150)
    rows = Table(title="per measurement (ms)", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("line", "chip", "model", "input", "w/a"):
        rows.add_column(column, overflow="fold")
    for column in ("measured", "before", "err", "after", "err", "held out", "err"):
        rows.add_column(column, justify="right", no_wrap=True)
    summary = Table(title="error summary", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("chip", "fit", "rows", "median |err| %", "within 10 %", "within 25 %"):
        summary.add_column(column, justify="right" if column != "chip" else "left")
    summary.add_column("Spearman", justify="right")
    for chip_id, result in report.chips.items():
        for row in result.rows:
            m = row.measurement
            rows.add_row(
                str(m.line),
                chip_id,
                m.model,
                "x".join(map(str, m.input_shape)),
                f"{m.weight_bits}/{m.activation_bits}",
                f"{m.latency_ms:.3f}",
                f"{row.before_ms:.3f}",
                _err(row.before_ms, m.latency_ms),
                f"{row.after_ms:.3f}",
                _err(row.after_ms, m.latency_ms),
                "—" if row.held_out_ms is None else f"{row.held_out_ms:.3f}",
                _err(row.held_out_ms, m.latency_ms),
            )
        fits = [("datasheet", result.before), ("calibrated", result.after)]
        if result.cross_validation is not None:
            fits.append(("leave-one-model-out", result.cross_validation))
        for label, s in fits:
            summary.add_row(
                chip_id,
                label,
                str(s.rows),
                _pct(s.median_abs_pct),
                _pct(s.within_10_pct),
                _pct(s.within_25_pct),
                "—" if not math.isfinite(s.spearman) else f"{s.spearman:.3f}",
            )
    families = {
        result.calibration.fitted_with: result.calibration.family_errors
        for result in report.chips.values()
        if result.calibration.family_errors
    }
    for members, errors in families.items():
        for label, key in (
            ("datasheet", "error_before"),
            ("calibrated", "error_after"),
            ("leave-one-model-out", "cross_validation"),
        ):
            s = errors.get(key)
            if not s:
                continue
            summary.add_row(
                " + ".join(members) + " (one family)",
                label,
                str(s["rows"]),
                _pct(s["median_abs_pct"]),
                _pct(s["within_10_pct"]),
                _pct(s["within_25_pct"]),
                "—" if not math.isfinite(s["spearman"]) else f"{s['spearman']:.3f}",
            )
    console.print(rows)
    console.print(summary)
    knobs = Table(title="fitted knobs (datasheet → calibrated)", box=box.SIMPLE_HEAD)
    knobs.add_column("chip")
    for name in ("compute_efficiency", "bandwidth_efficiency", "depthwise_efficiency"):
        knobs.add_column(name.replace("_efficiency", " eff."), justify="right")
    knobs.add_column("launch µs", justify="right")
    knobs.add_column("pool/eltwise µs", justify="right")
    knobs.add_column("per inference µs", justify="right")
    knobs.add_column("at bound")
    for chip_id, result in report.chips.items():
        cal = result.calibration
        cells = [
            f"{cal.datasheet[name]:.3g} → {cal.knobs[name]:.3g}"
            for name in (
                "compute_efficiency",
                "bandwidth_efficiency",
                "depthwise_efficiency",
                "launch_overhead_us",
                "element_launch_overhead_us",
                "inference_overhead_us",
            )
        ]
        knobs.add_row(chip_id, *cells, ", ".join(cal.at_bound) or "")
    console.print(knobs)
    console.print(
        f"wrote {written}  (use it: --calibration {written}, or copy it into "
        "~/.config/autocompress/calibrations/)"
    )

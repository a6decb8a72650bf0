"""How close the cost model gets to published device latencies, before and after calibration.

Measurements: every sourced row of the bundled plugins' ``measurements.csv``
(Rockchip rknn_model_zoo FPS table, Qualcomm AI Hub perf.yaml), batch 1, int8.

Prints (markdown, for bench/RESULTS.md):

1. datasheet knobs vs the shipped calibrations (the default): median |error| and
   Spearman over all rows, and per chip;
2. transfer: calibrate a chip family (one chip, or RV1109 + RV1126: one NPU design)
   on its MobileNet rows, predict its ResNet rows, and the reverse;
3. leave-one-model-out on every chip (the honest error on unseen models), fitted as
   ``calibrate`` does (NPU families pooled) and per chip alone (``--per-chip``);
3b. how much the transfer and leave-one-model-out medians move with the prior centre
   of the per-inference overhead (the one new prior: is the result knife-edge?);
3c. the width of the prior's common time scale: its empirical-Bayes estimate (the spread
   of the datasheet knobs' per-family misses), the medians at other widths, and the
   nested figures (each family predicted with the width estimated without it);
4. ``calibrate`` wall time on 20 rows in a fresh process, three times each: cold (empty
   user cache; the shipped layer tables answer), warm, and cold with the shipped tables
   ignored (every layer extracted: torch and torchvision imported);
5. a calibrated ResNet-50 estimate (median time per chip);
6. pruning: the speed-up the model predicts for a ResNet-50 with 3.1x fewer MACs
   (published: 1.8x on an FPGA DPU).

Run: ``python bench/bench_calibration.py`` (CPU, one thread, ~1-2 min).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)

import autocompress.hardware.calibration_fit as calibration_fit  # noqa: E402
from autocompress.hardware.calibration_csv import Measurement, read_measurements  # noqa: E402
from autocompress.hardware.calibration_fit import (  # noqa: E402
    datasheet_knobs,
    fit_knobs,
    predict_ms,
    row_features,
)
from autocompress.hardware.calibration_metrics import summarize  # noqa: E402
from autocompress.hardware.calibration_run import (  # noqa: E402
    calibrate_family,
    measured_layers,
)
from autocompress.hardware.calibration_store import (  # noqa: E402
    active_calibration,
    calibrated_spec,
    withheld_calibration,
)
from autocompress.hardware.plugins import get_chip  # noqa: E402

NO_TABLES = (  # the CLI with the shipped layer tables ignored: every layer is extracted
    "import autocompress.hardware.layer_tables as t; t._LOADED[t.TABLES_PATH] = None; "
    "from autocompress.cli import main; main()"
)

ROOT = Path(__file__).resolve().parents[1]
CSVS = [
    ROOT / "plugins" / "autocompress_rockchip" / "measurements.csv",
    ROOT / "plugins" / "autocompress_qualcomm" / "measurements.csv",
]


def _rows() -> list[Measurement]:
    return [row for path in CSVS for row in read_measurements(path)]


def _fmt(summary) -> str:
    return (
        f"{summary.median_abs_pct:.1f} % | {summary.within_25_pct:.0f} % | {summary.spearman:.3f}"
    )


def accuracy_table(rows: list[Measurement]) -> None:
    print("## 1. Datasheet knobs vs shipped calibrations (all sourced rows)\n")
    print(
        "| chip | rows | datasheet: median abs err | within 25 % | Spearman "
        "| shipped calibration: median abs err | within 25 % | Spearman |"
    )
    print("|---|---|---|---|---|---|---|---|")
    all_m, all_d, all_c = [], [], []
    for chip_id in dict.fromkeys(r.chip_id for r in rows):
        chip = get_chip(chip_id)
        subset = [r for r in rows if r.chip_id == chip_id]
        feats = [row_features(measured_layers(r), chip) for r in subset]
        measured = [r.latency_ms for r in subset]
        datasheet = [predict_ms(f, datasheet_knobs(chip)) for f in feats]
        found = active_calibration(chip_id)
        knobs = dict(datasheet_knobs(chip))
        if found:
            knobs.update(found.chip.knobs)
        shipped = [predict_ms(f, knobs) for f in feats]
        if withheld_calibration(chip_id) is not None:
            chip_id += " (shipped fit withheld: datasheet)"
        all_m += measured
        all_d += datasheet
        all_c += shipped
        print(
            f"| {chip_id} | {len(subset)} | {_fmt(summarize(datasheet, measured))} | "
            f"{_fmt(summarize(shipped, measured))} |"
        )
    print(
        f"| **all** | {len(all_m)} | {_fmt(summarize(all_d, all_m))} | "
        f"{_fmt(summarize(all_c, all_m))} |\n"
    )


def _families(rows: list[Measurement]) -> list[list[str]]:
    """Chip ids grouped as ``calibrate`` groups them (by ``npu_family``), in file order."""
    groups: dict[str, list[str]] = {}
    for chip_id in dict.fromkeys(r.chip_id for r in rows):
        family = get_chip(chip_id).npu_family
        groups.setdefault("family:" + family if family else chip_id, []).append(chip_id)
    return list(groups.values())


def _fit_predict(train: list[Measurement], test: list[Measurement]) -> list[float]:
    """Fit on ``train`` (rows of one chip or one family: each costed on its own chip)."""
    feats = [row_features(measured_layers(r), get_chip(r.chip_id)) for r in train]
    start = datasheet_knobs(get_chip(train[0].chip_id))
    fit = fit_knobs(feats, [r.latency_ms for r in train], start)
    return [
        predict_ms(row_features(measured_layers(r), get_chip(r.chip_id)), fit.knobs) for r in test
    ]


def _n(summary) -> str:
    return f"{summary.median_abs_pct:.1f} % ({summary.rows})"


def _lomo_per_chip(pooled: dict) -> str:
    """Per chip "name median %" of leave-one-model-out results (chips without one left out)."""
    return ", ".join(
        f"{chip_id.split('/')[1]} {r.cross_validation.median_abs_pct:.1f}"
        for chip_id, r in pooled.items()
        if r.cross_validation is not None
    )


def _transfer(rows: list[Measurement], *, quiet: bool = False):
    both_a, both_b, meas_a, meas_b = [], [], [], []
    lines = []
    for family in _families(rows):
        mobile = [r for r in rows if r.chip_id in family and r.model.startswith("mobilenet")]
        resnet = [r for r in rows if r.chip_id in family and r.model.startswith("resnet")]
        if not mobile or not resnet:
            continue
        a = _fit_predict(mobile, resnet)
        b = _fit_predict(resnet, mobile)
        both_a += a
        both_b += b
        meas_a += [r.latency_ms for r in resnet]
        meas_b += [r.latency_ms for r in mobile]
        sa = summarize(a, [r.latency_ms for r in resnet])
        sb = summarize(b, [r.latency_ms for r in mobile])
        lines.append(f"| {' + '.join(family)} | {_n(sa)} | {_n(sb)} |")
    return lines, summarize(both_a, meas_a), summarize(both_b, meas_b)


def transfer_table(rows: list[Measurement]) -> None:
    print("## 2. Calibrate on MobileNet rows, predict ResNet rows (and the reverse)\n")
    print(
        "| chip (family) | MobileNet rows → ResNet rows: median abs err (n) | ResNet → MobileNet |"
    )
    print("|---|---|---|")
    lines, sa, sb = _transfer(rows)
    print("\n".join(lines))
    print(f"| **all** | {_n(sa)} | {_n(sb)} |\n")


def _lomo(rows: list[Measurement], *, per_chip: bool) -> dict[str, object]:
    results = {}
    groups = [[c] for g in _families(rows) for c in g] if per_chip else _families(rows)
    for family in groups:
        chips = [get_chip(c) for c in family]
        results.update(calibrate_family(chips, [r for r in rows if r.chip_id in family]))
    return results


def cross_validation_table(rows: list[Measurement]) -> None:
    print("## 3. Leave-one-model-out (refit without a model, predict it)\n")
    print(
        "| chip | rows | datasheet | calibrated (in sample) | leave-one-model-out "
        "| … fitted per chip alone (`--per-chip`) |"
    )
    print("|---|---|---|---|---|---|")
    pooled, alone = _lomo(rows, per_chip=False), _lomo(rows, per_chip=True)
    for chip_id, result in pooled.items():
        cv, cv_alone = result.cross_validation, alone[chip_id].cross_validation
        family = result.calibration.family_errors
        note = f" (family of {family['rows']} rows)" if family else ""
        print(
            f"| {chip_id}{note} | {len(result.rows)} | {result.before.median_abs_pct:.1f} % | "
            f"{result.after.median_abs_pct:.1f} % | "
            f"{'—' if cv is None else f'{cv.median_abs_pct:.1f} %'} | "
            f"{'—' if cv_alone is None else f'{cv_alone.median_abs_pct:.1f} %'} |"
        )
    families = {
        tuple(r.calibration.fitted_with): r.calibration.family_errors
        for r in pooled.values()
        if r.calibration.family_errors
    }
    for members, errors in families.items():
        print(
            f"| **{' + '.join(members)} pooled** | {errors['rows']} | "
            f"{errors['error_before']['median_abs_pct']:.1f} % | "
            f"{errors['error_after']['median_abs_pct']:.1f} % | "
            f"{errors['cross_validation']['median_abs_pct']:.1f} % | |"
        )
    print()


def prior_sensitivity(rows: list[Measurement]) -> None:
    print("## 3b. Sensitivity to the prior centre of the per-inference overhead\n")
    print(
        "| prior centre (µs) | MobileNet → ResNet | ResNet → MobileNet "
        "| leave-one-model-out, median per chip |"
    )
    print("|---|---|---|---|")
    default = calibration_fit.DEFAULT_INFERENCE_OVERHEAD_US
    try:
        for centre in (100.0, default, 1000.0):
            calibration_fit.DEFAULT_INFERENCE_OVERHEAD_US = centre
            _lines, sa, sb = _transfer(rows)
            pooled = _lomo(rows, per_chip=False)
            per = _lomo_per_chip(pooled)
            mark = " (default)" if centre == default else ""
            print(
                f"| {centre:.0f}{mark} | {sa.median_abs_pct:.1f} % | "
                f"{sb.median_abs_pct:.1f} % | {per} |"
            )
    finally:
        calibration_fit.DEFAULT_INFERENCE_OVERHEAD_US = default
    print()


def datasheet_miss(rows: list[Measurement]) -> dict[str, float]:
    """Per family: log of the median factor by which the datasheet knobs miss its rows."""
    misses = {}
    for family in _families(rows):
        logs = []
        for r in rows:
            if r.chip_id in family:
                chip = get_chip(r.chip_id)
                predicted = predict_ms(
                    row_features(measured_layers(r), chip), datasheet_knobs(chip)
                )
                logs.append(math.log(r.latency_ms / predicted))
        misses[" + ".join(family)] = statistics.median(logs)
    return misses


def _rms(values) -> float:
    values = list(values)
    return math.sqrt(sum(v * v for v in values) / len(values))


def common_scale(rows: list[Measurement]) -> None:
    print("## 3c. The prior's common time scale\n")
    misses = datasheet_miss(rows)
    print("| family | datasheet miss: median measured / predicted | width estimated without it |")
    print("|---|---|---|")
    without = {}
    for family, miss in misses.items():
        without[family] = _rms(v for k, v in misses.items() if k != family)
        print(f"| {family} | ×{math.exp(miss):.2f} | log {math.exp(without[family]):.2f} |")
    print(
        f"| **all** (RMS of the logs) | log {math.exp(_rms(misses.values())):.2f} "
        f"(default: log {math.exp(calibration_fit.COMMON_SCALE_LOG_WIDTH):.2f}) | |\n"
    )
    print(
        "| width | MobileNet → ResNet | ResNet → MobileNet | leave-one-model-out, median per "
        "chip | RV pooled |"
    )
    print("|---|---|---|---|---|")
    default = calibration_fit.COMMON_SCALE_LOG_WIDTH
    try:
        for width in (0.0, default, math.log(2.0)):
            calibration_fit.COMMON_SCALE_LOG_WIDTH = width
            _lines, sa, sb = _transfer(rows)
            pooled = _lomo(rows, per_chip=False)
            per = _lomo_per_chip(pooled)
            family = next(
                (
                    r.calibration.family_errors
                    for r in pooled.values()
                    if r.calibration.family_errors
                ),
                None,
            )
            rv = "—" if family is None else f"{family['cross_validation']['median_abs_pct']:.1f} %"
            name = "0 (off)" if width == 0 else f"log {math.exp(width):.2f}"
            mark = " (default)" if width == default else ""
            print(
                f"| {name}{mark} | {sa.median_abs_pct:.1f} % | {sb.median_abs_pct:.1f} % | "
                f"{per} | {rv} |"
            )
        # nested: each family with the width estimated from the other families' misses
        preds_a, meas_a, preds_b, meas_b, lines = [], [], [], [], []
        for family in _families(rows):
            calibration_fit.COMMON_SCALE_LOG_WIDTH = without[" + ".join(family)]
            own = [r for r in rows if r.chip_id in family]
            mobile = [r for r in own if r.model.startswith("mobilenet")]
            resnet = [r for r in own if r.model.startswith("resnet")]
            preds_a += _fit_predict(mobile, resnet)
            meas_a += [r.latency_ms for r in resnet]
            preds_b += _fit_predict(resnet, mobile)
            meas_b += [r.latency_ms for r in mobile]
            chips = [get_chip(c) for c in family]
            for chip_id, result in calibrate_family(chips, own).items():
                if result.cross_validation is not None:
                    lines.append(
                        f"{chip_id.split('/')[1]} {result.cross_validation.median_abs_pct:.1f}"
                    )
        print(
            f"| nested (each family: width without it) | "
            f"{summarize(preds_a, meas_a).median_abs_pct:.1f} % | "
            f"{summarize(preds_b, meas_b).median_abs_pct:.1f} % | {', '.join(lines)} | |"
        )
    finally:
        calibration_fit.COMMON_SCALE_LOG_WIDTH = default
    print()


def timing(rows: list[Measurement]) -> None:
    print("## 4-5. Timing\n")
    twenty = [r for r in rows if r.chip_id.startswith("qualcomm/")][:20]
    lines = {r.line for r in twenty}
    source = CSVS[1].read_text().splitlines()
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "twenty.csv"
        csv_path.write_text("\n".join([source[0]] + [source[i - 1] for i in sorted(lines)]) + "\n")
        runs = {"cold": [], "warm": [], "cold, no shipped tables": []}
        cpu = {name: [] for name in runs}
        for repeat in range(3):
            for name in runs:
                # a new, empty user cache per cold run; warm reuses the cold run's
                cache = Path(folder) / f"cache-{repeat}-{'cold' if name == 'warm' else name}"
                env = {**os.environ, "OMP_NUM_THREADS": "1", "AUTOCOMPRESS_CACHE": str(cache)}
                head = ["-c", NO_TABLES] if "no shipped" in name else ["-m", "autocompress"]
                out = Path(folder) / f"{repeat}-{len(runs[name])}-{name[:4]}.yaml"
                start = time.perf_counter()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(
                    [sys.executable, *head, "calibrate", str(csv_path), "--out", str(out)],
                    check=True,
                    capture_output=True,
                    env=env,
                )
                runs[name].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                )
    models = len({r.model for r in twenty})
    print(
        f"- `autocompress calibrate` on 20 rows ({models} models, 2 chips), fresh process, "
        "median of 3 (wall / CPU): "
        + "; ".join(
            f"{name} {statistics.median(runs[name]):.1f} s / {statistics.median(cpu[name]):.1f} s"
            for name in runs
        )
        + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    import torchvision

    from autocompress.hardware.estimate import cost_on_chip
    from autocompress.hardware.extract import extract_layers

    layers = extract_layers(
        torchvision.models.resnet50(), (3, 224, 224), weight_bits=8, activation_bits=8
    )
    for chip_id in ("rockchip/rv1126", "qualcomm/sm8550"):
        chip = get_chip(chip_id)
        cost_on_chip(layers, chip)
        times = []
        for _ in range(500):
            t = time.perf_counter()
            cost_on_chip(layers, chip)
            times.append(time.perf_counter() - t)
        print(
            f"- calibrated ResNet-50 estimate on {chip_id} (`cost_on_chip`, 56 layers): "
            f"median {statistics.median(times) * 1e3:.3f} ms"
        )
    print()


def pruning() -> None:
    print("## 6. Pruning: ResNet-50 with 3.1x fewer MACs (bottleneck widths scaled)\n")
    import torchvision

    from autocompress.hardware.cost_model import cost_layers
    from autocompress.hardware.extract import extract_layers

    def layers(width: int):
        model = torchvision.models.resnet50(width_per_group=width)
        return extract_layers(model, (3, 224, 224), weight_bits=8, activation_bits=8)

    full = layers(64)
    best = min(range(8, 64, 2), key=lambda w: abs(full_macs(full) / full_macs(layers(w)) - 3.1))
    pruned = layers(best)
    cut = full_macs(full) / full_macs(pruned)
    print(
        f"width_per_group 64 → {best}: {cut:.2f}x fewer MACs. Published reference: 3.1x fewer "
        "operations gave 1.8x on an FPGA DPU (a different device: a sanity check of "
        "sub-linearity, not a fit).\n"
    )
    print("| chip | predicted speed-up (shipped calibration) |")
    print("|---|---|")
    for chip_id in (
        "rockchip/rk3566",
        "rockchip/rk3588",
        "rockchip/rv1126",
        "qualcomm/qcs6490",
        "qualcomm/sm8550",
    ):
        chip = calibrated_spec(get_chip(chip_id))
        speed = cost_layers(full, chip).latency_ms / cost_layers(pruned, chip).latency_ms
        print(f"| {chip_id} | {speed:.2f}x |")
    print()


def full_macs(layers) -> int:
    return sum(layer.macs for layer in layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    rows = _rows()
    accuracy_table(rows)
    transfer_table(rows)
    cross_validation_table(rows)
    prior_sensitivity(rows)
    common_scale(rows)
    if not args.skip_timing:
        timing(rows)
    pruning()


if __name__ == "__main__":
    main()

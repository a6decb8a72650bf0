"""``autocompress calibrate`` as a function: measurements in, a :class:`CalibrationFile` out.

For each chip: take each measured model's layers
(:func:`autocompress.hardware.calibration_layers.measured_layers`), fit the knobs
(:mod:`autocompress.hardware.calibration_fit`), and measure the error with the
datasheet knobs, with the fitted knobs, and under leave-one-model-out
cross-validation (refit without all rows of one model, predict that model).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress.core.errors import ConfigError
from autocompress.core.file_hash import file_sha256
from autocompress.core.version import __version__
from autocompress.hardware.calibration import CalibrationFile, ChipCalibration
from autocompress.hardware.calibration_csv import Measurement, read_measurements
from autocompress.hardware.calibration_fit import (
    KNOBS,
    RowFeatures,
    datasheet_knobs,
    fit_knobs,
    predict_ms,
    row_features,
)
from autocompress.hardware.calibration_layers import (  # noqa: F401 (re-exported)
    _layers_from_json,
    _layers_to_json,
    measured_layers,
)
from autocompress.hardware.calibration_metrics import ErrorSummary, summarize
from autocompress.hardware.calibration_store import calibrated_spec
from autocompress.hardware.plugins import get_chip
from autocompress.hardware.spec import ChipSpec


@dataclass(frozen=True)
class RowResult:
    """One measurement with its prediction before and after calibration (and held out)."""

    measurement: Measurement
    before_ms: float
    after_ms: float
    held_out_ms: float | None


@dataclass(frozen=True)
class ChipResult:
    """The calibration of one chip and the per-row evidence."""

    calibration: ChipCalibration
    rows: tuple[RowResult, ...]
    before: ErrorSummary
    after: ErrorSummary
    cross_validation: ErrorSummary | None

    def to_dict(self) -> dict[str, Any]:
        """The fit (:meth:`ChipCalibration.to_dict`) plus every row's measured and modelled
        latency in ms (``rows_detail``: before, after and held out of the fit)."""
        return {
            **self.calibration.to_dict(),
            "rows_detail": [
                {
                    "line": row.measurement.line,
                    "model": row.measurement.model,
                    "measured_ms": row.measurement.latency_ms,
                    "before_ms": row.before_ms,
                    "after_ms": row.after_ms,
                    "held_out_ms": row.held_out_ms,
                }
                for row in self.rows
            ],
        }


def calibrate_chip(chip: ChipSpec, measurements: Sequence[Measurement]) -> ChipResult:
    """Fit ``chip``'s knobs to its measurements, with before/after/cross-validated errors."""
    return calibrate_family([chip], measurements)[chip.chip_id]


def calibrate_family(
    chips: Sequence[ChipSpec], measurements: Sequence[Measurement]
) -> dict[str, ChipResult]:
    """Fit one set of knobs to the measurements of several chips of one NPU family.

    Each row's layers are costed on its own chip (a clock difference shows in the
    compute times), the knobs are shared, and leave-one-model-out holds a model out
    of every chip at once. With one chip this is the per-chip fit.

    Returns:
        chip id -> :class:`ChipResult`, its errors over that chip's own rows; the
        calibration records the pooled rows and models and the chips fitted with.
    """
    by_id = {chip.chip_id: chip for chip in chips}
    measurements = [m for m in measurements if m.chip_id in by_id]
    if not measurements:
        raise ConfigError("no measurements for " + ", ".join(by_id))
    for m in measurements:
        chip = by_id[m.chip_id]
        if (
            m.weight_bits not in chip.weight_bits_supported
            or m.activation_bits not in chip.activation_bits_supported
        ):
            from autocompress.hardware.estimate import check_bits_supported  # torch

            check_bits_supported(chip, weight_bits=m.weight_bits, activation_bits=m.activation_bits)
    features: list[RowFeatures] = [
        row_features(measured_layers(m), by_id[m.chip_id]) for m in measurements
    ]
    measured = [m.latency_ms for m in measurements]
    own_start = {chip_id: datasheet_knobs(chip) for chip_id, chip in by_id.items()}
    start = own_start[measurements[0].chip_id]  # one design: the first chip's datasheet
    before = [
        predict_ms(f, own_start[m.chip_id]) for f, m in zip(features, measurements, strict=True)
    ]
    fit = fit_knobs(features, measured, start)
    after = [predict_ms(f, fit.knobs) for f in features]

    models = sorted({m.model for m in measurements})
    held_out: list[float | None] = [None] * len(measurements)
    if len(models) >= 2:
        for model in models:
            train = [i for i, m in enumerate(measurements) if m.model != model]
            test = [i for i, m in enumerate(measurements) if m.model == model]
            sub = fit_knobs([features[i] for i in train], [measured[i] for i in train], start)
            for i in test:
                held_out[i] = predict_ms(features[i], sub.knobs)

    fitted_with = tuple(sorted(by_id)) if len(by_id) > 1 else ()
    family_errors = None
    if fitted_with:
        family_cv = summarize(held_out, measured) if len(models) >= 2 else None  # type: ignore[arg-type]
        family_errors = {
            "rows": len(measurements),
            "error_before": summarize(before, measured).to_dict(),
            "error_after": summarize(after, measured).to_dict(),
            "cross_validation": None
            if family_cv is None
            else {"method": "leave-one-model-out", **family_cv.to_dict()},
        }
    results: dict[str, ChipResult] = {}
    for chip_id in by_id:
        own = [i for i, m in enumerate(measurements) if m.chip_id == chip_id]
        if not own:
            continue
        own_measured = [measured[i] for i in own]
        cv = None
        if len(models) >= 2:
            cv = summarize([held_out[i] for i in own], own_measured)  # type: ignore[misc]
        before_summary = summarize([before[i] for i in own], own_measured)
        after_summary = summarize([after[i] for i in own], own_measured)
        calibration = ChipCalibration(
            chip_id=chip_id,
            knobs=fit.knobs,
            datasheet=own_start[chip_id],
            bounds={k.name: (k.lower, k.upper) for k in KNOBS},
            at_bound=fit.at_bound,
            rows=len(measurements),
            models=tuple(models),
            sources=tuple(dict.fromkeys(m.source for m in measurements if m.source)),
            error_before=before_summary.to_dict(),
            error_after=after_summary.to_dict(),
            cross_validation=None
            if cv is None
            else {"method": "leave-one-model-out", **cv.to_dict()},
            fitted_with=fitted_with,
            family_errors=family_errors,
        )
        rows = tuple(RowResult(measurements[i], before[i], after[i], held_out[i]) for i in own)
        results[chip_id] = ChipResult(calibration, rows, before_summary, after_summary, cv)
    return results


@dataclass(frozen=True)
class CalibrationReport:
    """Everything ``calibrate`` prints and writes."""

    file: CalibrationFile
    chips: dict[str, ChipResult]


def calibrate(
    measurements_csv: str | Path,
    *,
    chips: Iterable[str] | None = None,
    uncalibrated: bool = True,
    per_chip: bool = False,
) -> CalibrationReport:
    """Fit every chip of a measurements CSV (or only ``chips``).

    Args:
        measurements_csv: the CSV (:mod:`autocompress.hardware.calibration_csv`).
        chips: chip ids to calibrate (default: every chip in the file).
        uncalibrated: fit from the plugin's datasheet knobs (True) rather than from
            knobs an active calibration already applies.
        per_chip: fit every chip alone, even when the file has rows of several chips
            of one NPU family (``ChipSpec.npu_family``; by default those share knobs).

    Returns:
        The :class:`CalibrationReport` (the calibration file to write + per-row results).
    """
    path = Path(measurements_csv)
    wanted = None if chips is None else list(chips)
    for chip_id in wanted or ():
        get_chip(chip_id)
    rows = read_measurements(path, chips=wanted)
    by_chip: dict[str, list[Measurement]] = {}
    for row in rows:
        by_chip.setdefault(row.chip_id, []).append(row)
    families: dict[str, list[ChipSpec]] = {}
    for chip_id in by_chip:
        chip = get_chip(chip_id)
        if not uncalibrated:
            chip = calibrated_spec(chip)
        key = chip_id if per_chip or not chip.npu_family else "family:" + chip.npu_family
        families.setdefault(key, []).append(chip)
    results: dict[str, ChipResult] = {}
    for members in families.values():
        results.update(
            calibrate_family(
                members, [r for r in rows if r.chip_id in {c.chip_id for c in members}]
            )
        )
    results = {chip_id: results[chip_id] for chip_id in by_chip}
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    file = CalibrationFile(
        chips={chip_id: result.calibration for chip_id, result in results.items()},
        created=created.replace("+00:00", "Z"),
        measurements={"file": str(path), "sha256": file_sha256(path), "rows": len(rows)},
        tool={"autocompress": __version__},
    )
    return CalibrationReport(file=file, chips=results)


__all__ = [
    "CalibrationReport",
    "ChipResult",
    "RowResult",
    "calibrate",
    "calibrate_chip",
    "calibrate_family",
    "measured_layers",
]

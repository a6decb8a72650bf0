"""Calibration files: fitted cost-model knobs per chip, as data (YAML, versioned, with provenance).

A calibration file says, for one or more chips, which values of the six
calibration knobs (``compute_efficiency``, ``bandwidth_efficiency``,
``depthwise_efficiency``, ``launch_overhead_us``, ``element_launch_overhead_us``,
``inference_overhead_us``; version 1 files have the first five)
reproduce measured latencies,
what they were fitted on (rows, models, sources, date), the bounds they were
fitted within, and the error before, after and under leave-one-model-out
cross-validation. ``autocompress calibrate`` writes one;
:mod:`autocompress.hardware.calibration_store` decides which ones apply.

Applying a calibration never changes a plugin's datasheet figures: it returns a
copy of the spec with the knobs replaced. A fitted compute efficiency above 1
(the published peak understates the chip) is applied as efficiency 1 and the
peak throughput scaled by the fitted value.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autocompress.core.errors import CalibrationFileError, ConfigError
from autocompress.core.file_hash import file_sha256
from autocompress.hardware.calibration_fit import KNOB_NAMES, KNOBS
from autocompress.hardware.spec import ChipSpec

FORMAT_NAME = "autocompress-calibration"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1 (before ``inference_overhead_us`` and ``fitted_with``) reads as it was: its
five knobs apply and the inference overhead stays the spec's."""


@dataclass(frozen=True)
class ChipCalibration:
    """The fitted knobs of one chip and their provenance.

    Attributes:
        chip_id: the chip.
        knobs: knob name -> fitted value (``compute_efficiency`` may exceed 1).
        datasheet: knob name -> the plugin's value before calibration.
        bounds: knob name -> (lower, upper) the fit was bounded by.
        at_bound: knobs that ended on a bound.
        rows: measurements fitted.
        models: distinct models measured.
        sources: distinct sources of the rows.
        error_before / error_after: ErrorSummary dicts (datasheet knobs / fitted knobs).
        cross_validation: leave-one-model-out ErrorSummary dict (None with < 2 models).
        fitted_with: the chips of one NPU family whose rows were fitted together, with
            shared knobs (empty: this chip's rows alone). ``rows`` and ``models`` then count
            the pooled rows; the errors are over this chip's own rows.
        family_errors: with ``fitted_with``, the same errors over the pooled rows of every
            chip of the family (``rows``, ``error_before``, ``error_after``,
            ``cross_validation``): one fit, judged on all of its rows. None otherwise.
    """

    chip_id: str
    knobs: dict[str, float]
    datasheet: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    at_bound: tuple[str, ...] = ()
    rows: int = 0
    models: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    error_before: dict[str, float] = field(default_factory=dict)
    error_after: dict[str, float] = field(default_factory=dict)
    cross_validation: dict[str, float] | None = None
    fitted_with: tuple[str, ...] = ()
    family_errors: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "knobs": {k: round(float(v), 6) for k, v in self.knobs.items()},
            "datasheet": {k: round(float(v), 6) for k, v in self.datasheet.items()},
            "bounds": {k: [float(lo), float(hi)] for k, (lo, hi) in self.bounds.items()},
            "at_bound": list(self.at_bound),
            "rows": self.rows,
            "models": list(self.models),
            "sources": list(self.sources),
            "error_before": dict(self.error_before),
            "error_after": dict(self.error_after),
            "cross_validation": None
            if self.cross_validation is None
            else dict(self.cross_validation),
            "fitted_with": list(self.fitted_with),
            "family_errors": None
            if self.family_errors is None
            else copy.deepcopy(dict(self.family_errors)),
        }


@dataclass(frozen=True)
class CalibrationFile:
    """A whole calibration file.

    Attributes:
        chips: chip id -> :class:`ChipCalibration`.
        created: ISO-8601 UTC time of the fit.
        measurements: what was fitted: ``{file, sha256, rows}``.
        tool: ``{autocompress: version}``.
        path / sha256: where it was read from and the hash of its bytes (None if not read).
    """

    chips: dict[str, ChipCalibration]
    created: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)
    tool: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": self.created,
            "tool": dict(self.tool),
            "measurements": dict(self.measurements),
            "chips": {chip_id: cal.to_dict() for chip_id, cal in sorted(self.chips.items())},
        }


def write_calibration(calibration: CalibrationFile, path: str | Path) -> Path:
    """Write ``calibration`` as YAML to ``path`` (parents created); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# autocompress calibration file (docs/calibration.md). Fitted cost-model knobs per chip.\n"
        + yaml.safe_dump(calibration.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    )
    path.write_text(text, encoding="utf-8")
    return path


def _knob_value(path: Path, chip_id: str, name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{path}: chips.{chip_id}.knobs.{name}: {value!r} is not a number"
        ) from None
    knob = next(k for k in KNOBS if k.name == name)
    if not math.isfinite(number) or not knob.lower <= number <= knob.upper:
        raise ConfigError(
            f"{path}: chips.{chip_id}.knobs.{name}: {number} is outside "
            f"[{knob.lower}, {knob.upper}]"
        )
    return number


def load_calibration(path: str | Path) -> CalibrationFile:
    """Read and check a calibration file.

    Raises:
        ConfigError: missing file, not YAML, wrong format or version, a knob
            that is unknown, not a number or out of its bounds.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"calibration file {path} does not exist")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CalibrationFileError(
            f"{path}: not an autocompress calibration file (expected 'format: {FORMAT_NAME}')",
            hint="Write one from measurements with hardware.calibration_run.calibrate "
            "(docs/calibration.md).",
        )
    if data.get("version") not in READABLE_VERSIONS:
        raise ConfigError(
            f"{path}: calibration format version {data.get('version')!r} is not supported "
            f"(this autocompress reads versions {', '.join(map(str, READABLE_VERSIONS))})"
        )
    chips_data = data.get("chips")
    if not isinstance(chips_data, dict):
        raise ConfigError(f"{path}: field 'chips' must map chip ids to calibrations")
    chips: dict[str, ChipCalibration] = {}
    for chip_id, entry in chips_data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("knobs"), dict):
            raise ConfigError(f"{path}: chips.{chip_id}: needs a 'knobs' mapping")
        knobs = {}
        for name, value in entry["knobs"].items():
            if name not in KNOB_NAMES:
                raise ConfigError(
                    f"{path}: chips.{chip_id}.knobs.{name}: unknown knob "
                    f"(known: {', '.join(KNOB_NAMES)})"
                )
            knobs[name] = _knob_value(path, chip_id, name, value)
        chips[str(chip_id)] = ChipCalibration(
            chip_id=str(chip_id),
            knobs=knobs,
            datasheet={k: float(v) for k, v in (entry.get("datasheet") or {}).items()},
            bounds={k: (float(v[0]), float(v[1])) for k, v in (entry.get("bounds") or {}).items()},
            at_bound=tuple(entry.get("at_bound") or ()),
            rows=int(entry.get("rows") or 0),
            models=tuple(entry.get("models") or ()),
            sources=tuple(entry.get("sources") or ()),
            error_before=dict(entry.get("error_before") or {}),
            error_after=dict(entry.get("error_after") or {}),
            cross_validation=entry.get("cross_validation"),
            fitted_with=tuple(str(c) for c in entry.get("fitted_with") or ()),
            family_errors=entry.get("family_errors"),
        )
    return CalibrationFile(
        chips=chips,
        created=str(data.get("created", "")),
        measurements=dict(data.get("measurements") or {}),
        tool=dict(data.get("tool") or {}),
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def apply_knobs(chip: ChipSpec, knobs: dict[str, float], *, label: str) -> ChipSpec:
    """A copy of ``chip`` with the knob values replaced (``label`` goes to ``sources``).

    ``compute_efficiency`` above 1 becomes efficiency 1 with the peak throughput
    of every width scaled by it.
    """
    changes: dict[str, Any] = {name: float(value) for name, value in knobs.items()}
    compute = changes.get("compute_efficiency")
    if compute is not None and compute > 1.0:
        changes["compute_efficiency"] = 1.0
        changes["peak_tops_by_bits"] = {
            width: tops * compute for width, tops in chip.peak_tops_by_bits.items()
        }
    sources = dict(chip.sources)
    sources["calibration"] = label
    return dataclasses.replace(chip, sources=sources, **changes)


def apply_calibration(chip: ChipSpec, calibration: CalibrationFile) -> ChipSpec:
    """``chip`` with the knobs ``calibration`` has for it (``chip`` itself if it has none)."""
    entry = calibration.chips.get(chip.chip_id)
    if entry is None:
        return chip
    where = str(calibration.path) if calibration.path else "in memory"
    label = f"{where} (sha256 {calibration.sha256 or '-'}, {entry.rows} measurements)"
    return apply_knobs(chip, entry.knobs, label=label)


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "CalibrationFile",
    "ChipCalibration",
    "apply_calibration",
    "apply_knobs",
    "file_sha256",
    "load_calibration",
    "write_calibration",
]

"""Which calibrations apply: shipped with plugins, the user's config folder, or a given file.

Layers, later ones winning per chip:

1. **shipped**: a ``calibration.yaml`` next to a chip plugin's module (the bundled
   vendor plugins ship ones fitted on public vendor measurements);
2. **user**: every ``*.yaml`` in ``$AUTOCOMPRESS_CONFIG/calibrations/`` (default
   ``~/.config/autocompress/calibrations/``), in name order;
3. **explicit**: the file given with ``--calibration FILE`` (environment variable
   ``AUTOCOMPRESS_CALIBRATION``, so that worker processes see it too).

A **shipped** calibration applies by default only when it predicts models it was not
fitted on better than the datasheet does: its leave-one-model-out median error must
be below the datasheet knobs' median error on the same rows. One that fails (or has
no cross-validation) is *withheld*: ``chips show`` says so and why, and
``--calibration FILE`` still applies it. Calibrations a user puts in the folder or
names always apply: they are the user's choice.

``--calibration none`` / ``--no-calibration`` (``AUTOCOMPRESS_CALIBRATION=none``)
turns every layer off: the plugins' datasheet knobs are used as they are.
The cost path (:func:`autocompress.hardware.estimate.cost_on_chip`) applies
:func:`calibrated_spec` to every chip it costs.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress.core.errors import CalibrationFileError, ConfigError
from autocompress.hardware.calibration import (
    CalibrationFile,
    ChipCalibration,
    apply_calibration,
    load_calibration,
)
from autocompress.hardware.plugins import default_registry
from autocompress.hardware.spec import ChipSpec

ENV_CALIBRATION = "AUTOCOMPRESS_CALIBRATION"
ENV_CONFIG = "AUTOCOMPRESS_CONFIG"
SHIPPED_NAME = "calibration.yaml"
NONE_VALUES = frozenset({"none", "off", "no", "0", "false"})


def user_calibration_dir() -> Path:
    """``$AUTOCOMPRESS_CONFIG/calibrations`` or ``~/.config/autocompress/calibrations``."""
    root = os.environ.get(ENV_CONFIG)
    base = Path(root).expanduser() if root else Path.home() / ".config" / "autocompress"
    return base / "calibrations"


def use_calibration(value: str | os.PathLike[str] | None) -> None:
    """Select the calibration for this process and its workers.

    Args:
        value: a calibration file, ``"none"`` to turn calibration off, or
            ``None`` for the defaults (shipped + user folder).

    Raises:
        ConfigError: the file does not exist or is not a valid calibration file.
    """
    if value is None:
        os.environ.pop(ENV_CALIBRATION, None)
    elif str(value).strip().lower() in NONE_VALUES:
        os.environ[ENV_CALIBRATION] = "none"
    else:
        path = Path(value).expanduser().resolve()
        load_calibration(path)  # fail now, with the file's name, not in a worker
        os.environ[ENV_CALIBRATION] = str(path)
    _STATE.clear()


@dataclass(frozen=True)
class ActiveCalibration:
    """The calibration that applies to one chip and the file it comes from."""

    chip: ChipCalibration
    file: CalibrationFile
    layer: str  # "shipped", "user" or "explicit"


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token: tuple[Any, ...] | None = None
        self.active: dict[str, ActiveCalibration] = {}
        self.withheld: dict[str, ActiveCalibration] = {}
        self.files: list[tuple[str, CalibrationFile]] = []
        self.specs: dict[int, tuple[ChipSpec, ChipSpec]] = {}

    def clear(self) -> None:
        with self.lock:
            self.token = None
            self.active, self.withheld, self.files, self.specs = {}, {}, [], {}


_STATE = _State()


def _shipped_files() -> list[Path]:
    registry = default_registry()
    paths = []
    for name in registry.plugin_names():
        folder = registry.plugin_folder(name)
        if folder is not None and (folder / SHIPPED_NAME).is_file():
            paths.append(folder / SHIPPED_NAME)
    return paths


def _token() -> tuple[Any, ...]:
    return (os.environ.get(ENV_CALIBRATION), os.environ.get(ENV_CONFIG))


def _load_layers() -> list[tuple[str, CalibrationFile]]:
    setting = os.environ.get(ENV_CALIBRATION)
    if setting and setting.strip().lower() in NONE_VALUES:
        return []
    files = [("shipped", load_calibration(path)) for path in _shipped_files()]
    folder = user_calibration_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            try:
                files.append(("user", load_calibration(path)))
            except ConfigError as exc:
                raise CalibrationFileError(
                    f"{exc.message} (found in the user calibration folder {folder})",
                    hint=f"Fix or remove it, or set {ENV_CALIBRATION}=none. {exc.hint or ''}",
                ) from None
    if setting:
        files.append(("explicit", load_calibration(setting)))
    return files


def _ensure() -> _State:
    token = _token()
    state = _STATE
    if state.token != token:
        files = _load_layers()
        active: dict[str, ActiveCalibration] = {}
        withheld: dict[str, ActiveCalibration] = {}
        for layer, file in files:
            for chip_id, entry in file.chips.items():
                found = ActiveCalibration(entry, file, layer)
                if layer == "shipped" and withheld_reason(entry) is not None:
                    withheld[chip_id] = found
                else:
                    active[chip_id] = found
                    withheld.pop(chip_id, None)
        with state.lock:
            state.files, state.active, state.withheld, state.specs = files, active, withheld, {}
            state.token = token
    return state


def withheld_reason(entry: ChipCalibration) -> str | None:
    """Why a shipped calibration is not applied by default, or None if it is.

    It applies when its leave-one-model-out median error is below the datasheet
    knobs' median error on the same rows (the calibration predicts unseen models
    better than no calibration does). A fit shared by an NPU family is judged on
    the pooled rows of the family (one fit, all of its evidence).
    """
    errors: dict[str, Any] = entry.family_errors or {
        "cross_validation": entry.cross_validation,
        "error_before": entry.error_before,
    }
    cv = (errors.get("cross_validation") or {}).get("median_abs_pct")
    before = (errors.get("error_before") or {}).get("median_abs_pct")
    if cv is None or before is None:
        return "no cross-validated error (fitted on one model)"
    if float(cv) >= float(before):
        return (
            f"its leave-one-model-out error {float(cv):.1f}% is not below the datasheet "
            f"knobs' {float(before):.1f}%" + (" (NPU family rows)" if entry.family_errors else "")
        )
    return None


def withheld_calibration(chip_id: str) -> ActiveCalibration | None:
    """The shipped calibration of ``chip_id`` that is not applied by default, or None."""
    return _ensure().withheld.get(chip_id)


def active_calibration(chip_id: str) -> ActiveCalibration | None:
    """The calibration that applies to ``chip_id`` now, or None."""
    return _ensure().active.get(chip_id)


def calibration_summary(chip_id: str, *, fitted_values: bool = False) -> dict[str, Any] | None:
    """What ``cost`` and ``chips show`` print of ``chip_id``'s active calibration: file
    (path, sha256), layer, rows and cross-validated error — with ``fitted_values``
    every field of the fit (knobs, datasheet values, bounds, errors). None if uncalibrated."""
    found = active_calibration(chip_id)
    if found is None:
        return None
    summary: dict[str, Any] = {
        "path": str(found.file.path),
        "sha256": found.file.sha256,
        "layer": found.layer,
    }
    if fitted_values:
        return summary | found.chip.to_dict()
    return summary | {"rows": found.chip.rows, "cross_validation": found.chip.cross_validation}


def calibrated_spec(chip: ChipSpec) -> ChipSpec:
    """``chip`` with the active calibration applied (itself if none applies, or already did)."""
    if "calibration" in chip.sources:
        return chip
    state = _ensure()
    cached = state.specs.get(id(chip))
    if cached is not None and cached[0] is chip:
        return cached[1]
    found = state.active.get(chip.chip_id)
    result = chip if found is None else apply_calibration(chip, found.file)
    state.specs[id(chip)] = (chip, result)
    return result


def calibration_record() -> dict[str, Any]:
    """What run.yaml and deploy cards record: the mode and every file applied, with hashes."""
    setting = os.environ.get(ENV_CALIBRATION)
    if setting and setting.strip().lower() in NONE_VALUES:
        return {"mode": "none", "files": []}
    state = _ensure()
    used: dict[str, dict[str, Any]] = {}
    for chip_id, found in sorted(state.active.items()):
        key = str(found.file.path)
        entry = used.setdefault(
            key,
            {"path": key, "sha256": found.file.sha256, "layer": found.layer, "chips": []},
        )
        entry["chips"].append(chip_id)
    return {"mode": "explicit" if setting else "default", "files": list(used.values())}


__all__ = [
    "ENV_CALIBRATION",
    "ENV_CONFIG",
    "SHIPPED_NAME",
    "ActiveCalibration",
    "active_calibration",
    "calibrated_spec",
    "calibration_record",
    "calibration_summary",
    "use_calibration",
    "user_calibration_dir",
    "withheld_calibration",
    "withheld_reason",
]

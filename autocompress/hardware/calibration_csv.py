"""Device measurements for calibration: the CSV format and its reader.

One row per measurement of one model on one chip, batch 1::

    model,input_size,chip,weight_bits,activation_bits,latency_ms[,width_multiplier,source,toolchain,energy_mj,power_mw]

``model`` takes the names ``--model`` takes (a torchvision name or ``small_cnn``);
``input_size`` what ``--input-size`` takes (``224``, ``HxW``, ``CxHxW``). Every
problem is a :class:`~autocompress.core.errors.ConfigError` naming the file, the
line and the field.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from autocompress.core.errors import ConfigError, UnknownNameError
from autocompress.core.input_shape import parse_image_shape
from autocompress.hardware.plugins import default_registry, get_chip

REQUIRED_COLUMNS = (
    "model",
    "input_size",
    "chip",
    "weight_bits",
    "activation_bits",
    "latency_ms",
)
OPTIONAL_COLUMNS = ("width_multiplier", "source", "toolchain", "energy_mj", "power_mw")


@dataclass(frozen=True)
class Measurement:
    """One measured latency (and optionally energy / power) of a model on a chip.

    Attributes:
        model: model name as ``--model`` takes it.
        input_shape: ``(C, H, W)``.
        chip_id: the chip measured.
        weight_bits / activation_bits: the precision deployed.
        latency_ms: measured latency of one inference, batch 1.
        width_multiplier: channel width factor the model was built with (1.0 = as published).
        source: where the number comes from (URL, repository + file, "own board").
        toolchain: the compiler / runtime version measured.
        energy_mj / power_mw: measured energy per inference / average power, if any.
        line: line of the CSV file the row came from (1 = header).
    """

    model: str
    input_shape: tuple[int, int, int]
    chip_id: str
    weight_bits: int
    activation_bits: int
    latency_ms: float
    width_multiplier: float = 1.0
    source: str = ""
    toolchain: str = ""
    energy_mj: float | None = None
    power_mw: float | None = None
    line: int = 0

    @property
    def key(self) -> tuple[str, tuple[int, int, int], float]:
        """What the layer extraction depends on: (model, input shape, width multiplier)."""
        return (self.model, self.input_shape, self.width_multiplier)


def _where(path: Path, line: int, field: str) -> str:
    return f"{path}: line {line}, field {field!r}"


def parse_size(text: str, where: str) -> tuple[int, int, int]:
    """``224`` -> (3, 224, 224); ``HxW``; ``CxHxW`` (see :mod:`autocompress.core.input_shape`)."""
    c, h, w = parse_image_shape(text, what=f"{where}:")
    return (c, h, w)


def _number(text: str, where: str, *, integer: bool = False, positive: bool = True) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}: {text!r} is not {kind}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise ConfigError(f"{where}: must be a positive finite number, got {text!r}")
    return value


def _check_model(name: str, where: str) -> None:
    if ":" in name and name.split(":", 1)[0].endswith(".py"):
        raise ConfigError(
            f"{where}: model {name!r} is a Python file; calibration does not run model code "
            "from files",
            hint="Use a torchvision name or small_cnn; the cost of your own model comes "
            "from estimate_cost.",
        )
    # A cached name list answers without torch; core.models imports torch (seconds)
    from autocompress.hardware.calibration_cache import is_builtin_model

    if is_builtin_model(name):
        return
    from autocompress.core.models import known_model_names

    exc = UnknownNameError(
        "model", name, known_model_names(), list_hint="Use a torchvision name or small_cnn."
    )
    raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None


def read_measurements(path: str | Path, *, chips: Iterable[str] | None = None) -> list[Measurement]:
    """Read and check a measurements CSV.

    Args:
        path: the CSV file.
        chips: keep only rows of these chip ids (all rows when ``None``).

    Returns:
        The rows, in file order.

    Raises:
        ConfigError: a missing file or column, an empty file, a malformed number,
            an unknown model or chip; the message names the file, line and field.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such measurements file")
    known_chips = set(default_registry().chip_ids())
    wanted = None if chips is None else set(chips)
    checked_models: set[str] = set()
    rows: list[Measurement] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(line for line in handle if not line.lstrip().startswith("#"))
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise ConfigError(
                f"{path}: line 1: missing column(s) {', '.join(missing)}",
                hint="The header must have " + ",".join(REQUIRED_COLUMNS),
            )
        for raw in reader:
            line = reader.line_num
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            chip_id = row["chip"]
            where = _where(path, line, "chip")
            if chip_id not in known_chips:
                try:
                    get_chip(chip_id)
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
            if wanted is not None and chip_id not in wanted:
                continue
            for name in REQUIRED_COLUMNS:
                if not row.get(name):
                    raise ConfigError(f"{_where(path, line, name)}: empty")
            model = row["model"]
            if model not in checked_models:
                _check_model(model, _where(path, line, "model"))
                checked_models.add(model)
            optional = {}
            for name in ("energy_mj", "power_mw"):
                if row.get(name):
                    optional[name] = _number(row[name], _where(path, line, name))
            rows.append(
                Measurement(
                    model=model,
                    input_shape=parse_size(row["input_size"], _where(path, line, "input_size")),
                    chip_id=chip_id,
                    weight_bits=int(
                        _number(row["weight_bits"], _where(path, line, "weight_bits"), integer=True)
                    ),
                    activation_bits=int(
                        _number(
                            row["activation_bits"],
                            _where(path, line, "activation_bits"),
                            integer=True,
                        )
                    ),
                    latency_ms=_number(row["latency_ms"], _where(path, line, "latency_ms")),
                    width_multiplier=(
                        _number(row["width_multiplier"], _where(path, line, "width_multiplier"))
                        if row.get("width_multiplier")
                        else 1.0
                    ),
                    source=row.get("source", ""),
                    toolchain=row.get("toolchain", ""),
                    line=line,
                    **optional,
                )
            )
    if not rows:
        selected = "" if wanted is None else f" for chip(s) {', '.join(sorted(wanted))}"
        raise ConfigError(f"{path}: no measurement rows{selected}")
    return rows


__all__ = ["OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "Measurement", "parse_size", "read_measurements"]

"""Shipped layer tables: the bundled measurements' layer descriptors, extracted ahead of time.

``layer_tables.json.gz`` (next to this module, package data) holds the layer
descriptors of every configuration in the bundled chip plugins' ``measurements.csv``
files (torchvision classifiers at 224×224, int8) and the list of model names
``--model`` accepts. With it, a first ``autocompress calibrate`` on those models
imports neither torch nor torchvision (seconds) and traces nothing.

The file records what it was extracted with — the layer-cache format, the
autocompress, torch and torchvision versions and the digest of the extraction source
(:func:`autocompress.hardware.calibration_cache.cache_identity`). It is used only
when all of those match the running installation; otherwise it is ignored and the
layers are extracted as without it. Regenerate it after changing the extraction code
or the pinned libraries::

    python -m autocompress.hardware.layer_tables          # writes the shipped file

(a test fails while the shipped file does not match the code).
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autocompress.hardware.calibration_cache import cache_identity, extraction_digest
from autocompress.hardware.layers import LayerDescriptor

TABLES_PATH = Path(__file__).with_name("layer_tables.json.gz")
FORMAT = "autocompress-layer-tables"
VERSION = 1

_LOADED: dict[Path, dict[str, Any] | None] = {}


def _identity_json() -> Any:
    return json.loads(json.dumps(cache_identity()))


def table_key(key: tuple) -> str:
    """Canonical text of (model, input shape, width multiplier, weight bits, activation bits)."""
    model, shape, width, weight_bits, activation_bits = key
    return json.dumps([model, list(shape), float(width), int(weight_bits), int(activation_bits)])


def load_tables(path: Path = TABLES_PATH) -> dict[str, Any] | None:
    """The tables file if it exists and was extracted with this installation, else None."""
    if path in _LOADED:
        return _LOADED[path]
    data = None
    if extraction_digest() != "unknown":
        try:
            with gzip.open(path, "rt", encoding="utf-8") as stream:
                found = json.load(stream)
            if (
                found.get("format") == FORMAT
                and found.get("version") == VERSION
                and found.get("identity") == _identity_json()
            ):
                data = found
        except (OSError, ValueError, AttributeError):
            data = None  # missing or damaged: extract as without it
    _LOADED[path] = data
    return data


def shipped_layers(key: tuple) -> list[LayerDescriptor] | None:
    """The shipped layers of one configuration (see :func:`table_key`), or None."""
    from autocompress.hardware.calibration_layers import layers_from_rows

    data = load_tables()
    rows = None if data is None else data["tables"].get(table_key(key))
    return None if rows is None else layers_from_rows(rows)


def shipped_model_names() -> frozenset[str]:
    """The model names the tables were extracted with (empty when they do not apply)."""
    data = load_tables()
    return frozenset() if data is None else frozenset(data["model_names"])


def bundled_measurement_files() -> list[Path]:
    """``measurements.csv`` next to every installed chip plugin's module."""
    from autocompress.hardware.plugins import default_registry

    registry = default_registry()
    files = []
    for name in registry.plugin_names():
        folder = registry.plugin_folder(name)
        if folder is not None and (folder / "measurements.csv").is_file():
            files.append(folder / "measurements.csv")
    return files


def write_tables(csv_files: Sequence[Path], out: Path = TABLES_PATH) -> int:
    """Extract every configuration of ``csv_files`` afresh and write the tables file.

    Returns:
        The number of configurations written.
    """
    from autocompress.hardware.calibration_cache import builtin_model_names
    from autocompress.hardware.calibration_csv import read_measurements
    from autocompress.hardware.calibration_layers import (
        extract_measured,
        layers_to_rows,
        measurement_key,
    )

    tables: dict[str, Any] = {}
    for path in csv_files:
        for row in read_measurements(path):
            key = table_key(measurement_key(row))
            if key not in tables:
                tables[key] = layers_to_rows(extract_measured(row))
    data = {
        "format": FORMAT,
        "version": VERSION,
        "identity": _identity_json(),
        "model_names": sorted(builtin_model_names()),
        "tables": dict(sorted(tables.items())),
    }
    temporary = out.with_suffix(".tmp")
    with gzip.GzipFile(temporary, "wb", mtime=0) as stream:  # mtime 0: same bytes, same file
        stream.write(json.dumps(data, separators=(",", ":")).encode("utf-8"))
    temporary.replace(out)
    _LOADED.pop(out, None)
    return len(tables)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m autocompress.hardware.layer_tables [CSV ...] [--out FILE]``."""
    parser = argparse.ArgumentParser(description="Write the shipped layer tables.")
    parser.add_argument("csv", nargs="*", type=Path, help="default: the bundled plugins' CSVs")
    parser.add_argument("--out", type=Path, default=TABLES_PATH)
    args = parser.parse_args(argv)
    files = args.csv or bundled_measurement_files()
    count = write_tables(files, args.out)
    print(f"{args.out}: {count} configurations from {', '.join(str(f) for f in files)}")


if __name__ == "__main__":
    main()


__all__ = [
    "FORMAT",
    "TABLES_PATH",
    "VERSION",
    "bundled_measurement_files",
    "load_tables",
    "shipped_layers",
    "shipped_model_names",
    "table_key",
    "write_tables",
]

"""Shipped layer tables: current, used only when they match, and a cold calibrate without torch."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.hardware import calibration_cache, layer_tables
from autocompress.hardware.calibration_csv import Measurement, read_measurements
from autocompress.hardware.calibration_layers import extract_measured, measurement_key

ROOT = Path(__file__).resolve().parents[2]
QUALCOMM_CSV = ROOT / "plugins" / "autocompress_qualcomm" / "measurements.csv"


def _skip_unless_made_with_these_libraries() -> None:
    """The shipped tables apply only to the (autocompress, torch, torchvision) versions they
    were extracted with; a fresh install that resolved newer torch releases ignores them (and
    extracts, correctly, as without them). That is not a defect of the code under test: skip,
    saying so. The extraction-code digest, which the repository controls, must still match."""
    with gzip.open(layer_tables.TABLES_PATH, "rt", encoding="utf-8") as stream:
        shipped = json.load(stream)["identity"]
    current = json.loads(json.dumps(calibration_cache.cache_identity()))
    assert shipped[2] == current[2], (
        "the layer-extraction code changed: run python -m autocompress.hardware.layer_tables"
    )
    if shipped[1] != current[1]:
        pytest.skip(
            f"the shipped layer tables were extracted with (autocompress, torch, torchvision) "
            f"{tuple(shipped[1])}, this environment has {tuple(current[1])}: regenerate them "
            "with python -m autocompress.hardware.layer_tables"
        )


def test_shipped_tables_match_the_code_and_a_fresh_extraction():
    """Fails when the extraction code, torch or torchvision changed and the shipped file was
    not regenerated (``python -m autocompress.hardware.layer_tables``)."""
    _skip_unless_made_with_these_libraries()
    data = layer_tables.load_tables()
    assert data is not None, "stale: run python -m autocompress.hardware.layer_tables"
    for path in layer_tables.bundled_measurement_files():
        for row in read_measurements(path):
            assert layer_tables.shipped_layers(measurement_key(row)) is not None, row
    squeezenet = Measurement("squeezenet1_1", (3, 224, 224), "qualcomm/qcs6490", 8, 8, 1.0)
    shipped = layer_tables.shipped_layers(measurement_key(squeezenet))
    assert shipped == extract_measured(squeezenet)
    assert {"resnet50", "mobilenet_v2", "small_cnn"} <= layer_tables.shipped_model_names()


def test_tables_of_another_installation_are_ignored(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text(
        "model,input_size,chip,weight_bits,activation_bits,latency_ms\n"
        "small_cnn,32,rockchip/rv1126,8,8,1.0\n"
    )
    out = tmp_path / "tables.json.gz"
    assert layer_tables.write_tables([csv], out) == 1
    assert layer_tables.load_tables(out) is not None
    with gzip.open(out, "rt", encoding="utf-8") as stream:
        data = json.load(stream)
    data["identity"][1][2] = "0.0.0"  # another torchvision
    stale = tmp_path / "stale.json.gz"
    with gzip.open(stale, "wt", encoding="utf-8") as stream:
        json.dump(data, stream)
    assert layer_tables.load_tables(stale) is None
    damaged = tmp_path / "damaged.json.gz"
    damaged.write_bytes(b"not gzip")
    assert layer_tables.load_tables(damaged) is None


def test_user_cache_key_follows_the_extraction_code(monkeypatch):
    key = ("resnet18", (3, 224, 224), 1.0, 8, 8)
    before = calibration_cache.layers_cache_path(key)
    monkeypatch.setattr(calibration_cache, "_DIGEST", ["edited"])
    assert calibration_cache.layers_cache_path(key) != before


def test_first_calibrate_on_shipped_models_imports_no_torch(tmp_path):
    """An empty user cache (a fresh install): the shipped tables answer, torch stays out."""
    _skip_unless_made_with_these_libraries()
    lines = QUALCOMM_CSV.read_text().splitlines()
    csv = tmp_path / "few.csv"
    csv.write_text("\n".join(lines[:4]) + "\n")
    script = (
        "import sys\n"
        "from autocompress.hardware.calibration_run import calibrate\n"
        f"report = calibrate({str(csv)!r})\n"
        "assert report.chips, report\n"
        "print('torch' in sys.modules, 'torchvision' in sys.modules)\n"
    )
    env = {**os.environ, "AUTOCOMPRESS_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == ["False", "False"], done.stderr

"""Calibration: the fit, the CSV reader, calibration files and which ones apply."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from autocompress.core.errors import ConfigError
from autocompress.hardware.calibration import (
    CalibrationFile,
    ChipCalibration,
    apply_knobs,
    load_calibration,
    write_calibration,
)
from autocompress.hardware.calibration_csv import Measurement, read_measurements
from autocompress.hardware.calibration_fit import (
    datasheet_knobs,
    fit_knobs,
    predict_ms,
    row_features,
)
from autocompress.hardware.calibration_metrics import spearman, summarize
from autocompress.hardware.calibration_run import calibrate_chip, measured_layers
from autocompress.hardware.calibration_store import (
    ENV_CALIBRATION,
    ENV_CONFIG,
    active_calibration,
    calibrated_spec,
    calibration_record,
    use_calibration,
)
from autocompress.hardware.cost_model import cost_layers
from autocompress.hardware.plugins import get_chip

torch.set_num_threads(1)

HEADER = "model,input_size,chip,weight_bits,activation_bits,latency_ms\n"
TRUE_KNOBS = {
    "compute_efficiency": 0.3,
    "bandwidth_efficiency": 0.45,
    "depthwise_efficiency": 0.5,
    "launch_overhead_us": 15.0,
    "element_launch_overhead_us": 4.0,
    "inference_overhead_us": 150.0,
}
CONFIGS = [  # (model, input shape, width multiplier): fast to extract, varied in shape
    ("small_cnn", (3, 32, 32), 1.0),
    ("small_cnn", (3, 32, 32), 2.0),
    ("small_cnn", (3, 64, 64), 0.5),
    ("mobilenet_v2", (3, 64, 64), 1.0),
    ("mobilenet_v2", (3, 64, 64), 0.5),
    ("resnet18", (3, 64, 64), 1.0),
    ("resnet18", (3, 32, 32), 1.0),
    ("mobilenet_v2", (3, 32, 32), 0.75),
    ("small_cnn", (3, 16, 16), 1.0),
]


@pytest.fixture(autouse=True)
def _isolated_calibration(monkeypatch, tmp_path):
    """No user calibration folder and no explicit file leak between tests."""
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "config"))
    monkeypatch.delenv(ENV_CALIBRATION, raising=False)
    use_calibration(None)
    yield
    use_calibration(None)


def _measurements(chip_id: str = "rockchip/rv1126") -> list[Measurement]:
    return [
        Measurement(model, shape, chip_id, 8, 8, 1.0, width_multiplier=width, line=i + 2)
        for i, (model, shape, width) in enumerate(CONFIGS)
    ]


def _synthetic(chip, knobs):
    """Latencies the cost model itself gives with ``knobs``: the fit must find them again."""
    rows = _measurements(chip.chip_id)
    features = [row_features(measured_layers(m), chip) for m in rows]
    return rows, features, [predict_ms(f, knobs) for f in features]


def test_fast_prediction_equals_the_cost_model_with_the_knobs_applied():
    chip = get_chip("rockchip/rv1126")
    calibrated = apply_knobs(chip, TRUE_KNOBS, label="test")
    for m in _measurements()[:4]:
        layers = measured_layers(m)
        expected = cost_layers(layers, calibrated).latency_ms
        assert predict_ms(row_features(layers, chip), TRUE_KNOBS) == pytest.approx(expected)


def test_fit_recovers_known_knobs():
    chip = get_chip("rockchip/rv1126")
    _rows, features, measured = _synthetic(chip, TRUE_KNOBS)
    fit = fit_knobs(features, measured, datasheet_knobs(chip))
    predicted = [predict_ms(f, fit.knobs) for f in features]
    # Exact data; the weak prior towards the datasheet costs a little (MAP, not ML).
    assert summarize(predicted, measured).median_abs_pct < 3.0
    assert fit.knobs["compute_efficiency"] == pytest.approx(0.3, rel=0.15)  # datasheet: 0.6
    assert fit.knobs["launch_overhead_us"] == pytest.approx(15.0, rel=0.25)  # datasheet: 30
    before = [predict_ms(f, datasheet_knobs(chip)) for f in features]
    assert summarize(before, measured).median_abs_pct > 20.0  # the fit had work to do


def test_one_wrong_row_does_not_drag_the_fit():
    chip = get_chip("rockchip/rv1126")
    _rows, features, measured = _synthetic(chip, TRUE_KNOBS)
    spoiled = list(measured)
    spoiled[0] *= 3.0
    fit = fit_knobs(features, spoiled, datasheet_knobs(chip))
    errors = [
        abs(predict_ms(f, fit.knobs) / m - 1) for f, m in zip(features, measured, strict=True)
    ][1:]
    assert max(errors) < 0.12


def test_calibrate_chip_reports_before_after_and_leave_one_model_out():
    chip = get_chip("rockchip/rv1126")
    rows, _features, measured = _synthetic(chip, TRUE_KNOBS)
    rows = [dataclasses.replace(r, latency_ms=t) for r, t in zip(rows, measured, strict=True)]
    result = calibrate_chip(chip, rows)
    assert result.after.median_abs_pct < 3.0 < 20.0 < result.before.median_abs_pct
    assert result.cross_validation is not None and result.cross_validation.rows == len(rows)
    assert all(row.held_out_ms is not None for row in result.rows)
    assert result.calibration.models == ("mobilenet_v2", "resnet18", "small_cnn")
    assert result.calibration.cross_validation["method"] == "leave-one-model-out"


def test_compute_efficiency_above_one_scales_the_peak():
    chip = get_chip("qualcomm/sm8550")
    fast = apply_knobs(chip, {"compute_efficiency": 2.0}, label="test")
    assert fast.compute_efficiency == 1.0
    assert fast.peak_tops_by_bits[8] == pytest.approx(2.0 * chip.peak_tops_by_bits[8])
    assert chip.peak_tops_by_bits[8] != fast.peak_tops_by_bits[8]  # the datasheet stays


def test_metrics():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1], [1]))
    s = summarize([1.05, 2.0, 4.0], [1.0, 2.5, 4.0])
    assert s.median_abs_pct == pytest.approx(5.0)
    assert s.within_10_pct == pytest.approx(200 / 3) and s.within_25_pct == 100.0


# -- the CSV reader -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("model,chip,latency_ms\nsmall_cnn,rockchip/rv1126,1\n", "line 1: missing column(s)"),
        (HEADER + "small_cnn,32,rockchip/rv1126,8,8,fast\n", "line 2, field 'latency_ms'"),
        (HEADER + "small_cnn,32,rockchip/rv1126,8,8,-1\n", "line 2, field 'latency_ms'"),
        (HEADER + "small_cnn,32,rockchip/rv1126,eight,8,1\n", "line 2, field 'weight_bits'"),
        (HEADER + "small_cnn,3x,rockchip/rv1126,8,8,1\n", "line 2, field 'input_size'"),
        (HEADER + "small_cnn,32,rockchip/rv1127,8,8,1\n", "line 2, field 'chip'"),
        (
            HEADER + "small_cnn,32,rockchip/rv1126,8,8,1\nresnet19,32,rockchip/rv1126,8,8,1\n",
            "line 3, field 'model'",
        ),
        (HEADER + "net.py:build,32,rockchip/rv1126,8,8,1\n", "does not run model code"),
        (HEADER, "no measurement rows"),
    ],
)
def test_bad_csv_names_file_line_and_field(tmp_path, body, expected):
    path = tmp_path / "m.csv"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        read_measurements(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_csv_reads_optional_columns_and_filters_chips(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "# a comment\nmodel,input_size,chip,weight_bits,activation_bits,latency_ms,source,"
        "energy_mj,width_multiplier\n"
        "small_cnn,1x8x8,rockchip/rv1126,8,8,0.5,my board,0.2,0.5\n"
        "small_cnn,16x16,rockchip/rk3588,8,8,0.3,,,\n"
    )
    rows = read_measurements(path)
    assert rows[0].input_shape == (1, 8, 8) and rows[0].energy_mj == 0.2
    assert rows[0].width_multiplier == 0.5 and rows[0].source == "my board"
    assert rows[1].input_shape == (3, 16, 16) and rows[1].energy_mj is None
    assert [r.chip_id for r in read_measurements(path, chips=["rockchip/rk3588"])] == [
        "rockchip/rk3588"
    ]


# -- calibration files and which apply ------------------------------------------------------


def _file(chip_id: str, compute: float) -> CalibrationFile:
    knobs = dict(TRUE_KNOBS, compute_efficiency=compute)
    return CalibrationFile(chips={chip_id: ChipCalibration(chip_id, knobs, rows=3)})


def test_calibration_file_round_trip_and_errors(tmp_path):
    path = write_calibration(_file("rockchip/rv1126", 0.4), tmp_path / "c.yaml")
    loaded = load_calibration(path)
    assert loaded.chips["rockchip/rv1126"].knobs["compute_efficiency"] == 0.4
    assert loaded.sha256 and loaded.path == path
    text = path.read_text()
    (tmp_path / "bad.yaml").write_text(text.replace("compute_efficiency: 0.4", "speed: 2"))
    with pytest.raises(ConfigError, match="unknown knob"):
        load_calibration(tmp_path / "bad.yaml")
    (tmp_path / "big.yaml").write_text(
        text.replace("compute_efficiency: 0.4", "compute_efficiency: 9")
    )
    with pytest.raises(ConfigError, match="outside"):
        load_calibration(tmp_path / "big.yaml")
    (tmp_path / "v9.yaml").write_text(text.replace("version: 2", "version: 9"))
    with pytest.raises(ConfigError, match="version 9"):
        load_calibration(tmp_path / "v9.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        use_calibration(tmp_path / "missing.yaml")


def test_shipped_user_explicit_and_none(tmp_path):
    chip = get_chip("rockchip/rv1126")
    shipped = active_calibration(chip.chip_id)
    assert shipped is not None and shipped.layer == "shipped"
    assert calibrated_spec(chip).compute_efficiency == pytest.approx(
        shipped.chip.knobs["compute_efficiency"]
    )
    assert active_calibration("hisilicon/hi3519a") is None  # no public measurements
    assert calibrated_spec(get_chip("hisilicon/hi3519a")) is get_chip("hisilicon/hi3519a")

    user_dir = tmp_path / "config" / "calibrations"
    write_calibration(_file(chip.chip_id, 0.5), user_dir / "board.yaml")
    use_calibration(None)
    assert active_calibration(chip.chip_id).layer == "user"
    assert calibrated_spec(chip).compute_efficiency == 0.5

    explicit = write_calibration(_file(chip.chip_id, 0.25), tmp_path / "x.yaml")
    use_calibration(explicit)
    assert calibrated_spec(chip).compute_efficiency == 0.25
    record = calibration_record()
    assert record["mode"] == "explicit"
    assert any(f["path"] == str(explicit.resolve()) and f["sha256"] for f in record["files"])

    use_calibration("none")
    assert calibrated_spec(chip) is chip and calibration_record() == {"mode": "none", "files": []}


def test_estimates_use_the_calibration(tmp_path):
    from autocompress.hardware.estimate import estimate_cost

    use_calibration("none")
    plain = estimate_cost("small_cnn", (1, 8, 8), "rockchip/rv1126", weight_bits=8, num_classes=10)
    slow = write_calibration(_file("rockchip/rv1126", 0.05), tmp_path / "slow.yaml")
    use_calibration(slow)
    slower = estimate_cost("small_cnn", (1, 8, 8), "rockchip/rv1126", weight_bits=8, num_classes=10)
    assert slower.latency_ms > plain.latency_ms


def test_shipped_calibrations_name_a_source_for_every_row():
    root = Path(__file__).resolve().parents[2] / "plugins"
    for vendor in ("autocompress_rockchip", "autocompress_qualcomm"):
        rows = read_measurements(root / vendor / "measurements.csv")
        assert rows and all(r.source.startswith("https://github.com/") for r in rows)
        shipped = load_calibration(root / vendor / "calibration.yaml")
        assert set(shipped.chips) == {r.chip_id for r in rows}


def test_layer_cache_is_json_data_and_round_trips():
    """The on-disk layer cache holds plain JSON (a cache file never runs code, unlike pickle)."""
    import json

    import torchvision

    from autocompress.hardware.calibration_run import _layers_from_json, _layers_to_json
    from autocompress.hardware.extract import extract_layers

    layers = extract_layers(torchvision.models.mobilenet_v2(), (3, 32, 32))
    text = _layers_to_json(layers)
    assert isinstance(json.loads(text), list)
    assert _layers_from_json(text) == layers

"""``autocompress calibrate`` and the ``--calibration`` options of cost and chips show."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from autocompress.cli import cli, main
from autocompress.hardware.calibration import load_calibration
from autocompress.hardware.calibration_store import ENV_CALIBRATION, ENV_CONFIG, use_calibration

torch.set_num_threads(1)

HEADER = "model,input_size,chip,weight_bits,activation_bits,latency_ms,source\n"
ROWS = (
    "small_cnn,32,rockchip/rk3588,8,8,0.61,bench A\n"
    "small_cnn,64,rockchip/rk3588,8,8,1.9,bench A\n"
    "mobilenet_v2,64,rockchip/rk3588,8,8,0.95,bench B\n"
    "resnet18,64,rockchip/rk3588,8,8,1.35,bench B\n"
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "config"))
    monkeypatch.delenv(ENV_CALIBRATION, raising=False)
    use_calibration(None)
    yield
    use_calibration(None)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_calibrate_prints_errors_and_writes_a_file(tmp_path):
    csv_path, out = tmp_path / "m.csv", tmp_path / "cal.yaml"
    csv_path.write_text(HEADER + ROWS)
    result = invoke("calibrate", str(csv_path), "--out", str(out))
    assert result.exit_code == 0, result.output
    for text in ("per measurement", "datasheet", "calibrated", "leave-one-model-out", "Spearman"):
        assert text in result.output
    cal = load_calibration(out).chips["rockchip/rk3588"]
    assert cal.rows == 4 and set(cal.sources) == {"bench A", "bench B"}
    assert cal.error_after["median_abs_pct"] < cal.error_before["median_abs_pct"]
    assert cal.cross_validation["method"] == "leave-one-model-out"

    used = invoke(
        "cost",
        "--model",
        "small_cnn",
        "--input-size",
        "32",
        "--chip",
        "rockchip/rk3588",
        "--weight-bits",
        "8",
        "--activation-bits",
        "8",
        "--calibration",
        str(out),
        "--json",
    )
    assert used.exit_code == 0, used.output
    data = json.loads(used.output)
    assert data["calibration"]["path"] == str(out.resolve())
    assert data["totals"]["latency_ms"] == pytest.approx(0.61, rel=0.25)
    shown = invoke("chips", "show", "rockchip/rk3588", "--calibration", str(out))
    assert "calibrated" in shown.output and "leave-one-model-out" in shown.output


def run_main(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, " ".join((captured.out + captured.err).split())


def test_bad_csv_exits_2_naming_the_line(tmp_path, capsys):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text(HEADER + ROWS + "small_cnn,32,rockchip/rk3588,8,8,slow,x\n")
    code, output = run_main(capsys, "calibrate", str(csv_path), "--out", str(tmp_path / "c.yaml"))
    assert code == 2 and "Traceback" not in output
    assert str(csv_path) in output and "line 6" in output and "'latency_ms'" in output
    assert not (tmp_path / "c.yaml").exists()


def test_out_that_is_not_a_calibration_file_is_left_alone(tmp_path, capsys):
    csv_path, out = tmp_path / "m.csv", tmp_path / "notes.yaml"
    csv_path.write_text(HEADER + ROWS)
    out.write_text("my: notes\n")
    code, output = run_main(capsys, "calibrate", str(csv_path), "--out", str(out))
    assert code == 2 and "left untouched" in output
    assert out.read_text() == "my: notes\n"


def test_chips_show_says_whether_a_chip_is_calibrated():
    shipped = invoke("chips", "show", "rockchip/rv1126")
    assert shipped.exit_code == 0 and "calibrated" in shipped.output
    assert "rknn_model_zoo" in json.dumps(
        json.loads(invoke("chips", "show", "rockchip/rv1126", "--json").output)["calibration"]
    )
    plain = invoke("chips", "show", "hisilicon/hi3519a")
    assert "not calibrated" in plain.output
    off = invoke("chips", "show", "rockchip/rv1126", "--no-calibration")
    assert "not calibrated" in off.output


def test_calibrate_fits_an_npu_family_together_unless_per_chip(tmp_path):
    rows = "".join(
        f"{model},{size},rockchip/{chip},8,8,{ms},bench\n"
        for chip, scale in (("rv1126", 1.0), ("rv1109", 1.55))
        for model, size, ms in (("small_cnn", 32, 0.9 * scale), ("resnet18", 64, 2.1 * scale))
    )
    csv_path = tmp_path / "family.csv"
    csv_path.write_text(HEADER + rows)
    pooled, alone = tmp_path / "pooled.yaml", tmp_path / "alone.yaml"
    assert invoke("calibrate", str(csv_path), "--out", str(pooled)).exit_code == 0
    result = invoke("calibrate", str(csv_path), "--per-chip", "--out", str(alone))
    assert result.exit_code == 0, result.output
    assert "per inference µs" in result.output
    family = load_calibration(pooled).chips
    assert family["rockchip/rv1126"].knobs == family["rockchip/rv1109"].knobs
    assert family["rockchip/rv1126"].fitted_with == ("rockchip/rv1109", "rockchip/rv1126")
    assert family["rockchip/rv1126"].rows == 4
    single = load_calibration(alone).chips
    assert single["rockchip/rv1126"].fitted_with == () and single["rockchip/rv1126"].rows == 2
    shown = invoke("chips", "show", "rockchip/rv1126", "--calibration", str(pooled))
    assert "one NPU family" in shown.output and "family's 4 rows" in shown.output


def test_cost_shows_legality_reasons():
    result = invoke(
        "cost",
        "--model",
        "small_cnn",
        "--input-size",
        "1x8x8",
        "--num-classes",
        "10",
        "--chip",
        "qualcomm/qcs6490",
        "--weight-bits",
        "16",
        "--activation-bits",
        "8",
        "--json",
    )
    assert result.exit_code == 0, result.output
    issues = json.loads(result.output)["legality"]
    assert issues and "QNN HTP" in issues[0]["reason"]


def test_a_broken_user_calibration_gets_its_flag_hint_from_the_cli(tmp_path, capsys):
    """The hardware layer names the environment variable; only the CLI names flags."""
    from autocompress.core.errors import CalibrationFileError
    from autocompress.hardware.calibration_store import calibration_summary

    folder = tmp_path / "config" / "calibrations"
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_text("my: notes\n")
    with pytest.raises(CalibrationFileError) as info:
        calibration_summary("rockchip/rv1126")
    assert f"{ENV_CALIBRATION}=none" in str(info.value) and "--" not in str(info.value)
    code, output = run_main(capsys, "chips", "show", "rockchip/rv1126")
    assert code == 2 and "broken.yaml" in output and "--calibration none" in output

"""``autocompress cost``: table, JSON, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from autocompress.cli import cli, main
from autocompress.cli.cost import parse_input_size
from autocompress.core.errors import ConfigError, UnknownNameError

torch.set_num_threads(1)

SMALL = ["--model", "small_cnn", "--input-size", "1x8x8", "--num-classes", "10"]


def invoke(*args: str):
    return CliRunner().invoke(cli, ["cost", *args])


def test_table_lists_layers_and_totals():
    result = invoke(
        *SMALL, "--chip", "rockchip/rv1126", "--weight-bits", "8", "--activation-bits", "8"
    )
    assert result.exit_code == 0, result.output
    for text in ("per-layer cost on rockchip/rv1126", "bn+relu", "8/8", "latency_ms", "power_mw"):
        assert text in result.output
    assert "peak_memory_kb" in result.output and "default budget" in result.output


def test_json_has_totals_and_one_row_per_layer():
    result = invoke(*SMALL, "--chip", "rockchip/rv1126", "--weight-bits", "8", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["chip_id"] == "rockchip/rv1126" and data["input_shape"] == [1, 8, 8]
    assert [row["kind"] for row in data["layers"]] == [
        "conv",
        "conv",
        "pool",
        "conv",
        "pool",
        "linear",
    ]
    assert data["totals"]["latency_ms"] == pytest.approx(
        sum(r["latency_ms"] for r in data["layers"])
    )
    assert data["layers"][0]["fused_ops"] == ["bn", "relu"]
    assert data["layers"][0]["weight_bits"] == 8


def test_float_model_is_costed_at_the_widest_width_with_a_note():
    result = CliRunner().invoke(cli, ["cost", *SMALL, "--chip", "rockchip/rv1126"])
    assert result.exit_code == 0
    assert "16/16" in result.output and "costed at the next" in result.output


def test_user_model_file(tmp_path: Path):
    source = tmp_path / "net.py"
    source.write_text(
        "from torch import nn\n"
        "def build(num_classes=10):\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(),"
        " nn.Linear(8 * 30 * 30, num_classes))\n"
    )
    result = invoke(
        "--model", f"{source}:build", "--input-size", "32", "--chip", "rockchip/rv1126", "--json"
    )
    assert result.exit_code == 0, result.output
    assert (
        json.loads(result.output)["totals"]["macs"] == 8 * 30 * 30 * 27 + 8 * 30 * 30 * 1000
    )  # num_classes default


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("224", (3, 224, 224)),
        ("32x32", (3, 32, 32)),
        ("1x28x28", (1, 28, 28)),
        ("2x3x8x8", (2, 3, 8, 8)),
    ],
)
def test_input_size_forms(text, shape):
    assert parse_input_size(text) == shape


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--input-size", "3x22a"], ConfigError, "--input-size '3x22a' is malformed"),
        (["--input-size", "0"], ConfigError, "positive"),
        (["--chip", "rockchip/rv1127"], UnknownNameError, "did you mean 'rockchip/rv1126'"),
        (["--model", "resnt18"], UnknownNameError, "did you mean 'resnet18'"),
        (["--weight-bits", "4"], ConfigError, "supports weight bit-widths 8, 16"),
    ],
)
def test_bad_input_raises_a_user_error(args, error, message):
    base = {"--model": "small_cnn", "--input-size": "1x8x8", "--chip": "rockchip/rv1126"}
    flags = dict(zip(args[::2], args[1::2], strict=True))
    merged = [item for pair in {**base, **flags}.items() for item in pair]
    result = invoke(*merged)
    assert isinstance(result.exception, error)
    assert message in str(result.exception)


def test_main_exits_zero_on_success(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cost", *SMALL, "--chip", "rockchip/rv1126", "--json"])
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out)["chip_id"] == "rockchip/rv1126"


def test_real_command_fails_cleanly_without_traceback():
    command = [sys.executable, "-m", "autocompress", "cost", *SMALL]
    bad = subprocess.run(
        [*command, "--chip", "rockchip/rv1126", "--weight-bits", "4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert "error:" in bad.stderr and "8, 16" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_sparsity_flag_on_a_chip_that_supports_it_and_one_that_does_not():
    args = ["--model", "resnet18", "--input-size", "32", "--weight-bits", "8", "--json"]
    dense = json.loads(invoke(*args, "--chip", "nvidia/orin-nano").output)
    result = invoke(*args, "--chip", "nvidia/orin-nano", "--sparsity", "2:4")
    sparse = json.loads(result.output)
    patterns = {row["name"]: row["sparsity_pattern"] for row in sparse["layers"]}
    assert patterns["layer1.0.conv1"] == "2:4" and patterns["conv1"] is None  # 3 inputs: no 2:4
    assert sparse["totals"]["latency_ms"] < dense["totals"]["latency_ms"]
    assert sparse["totals"]["model_size_kb"] < dense["totals"]["model_size_kb"]
    refused = invoke(*args, "--chip", "rockchip/rv1126", "--sparsity", "2:4")
    assert isinstance(refused.exception, ConfigError)
    assert "does not accelerate" in str(refused.exception)
    malformed = invoke(*args, "--chip", "nvidia/orin-nano", "--sparsity", "4:2")
    assert "malformed" in str(malformed.exception)


@pytest.mark.parametrize(
    ("model", "size", "message"),
    [("vit_b_16", "16", "Wrong image height"), ("densenet121", "8", "Output size is too small")],
)
def test_an_input_too_small_for_the_model_is_one_clean_message(model, size, message):
    result = invoke("--model", model, "--input-size", size, "--chip", "rockchip/rv1126")
    assert isinstance(result.exception, ConfigError)  # exit 2 from main, no traceback
    text = str(result.exception)
    assert message in text and "Traceback" not in text and "tlparse" not in text
    assert "--in-channels" not in text  # no flag that does not exist
    assert len(text.splitlines()) <= 3


def test_a_second_chip_is_refused_not_silently_replacing_the_first():
    result = invoke(*SMALL, "--chip", "rockchip/rv1126", "--chip", "nvidia/orin-nano")
    assert isinstance(result.exception, ConfigError)
    assert "one --chip" in str(result.exception) and "nvidia/orin-nano" in str(result.exception)

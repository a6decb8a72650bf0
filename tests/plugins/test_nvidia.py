"""The bundled Nvidia plugin passes the chip-plugin contract."""

import autocompress_nvidia
import pytest

from autocompress.testing import ChipPluginContract


class TestNvidiaPlugin(ChipPluginContract):
    plugin = autocompress_nvidia
    expected_chip_ids = ("nvidia/orin-nano",)


def test_trtexec_command_with_int8_sparsity_and_dynamic_ranges(tmp_path, tiny_onnx):
    import json
    import struct

    import onnx

    from autocompress.hardware.plugins import get_chip, run_export_steps

    onnx_path, card = tiny_onnx
    graph = onnx.load(str(onnx_path)).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    layers = [dict(layer) for layer in card["layers"]]
    layers[0]["sparsity_pattern"] = "2:4"
    layers[0]["activation_amax"] = 6.35
    card = dict(card, layers=layers, chip_id="nvidia/orin-nano")
    paths = run_export_steps(get_chip("nvidia/orin-nano"), tmp_path, onnx_path, card)
    assert {p.name for p in paths} == {"trtexec.sh", "calibration_plan.json", "calibration.cache"}
    command = (tmp_path / "trtexec.sh").read_text()
    for flag in (
        "--onnx=model.onnx",
        "--int8",
        "--fp16",
        "--sparsity=enable",
        "--shapes=input:1x3x16x16",
        "--calib=calibration.cache",
        "--precisionConstraints=obey",
        f"--layerPrecisions={convs[1].name}:fp16",
    ):
        assert flag in command, flag
    cache = (tmp_path / "calibration.cache").read_text().splitlines()
    assert cache[0].startswith("TRT-")
    tensor, hex_scale = cache[1].split(": ")
    assert tensor == convs[0].output[0]
    assert struct.unpack(">f", bytes.fromhex(hex_scale))[0] == pytest.approx(6.35 / 127)
    plan = json.loads((tmp_path / "calibration_plan.json").read_text())
    assert plan["dynamic_ranges_from_card"] == 1
    assert plan["input_name"] == "input"

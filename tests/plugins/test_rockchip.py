"""The bundled Rockchip plugin passes the chip-plugin contract."""

import autocompress_rockchip

from autocompress.testing import ChipPluginContract


class TestRockchipPlugin(ChipPluginContract):
    plugin = autocompress_rockchip
    expected_chip_ids = ("rockchip/rv1126", "rockchip/rv1109", "rockchip/rk3588", "rockchip/rk3566")


def test_rknn_export_step_writes_config_with_hybrid_table(tmp_path, tiny_onnx):
    import onnx
    import yaml

    from autocompress.hardware.plugins import get_chip, run_export_steps

    onnx_path, card = tiny_onnx
    card = dict(card, chip_id="rockchip/rv1126")
    paths = run_export_steps(get_chip("rockchip/rv1126"), tmp_path, onnx_path, card)
    assert {p.name for p in paths} == {"rknn_config.yaml", "rknn_convert.py"}
    config = yaml.safe_load((tmp_path / "rknn_config.yaml").read_text())
    assert config["toolkit"] == "rknn-toolkit"
    assert config["config"]["target_platform"] == ["rv1126"]
    assert config["config"]["quantized_dtype"] == "asymmetric_affine-u8"
    # mean/std go to the 0..255 scale the toolkit expects
    assert config["config"]["mean_values"] == [[127.5, 127.5, 127.5]]
    assert config["config"]["std_values"] == [[63.75, 63.75, 63.75]]
    # the 16-bit layer is named as the ONNX node it became
    second_conv = [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "Conv"][1]
    assert config["hybrid_quantization"] == {second_conv: "dynamic_fixed_point-i16"}
    compile(paths[1].read_text(), "rknn_convert.py", "exec")


def test_rknn_toolkit2_for_rk3588_and_defaults_for_a_bare_card(tmp_path):
    from autocompress.hardware.plugins import get_chip, run_export_steps

    run_export_steps(get_chip("rockchip/rk3588"), tmp_path, tmp_path / "absent.onnx", {})
    import yaml

    config = yaml.safe_load((tmp_path / "rknn_config.yaml").read_text())
    assert config["toolkit"] == "rknn-toolkit2"
    assert config["config"]["target_platform"] == "rk3588"
    assert config["config"]["quantized_dtype"] == "asymmetric_quantized-8"
    assert config["config"]["quantized_method"] == "channel"
    assert config["hybrid_quantization"] == {}
    assert config["input_shape"] == [3, 224, 224]

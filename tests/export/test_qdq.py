"""ONNX Q/DQ writing on hand-built quantized students (no run directory needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper

from autocompress.compress.fold import fold_batch_norms
from autocompress.compress.quantize import calibrate_activations, fake_quantize
from autocompress.core.errors import ExportError
from autocompress.core.models import small_cnn
from autocompress.export.onnx_model import write_onnx
from autocompress.export.qdq import container_for
from autocompress.export.verify import check_onnx_file, compare_with_torch
from autocompress.hardware.spec import QuantGranularity, QuantizationScheme

SCHEMES = {
    "symmetric-per-channel": QuantizationScheme(weight_symmetric=True, activation_symmetric=True),
    "asymmetric-per-tensor": QuantizationScheme(
        weight_symmetric=False,
        activation_symmetric=False,
        weight_granularity=QuantGranularity.PER_TENSOR,
    ),
    "logarithmic": QuantizationScheme(logarithmic=True, log_steps_per_octave=16),
}
# layer names of small_cnn: 0, 3, 7 (convs), 12 (linear)
WEIGHT_BITS = {"0": 8, "3": 4, "7": 3, "12": 8}
ACTIVATION_BITS = {"0": 8, "3": 4, "7": 6, "12": 16}


def _student(scheme: QuantizationScheme) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = small_cnn(num_classes=10, in_channels=1, width=8).eval()
    fold_batch_norms(model, torch.zeros(1, 1, 8, 8))
    fake_quantize(model, scheme, WEIGHT_BITS, ACTIVATION_BITS)
    images = torch.randn(400, 1, 8, 8)
    calibrate_activations(model, images[:200])
    return model.eval(), images[200:]


def _initializers(path: Path) -> dict[str, TensorProto]:
    return {init.name: init for init in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("scheme_name", list(SCHEMES))
def test_quantized_student_exports_and_agrees_with_pytorch(tmp_path, scheme_name):
    torch.set_num_threads(1)
    student, held_out = _student(SCHEMES[scheme_name])
    path = tmp_path / "model.onnx"
    notes, _raw = write_onnx(student, (1, 8, 8), path)
    check_onnx_file(path)
    check = compare_with_torch(path, student, held_out, min_agreement=0.99)
    assert check.top1_agreement >= 0.99
    assert check.max_abs_error < 0.05
    model = onnx.load(str(path))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 21
    by_name = {n["name"]: n for n in notes}
    assert set(by_name) == set(WEIGHT_BITS)
    if scheme_name == "logarithmic":
        assert "logarithmic" in by_name["3"]["weight_note"]
        assert {n.op_type for n in model.graph.node} >= {"Log", "Exp", "Round", "Where"}
        return
    inits = _initializers(path)
    signed = scheme_name == "symmetric-per-channel"
    expected = {
        "0": TensorProto.INT8,
        "3": TensorProto.INT4,
        "7": TensorProto.INT4,
        "12": TensorProto.INT8,
    }
    for name, element_type in expected.items():
        if not signed:
            element_type = {
                TensorProto.INT8: TensorProto.UINT8,
                TensorProto.INT4: TensorProto.UINT4,
            }[element_type]
        assert inits[f"{name}.weight_quantized"].data_type == element_type
        scale = numpy_helper.to_array(inits[f"{name}.weight_scale"])
        assert (
            scale.size
            == (
                student.get_submodule(name).out_features
                if name == "12"
                else student.get_submodule(name).out_channels
            )
            if signed
            else scale.size == 1
        )
    # 3-bit weights use only the 3-bit range of their int4/uint4 container
    codes = numpy_helper.to_array(inits["7.weight_quantized"]).astype(np.int64)
    zero = numpy_helper.to_array(inits["7.weight_zero_point"]).astype(np.int64)
    assert (codes.max() - codes.min()) <= 7 and np.unique(codes).size <= 8
    assert "3-bit weights stored in" in by_name["7"]["weight_note"]
    # 6-bit activations: a Clip to the 6-bit range before QuantizeLinear;
    # 16-bit ones use a 16-bit container
    assert any(n.op_type == "Clip" and n.name == "7/input_clip" for n in model.graph.node)
    assert inits["12.input_zero_point"].data_type in (TensorProto.INT16, TensorProto.UINT16)
    assert zero.size >= 1
    dq_axes = {
        n.name: [a.i for a in n.attribute if a.name == "axis"]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.name.endswith("weight_dq")
    }
    assert all(axes == ([0] if signed else []) for axes in dq_axes.values())


def test_weights_off_their_grid_are_refused(tmp_path):
    student, _ = _student(SCHEMES["symmetric-per-channel"])
    layer = student.get_submodule("3")
    original = layer.quant_params

    def shifted():  # parameters that do not describe the weights the layer computes with
        params = original()
        params["weight_scale"] = params["weight_scale"] * 1.37
        return params

    layer.quant_params = shifted
    with pytest.raises(ExportError, match="not on the 4-bit grid"):
        write_onnx(student, (1, 8, 8), tmp_path / "model.onnx")


def test_containers():
    assert container_for(2, True) == (TensorProto.INT4, 4)
    assert container_for(5, False) == (TensorProto.UINT8, 8)
    assert container_for(12, True) == (TensorProto.INT16, 16)
    with pytest.raises(ExportError):
        container_for(17, True)

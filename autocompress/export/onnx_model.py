"""Write a student as ONNX (opset 21) with per-layer Q/DQ nodes.

Route: copy the student, replace every quantized conv/linear (anything with
``quant_params()``) by a plain ``nn.Conv2d`` / ``nn.Linear`` holding the
weights it computes with (BN folded, masked, on the b-bit grid), export that
float graph with ``torch.onnx.export``, then rewrite it with
:func:`autocompress.export.qdq.insert_qdq` so the file carries each layer's
bit-widths, scales and zero points.
"""

from __future__ import annotations

import copy
import tempfile
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper, version_converter
from torch import nn

from autocompress.compress.quantize import LayerQuantization, QuantMixin
from autocompress.core.errors import ExportError
from autocompress.export.onnx_files import save_onnx
from autocompress.export.qdq import ONNX_OPSET, LayerQDQ, insert_qdq

INPUT_NAME, OUTPUT_NAME = "input", "logits"


def _plain_layer(module: nn.Module, params: Mapping[str, Any]) -> nn.Module:
    weight = torch.as_tensor(params["weight"], dtype=torch.float32)
    bias = params.get("bias")
    if isinstance(module, nn.Conv2d):
        plain: nn.Module = nn.Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,  # type: ignore[arg-type]
            stride=module.stride,  # type: ignore[arg-type]
            padding=module.padding,  # type: ignore[arg-type]
            dilation=module.dilation,  # type: ignore[arg-type]
            groups=module.groups,
            bias=bias is not None,
            padding_mode=module.padding_mode,
        )
    elif isinstance(module, nn.Linear):
        plain = nn.Linear(module.in_features, module.out_features, bias=bias is not None)
    else:
        raise ExportError(f"cannot export quantized module of type {type(module).__name__}")
    with torch.no_grad():
        plain.weight.copy_(weight)
        if bias is not None:
            plain.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))  # type: ignore[union-attr]
    return plain


def _layer_qdq(name: str, quantization: LayerQuantization, params: Mapping[str, Any]) -> LayerQDQ:
    scale = params.get("weight_scale")
    zero = params.get("weight_zero_point")
    return LayerQDQ(
        name=name,
        quantization=quantization,
        weight_scale=np.asarray(scale if scale is not None else [1.0], dtype=np.float64),
        weight_zero_point=np.asarray(zero if zero is not None else [0], dtype=np.int64),
        weight_signed=(int(params["weight_qmin"]) < 0) if "weight_qmin" in params else None,
        activation_scale=float(params.get("activation_scale", 1.0)),
        activation_zero_point=int(params.get("activation_zero_point", 0)),
        activation_qmin=int(params.get("activation_qmin", -128)),
        activation_qmax=int(params.get("activation_qmax", 127)),
    )


#: Buffer of a routed window attention, in the deploy copy, holding its input quantizer's
#: scale: the ``Div`` and ``Mul`` of the float-op quantizer read it, so the ONNX pass can find
#: them and name them ``<attention>.qkv/input_fq_div`` / ``…/input_fq_mul`` (the check taps them).
ATTENTION_INPUT_SCALE = "input_fq_scale"


def _fake_quantize_float_ops(
    x: torch.Tensor, params: Mapping[str, Any], scale: torch.Tensor | None = None
) -> torch.Tensor:
    """``(clip(round(x / s) + z, qmin, qmax) - z) * s`` from plain float ops (any bit-width)."""
    s = float(params["activation_scale"]) if scale is None else scale
    zero = float(params["activation_zero_point"])
    codes = torch.clamp(
        torch.round(x / s) + zero, params["activation_qmin"], params["activation_qmax"]
    )
    return (codes - zero) * s


def _bake_functional_attention(model: nn.Module) -> None:
    """Make attention that reads its projection weights functionally compute, in the float
    deploy copy, what the student computes (see :mod:`autocompress.compress.attention`).

    ``nn.MultiheadAttention``: ``in_proj_weight`` is quantized in ``out_proj``'s scheme in the
    student; the copy holds those grid values (float32 initializers: no Q/DQ node reads them).
    Swin's window attention quantizes its input with ``qkv``'s activation quantizer; the copy
    does the same with float ops (``Div``, ``Round``, ``Clip``, ``Mul`` in the ONNX graph).
    """
    from autocompress.compress.attention import RoutedMultiheadAttention

    for module in model.modules():
        if isinstance(module, RoutedMultiheadAttention):
            out_proj = module.out_proj
            if isinstance(out_proj, QuantMixin) and module.in_proj_weight is not None:
                with torch.no_grad():
                    module.in_proj_weight.copy_(out_proj.quantize_weight(module.in_proj_weight))
        elif type(module).__name__.startswith("RoutedShiftedWindowAttention"):
            qkv = getattr(module, "qkv", None)
            if not isinstance(qkv, QuantMixin) or not qkv.activation_quantized:
                continue
            if qkv.logarithmic:
                continue  # no float-op emulation of the log grid here: the check will say so
            params = qkv.quant_params()
            routed = type(module).forward
            scale = torch.tensor(float(params["activation_scale"]), dtype=torch.float32)
            module.register_buffer(ATTENTION_INPUT_SCALE, scale)

            # in the copy qkv becomes a plain Linear (its deployed weights), so the routed
            # forward no longer quantizes the input: do it here, as the student does
            def forward(self, x, _routed=routed, _params=params):  # type: ignore[no-untyped-def]
                s = getattr(self, ATTENTION_INPUT_SCALE)
                return _routed(self, _fake_quantize_float_ops(x, _params, s))

            module.forward = types.MethodType(forward, module)


def deploy_copy(
    student: nn.Module,
) -> tuple[nn.Module, dict[str, LayerQDQ], dict[str, dict]]:
    """A float copy of ``student`` plus each quantized layer's parameters.

    Returns (float model, name -> LayerQDQ for quantized layers,
    name -> raw ``quant_params()`` for every quant-capable layer).
    """
    model = copy.deepcopy(student).eval().cpu()
    _bake_functional_attention(model)
    layers: dict[str, LayerQDQ] = {}
    raw: dict[str, dict] = {}
    targets = [
        (n, m) for n, m in model.named_modules() if callable(getattr(m, "quant_params", None))
    ]
    for name, module in targets:
        params = module.quant_params()
        raw[name] = params
        plain = _plain_layer(module, params)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, plain)
        quant = _layer_qdq(name, module.quantization, params)
        if quant.weight_bits is not None or quant.activation_bits is not None:
            layers[name] = quant
    return model, layers, raw


def _layers_that_run(
    model: nn.Module, input_shape: tuple[int, ...], names: Mapping[str, Any]
) -> set[str]:
    """The layers of ``names`` an inference forward pass runs (GoogLeNet's and
    Inception's auxiliary heads only run in training: they are not in the graph)."""
    ran: set[str] = set()
    handles = [
        model.get_submodule(name).register_forward_hook(lambda *_a, n=name: ran.add(n))
        for name in names
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *input_shape), dtype=torch.float32))
    finally:
        for handle in handles:
            handle.remove()
    return ran


def _restore_weight_names(
    proto: onnx.ModelProto, model: nn.Module, names: Mapping[str, Any]
) -> None:
    """Give folded weights back their layer's name.

    A Linear applied to a tensor of more than two dimensions (ConvNeXt's channels-last
    MLP) exports as ``MatMul(x, Wᵀ)``; constant folding stores ``Wᵀ`` under a generated
    name. Such an initializer is found by value and renamed ``<layer>.weight``, so the
    Q/DQ pass finds it (``MatMul``'s output channels are its axis 1).
    """
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    matmul_weights = {
        node.input[1]: node
        for node in graph.node
        if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in initializers
    }
    for name in names:
        weight_name = f"{name}.weight"
        if weight_name in initializers:
            continue
        module = model.get_submodule(name)
        if not isinstance(module, nn.Linear):
            continue
        wanted = module.weight.detach().cpu().numpy().T
        for init_name, node in list(matmul_weights.items()):
            values = numpy_helper.to_array(initializers[init_name])
            if values.shape == wanted.shape and np.array_equal(values, wanted):
                initializers[init_name].name = weight_name
                for i, value in enumerate(node.input):
                    if value == init_name:
                        node.input[i] = weight_name
                del matmul_weights[init_name]
                initializers[weight_name] = initializers.pop(init_name)
                break


def _name_attention_quantizers(proto: onnx.ModelProto, model: nn.Module) -> None:
    """Name the float-op input quantizer of every routed window attention after its ``qkv``:
    ``<attention>.qkv/input_fq_div`` reads the raw input, ``…/input_fq_mul`` writes the
    quantized one (found as the ``Div`` and ``Mul`` reading the scale buffer)."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for value in node.input:
            readers.setdefault(value, []).append(node)
    for name, module in model.named_modules():
        if ATTENTION_INPUT_SCALE not in dict(module.named_buffers(recurse=False)):
            continue
        nodes = readers.get(f"{name}.{ATTENTION_INPUT_SCALE}", [])
        div = [n for n in nodes if n.op_type == "Div"]
        mul = [n for n in nodes if n.op_type == "Mul"]
        if len(div) == 1 and len(mul) == 1:
            div[0].name, mul[0].name = f"{name}.qkv/input_fq_div", f"{name}.qkv/input_fq_mul"


def _torch_to_onnx(model: nn.Module, input_shape: tuple[int, ...], path: Path) -> onnx.ModelProto:
    """The float graph, exported into ``path``'s folder (a scratch folder: a graph over
    2 GiB comes with one file per tensor there), loaded whole."""
    example = torch.zeros((1, *input_shape), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=min(ONNX_OPSET, 20),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
        except TypeError:  # a torch without the TorchScript exporter: use torch.export
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                opset_version=ONNX_OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            )
            program.save(str(path))
    # the graph first, the tensors after: the version converter serializes what it gets
    proto = onnx.load(str(path), load_external_data=False)
    version = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if version < ONNX_OPSET:
        proto = version_converter.convert_version(proto, ONNX_OPSET)
    onnx.load_external_data_for_model(proto, str(path.parent))
    return proto


def write_onnx(
    student: nn.Module, input_shape: tuple[int, ...], path: Path, *, doc: str = ""
) -> tuple[list[dict], dict[str, dict]]:
    """Export ``student`` to ``path`` with Q/DQ nodes; return (layer notes, raw quant params)."""
    model, layers, raw = deploy_copy(student)
    path.parent.mkdir(parents=True, exist_ok=True)
    ran = _layers_that_run(model, tuple(input_shape), layers)
    layers = {name: quant for name, quant in layers.items() if name in ran}
    with tempfile.TemporaryDirectory(prefix="autocompress-onnx-") as scratch:
        proto = _torch_to_onnx(model, tuple(input_shape), Path(scratch) / "float.onnx")
    _restore_weight_names(proto, model, layers)
    _name_attention_quantizers(proto, model)
    notes = insert_qdq(proto, layers)
    proto.producer_name = "autocompress"
    if doc:
        proto.doc_string = doc
    save_onnx(proto, path)  # over 2 GiB of tensors: model.onnx + model.onnx.data
    return notes, raw

"""Insert QuantizeLinear / DequantizeLinear nodes into a float ONNX graph.

The float graph is the BN-folded, pruned student whose conv/linear weights are
already the fake-quantized values (on each layer's b-bit grid). For every
quantized layer this module

- replaces the float weight initializer by an integer initializer (the codes)
  plus a ``DequantizeLinear`` (per-channel ``axis`` where the scheme is
  per-channel), so the file carries the bit-width and the scales;
- puts a ``QuantizeLinear`` -> ``DequantizeLinear`` pair on the layer's input
  (the activation bits quantize a layer's *input*, as in training).

ONNX (opset 21) has 4-, 8- and 16-bit integer containers. A bit-width it cannot
carry (2, 3, 5, 6, 7, 9..15) is stored in the nearest larger container with the
values still on the b-bit grid: weights simply use fewer codes; activations get
a ``Clip`` to the b-bit range before quantizing. Logarithmic weight codes (sign
+ log2 magnitude) have no ONNX type: those weights stay float32 initializers
holding the exact log-grid values. Every such case is reported in the returned
notes (which go into the deploy card).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autocompress.compress.quantize import LayerQuantization
from autocompress.core.errors import ExportError
from autocompress.hardware.op_kinds import FLOAT_BITS

ONNX_OPSET = 21

_CONTAINERS: tuple[tuple[int, int, int], ...] = (
    # bits, signed type, unsigned type
    (4, TensorProto.INT4, TensorProto.UINT4),
    (8, TensorProto.INT8, TensorProto.UINT8),
    (16, TensorProto.INT16, TensorProto.UINT16),
)
_TYPE_NAMES = {
    TensorProto.INT4: "int4",
    TensorProto.UINT4: "uint4",
    TensorProto.INT8: "int8",
    TensorProto.UINT8: "uint8",
    TensorProto.INT16: "int16",
    TensorProto.UINT16: "uint16",
    TensorProto.FLOAT: "float32",
}


@dataclass(frozen=True)
class LayerQDQ:
    """What the export writes for one conv/linear layer: its scheme plus the learnt numbers.

    Attributes:
        name: qualified module name (its weight initializer is ``name + ".weight"``).
        quantization: the layer's scheme, the compression engine's one
            :class:`~autocompress.compress.quantize.LayerQuantization` (bits 32 = float;
            ``logarithmic``: sign + log2 codes, which no ONNX type carries for weights
            and which are emulated with float ops for inputs).
        weight_scale: one scale per output channel (shape ``[C_out]``) or one scalar.
        weight_zero_point: same shape as ``weight_scale`` (integers).
        weight_signed: codes are signed (symmetric); None = decide from the codes.
        activation_scale / activation_zero_point: per-tensor input quantization
            (for logarithmic input, ``activation_scale`` is the reference magnitude).
        activation_qmin / activation_qmax: integer range of the input codes.
    """

    name: str
    quantization: LayerQuantization
    weight_scale: np.ndarray
    weight_zero_point: np.ndarray
    weight_signed: bool | None = None
    activation_scale: float = 1.0
    activation_zero_point: int = 0
    activation_qmin: int = -128
    activation_qmax: int = 127

    @property
    def weight_bits(self) -> int | None:
        """Quantized weight bits, None for float weights (as the deploy card's notes say)."""
        bits = self.quantization.weight_bits
        return bits if bits < FLOAT_BITS else None

    @property
    def activation_bits(self) -> int | None:
        """Quantized input bits, None for float input."""
        bits = self.quantization.activation_bits
        return bits if bits < FLOAT_BITS else None


def container_for(bits: int, signed: bool) -> tuple[int, int]:
    """(ONNX element type, container bits) of the smallest container holding ``bits``."""
    for width, signed_type, unsigned_type in _CONTAINERS:
        if bits <= width:
            return (signed_type if signed else unsigned_type), width
    raise ExportError(f"{bits}-bit integers have no ONNX container (at most 16 bits)")


def type_name(element_type: int) -> str:
    """``int4``, ``uint8`` … for an ONNX element type."""
    return _TYPE_NAMES.get(element_type, str(element_type))


def _int_tensor(name: str, element_type: int, values: np.ndarray) -> TensorProto:
    """Integer codes as ``raw_data`` (one byte per 8-bit code, two 4-bit codes per byte:
    no Python list, and large weights can go to external data)."""
    values = np.asarray(values, dtype=np.int64)
    typed = values.astype(helper.tensor_dtype_to_np_dtype(element_type))
    return helper.make_tensor(name, element_type, list(values.shape), typed, raw=True)


def _weight_consumers(graph: onnx.GraphProto) -> dict[str, tuple[onnx.NodeProto, int]]:
    """weight initializer name -> (Conv/Gemm/MatMul node, per-output-channel axis)."""
    out: dict[str, tuple[onnx.NodeProto, int]] = {}
    for node in graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            out[node.input[1]] = (node, 0)
        elif node.op_type == "Gemm" and len(node.input) > 1:
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            out[node.input[1]] = (node, 0 if trans_b else 1)
        elif node.op_type == "MatMul" and len(node.input) > 1:
            out[node.input[1]] = (node, 1)
    return out


def insert_qdq(model: onnx.ModelProto, layers: Mapping[str, LayerQDQ]) -> list[dict]:
    """Rewrite ``model`` in place; return one note per layer for the deploy card.

    Raises ExportError when a layer has no weight in the graph or its float
    weights are not on the grid its quantization parameters describe.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    consumers = _weight_consumers(graph)
    new_nodes_before: dict[int, list[onnx.NodeProto]] = {}
    notes: list[dict] = []
    node_index = {id(node): i for i, node in enumerate(graph.node)}

    for name, quant in layers.items():
        weight_name = f"{name}.weight"
        if weight_name not in initializers or weight_name not in consumers:
            raise ExportError(
                f"layer {name!r}: no weight initializer {weight_name!r} feeds a Conv/Gemm in the "
                "ONNX graph"
            )
        node, axis = consumers[weight_name]
        added: list[onnx.NodeProto] = []
        note: dict = {
            "name": name,
            "weight_bits": quant.weight_bits,
            "activation_bits": quant.activation_bits,
        }

        if quant.weight_bits is not None:
            if quant.quantization.logarithmic:
                note["weight_container"] = "float32"
                note["weight_note"] = (
                    f"{quant.weight_bits}-bit logarithmic codes have no ONNX type: float32 weights "
                    "holding the exact log-grid values"
                )
            else:
                init = initializers[weight_name]
                added += _quantize_weight(graph, init, node, axis, quant, note)

        if quant.activation_bits is not None:
            if quant.quantization.logarithmic:
                added += _log_quantize_input(graph, node, quant, note)
            else:
                added += _quantize_input(graph, node, quant, note)

        new_nodes_before.setdefault(node_index[id(node)], []).extend(added)
        notes.append(note)

    ordered: list[onnx.NodeProto] = []
    for i, node in enumerate(graph.node):
        ordered.extend(new_nodes_before.get(i, []))
        ordered.append(node)
    del graph.node[:]
    graph.node.extend(ordered)
    return notes


def _quantize_weight(
    graph: onnx.GraphProto,
    init: TensorProto,
    node: onnx.NodeProto,
    axis: int,
    quant: LayerQDQ,
    note: dict,
) -> list[onnx.NodeProto]:
    name = quant.name
    weight = numpy_helper.to_array(init).astype(np.float64)
    scale = np.asarray(quant.weight_scale, dtype=np.float64).reshape(-1)
    zero = np.asarray(quant.weight_zero_point, dtype=np.int64).reshape(-1)
    per_channel = scale.size > 1
    if per_channel and scale.size != weight.shape[axis]:
        raise ExportError(
            f"layer {name!r}: {scale.size} weight scales for {weight.shape[axis]} output channels"
        )
    if zero.size not in (1, scale.size):
        raise ExportError(f"layer {name!r}: {zero.size} zero points for {scale.size} scales")
    if zero.size == 1 and per_channel:
        zero = np.full(scale.size, zero[0], dtype=np.int64)
    shape = [1] * weight.ndim
    if per_channel:
        shape[axis] = -1
    s = scale.reshape(shape) if per_channel else scale[0]
    z = zero.reshape(shape) if per_channel else zero[0]
    codes = np.round(weight / s) + z
    grid_error = np.abs((codes - z) * s - weight).max() / max(float(np.abs(scale).max()), 1e-30)
    # float32 holds (q - z) * s to ~6e-8 relative: allow that many steps at 2**bits codes
    if grid_error > 1e-3 + 2.0 ** int(quant.weight_bits) * 2e-7:
        raise ExportError(
            f"layer {name!r}: weights are not on the {quant.weight_bits}-bit grid of their scales "
            f"(off by {grid_error:.3g} steps); the student's quantization parameters do not "
            "match its weights"
        )
    signed = quant.weight_signed
    if signed is None:
        signed = bool(codes.min() < 0 or zero.min() < 0)
    element_type, container_bits = container_for(int(quant.weight_bits), signed)
    codes = codes.astype(np.int64)
    codes_name, scale_name, zero_name = (
        f"{name}.weight_quantized",
        f"{name}.weight_scale",
        f"{name}.weight_zero_point",
    )
    scale_values = scale.astype(np.float32) if per_channel else np.float32(scale[0])
    zero_values = zero if per_channel else np.int64(zero[0])
    graph.initializer.remove(init)
    graph.initializer.extend(
        [
            _int_tensor(codes_name, element_type, codes),
            numpy_helper.from_array(np.asarray(scale_values, dtype=np.float32), scale_name),
            _int_tensor(zero_name, element_type, np.asarray(zero_values)),
        ]
    )
    dequantized = f"{name}.weight_dequantized"
    attrs = {"axis": axis} if per_channel else {}
    dq = helper.make_node(
        "DequantizeLinear",
        [codes_name, scale_name, zero_name],
        [dequantized],
        name=f"{name}/weight_dq",
        **attrs,
    )
    node.input[1] = dequantized
    note["weight_container"] = type_name(element_type)
    note["weight_granularity"] = "per_channel" if per_channel else "per_tensor"
    if container_bits != quant.weight_bits:
        note["weight_note"] = (
            f"{quant.weight_bits}-bit weights stored in an {type_name(element_type)} container "
            f"(ONNX has no {quant.weight_bits}-bit type); codes use only the "
            f"{quant.weight_bits}-bit range"
        )
    return [dq]


def _quantize_input(
    graph: onnx.GraphProto, node: onnx.NodeProto, quant: LayerQDQ, note: dict
) -> list[onnx.NodeProto]:
    name = quant.name
    bits = int(quant.activation_bits)
    signed = quant.activation_qmin < 0
    element_type, container_bits = container_for(bits, signed)
    scale_name, zero_name = f"{name}.input_scale", f"{name}.input_zero_point"
    graph.initializer.extend(
        [
            numpy_helper.from_array(
                np.asarray(quant.activation_scale, dtype=np.float32), scale_name
            ),
            _int_tensor(zero_name, element_type, np.asarray(quant.activation_zero_point)),
        ]
    )
    source = node.input[0]
    nodes: list[onnx.NodeProto] = []
    if container_bits != bits:
        low = (quant.activation_qmin - quant.activation_zero_point) * quant.activation_scale
        high = (quant.activation_qmax - quant.activation_zero_point) * quant.activation_scale
        low_name, high_name = f"{name}.input_clip_min", f"{name}.input_clip_max"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.asarray(low, dtype=np.float32), low_name),
                numpy_helper.from_array(np.asarray(high, dtype=np.float32), high_name),
            ]
        )
        clipped = f"{name}.input_clipped"
        nodes.append(
            helper.make_node(
                "Clip", [source, low_name, high_name], [clipped], name=f"{name}/input_clip"
            )
        )
        source = clipped
        note["activation_note"] = (
            f"{bits}-bit activations carried as {type_name(element_type)} with a Clip to the "
            f"{bits}-bit range [{quant.activation_qmin}, {quant.activation_qmax}] before "
            "QuantizeLinear"
        )
    quantized, dequantized = f"{name}.input_quantized", f"{name}.input_dequantized"
    nodes.append(
        helper.make_node(
            "QuantizeLinear", [source, scale_name, zero_name], [quantized], name=f"{name}/input_q"
        )
    )
    nodes.append(
        helper.make_node(
            "DequantizeLinear",
            [quantized, scale_name, zero_name],
            [dequantized],
            name=f"{name}/input_dq",
        )
    )
    node.input[0] = dequantized
    note["activation_container"] = type_name(element_type)
    return nodes


def _log_quantize_input(
    graph: onnx.GraphProto, node: onnx.NodeProto, quant: LayerQDQ, note: dict
) -> list[onnx.NodeProto]:
    """Sign + log2-magnitude fake quantization of the input, from standard float ops.

    ``q(x) = sign(x) * ref * 2**(-clip(round(-log2(|x|/ref) * steps), 0, L-1) / steps)``,
    zero below half a step under the smallest level (L = 2**(bits-1) - 1).
    """
    name = quant.name
    bits = int(quant.activation_bits)
    steps = int(quant.quantization.log_steps_per_octave)
    levels = 2 ** (bits - 1) - 1
    ln2 = float(np.log(2.0))
    constants = {
        "ref": quant.activation_scale,
        "tiny": 1e-30,
        "to_steps": -steps / ln2,
        "underflow": (levels - 1) + 0.5 * steps,
        "zero": 0.0,
        "top": float(levels - 1),
        "to_log": -ln2 / steps,
    }
    names = {k: f"{name}.input_log_const_{k}" for k in constants}
    graph.initializer.extend(
        numpy_helper.from_array(np.asarray(v, dtype=np.float32), names[k])
        for k, v in constants.items()
    )
    x = node.input[0]
    t = f"{name}.input_log"
    n = [
        helper.make_node("Abs", [x], [f"{t}_abs"]),
        helper.make_node("Div", [f"{t}_abs", names["ref"]], [f"{t}_ratio"]),
        helper.make_node("Max", [f"{t}_ratio", names["tiny"]], [f"{t}_ratio_pos"]),
        helper.make_node("Log", [f"{t}_ratio_pos"], [f"{t}_ln"]),
        helper.make_node("Mul", [f"{t}_ln", names["to_steps"]], [f"{t}_steps"]),
        helper.make_node("Round", [f"{t}_steps"], [f"{t}_exponent"]),
        helper.make_node("Greater", [f"{t}_exponent", names["underflow"]], [f"{t}_underflow"]),
        helper.make_node(
            "Clip", [f"{t}_exponent", names["zero"], names["top"]], [f"{t}_exp_clipped"]
        ),
        helper.make_node("Mul", [f"{t}_exp_clipped", names["to_log"]], [f"{t}_log_mag"]),
        helper.make_node("Exp", [f"{t}_log_mag"], [f"{t}_mag_rel"]),
        helper.make_node("Mul", [f"{t}_mag_rel", names["ref"]], [f"{t}_mag"]),
        helper.make_node("Sign", [x], [f"{t}_sign"]),
        helper.make_node("Mul", [f"{t}_sign", f"{t}_mag"], [f"{t}_signed"]),
        helper.make_node("Where", [f"{t}_underflow", names["zero"], f"{t}_signed"], [f"{t}_out"]),
    ]
    for i, item in enumerate(n):
        item.name = f"{name}/input_log_{i}"
    node.input[0] = f"{t}_out"
    note["activation_container"] = "float32"
    note["activation_note"] = (
        f"{bits}-bit logarithmic input codes have no ONNX type: emulated with float ops "
        "(Abs, Log, Round, Clip, Exp, Sign), values exactly on the log grid"
    )
    return n

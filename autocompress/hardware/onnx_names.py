"""Find the ONNX nodes and tensors an exported PyTorch module became.

Vendor export steps (hybrid-quantization tables, per-layer precisions
and dynamic ranges) name layers the way the toolchain sees them: by ONNX node or
tensor name. The deploy card names layers by PyTorch module name
(``layer1.0.conv1``). :func:`map_modules_to_nodes` bridges the two:

1. the TorchScript exporter scopes node names by module path
   (``/layer1/layer1.0/conv1/Conv``); the dynamo exporter records the module path
   in the node's ``pkg.torch.onnx.name_scopes`` metadata — an exact match wins;
2. otherwise, when the card lists as many layers as the graph has compute nodes
   (Conv, ConvTranspose, Gemm, MatMul), they are paired in execution order (the
   dynamo exporter names a conv fused with its batch-norm after the batch-norm);
3. otherwise the module name itself is used.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPUTE_KINDS = frozenset({"conv", "linear"})
"""Card layer kinds that become ONNX compute nodes (pooling, element-wise ops do not)."""
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "QLinearConv"})


@dataclass(frozen=True)
class OnnxNode:
    """What an export step needs to know about one ONNX node."""

    name: str
    op_type: str
    output: str
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class OnnxGraphNames:
    """The nodes (in graph order) and the graph's real inputs (not initializers)."""

    nodes: tuple[OnnxNode, ...] = ()
    inputs: tuple[str, ...] = ()
    op_types: frozenset[str] = field(default_factory=frozenset)

    @property
    def compute_nodes(self) -> tuple[OnnxNode, ...]:
        """Conv / Gemm / MatMul nodes in graph order."""
        return tuple(node for node in self.nodes if node.op_type in COMPUTE_OPS)


def _scopes(node: object) -> tuple[str, ...]:
    for prop in getattr(node, "metadata_props", ()):
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                value = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return ()
            return tuple(str(v) for v in value if v)
    return ()


def read_graph_names(onnx_path: Path) -> OnnxGraphNames:
    """Names in the ONNX graph at ``onnx_path``; empty if it is missing or unreadable."""
    try:
        import onnx  # onnx loads only to read a graph: the plugin API stays light

        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:
        return OnnxGraphNames()
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    nodes = tuple(
        OnnxNode(node.name, node.op_type, node.output[0] if node.output else "", _scopes(node))
        for node in graph.node
    )
    inputs = tuple(i.name for i in graph.input if i.name not in initializers)
    return OnnxGraphNames(nodes, inputs, frozenset(node.op_type for node in nodes))


def _exact_match(module_name: str, nodes: Sequence[OnnxNode]) -> OnnxNode | None:
    scoped = "/" + module_name.replace(".", "/") + "/"
    dotted = "/" + module_name + "/"
    for node in nodes:
        padded = node.name + "/"
        if module_name in node.scopes or scoped in padded or dotted in padded:
            return node
    return None


def map_modules_to_nodes(module_names: Sequence[str], names: OnnxGraphNames) -> dict[str, OnnxNode]:
    """Module name -> the ONNX compute node it became (modules not found are left out)."""
    compute = names.compute_nodes
    found: dict[str, OnnxNode] = {}
    for module_name in module_names:
        node = _exact_match(module_name, compute)
        if node is not None:
            found[module_name] = node
    if len(found) < len(module_names) and len(module_names) == len(compute):
        return dict(zip(module_names, compute, strict=True))
    return found


def card_compute_layers(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The deploy card's conv/linear layer entries (entries without a ``kind`` are kept)."""
    return [
        layer
        for layer in card.get("layers") or []
        if isinstance(layer, dict)
        and "name" in layer
        and str(layer.get("kind", "conv")).lower() in COMPUTE_KINDS
    ]

"""ONNX files over protobuf's 2 GiB limit: their tensors go to an external data file.

A ``ModelProto`` cannot be serialized past 2 GiB (ViT-H/14's float graph is 2.5 GB,
RegNet-Y-128GF's too). :func:`save_onnx` writes a model whose tensors exceed
:data:`EXTERNAL_DATA_BYTES` as ``model.onnx`` (the graph) plus ``model.onnx.data`` (every
tensor, ONNX external data, next to it); ``onnx.load``, ``onnx.checker`` (given the path)
and onnxruntime read the pair as one model. Smaller models stay one file.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto

EXTERNAL_DATA_BYTES = 1_800_000_000
"""Tensor bytes above which a model is saved with external data (2 GiB less room for the graph)."""

_ITEM_BYTES = {"float_data": 4, "int32_data": 4, "int64_data": 8, "double_data": 8}


def _bytes(tensor: TensorProto) -> int:
    size = len(tensor.raw_data)
    for field, item in _ITEM_BYTES.items():
        size += item * len(getattr(tensor, field))
    return size


def tensor_bytes(proto: onnx.ModelProto) -> int:
    """Bytes the model's tensors hold in memory: initializers and ``Constant`` values
    (the main graph's; no serialization, so it works past 2 GiB)."""
    size = sum(_bytes(t) for t in proto.graph.initializer)
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                size += _bytes(attribute.t)
    return size


def data_file(path: Path) -> Path:
    """Where :func:`save_onnx` puts the tensors of a large ``path``."""
    return path.with_name(path.name + ".data")


def is_large(proto: onnx.ModelProto) -> bool:
    """Whether ``proto`` is saved with external data."""
    return tensor_bytes(proto) > EXTERNAL_DATA_BYTES


def save_onnx(proto: onnx.ModelProto, path: Path) -> list[Path]:
    """Save ``proto`` to ``path`` (with :func:`data_file` when :func:`is_large`); returns
    the files written."""
    path = Path(path)
    if not is_large(proto):
        onnx.save(proto, str(path))
        return [path]
    data = data_file(path)
    data.unlink(missing_ok=True)  # the old tensors of the model ``path`` replaces (onnx appends)
    onnx.save_model(
        proto,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    onnx.load_external_data_for_model(proto, str(path.parent))  # the caller's proto stays whole
    return [path, data]


def session_source(proto: onnx.ModelProto, spill: Path) -> bytes | str:
    """What onnxruntime's ``InferenceSession`` takes for ``proto``: its bytes, or for a
    large model the path it is saved to at ``spill`` (a folder the caller removes)."""
    if not is_large(proto):
        return proto.SerializeToString()
    save_onnx(proto, spill)
    return str(spill)


__all__ = ["EXTERNAL_DATA_BYTES", "data_file", "is_large", "save_onnx", "session_source"]

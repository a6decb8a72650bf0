"""Check an exported ONNX file before it is declared done.

``onnx.checker`` (full check, with shape inference), then onnxruntime runs it on
held-out images and its logits are compared with the PyTorch student's:
top-1 agreement and the largest absolute logit difference. Agreement below
the threshold raises :class:`~autocompress.core.errors.ExportError`.

The gate runs onnxruntime with basic graph optimizations, which execute the
graph as written (Q/DQ as float ops), i.e. the reference semantics of the
file. onnxruntime's extended optimizations fuse DQ -> Conv -> Q into integer
kernels (bias rounded to int32, requantized outputs), the way an integer NPU
runs it; that agreement is measured too and reported (``optimized_*``), not gated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from autocompress.core.errors import ExportError

DEFAULT_MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class ExportCheck:
    """How the ONNX file compares with the PyTorch student on held-out data.

    Attributes:
        images: number of images compared.
        top1_agreement: fraction of images with the same arg-max class.
        max_abs_error: largest absolute logit difference.
        mean_abs_error: mean absolute logit difference.
        onnx_accuracy / torch_accuracy: top-1 accuracy of each on those images (when labels given).
        onnxruntime_version: the runtime that ran it.
        optimized_top1_agreement / optimized_max_abs_error: the same with all
            onnxruntime optimizations (integer-fused kernels), for information.
    """

    images: int
    top1_agreement: float
    max_abs_error: float
    mean_abs_error: float
    onnx_accuracy: float | None
    torch_accuracy: float | None
    onnxruntime_version: str
    optimized_top1_agreement: float | None = None
    optimized_max_abs_error: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def check_onnx_file(path: Path) -> None:
    """``onnx.checker.check_model(full_check=True)``; failures become ExportError."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{path}: the ONNX checker rejected the export: {exc}") from None


def _session(path: Path, level):  # type: ignore[no-untyped-def]
    import onnxruntime as ort  # heavy: loads only when an export is checked

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"{path}: onnxruntime cannot load the export: {exc}") from None


def compare_with_torch(
    path: Path,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    batch_size: int = 256,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> ExportCheck:
    """Run ``path`` with onnxruntime and ``model`` with PyTorch on ``images``; compare.

    Raises ExportError when onnxruntime cannot run the file or when the top-1
    agreement is below ``min_agreement``.
    """
    import onnxruntime as ort  # heavy: loads only when an export is checked

    reference = _session(path, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    optimized = _session(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    input_name = reference.get_inputs()[0].name
    model = model.eval()
    onnx_logits, optimized_logits, torch_logits = [], [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].float().cpu()
            try:
                onnx_logits.append(reference.run(None, {input_name: batch.numpy()})[0])
                optimized_logits.append(optimized.run(None, {input_name: batch.numpy()})[0])
            except Exception as exc:
                raise ExportError(f"{path}: onnxruntime failed to run the export: {exc}") from None
            torch_logits.append(model(batch).float().cpu().numpy())
    ours = np.concatenate(onnx_logits)
    fused = np.concatenate(optimized_logits)
    theirs = np.concatenate(torch_logits)
    difference = np.abs(ours - theirs)
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    onnx_accuracy = torch_accuracy = None
    if labels is not None:
        truth = labels.cpu().numpy()
        onnx_accuracy = float((ours.argmax(1) == truth).mean())
        torch_accuracy = float((theirs.argmax(1) == truth).mean())
    check = ExportCheck(
        images=len(ours),
        top1_agreement=agreement,
        max_abs_error=float(difference.max()),
        mean_abs_error=float(difference.mean()),
        onnx_accuracy=onnx_accuracy,
        torch_accuracy=torch_accuracy,
        onnxruntime_version=ort.__version__,
        optimized_top1_agreement=float((fused.argmax(1) == theirs.argmax(1)).mean()),
        optimized_max_abs_error=float(np.abs(fused - theirs).max()),
    )
    if agreement < min_agreement:
        raise ExportError(
            f"{path}: the ONNX export disagrees with the PyTorch student: top-1 agreement "
            f"{agreement:.2%} on {len(ours)} held-out images (need >= {min_agreement:.0%}), "
            f"max logit error {check.max_abs_error:.4g}",
            hint="The export was not declared done; please report this as a bug.",
        )
    return check

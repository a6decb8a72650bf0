"""Evaluation: top-1 accuracy and agreement with the teacher's outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autocompress.compress.model_output import main_logits
from autocompress.compress.training import autocast
from autocompress.core.data import Split


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    *,
    teacher_logits: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
) -> dict[str, float]:
    """Score ``model`` on ``split`` (eval mode, bf16 autocast on CUDA).

    Returns:
        ``accuracy``: top-1 accuracy in [0, 1]; ``images``: how many were scored;
        with ``teacher_logits`` (the teacher's logits on the same split) also
        ``teacher_agreement`` (fraction of identical top-1 predictions),
        ``kl_to_teacher`` (mean KL(teacher ‖ model) in nats) and
        ``output_rmse`` (root-mean-square logit difference).
    """
    device = torch.device(device)
    model.eval().to(device)
    logits = []
    for start in range(0, len(split), batch_size):
        batch = split.images[start : start + batch_size].to(device)
        with autocast(device):
            logits.append(main_logits(model(batch)).float())
    out = torch.cat(logits) if logits else torch.empty(0, 1, device=device)
    labels = split.labels.to(device)
    result = {
        "accuracy": float((out.argmax(1) == labels).float().mean()) if len(labels) else 0.0,
        "images": float(len(labels)),
    }
    if teacher_logits is not None:
        t = teacher_logits.to(device).float()
        result["teacher_agreement"] = float((out.argmax(1) == t.argmax(1)).float().mean())
        result["kl_to_teacher"] = float(
            F.kl_div(
                F.log_softmax(out, 1), F.log_softmax(t, 1), reduction="batchmean", log_target=True
            )
        )
        result["output_rmse"] = float((out - t).pow(2).mean().sqrt())
    return result


__all__ = ["evaluate"]

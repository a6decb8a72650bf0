"""Knowledge distillation: the KD loss and the teacher's cached outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autocompress.compress.model_output import main_logits
from autocompress.compress.training import autocast


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha · T² · KL(teacher_T ‖ student_T) + (1 - alpha) · CE(student, labels)``.

    ``T`` softens both distributions; the ``T²`` factor keeps the gradient
    scale independent of ``T`` (Hinton et al., 2015).
    """
    s = student_logits.float()
    t = teacher_logits.float()
    soft = F.kl_div(
        F.log_softmax(s / temperature, dim=1),
        F.log_softmax(t / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (temperature**2)
    if alpha >= 1.0:
        return soft
    hard = F.cross_entropy(s, labels)
    return alpha * soft + (1.0 - alpha) * hard


@torch.no_grad()
def teacher_logits(
    teacher: nn.Module,
    images: torch.Tensor,
    device: str | torch.device,
    batch_size: int = 1024,
) -> torch.Tensor:
    """The teacher's logits (float32) for ``images``, on ``device``; compute once per run."""
    device = torch.device(device)
    was_training = teacher.training
    teacher.eval().to(device)
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        with autocast(device):
            outputs.append(main_logits(teacher(batch)).float())
    teacher.train(was_training)
    if not outputs:
        return torch.empty(0, device=device)
    return torch.cat(outputs)


__all__ = ["kd_loss", "teacher_logits"]

"""The fast training path on a GPU, chosen per device: batch size, CUDA graphs, ``torch.compile``.

On CUDA a fine-tune epoch in eager mode is dominated by kernel launches (the
fake-quantization ops are many small kernels): a ResNet-18 student at 50 %
width, int8, batch 512 takes 2.20 s an epoch on an H200 against 0.60 s for a
bare bf16 epoch of the same pruned network (bench/RESULTS.md). Replaying the
student's forward/backward as CUDA graphs (:mod:`autocompress.compress.cuda_graphs`)
brings it to 0.71 s, captured in well under a second per trial; ``torch.compile``
reaches 0.91 s after a 31 s compilation that every trial's new shapes pay
again. So on a GPU the default is batch 512 with CUDA graphs, and the student
is compiled only when asked (``compile=True``; it then skips the graphs). On
the CPU nothing changes: batch 128, eager.

The device decision is a function argument (``is_cuda``) so that the choice
is testable without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: Default batch size (images per step) by device type.
DEFAULT_BATCH_SIZE = {"cpu": 128, "cuda": 512}


@dataclass(frozen=True)
class FastPath:
    """How a fine-tune runs on its device.

    Attributes:
        device_type: ``"cuda"`` or ``"cpu"``.
        batch_size: images per step.
        compile: run the student through ``torch.compile``.
        cuda_graphs: replay the training step as CUDA graphs (CUDA, not compiled).
        reason: one line saying why (for logs and run records).
    """

    device_type: str
    batch_size: int
    compile: bool
    reason: str
    cuda_graphs: bool = False


def _is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def choose_fast_path(
    device: str | torch.device,
    *,
    epochs: float,
    train_images: int,
    batch_size: int | None = None,
    compile: bool | None = None,
    is_cuda: Callable[[str | torch.device], bool] = _is_cuda,
    default_batch_cap: int | None = None,
) -> FastPath:
    """The batch size, CUDA-graph and compile decision for a fine-tune of ``epochs`` on ``device``.

    ``batch_size`` / ``compile`` given by the user win; otherwise CUDA gets
    :data:`DEFAULT_BATCH_SIZE` ``["cuda"]`` with CUDA graphs, the CPU batch 128
    in eager mode; ``default_batch_cap`` lowers that default (never a given
    ``batch_size``). ``epochs`` only enters the reason (steps per run).
    """
    cuda = bool(is_cuda(device))
    kind = "cuda" if cuda else "cpu"
    if batch_size is not None:
        batch = int(batch_size)
    else:
        batch = DEFAULT_BATCH_SIZE[kind]
        if default_batch_cap is not None:
            batch = min(batch, int(default_batch_cap))
    batch = max(1, min(batch, max(1, int(train_images))))
    steps = int(epochs * max(1, int(train_images) // batch))
    use_compile = bool(compile)
    if use_compile:
        why = "compiled as asked"
    elif not cuda:
        why = "CPU: eager"
    else:
        why = "CUDA graphs"
    graphs = cuda and not use_compile
    return FastPath(kind, batch, use_compile, f"{why}, batch {batch}, {steps} steps", graphs)


__all__ = ["DEFAULT_BATCH_SIZE", "FastPath", "choose_fast_path"]

"""The fast training path on a GPU, chosen per device: batch size and ``torch.compile``.

On CUDA a fine-tune epoch at batch 128 in eager mode is dominated by kernel
launches (the fake-quantization ops are many small kernels): issue 10
measured 7 s an epoch for a ResNet-18 student on an H200, against 0.91 s at
batch 512 compiled. So on a GPU the default batch is 512 and the student is
compiled (``dynamic=False``; a later trial whose shapes repeat reuses the
compiled code) when the run is long enough to pay for the compilation. On
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
#: Compile on CUDA when the run has at least this many optimizer steps.
COMPILE_MIN_STEPS = 300


@dataclass(frozen=True)
class FastPath:
    """How a fine-tune runs on its device.

    Attributes:
        device_type: ``"cuda"`` or ``"cpu"``.
        batch_size: images per step.
        compile: run the student through ``torch.compile``.
        reason: one line saying why (for logs and run records).
    """

    device_type: str
    batch_size: int
    compile: bool
    reason: str


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
) -> FastPath:
    """The batch size and compile decision for a fine-tune of ``epochs`` on ``device``.

    ``batch_size`` / ``compile`` given by the user win; otherwise CUDA gets
    :data:`DEFAULT_BATCH_SIZE` ``["cuda"]`` and is compiled when the run has at
    least :data:`COMPILE_MIN_STEPS` steps, the CPU batch 128 in eager mode.
    """
    cuda = bool(is_cuda(device))
    kind = "cuda" if cuda else "cpu"
    batch = int(batch_size) if batch_size is not None else DEFAULT_BATCH_SIZE[kind]
    batch = max(1, min(batch, max(1, int(train_images))))
    steps = int(epochs * max(1, int(train_images) // batch))
    if compile is not None:
        use_compile, why = bool(compile), "compile as asked"
    elif not cuda:
        use_compile, why = False, "CPU: eager"
    elif steps >= COMPILE_MIN_STEPS:
        use_compile, why = True, f"CUDA, {steps} steps: compiled"
    else:
        use_compile, why = False, f"CUDA, {steps} steps < {COMPILE_MIN_STEPS}: eager"
    return FastPath(kind, batch, use_compile, f"{why}, batch {batch}")


__all__ = ["COMPILE_MIN_STEPS", "DEFAULT_BATCH_SIZE", "FastPath", "choose_fast_path"]

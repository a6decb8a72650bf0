"""The logits of a model's forward pass, whatever the model returns in training mode.

torchvision's GoogLeNet and Inception v3 return a named tuple in training mode
(``logits`` plus their auxiliary heads' outputs); other models return a plain
tensor, and some user models a tuple whose first element is the logits. Training
and evaluation read the logits through :func:`main_logits`: the auxiliary heads
run in training but get no loss (distillation and teacher training use the main
head only), and export never contains them (they only run in training mode).
"""

from __future__ import annotations

from typing import Any

import torch


def main_logits(output: Any) -> torch.Tensor:
    """The main head's logits of a forward pass: the tensor itself, a named tuple's
    ``logits`` (torchvision's GoogLeNetOutputs / InceptionOutputs), or a tuple's first item."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(
        f"the model's forward returned {type(output).__name__}, not logits (a tensor, a "
        "tuple whose first item is the logits, or an object with a .logits tensor)"
    )

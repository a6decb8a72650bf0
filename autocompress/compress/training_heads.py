"""Training-only heads (GoogLeNet's and Inception v3's auxiliary classifiers) leave students.

Some models run extra layers only in training mode: torchvision's GoogLeNet
(``aux1``, ``aux2``) and Inception v3 (``AuxLogits``) add auxiliary classifiers
to the training loss and skip them in evaluation, so they are never exported or
deployed. Torch-Pruning traces the evaluation forward pass and never sees them:
after the layers that feed them are pruned they would read the wrong number of
channels, and the student's fine-tune (training mode) would fail. A student does
not need them (distillation uses the main head), so :func:`drop_training_only_heads`
removes them, where the model's forward pass allows it (it checks ``is not None``,
as torchvision's do).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

_LOG = logging.getLogger(__name__)


def side_effect_free_forward(
    model: nn.Module, example_input: torch.Tensor, *, training: bool
) -> tuple[Any, set[nn.Module]]:
    """One forward pass in training or evaluation mode that changes nothing: the output and
    the modules it called (no gradients; batch-norm statistics, the RNG and the mode restored)."""
    called: set[nn.Module] = set()
    handles = [
        m.register_forward_hook(lambda module, *_args: called.add(module)) for m in model.modules()
    ]
    # a training pass updates batch-norm running statistics: put them back afterwards
    buffers = {name: b.clone() for name, b in model.named_buffers()} if training else {}
    was_training = model.training
    model.train(training)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            output = model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
    return output, called


def _called(model: nn.Module, example_input: torch.Tensor, *, training: bool) -> set[nn.Module]:
    return side_effect_free_forward(model, example_input, training=training)[1]


def training_only_heads(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """Names of the outermost modules with weights that run only in training mode.

    Where the training-mode forward pass itself fails at this input (Inception v3's
    auxiliary classifier needs more than 96 pixels), every module with weights that
    the evaluation pass does not run counts as training-only."""
    in_eval = _called(model, example_input, training=False)
    unused = [
        (n, m)
        for n, m in model.named_modules()
        if n and m not in in_eval and any(True for _ in m.parameters())
    ]
    if not unused:
        return []  # every layer runs in evaluation: nothing training-only (the common case)
    batch = torch.cat([example_input, example_input])  # batch norm in training needs two
    try:
        in_training = _called(model, batch, training=True)
        only = [n for n, m in unused if m in in_training]
    except Exception:  # a training pass that fails: the layers it alone runs are the suspects
        only = [n for n, _m in unused]
    return [n for n in only if not any(n.startswith(f"{o}.") for o in only)]


def drop_training_only_heads(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """Set every training-only head of ``model`` to None (in place) where its forward pass
    still runs in both modes without it; returns the names dropped."""
    dropped = []
    for name in training_only_heads(model, example_input):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        head = getattr(parent, child)
        setattr(parent, child, None)
        try:
            _called(model, torch.cat([example_input, example_input]), training=True)
            _called(model, example_input, training=False)
        except Exception as exc:  # the forward pass needs it: keep it
            setattr(parent, child, head)
            _LOG.warning("training-only layer %s kept: the forward pass needs it (%s)", name, exc)
            continue
        dropped.append(name)
    return dropped


__all__ = ["drop_training_only_heads", "side_effect_free_forward", "training_only_heads"]

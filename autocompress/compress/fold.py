"""Batch-norm folding: a BN that follows a conv (or linear) is merged into it.

Deployed NPU models run conv + BN as one operator; the student is fine-tuned
and quantized the same way: after pruning, each ``BatchNorm`` whose input is
exactly a ``Conv2d`` (``Linear``) output is folded into that layer and
replaced by ``nn.Identity`` (the name stays, the op is gone). A quantized
layer (one with ``attach_bn``) keeps the BN inside and folds it in every
forward — frozen statistics, trainable scale and shift, quantization applied
to the folded weight — so the statistics can be re-estimated after pruning;
a plain layer gets the BN merged into its weight and bias at once.
"""

from __future__ import annotations

import torch
from torch import nn


def find_conv_bn_pairs(model: nn.Module, example_input: torch.Tensor) -> list[tuple[str, str]]:
    """(layer name, BN name) pairs where the BN consumes the layer's output directly.

    Found by one traced forward (hooks), so it works for any module structure.
    """
    # the outputs are kept referenced so that no id is reused during the forward
    producers: dict[int, tuple[str, torch.Tensor]] = {}
    pairs: list[tuple[str, str]] = []
    handles = []

    def producer_hook(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            producers[id(output)] = (name, output)

        return hook

    def bn_hook(name: str):
        def hook(_module: nn.Module, inputs: tuple) -> None:
            source = producers.get(id(inputs[0]))
            if source is not None and source[1] is inputs[0]:
                pairs.append((source[0], name))

        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            handles.append(module.register_forward_hook(producer_hook(name)))
        elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d) and module.track_running_stats:
            handles.append(module.register_forward_pre_hook(bn_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    seen_layers: set[str] = set()
    unique = []
    for layer, bn in pairs:  # a layer whose output feeds two BNs is left alone
        if layer in seen_layers:
            unique = [p for p in unique if p[0] != layer]
            continue
        seen_layers.add(layer)
        unique.append((layer, bn))
    return unique


@torch.no_grad()
def fold_bn_into(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> None:
    """Fold ``bn`` (eval statistics) into ``layer``'s weight and bias, in place."""
    assert bn.running_var is not None and bn.running_mean is not None
    factor = (bn.running_var + bn.eps).rsqrt()
    if bn.weight is not None:
        factor = factor * bn.weight
    shift = -bn.running_mean * factor
    if bn.bias is not None:
        shift = shift + bn.bias
    weight = layer.weight
    layer.weight.copy_(weight * factor.reshape((-1,) + (1,) * (weight.dim() - 1)).to(weight.dtype))
    if layer.bias is None:
        layer.bias = nn.Parameter(shift.to(weight.dtype).clone())
    else:
        layer.bias.copy_(layer.bias * factor + shift)


def fold_batch_norms(model: nn.Module, example_input: torch.Tensor) -> list[tuple[str, str]]:
    """Fold every foldable BN of ``model`` in place; returns the (layer, BN) pairs folded."""
    pairs = find_conv_bn_pairs(model, example_input)
    for layer_name, bn_name in pairs:
        layer = model.get_submodule(layer_name)
        bn = model.get_submodule(bn_name)
        bn.eval()
        if hasattr(layer, "attach_bn"):
            layer.attach_bn(bn)
        else:
            fold_bn_into(layer, bn)  # type: ignore[arg-type]
        parent_name, _, child = bn_name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Identity())
    return pairs


__all__ = ["find_conv_bn_pairs", "fold_batch_norms", "fold_bn_into"]

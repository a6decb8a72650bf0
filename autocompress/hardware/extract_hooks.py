"""Layer extraction with forward hooks, for models ``torch.fx`` cannot trace.

Sees modules only: convolutions, linear layers, batch-norms, activations and
pooling. Batch-norm and activations fold into the layer right before them when
they read its output; functional ops (residual adds, ``cat``, ``mul``) are
invisible, and liveness is inputs + output only (see docs/cost-model.md).
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.hardware.layer_draft import (
    LayerDraft,
    PrecisionResolver,
    as_pair,
    numel,
    spatial_hw,
)
from autocompress.hardware.layers import LayerKind
from autocompress.hardware.op_kinds import (
    ACTIVATION_MODULES,
    FLOAT_BITS,
    NORM_MODULES,
    POOL_MODULES,
    WEIGHT_MODULES,
    has_precision_attrs,
    inner_weight_module,
)


def extract_with_hooks(
    model: nn.Module, example: torch.Tensor, precision: PrecisionResolver
) -> list[LayerDraft]:
    """Modules only (no functional ops): used when ``torch.fx`` cannot trace the model."""
    drafts: list[LayerDraft] = []
    last_output: list[object] = [None]  # storage pointer of the last draft's output
    handles = []
    wrapped: set[str] = set()
    names: set[str] = set()

    def record(name: str, module: nn.Module):
        def hook(mod: nn.Module, args: tuple, output: object) -> None:
            if not isinstance(output, torch.Tensor) or not args:
                return
            x = args[0]
            if not isinstance(x, torch.Tensor):
                return
            follows = drafts and last_output[0] == x.data_ptr()
            kind_name = type(mod).__name__.lower()
            if isinstance(mod, NORM_MODULES + ACTIVATION_MODULES) and follows:
                drafts[-1].fused_ops.append("bn" if isinstance(mod, NORM_MODULES) else kind_name)
                drafts[-1].output_elements = output.numel()
                last_output[0] = output.data_ptr()
                return
            layer = inner_weight_module(mod)
            unique = name
            counter = 1
            while unique in names:
                unique, counter = f"{name}_{counter}", counter + 1
            names.add(unique)
            if layer is not None and (isinstance(mod, WEIGHT_MODULES) or has_precision_attrs(mod)):
                kind = LayerKind.LINEAR if isinstance(layer, nn.Linear) else LayerKind.CONV
            elif isinstance(mod, POOL_MODULES):
                kind = LayerKind.POOL
            elif isinstance(mod, ACTIVATION_MODULES):
                kind = LayerKind.ACTIVATION
            else:
                kind = LayerKind.ELTWISE
            draft = LayerDraft(unique, kind)
            shape, in_shape = tuple(output.shape), tuple(x.shape)
            draft.batch = shape[0] if len(shape) > 1 else 1
            draft.output_elements, draft.input_elements = output.numel(), x.numel()
            draft.output_hw, draft.input_hw = spatial_hw(shape), spatial_hw(in_shape)
            draft.out_channels = shape[1] if len(shape) > 1 else shape[0]
            draft.in_channels = in_shape[1] if len(in_shape) > 1 else in_shape[0]
            draft.reads = [len(drafts) - 1]
            if kind in (LayerKind.CONV, LayerKind.LINEAR):
                weight, bias = getattr(layer, "weight", None), getattr(layer, "bias", None)
                draft.weight_count = (weight.numel() if weight is not None else 0) + (
                    bias.numel() if isinstance(bias, torch.Tensor) else 0
                )
                if isinstance(layer, nn.Linear):
                    draft.in_channels, draft.out_channels = layer.in_features, layer.out_features
                    draft.macs = output.numel() * layer.in_features
                    draft.input_hw = draft.output_hw = (1, 1)
                else:
                    draft.in_channels, draft.out_channels = layer.in_channels, layer.out_channels
                    draft.groups = layer.groups
                    draft.kernel_size = as_pair(layer.kernel_size)
                    draft.stride = as_pair(layer.stride)
                    draft.dilation = as_pair(layer.dilation)
                    draft.macs = (
                        output.numel()
                        * (layer.in_channels // layer.groups)
                        * numel(layer.kernel_size)
                    )
                holders = [mod] if mod is layer else [mod, layer]
                precision.weight_layer(draft, holders)
            else:
                if kind is LayerKind.POOL and getattr(mod, "kernel_size", None) is not None:
                    draft.kernel_size = as_pair(mod.kernel_size)
                    draft.macs = output.numel() * numel(draft.kernel_size)
                else:
                    draft.macs = max(x.numel(), output.numel())
                bits = drafts[-1].activation_bits if drafts else FLOAT_BITS
                precision.plain_layer(draft, bits)
            drafts.append(draft)
            last_output[0] = output.data_ptr()

        return hook

    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in wrapped):
            continue
        is_wrapper = has_precision_attrs(module) and inner_weight_module(module) is not None
        if is_wrapper:
            wrapped.add(name)
        if is_wrapper or isinstance(
            module, WEIGHT_MODULES + NORM_MODULES + ACTIVATION_MODULES + POOL_MODULES
        ):
            handles.append(module.register_forward_hook(record(name, module)))
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return drafts

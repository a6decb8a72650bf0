"""What each PyTorch op is to an NPU: the tables the layer extractor dispatches on.

A module or function in one of these tables becomes a layer of that kind (or
folds into its producer, or is a free alias of its input); anything else that
produces a tensor is costed as a generic element-wise op. Functions appear both
as callables (``torch.relu``) and as method names (``"relu"``), since ``torch.fx``
records ``x.relu()`` as a method call.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

FLOAT_BITS = 32  # a layer with no precision given is float32
# Attributes the compression engine's quantized layers carry (read on the layer or its wrapper).
PRECISION_ATTRS = ("weight_bits", "activation_bits", "sparsity_pattern")

WEIGHT_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
NORM_MODULES = (nn.modules.batchnorm._BatchNorm,)
ACTIVATION_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.SiLU,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Mish,
    nn.ELU,
    nn.Softplus,
)
POOL_MODULES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)
ALIAS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Unflatten)

ACTIVATION_FUNCTIONS: set[object] = {
    F.relu,
    F.relu6,
    F.leaky_relu,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.silu,
    F.gelu,
    F.sigmoid,
    F.tanh,
    F.mish,
    F.elu,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    "relu",
    "relu_",
    "sigmoid",
    "tanh",
    "clamp",
    "clamp_",
    "clamp_min",
    "clamp_max",
    torch.clamp,
}
ADD_FUNCTIONS: set[object] = {operator.add, operator.iadd, torch.add, "add", "add_"}
SCALE_FUNCTIONS: set[object] = {
    operator.sub,
    operator.isub,
    operator.mul,
    operator.imul,
    operator.truediv,
    operator.itruediv,
    torch.sub,
    torch.mul,
    torch.div,
    "sub",
    "sub_",
    "mul",
    "mul_",
    "div",
    "div_",
}
CONCAT_FUNCTIONS: set[object] = {torch.cat, torch.concat, torch.stack}
POOL_FUNCTIONS: set[object] = {
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F.max_pool2d,
    F.avg_pool2d,
    torch.mean,
    "mean",
}
ALIAS_FUNCTIONS: set[object] = {
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.transpose,
    torch.permute,
    torch.chunk,
    torch.split,
    F.dropout,
    operator.getitem,
    "flatten",
    "view",
    "reshape",
    "squeeze",
    "unsqueeze",
    "contiguous",
    "transpose",
    "permute",
    "chunk",
    "split",
    "expand",
    "expand_as",
    "float",
    "to",
    "type_as",
    "detach",
}
MATMUL_FUNCTIONS: set[object] = {torch.matmul, torch.bmm, operator.matmul, "matmul", "bmm"}


def inner_weight_module(module: nn.Module) -> nn.Module | None:
    """The conv/linear a module is, or the single one it wraps."""
    if isinstance(module, WEIGHT_MODULES):
        return module
    found = [m for m in module.modules() if isinstance(m, WEIGHT_MODULES)]
    return found[0] if len(found) == 1 else None


def has_precision_attrs(module: nn.Module) -> bool:
    """Whether a module carries ``weight_bits`` / ``activation_bits`` / ``sparsity_pattern``."""
    return any(hasattr(module, attr) for attr in PRECISION_ATTRS)

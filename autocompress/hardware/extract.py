"""Layer descriptors from a real ``nn.Module``: :func:`extract_layers`.

The model is traced with ``torch.fx`` (which sees residual ``add``, ``cat``,
``flatten`` and the other functional ops of torchvision models) and run once
on a zero tensor to get every real shape. Models ``torch.fx`` cannot trace
(data-dependent control flow) fall back to forward hooks on the modules, which
see convolutions, linear layers, batch-norm, activations and pooling but not
functional ops (residual adds are then missing; see docs/cost-model.md).

What every NPU toolchain fuses is folded, never costed on its own:

- batch-norm into the convolution / linear layer that feeds it (``"bn"``);
- activations (ReLU, ReLU6, hard-swish, …) and scalar affine ops into their
  producer (``"relu"``, ``"hardswish"`` …);
- a residual ``add`` into the convolution that produces one of its inputs
  (``"add"``; the other input is read as ``extra_input_elements``), so
  conv + bn + add + relu is one launch.

An op is fused only when its producer's output has no other user (otherwise
the un-fused tensor must exist in memory anyway).

Precision per conv/linear layer: an explicit ``weight_bits`` /
``activation_bits`` / ``sparsity`` argument wins; else the module's attributes
``weight_bits`` / ``activation_bits`` / ``sparsity_pattern`` (on the layer or
on a wrapper module around it); else 32 (float). Layers without weights
(pooling, element-wise ops) run at the activation width of their input.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from contextlib import contextmanager, suppress

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from autocompress.core.errors import ConfigError
from autocompress.hardware.extract_hooks import extract_with_hooks
from autocompress.hardware.layer_draft import (
    BitsArg,
    LayerDraft,
    PrecisionResolver,
    as_pair,
    numel,
    spatial_hw,
)
from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.op_kinds import (
    ACTIVATION_FUNCTIONS,
    ACTIVATION_MODULES,
    ADD_FUNCTIONS,
    ALIAS_FUNCTIONS,
    ALIAS_MODULES,
    CONCAT_FUNCTIONS,
    FLOAT_BITS,
    MATMUL_FUNCTIONS,
    NORM_MODULES,
    POOL_FUNCTIONS,
    POOL_MODULES,
    SCALE_FUNCTIONS,
    WEIGHT_MODULES,
    has_precision_attrs,
    inner_weight_module,
)

_INPUT = -1  # tensor id of the network input


class _GraphWalker:
    """Turns a shape-propagated fx graph into drafts, fusing as NPU toolchains do."""

    def __init__(self, gm: fx.GraphModule, precision: PrecisionResolver) -> None:
        self.gm = gm
        self.precision = precision
        self.drafts: list[LayerDraft] = []
        self.owner: dict[fx.Node, int] = {}  # node -> tensor id (draft index or _INPUT)
        self.head: dict[int, fx.Node] = {}  # draft index -> the node holding its output
        self.alias_of: dict[fx.Node, fx.Node] = {}
        self.input_elements = 0
        self.output_ids: list[int] = []
        self.names: set[str] = set()

    # -- shapes -------------------------------------------------------------
    @staticmethod
    def _shape(node: object) -> tuple[int, ...] | None:
        if not isinstance(node, fx.Node):
            return None
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        return None if shape is None else tuple(int(s) for s in shape)

    def _tensor_inputs(self, node: fx.Node) -> list[fx.Node]:
        found: list[fx.Node] = []

        def visit(arg: object) -> None:
            if isinstance(arg, fx.Node):
                if arg in self.owner:
                    found.append(arg)
            elif isinstance(arg, (list, tuple)):
                for item in arg:
                    visit(item)

        for arg in node.args:
            visit(arg)
        for arg in node.kwargs.values():
            visit(arg)
        return found

    # -- naming -------------------------------------------------------------
    def _scope(self, node: fx.Node) -> str:
        stack = node.meta.get("nn_module_stack")
        if stack:
            last = list(stack.values())[-1]
            return last[0] if isinstance(last, tuple) else str(last)
        return ""

    def _unique(self, name: str) -> str:
        candidate, suffix = name, 1
        while candidate in self.names:
            candidate = f"{name}_{suffix}"
            suffix += 1
        self.names.add(candidate)
        return candidate

    def _function_name(self, node: fx.Node, op: str) -> str:
        scope = self._scope(node)
        return self._unique(f"{scope}.{op}" if scope else op)

    # -- bookkeeping --------------------------------------------------------
    def _new(self, node: fx.Node, name: str, kind: LayerKind, inputs: list[fx.Node]) -> LayerDraft:
        draft = LayerDraft(name, kind)
        index = len(self.drafts)
        self.drafts.append(draft)
        self.owner[node] = index
        self.head[index] = node
        draft.reads = [self.owner[i] for i in inputs]
        shape = self._shape(node) or (1,)
        draft.batch = shape[0] if len(shape) > 1 else 1
        draft.output_elements = numel(shape)
        draft.output_hw = spatial_hw(shape)
        draft.out_channels = shape[1] if len(shape) > 1 else shape[0]
        if inputs:
            in_shape = self._shape(inputs[0]) or (1,)
            draft.input_elements = numel(in_shape)
            draft.input_hw = spatial_hw(in_shape)
            draft.in_channels = in_shape[1] if len(in_shape) > 1 else in_shape[0]
            draft.extra_input_elements = sum(numel(self._shape(i) or ()) for i in inputs[1:])
        return draft

    def _input_bits(self, inputs: list[fx.Node]) -> int:
        for node in inputs:
            index = self.owner.get(node, _INPUT)
            if index >= 0:
                return self.drafts[index].activation_bits
        return FLOAT_BITS

    def _fusable_owner(self, node: fx.Node) -> int | None:
        """The draft whose output ``node`` is, if nothing else uses that output."""
        while node in self.alias_of:
            if len(node.users) != 1:
                return None
            node = self.alias_of[node]
        index = self.owner.get(node, _INPUT)
        if index < 0 or self.head.get(index) is not node or len(node.users) != 1:
            return None
        return index

    def _fuse(self, node: fx.Node, index: int, tag: str) -> None:
        draft = self.drafts[index]
        draft.fused_ops.append(tag)
        self.owner[node] = index
        self.head[index] = node
        shape = self._shape(node)
        if shape is not None:
            draft.output_elements = numel(shape)

    def _alias(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        if inputs:
            self.owner[node] = self.owner[inputs[0]]
            self.alias_of[node] = inputs[0]

    # -- op handlers --------------------------------------------------------
    def _weight_layer(self, node: fx.Node, module: nn.Module, inputs: list[fx.Node]) -> None:
        layer = inner_weight_module(module)
        name = self._unique(str(node.target))
        kind = LayerKind.LINEAR if isinstance(layer, nn.Linear) else LayerKind.CONV
        draft = self._new(node, name, kind, inputs[:1])
        draft.extra_input_elements = 0
        draft.reads = [self.owner[inputs[0]]] if inputs else []
        out_shape = self._shape(node) or (1,)
        in_shape = self._shape(inputs[0]) if inputs else out_shape
        weight = getattr(layer, "weight", None)
        bias = getattr(layer, "bias", None)
        draft.weight_count = (weight.numel() if weight is not None else 0) + (
            bias.numel() if isinstance(bias, torch.Tensor) else 0
        )
        if isinstance(layer, nn.Linear):
            draft.in_channels, draft.out_channels = layer.in_features, layer.out_features
            draft.macs = numel(out_shape) * layer.in_features
            draft.input_hw = (1, numel(in_shape[1:-1])) if len(in_shape) > 2 else (1, 1)
            draft.output_hw = (1, numel(out_shape[1:-1])) if len(out_shape) > 2 else (1, 1)
        else:
            conv: nn.modules.conv._ConvNd = layer  # type: ignore[assignment]
            draft.in_channels, draft.out_channels = conv.in_channels, conv.out_channels
            draft.groups = conv.groups
            draft.kernel_size = as_pair(conv.kernel_size)
            draft.stride = as_pair(conv.stride)
            draft.dilation = as_pair(conv.dilation)
            kernel = numel(conv.kernel_size)
            if isinstance(conv, nn.ConvTranspose2d):
                draft.macs = numel(in_shape) * (conv.out_channels // conv.groups) * kernel
            else:
                draft.macs = numel(out_shape) * (conv.in_channels // conv.groups) * kernel
        holders = [module] if module is layer else [module, layer]
        parent = self._parent(str(node.target))
        if parent is not None and has_precision_attrs(parent):
            holders.append(parent)
        self.precision.weight_layer(draft, holders)

    def _parent(self, qualname: str) -> nn.Module | None:
        parent_name = qualname.rpartition(".")[0]
        if not parent_name:
            return None
        try:
            return self.gm.get_submodule(parent_name)
        except AttributeError:
            return None

    def _pointwise(self, node: fx.Node, inputs: list[fx.Node], tag: str, name: str) -> None:
        """Activation / norm / scalar affine op: fused into its producer when possible."""
        index = self._fusable_owner(inputs[0]) if inputs else None
        if index is not None and self.drafts[index].kind is not LayerKind.POOL:
            self._fuse(node, index, tag)
            return
        kind = LayerKind.ACTIVATION if tag not in ("bn", "affine") else LayerKind.ELTWISE
        draft = self._new(node, self._unique(name), kind, inputs[:1])
        draft.macs = draft.output_elements
        self.precision.plain_layer(draft, self._input_bits(inputs))

    def _residual_add(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        candidates = []
        for position, tensor in enumerate(inputs):
            index = self._fusable_owner(tensor)
            if (
                index is not None
                and self.drafts[index].kind in (LayerKind.CONV, LayerKind.LINEAR)
                and "add" not in self.drafts[index].fused_ops
            ):
                candidates.append((index, position))
        if candidates and numel(self._shape(node) or ()) == numel(
            self._shape(inputs[candidates[-1][1]]) or ()
        ):
            index, position = max(candidates)
            draft = self.drafts[index]
            for other, tensor in enumerate(inputs):
                if other != position:
                    draft.extra_input_elements += numel(self._shape(tensor) or ())
                    draft.reads.append(self.owner[tensor])
            self._fuse(node, index, "add")
            return
        self._eltwise(node, inputs, "add")

    def _eltwise(self, node: fx.Node, inputs: list[fx.Node], op: str) -> None:
        draft = self._new(node, self._function_name(node, op), LayerKind.ELTWISE, inputs)
        draft.macs = draft.output_elements
        self.precision.plain_layer(draft, self._input_bits(inputs))

    def _pool(self, node: fx.Node, inputs: list[fx.Node], name: str, module=None) -> None:
        draft = self._new(node, name, LayerKind.POOL, inputs[:1])
        draft.in_channels = draft.out_channels
        kernel = getattr(module, "kernel_size", None)
        if kernel is not None:
            draft.kernel_size = as_pair(kernel)
            draft.stride = as_pair(getattr(module, "stride", None) or kernel)
            draft.macs = draft.output_elements * numel(draft.kernel_size)
        else:  # adaptive / global pooling: every input element is read once
            draft.kernel_size = draft.input_hw
            draft.macs = draft.input_elements
        self.precision.plain_layer(draft, self._input_bits(inputs))

    def _matmul(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        draft = self._new(node, self._function_name(node, "matmul"), LayerKind.LINEAR, inputs)
        first = self._shape(inputs[0]) or (1,)
        draft.macs = draft.output_elements * first[-1]
        draft.in_channels = first[-1]
        draft.out_channels = (self._shape(node) or (1,))[-1]
        self.precision.plain_layer(draft, self._input_bits(inputs))

    def _attention(self, node: fx.Node, module: nn.MultiheadAttention, inputs) -> None:
        """Q/K/V/output projections + the two attention matmuls, as one linear layer."""
        query = self._shape(inputs[0]) or (1, 1, module.embed_dim)
        key = self._shape(inputs[1]) if len(inputs) > 1 else query
        key = key or query
        if module.batch_first:
            batch, length, source = query[0], query[1], key[1]
        else:
            length, batch, source = query[0], query[1], key[0]
        embed = module.embed_dim
        draft = self._new(node, self._unique(str(node.target)), LayerKind.LINEAR, inputs[:1])
        draft.batch = batch
        draft.in_channels = draft.out_channels = embed
        draft.output_elements = batch * length * embed
        draft.input_hw = draft.output_hw = (1, length)
        draft.macs = batch * (
            2 * length * embed * embed + 2 * source * embed * embed + 2 * length * source * embed
        )
        draft.weight_count = sum(p.numel() for p in module.parameters())
        # a student's out_proj carries the block's bits (compress.attention)
        self.precision.weight_layer(draft, [module.out_proj, module])

    # -- dispatch -----------------------------------------------------------
    def walk(self) -> list[LayerDraft]:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if not self.owner and self._shape(node) is not None:
                    self.owner[node] = _INPUT
                    self.input_elements = numel(self._shape(node) or ())
                continue
            if node.op == "output":
                self.output_ids = [self.owner[n] for n in self._tensor_inputs(node)]
                continue
            if node.op == "get_attr":
                continue
            inputs = self._tensor_inputs(node)
            if node.op == "call_module":
                self._module_node(node, inputs)
            else:
                self._function_node(node, inputs)
        return self.drafts

    def _module_node(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        module = self.gm.get_submodule(str(node.target))
        name = str(node.target)
        if inner_weight_module(module) is not None and (
            isinstance(module, WEIGHT_MODULES) or has_precision_attrs(module)
        ):
            self._weight_layer(node, module, inputs)
        elif isinstance(module, NORM_MODULES):
            self._pointwise(node, inputs, "bn", name)
        elif isinstance(module, ACTIVATION_MODULES):
            self._pointwise(node, inputs, type(module).__name__.lower(), name)
        elif isinstance(module, POOL_MODULES):
            self._pool(node, inputs, self._unique(name), module)
        elif isinstance(module, nn.MultiheadAttention) and inputs:
            self._attention(node, module, inputs)
        elif isinstance(module, ALIAS_MODULES) or has_precision_attrs(module):
            self._alias(node, inputs)
        elif self._shape(node) is not None and inputs:
            draft = self._new(node, self._unique(name), LayerKind.ELTWISE, inputs)
            draft.macs = draft.output_elements
            draft.weight_count = sum(p.numel() for p in module.parameters())
            self.precision.plain_layer(draft, self._input_bits(inputs))
        elif inputs:
            self._alias(node, inputs)

    def _function_node(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        target = node.target
        if not inputs:
            return
        if target in ALIAS_FUNCTIONS:
            self._alias(node, inputs)
        elif self._shape(node) is None:
            return  # size(), shape arithmetic: no tensor
        elif target in ADD_FUNCTIONS:
            if len(inputs) >= 2:
                self._residual_add(node, inputs)
            else:
                self._pointwise(node, inputs, "affine", self._function_name(node, "add"))
        elif target in SCALE_FUNCTIONS:
            op = target if isinstance(target, str) else getattr(target, "__name__", "mul")
            if len(inputs) >= 2:
                self._eltwise(node, inputs, op.strip("_").lstrip("i") if op != "imul" else "mul")
            else:
                self._pointwise(node, inputs, "affine", self._function_name(node, "scale"))
        elif target in ACTIVATION_FUNCTIONS:
            op = target if isinstance(target, str) else getattr(target, "__name__", "act")
            self._pointwise(node, inputs, op.strip("_"), self._function_name(node, op.strip("_")))
        elif target in POOL_FUNCTIONS:
            self._pool(node, inputs, self._function_name(node, "pool"))
        elif target in CONCAT_FUNCTIONS:
            self._eltwise(node, inputs, "cat")
        elif target in MATMUL_FUNCTIONS and len(inputs) >= 2:
            self._matmul(node, inputs)
        elif getattr(target, "__name__", None) == "einsum":
            self._einsum(node, inputs)
        elif getattr(target, "__name__", None) == "shifted_window_attention":
            self._window_attention(node, inputs)
        elif getattr(target, "__name__", None) == "scaled_dot_product_attention":
            self._sdpa(node, inputs)
        else:
            name = target if isinstance(target, str) else getattr(target, "__name__", "op")
            origin = getattr(target, "__module__", "") or ""
            if callable(target) and not origin.startswith(("torch", "_operator", "builtins")):
                warnings.warn(
                    f"cost: the function {origin}.{name} (in {self._scope(node) or 'the model'}) "
                    "is not a known operation; it is costed as one element-wise op over its "
                    "output, so any matmuls or weights inside it are not counted",
                    UserWarning,
                    stacklevel=2,
                )
            self._eltwise(node, inputs, str(name))

    def _einsum(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        """MACs of an einsum: the product of every index's size (a contraction)."""
        equation = node.args[0] if node.args and isinstance(node.args[0], str) else ""
        operands = [self._shape(i) for i in inputs]
        sizes: dict[str, int] = {}
        lhs = equation.replace(" ", "").split("->")[0].split(",") if equation else []
        for letters, shape in zip(lhs, operands, strict=False):
            if shape is None or "." in letters or len(letters) != len(shape):
                continue
            for letter, size in zip(letters, shape, strict=True):
                sizes[letter] = max(sizes.get(letter, 1), size)
        draft = self._new(node, self._function_name(node, "einsum"), LayerKind.LINEAR, inputs)
        macs = 1
        for size in sizes.values():
            macs *= size
        draft.macs = macs if sizes else draft.output_elements
        self.precision.plain_layer(draft, self._input_bits(inputs))

    def _sdpa(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        """q @ kᵀ and attention @ v: 2 · B·H · L · S · D multiply-accumulates."""
        query = self._shape(inputs[0]) or (1, 1, 1)
        key = (self._shape(inputs[1]) if len(inputs) > 1 else None) or query
        draft = self._new(node, self._function_name(node, "attention"), LayerKind.LINEAR, inputs)
        lead = numel(query[:-2]) if len(query) > 2 else 1
        draft.macs = 2 * lead * query[-2] * key[-2] * query[-1]
        self.precision.plain_layer(draft, self._input_bits(inputs))

    def _window_attention(self, node: fx.Node, inputs: list[fx.Node]) -> None:
        """torchvision's Swin ``shifted_window_attention``: the qkv and output projections
        (its Linear layers' weights, read functionally) plus the two attention matmuls
        per window, on the input padded to whole windows."""
        shape = self._shape(node.args[0]) if node.args else None
        window = node.args[4] if len(node.args) > 4 else None
        if shape is None or len(shape) != 4 or not isinstance(window, (list, tuple)):
            self._eltwise(node, inputs, "shifted_window_attention")
            return
        batch, height, width, channels = shape
        wh, ww = int(window[0]), int(window[1])
        padded = batch * (-(-height // wh) * wh) * (-(-width // ww) * ww)
        holders = []
        for arg in node.args[1:3]:
            if isinstance(arg, fx.Node) and arg.op == "get_attr":
                owner = str(arg.target).rpartition(".")[0]
                with suppress(AttributeError):
                    holders.append(self.gm.get_submodule(owner))
        if not holders:  # a routed student passes computed (quantized) weights: its layers
            with suppress(AttributeError):
                owner = self.gm.get_submodule(self._scope(node))
                holders = [
                    m for m in (getattr(owner, "qkv", None), getattr(owner, "proj", None)) if m
                ]
        draft = self._new(
            node, self._function_name(node, "window_attention"), LayerKind.LINEAR, inputs[:1]
        )
        draft.in_channels = draft.out_channels = channels
        draft.macs = (
            padded * (3 * channels * channels + channels * channels)
            + 2 * padded * (wh * ww) * channels
        )
        draft.weight_count = 4 * channels * channels
        if holders:
            self.precision.weight_layer(draft, holders)
        else:
            self.precision.plain_layer(draft, self._input_bits(inputs))


class _LeafTracer(fx.Tracer):
    """Keeps layers, norms, activations, pools and quantized wrappers as single nodes."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if has_precision_attrs(m) or isinstance(m, (*WEIGHT_MODULES, nn.MultiheadAttention)):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _live_elements(
    drafts: list[LayerDraft], input_elements: int, output_ids: list[int]
) -> list[int]:
    """Activation elements alive while each layer runs (residual branches included)."""
    size = {_INPUT: input_elements}
    last_use = {_INPUT: -1}
    for index, draft in enumerate(drafts):
        size[index] = draft.output_elements
        last_use.setdefault(index, index)
        for tensor in draft.reads:
            last_use[tensor] = max(last_use.get(tensor, -1), index)
    for tensor in output_ids:
        last_use[tensor] = len(drafts)
    live = []
    for index in range(len(drafts)):
        total = 0
        for tensor, end in last_use.items():
            if tensor <= index <= end or (tensor == _INPUT and index <= end):
                total += size[tensor]
        live.append(total)
    return live


# -- forward-hook fallback ---------------------------------------------------


@contextmanager
def _untouched(model: nn.Module):
    """Eval mode for the duration; every module's mode and every buffer restored afterwards.

    Buffers are restored too, so an observer that updates statistics even in
    eval mode (e.g. a quantized layer left calibrating) keeps its own values.
    """
    modes = [(m, m.training) for m in model.modules()]
    with torch.no_grad():
        buffers = [(b, b.clone()) for b in model.buffers() if b is not None]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        with torch.no_grad():
            for buffer, saved in buffers:
                if buffer.shape == saved.shape:
                    buffer.copy_(saved)


def _example_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise ConfigError(f"input shape must be a tuple of positive integers, got {input_shape!r}")
    if any(s <= 0 for s in shape):
        raise ConfigError(f"input shape must be positive in every dimension, got {shape}")
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) < 2:
        raise ConfigError(
            f"input shape {tuple(input_shape)} is too short: give (C, H, W), (N, C, H, W) "
            "or (N, features)"
        )
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(shape, dtype=dtype, device=device)


def _failed_on(example: torch.Tensor, exc: BaseException) -> ConfigError:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return ConfigError(
        f"the model failed on an input of shape {tuple(example.shape)}: "
        f"{type(exc).__name__}: {lines[0].strip()[:300] if lines else ''}",
        hint="Check the input size (C×H×W) against the model: its channels must match "
        "the first layer, and an input too small for its down-sampling fails "
        "(ViT and MaxViT need 224×224).",
    )


def _check_runs(model: nn.Module, example: torch.Tensor) -> None:
    """ConfigError (one line, no traceback) when a plain forward pass fails."""
    try:
        model(example)
    except Exception as exc:
        raise _failed_on(example, exc) from None


def _check_bits(arg: BitsArg, what: str) -> None:
    values = [arg] if isinstance(arg, int) else list(arg.values()) if arg is not None else []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
            raise ConfigError(f"{what} must be an integer between 1 and 32, got {value!r}")


def _check_names(precision: PrecisionResolver, drafts: list[LayerDraft], args: dict) -> None:
    known = [d.name for d in drafts if d.kind in (LayerKind.CONV, LayerKind.LINEAR)]
    all_names = {d.name for d in drafts}
    for what, arg in args.items():
        if not isinstance(arg, Mapping):
            continue
        for name in arg:
            if name not in precision.used_names and name not in all_names:
                close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ConfigError(
                    f"{what} names layer {name!r}, which the model does not have{hint}",
                    hint="Layer names are the model's named_modules() names of its conv/linear "
                    "layers, e.g. 'layer1.0.conv1'.",
                )


def extract_layers(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    weight_bits: BitsArg = None,
    activation_bits: BitsArg = None,
    sparsity: Mapping[str, str | None] | None = None,
) -> list[LayerDescriptor]:
    """Layer descriptors of ``model`` on an input of ``input_shape``, in execution order.

    Args:
        model: any ``nn.Module`` taking one image tensor; it is run once in eval
            mode under ``no_grad`` on zeros and left as it was (modes restored).
        input_shape: ``(C, H, W)`` (a batch of 1 is prepended) or, with any
            other length, the full shape including the batch (``(N, C, H, W)``).
        weight_bits / activation_bits: one width for every conv/linear layer, or
            a mapping ``layer name -> bits``; they win over module attributes.
        sparsity: ``layer name -> pattern`` (e.g. ``"2:4"``; ``None`` for dense).

    Returns:
        Descriptors with batch-norm, activations and residual adds fused into
        their producers, each with the activation elements alive while it runs
        (``live_elements``, residual branches included).

    Raises:
        ConfigError: a malformed shape or bit-width, a layer name the model
            lacks, or a model that fails on that input.
    """
    _check_bits(weight_bits, "weight_bits")
    _check_bits(activation_bits, "activation_bits")
    return _extract(model, input_shape, weight_bits, activation_bits, sparsity)


def _extract(model, input_shape, weight_bits, activation_bits, sparsity):
    if not isinstance(model, nn.Module):
        raise ConfigError(f"expected a torch.nn.Module, got {type(model).__name__}")
    example = _example_input(model, input_shape)
    precision = PrecisionResolver(weight_bits, activation_bits, sparsity)
    with _untouched(model), torch.no_grad():
        _check_runs(model, example)
        try:
            gm = fx.GraphModule(model, _LeafTracer().trace(model))
        except Exception:  # data-dependent control flow etc.: hooks see the modules
            gm = None
        try:
            if gm is not None:
                ShapeProp(gm).propagate(example)
                walker = _GraphWalker(gm, precision)
                drafts = walker.walk()
                live = _live_elements(drafts, walker.input_elements, walker.output_ids)
            else:
                drafts = extract_with_hooks(model, example, precision)
                live = _live_elements(drafts, example.numel(), [len(drafts) - 1])
        except ConfigError:
            raise
        except Exception as exc:
            raise _failed_on(example, exc) from None
    _check_names(
        precision,
        drafts,
        {"weight_bits": weight_bits, "activation_bits": activation_bits, "sparsity": sparsity},
    )
    return [draft.freeze(live_count) for draft, live_count in zip(drafts, live, strict=True)]


__all__ = ["extract_layers"]

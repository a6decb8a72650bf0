"""The public cost API: :func:`estimate_cost` (one model, one chip) and :func:`estimate_costs`.

Both ask the chip's own plugin first (``autocompress_estimate_cost``, then
``autocompress_layer_cost`` per layer, through
:mod:`autocompress.hardware.plugins`) and fall back to the analytical model of
:mod:`autocompress.hardware.cost_model`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from torch import nn

from autocompress.core.errors import ConfigError
from autocompress.core.input_shape import parse_image_shape, parse_sizes
from autocompress.core.models import build_model
from autocompress.core.sparsity_pattern import parse_nm
from autocompress.hardware.calibration_store import calibrated_spec
from autocompress.hardware.cost import Cost, LayerCost
from autocompress.hardware.cost_model import cost_layers
from autocompress.hardware.extract import BitsArg, extract_layers
from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.plugins import (
    default_registry,
    get_chip,
    override_cost,
    override_layer_cost,
)
from autocompress.hardware.spec import ChipSpec

ChipArg = str | ChipSpec


def resolve_chip(chip: ChipArg) -> ChipSpec:
    """A :class:`ChipSpec` from an id (installed plugins) or the spec itself."""
    if isinstance(chip, ChipSpec):
        return chip
    if not isinstance(chip, str):
        raise ConfigError(f"chip must be an id like 'rockchip/rv1126' or a ChipSpec, got {chip!r}")
    return get_chip(chip)


def normalize_input_shape(input_shape: int | Sequence[int]) -> tuple[int, ...]:
    """``224`` -> ``(3, 224, 224)``; a (C, H, W) or (N, C, H, W) sequence as a tuple
    (parsed by :mod:`autocompress.core.input_shape`)."""
    if isinstance(input_shape, bool):
        raise ConfigError(f"input shape must be a size or a (C, H, W) tuple, got {input_shape!r}")
    if isinstance(input_shape, (int, str)):
        return parse_image_shape(input_shape, what="input shape", allow_batch=True)
    try:
        sizes = [int(s) for s in input_shape]
    except (TypeError, ValueError):
        raise ConfigError(
            f"input shape must be a size or a (C, H, W) tuple, got {input_shape!r}"
        ) from None
    return parse_sizes(
        sizes, what="input shape", counts=(3, 4), forms="(C, H, W) or (N, C, H, W), sizes > 0"
    )


def check_bits_supported(
    chip: ChipSpec,
    *,
    weight_bits: BitsArg = None,
    activation_bits: BitsArg = None,
    sparsity: Mapping[str, str | None] | None = None,
) -> None:
    """Raise :class:`ConfigError` for an explicitly requested precision the chip cannot run."""
    checks = (
        ("weight", weight_bits, tuple(chip.weight_bits_supported)),
        ("activation", activation_bits, tuple(chip.activation_bits_supported)),
    )
    for what, arg, supported in checks:
        values = [arg] if isinstance(arg, int) else list(arg.values()) if arg else []
        for bits in values:
            if bits not in supported:
                widths = ", ".join(str(b) for b in sorted(supported))
                raise ConfigError(
                    f"{chip.chip_id} cannot run {bits}-bit {what}s; it supports {what} "
                    f"bit-widths {widths}",
                    hint=f"Pick one of {widths} (see `autocompress chips show {chip.chip_id}`).",
                )
    for name, pattern in (sparsity or {}).items():
        if pattern and pattern not in chip.sparsity_patterns:
            listed = ", ".join(chip.sparsity_patterns) or "none"
            raise ConfigError(
                f"{chip.chip_id} does not accelerate sparsity pattern {pattern!r} "
                f"(layer {name!r}); patterns it supports: {listed}"
            )


def _with_layer_overrides(cost: Cost, layers: Sequence[LayerDescriptor], chip: ChipSpec) -> Cost:
    """Replace the layers the chip's plugin costs itself, and re-add the totals."""
    replaced = False
    merged: list[LayerCost] = []
    for layer, layer_cost in zip(layers, cost.layers, strict=True):
        custom = override_layer_cost(chip, layer)
        if custom is not None:
            replaced = True
            merged.append(custom)
        else:
            merged.append(layer_cost)
    if not replaced:
        return cost
    latency_ms = sum(item.latency_ms for item in merged)
    energy_mj = sum(item.energy_mj for item in merged)
    return Cost(
        chip_id=cost.chip_id,
        latency_ms=latency_ms,
        energy_mj=energy_mj,
        power_mw=energy_mj / latency_ms * 1e3 if latency_ms > 0 else 0.0,
        peak_memory_kb=cost.peak_memory_kb,
        model_size_kb=cost.model_size_kb,
        macs=sum(item.macs for item in merged),
        layers=tuple(merged),
    )


def _owner_hooks(chip: ChipSpec) -> frozenset[str]:
    """Cost hooks the plugin that contributed ``chip`` implements (none for other specs)."""
    registry = default_registry()
    owner = registry.plugin_of(chip.chip_id)
    if owner is None:
        return frozenset()
    return frozenset(registry.hook_functions(owner))


def cost_on_chip(layers: Sequence[LayerDescriptor], chip: ChipSpec) -> Cost:
    """The chip plugin's own cost if it has one, else the analytical model (+ layer hooks).

    The active calibration (:mod:`autocompress.hardware.calibration_store`) is applied first.
    """
    chip = calibrated_spec(chip)
    hooks = _owner_hooks(chip)
    if "autocompress_estimate_cost" in hooks:
        custom = override_cost(chip, layers)
        if custom is not None:
            return custom
    cost = cost_layers(layers, chip)
    if "autocompress_layer_cost" in hooks:
        cost = _with_layer_overrides(cost, layers, chip)
    return cost


def estimate_costs(layers: Sequence[LayerDescriptor], chips: Iterable[ChipArg]) -> dict[str, Cost]:
    """Cost the same descriptors on many chips: ``chip_id -> Cost``, in the order given."""
    return {spec.chip_id: cost_on_chip(layers, spec) for spec in map(resolve_chip, chips)}


def _build(model: nn.Module | str, shape: tuple[int, ...], num_classes: int, small_input: bool):
    if isinstance(model, nn.Module):
        return model
    if not isinstance(model, str):
        raise ConfigError(f"model must be an nn.Module or a model name, got {type(model).__name__}")
    in_channels = shape[-3]
    return build_model(
        model, num_classes=num_classes, in_channels=in_channels, small_input=small_input
    )


def sparsify_everywhere(
    layers: Sequence[LayerDescriptor], pattern: str, chip: ChipSpec
) -> list[LayerDescriptor]:
    """``layers`` with the N:M ``pattern`` on every layer it fits: conv/linear, not
    depthwise, input channels per group a whole number of blocks of M.

    Raises:
        ConfigError: ``pattern`` is not N:M, or ``chip`` does not accelerate it.
    """
    _kept, block = parse_nm(pattern)
    if pattern not in chip.sparsity_patterns:
        listed = ", ".join(chip.sparsity_patterns) or "none"
        raise ConfigError(
            f"sparsity {pattern}: {chip.chip_id} does not accelerate this pattern "
            f"(patterns it supports: {listed})"
        )
    return [
        layer.with_precision(sparsity_pattern=pattern) if _sparsifiable(layer, block) else layer
        for layer in layers
    ]


def _sparsifiable(layer: LayerDescriptor, block: int) -> bool:
    if layer.kind.value not in ("conv", "linear") or layer.is_depthwise:
        return False
    return (layer.in_channels // layer.groups) % block == 0


def estimate_with_layers(
    model: nn.Module | str,
    input_shape: int | Sequence[int],
    chip: ChipArg,
    *,
    weight_bits: BitsArg = None,
    activation_bits: BitsArg = None,
    sparsity: Mapping[str, str | None] | None = None,
    num_classes: int = 1000,
    small_input: bool = False,
) -> tuple[list[LayerDescriptor], Cost]:
    """Like :func:`estimate_cost`, also returning the descriptors (for per-layer tables)."""
    spec = resolve_chip(chip)
    shape = normalize_input_shape(input_shape)
    check_bits_supported(
        spec, weight_bits=weight_bits, activation_bits=activation_bits, sparsity=sparsity
    )
    module = _build(model, shape, num_classes, small_input)
    layers = extract_layers(
        module, shape, weight_bits=weight_bits, activation_bits=activation_bits, sparsity=sparsity
    )
    return layers, cost_on_chip(layers, spec)


def estimate_cost(
    model: nn.Module | str,
    input_shape: int | Sequence[int],
    chip: ChipArg,
    *,
    weight_bits: BitsArg = None,
    activation_bits: BitsArg = None,
    sparsity: Mapping[str, str | None] | None = None,
    num_classes: int = 1000,
    small_input: bool = False,
) -> Cost:
    """Simulated cost of one inference of ``model`` on ``chip``.

    Args:
        model: an ``nn.Module``, a torchvision name (``"mobilenet_v2"``),
            ``"small_cnn"`` or ``"path/to/file.py:function"``.
        input_shape: ``224`` (= 3×224×224), ``(C, H, W)`` or ``(N, C, H, W)``.
        chip: an installed chip id (``"rockchip/rv1126"``) or a :class:`ChipSpec`.
        weight_bits / activation_bits: one width for every conv/linear layer or
            ``layer name -> bits``; must be widths the chip runs. Without them,
            module attributes decide, else float32 (costed at the chip's widest width).
        sparsity: ``layer name -> "2:4"``; must be a pattern the chip lists.
        num_classes / small_input: used when ``model`` is a name.

    Returns:
        The :class:`Cost` (totals + per-layer breakdown).

    Raises:
        ConfigError / UnknownNameError: bad shape, unknown model or chip,
            a bit-width or sparsity pattern the chip cannot run.
    """
    return estimate_with_layers(
        model,
        input_shape,
        chip,
        weight_bits=weight_bits,
        activation_bits=activation_bits,
        sparsity=sparsity,
        num_classes=num_classes,
        small_input=small_input,
    )[1]


__all__ = [
    "check_bits_supported",
    "cost_on_chip",
    "estimate_cost",
    "estimate_costs",
    "estimate_with_layers",
    "normalize_input_shape",
    "resolve_chip",
    "sparsify_everywhere",
]

"""A search space tied to one model and one chip: what the sampler may actually propose.

The chip's capabilities cut the space before sampling:

- bit-widths: only those in ``chip.weight_bits_supported`` /
  ``activation_bits_supported``; when a rule's choices have none the chip runs,
  the nearest width the chip runs replaces them (noted in ``notes``);
- sparsity: only patterns in ``chip.sparsity_patterns`` (``none`` always);
- channel counts: prune ratios become the ratios that leave a multiple of
  ``chip.channel_alignment`` channels in the layer (at width 1.0; the
  compression engine rounds the product with the width multiplier to the same
  alignment), thinned to the rule's ``step``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.spec import ChipSpec
from autocompress.search.space import ParamSpec, SearchSpace, is_protected, rule_for

# Neutral values when no rule sets a field.
_GLOBAL_DEFAULTS = {"width_multiplier": 1.0, "kd_temperature": 4.0, "kd_alpha": 0.7}


@dataclass(frozen=True)
class Dimension:
    """One named axis the sampler sees (a fixed axis is never asked of the sampler)."""

    name: str  # Optuna parameter name, e.g. "weight_bits[layer1.0.conv1]"
    field: str  # TrialConfig field (width_multiplier, prune_ratio, weight_bits, ...)
    layer: str | None
    spec: ParamSpec


@dataclass(frozen=True)
class ResolvedSpace:
    """The space for one model on one chip.

    Attributes:
        space: the source space.
        chip_id: the chip it was intersected with.
        dimensions: every axis, fixed ones included, in a stable order.
        protect: layers never pruned or slimmed (first/last by default).
        notes: what the chip intersection changed.
    """

    space: SearchSpace
    chip_id: str
    dimensions: tuple[Dimension, ...]
    protect: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def free_dimensions(self) -> tuple[Dimension, ...]:
        return tuple(d for d in self.dimensions if not d.spec.is_fixed)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready summary for run.yaml."""
        return {
            "chip": self.chip_id,
            "free_dimensions": len(self.free_dimensions),
            "dimensions": {d.name: d.spec.to_dict() for d in self.dimensions},
            "notes": list(self.notes),
        }

    def config_from_params(self, params: Mapping[str, Any]) -> TrialConfig:
        """Build a :class:`TrialConfig` from sampled ``params`` (fixed axes filled in)."""
        values: dict[str, Any] = dict(_GLOBAL_DEFAULTS)
        per_layer: dict[str, dict[str, Any]] = {
            "prune_ratio": {},
            "weight_bits": {},
            "activation_bits": {},
            "sparsity": {},
        }
        for dim in self.dimensions:
            value = dim.spec.fixed_value if dim.spec.is_fixed else params[dim.name]
            if dim.layer is None:
                values[dim.field] = float(value)
            else:
                per_layer[dim.field][dim.layer] = value
        return TrialConfig(
            width_multiplier=float(values["width_multiplier"]),
            prune_ratios={k: float(v) for k, v in per_layer["prune_ratio"].items() if float(v) > 0},
            weight_bits={k: int(v) for k, v in per_layer["weight_bits"].items()},
            activation_bits={k: int(v) for k, v in per_layer["activation_bits"].items()},
            sparsity={k: str(v) for k, v in per_layer["sparsity"].items() if v != "none"},
            kd_temperature=float(values["kd_temperature"]),
            kd_alpha=float(values["kd_alpha"]),
        )


def _supported_bits(
    spec: ParamSpec, supported: Sequence[int], what: str, layer: str, notes: list[str]
) -> ParamSpec:
    wanted = list(spec.choices or ())
    kept = tuple(b for b in wanted if b in supported)
    if kept:
        if len(kept) < len(wanted):
            dropped = sorted(set(wanted) - set(kept))
            notes.append(f"{what}[{layer}]: dropped {dropped} (chip runs {sorted(supported)})")
        return ParamSpec(choices=kept)
    above = [b for b in sorted(supported) if b >= max(wanted)]
    nearest = above[0] if above else max(supported)
    notes.append(f"{what}[{layer}]: chip runs none of {wanted}; using {nearest}")
    return ParamSpec(choices=(nearest,))


def _aligned_prune_ratios(spec: ParamSpec, out_channels: int, alignment: int) -> ParamSpec:
    """Ratios in the rule's range that keep a multiple of ``alignment`` channels."""
    alignment = max(1, alignment)
    if spec.choices is not None:
        candidates = list(spec.choices)
        low, high, step = min(candidates), max(candidates), None
    else:
        low, high, step = float(spec.low), float(spec.high), spec.step
    grid = []
    for keep in range(out_channels, 0, -alignment):
        ratio = round(1.0 - keep / out_channels, 6)
        if low - 1e-9 <= ratio <= high + 1e-9:
            grid.append(ratio)
    if spec.choices is not None:
        # Snap each asked ratio to the nearest aligned one.
        grid = (
            sorted({min(grid, key=lambda g, c=c: abs(g - c)) for c in candidates}) if grid else []
        )
    elif step:
        thinned: list[float] = []
        for ratio in grid:
            if not thinned or ratio - thinned[-1] >= step - 1e-9:
                thinned.append(ratio)
        grid = thinned
    if not grid:
        grid = [0.0]
    return ParamSpec(choices=tuple(grid))


def resolve_space(
    space: SearchSpace,
    chip: ChipSpec,
    *,
    quantizable: Sequence[str],
    prunable: Sequence[str],
    out_channels: Mapping[str, int],
) -> ResolvedSpace:
    """Tie ``space`` to a model's layers and intersect it with ``chip``.

    Args:
        space: a parsed space.
        chip: the main chip of the search.
        quantizable: conv/linear layer names in execution order (``first``/``last``
            refer to the first and last of them).
        prunable: layers whose output channels may be pruned.
        out_channels: output channels of each prunable layer in the teacher.
    """
    aliases = {"first": quantizable[0], "last": quantizable[-1]} if quantizable else {}
    notes: list[str] = []
    dims: list[Dimension] = []
    for key in ("width_multiplier", "kd_temperature", "kd_alpha"):
        spec = space.globals.get(key, ParamSpec(choices=(_GLOBAL_DEFAULTS[key],)))
        dims.append(Dimension(key, key, None, spec))
    protect = tuple(name for name in quantizable if is_protected(space.rules, name, aliases))
    for name in prunable:
        if name in protect:
            continue
        spec = rule_for(space.rules, name, "prune_ratio", aliases)
        if spec is None:
            continue
        spec = _aligned_prune_ratios(spec, int(out_channels[name]), chip.channel_alignment)
        dims.append(Dimension(f"prune_ratio[{name}]", "prune_ratio", name, spec))
    for name in quantizable:
        for key, supported in (
            ("weight_bits", chip.weight_bits_supported),
            ("activation_bits", chip.activation_bits_supported),
        ):
            spec = rule_for(space.rules, name, key, aliases)
            if spec is None:
                continue
            spec = _supported_bits(spec, supported, key, name, notes)
            dims.append(Dimension(f"{key}[{name}]", key, name, spec))
        spec = rule_for(space.rules, name, "sparsity", aliases)
        if spec is not None:
            allowed = ("none", *chip.sparsity_patterns)
            kept = tuple(p for p in (spec.choices or ()) if p in allowed) or ("none",)
            if len(kept) < len(spec.choices or ()):
                notes.append(
                    f"sparsity[{name}]: chip {chip.chip_id} accelerates only {list(allowed)}"
                )
            dims.append(Dimension(f"sparsity[{name}]", "sparsity", name, ParamSpec(choices=kept)))
    if chip.channel_alignment > 1:
        notes.append(f"prune ratios keep multiples of {chip.channel_alignment} channels")
    return ResolvedSpace(space, chip.chip_id, tuple(dims), protect, tuple(dict.fromkeys(notes)))

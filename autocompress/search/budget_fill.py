"""Budget-filling anchors: a wider uniform model, pruned where the chip spends its cost.

Uniform scaling leaves budget unused between two width steps: on CIFAR-10
ResNet-18 / rv1126 under a 50 % latency budget the widest feasible uniform
student (width 0.625) sits below the limit and the next width (0.75) breaks it.
A budget-filling anchor starts from such a wider width at the chip's default
bits and prunes each prunable layer in proportion to its share of the binding
cost — the layers where the chip spends its time (or energy, or memory) lose
the most channels, the cheap ones keep theirs — with one global factor, found
by bisection, as small as still fits the budget. It keeps more capacity where
it is cheap, which is what a per-layer search can find and uniform scaling
cannot; it is trained right after the uniform anchors, so every run has at
least one non-uniform, known-feasible candidate at the budget's edge.

The binding cost of a layer: ``latency_ms`` for a latency budget, ``energy_mj``
for energy and power, ``dram_bytes`` (weights and activations moved) for memory
and model size. Only costing is needed (no training): a handful of student
builds at run creation.

Given the teacher's weight counts, each width gets a second, capacity-aware fill:
layers are pruned in proportion to their cost *per weight* — what a channel
saves on the chip against the capacity it takes away (the greedy knapsack
order). On a network whose channels double as the resolution halves (ResNets),
the cost share cuts the weight-heavy late layers and the per-weight share the
cheap-to-keep-capacity early ones; which of the two recovers better depends on
the network, so both are trained and promotion decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from autocompress.core.budget import Budget
from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.cost import Cost, LayerCost
from autocompress.hardware.spec import ChipSpec
from autocompress.search.anchors import (
    config_key,
    default_bits,
    enqueue_marked,
    nearest_allowed,
    uniform_params,
    uniform_widths,
)
from autocompress.search.resolve import Dimension, ResolvedSpace

#: Widths above the widest feasible uniform width that get a budget-filling anchor.
FILL_WIDTHS = 2
#: Bisection steps on the global pruning factor (each one costs one student build); a
#: resolution of 1/64 is finer than a prune-ratio grid of 0.125 steps even where the
#: factor runs past 1 (layers with small shares deepening after the large ones saturate).
BISECTION_STEPS = 6
#: Study user attribute that marks a budget-filling anchor.
BUDGET_FILL_ATTR = "autocompress:budget_fill"

# Budget field -> what a layer contributes to it.
_LAYER_SHARE: dict[str, Callable[[LayerCost], float]] = {
    "latency_ms": lambda layer: layer.latency_ms,
    "energy_mj": lambda layer: layer.energy_mj,
    "power_mw": lambda layer: layer.energy_mj,
    "memory_kb": lambda layer: layer.dram_bytes,
    "model_size_kb": lambda layer: layer.dram_bytes,
}

CostFn = Callable[[TrialConfig], Cost]

#: How a layer's share of the cut is weighed: its share of the binding cost, or that cost
#: per weight of the layer (capacity-aware; needs the teacher's weight counts).
SHARE_KINDS = ("cost", "cost_per_weight")


def _feasible(budget: Budget, cost: Cost) -> bool:
    return all(v <= 0 for v in budget.violations(cost.metrics()).values())


def _binding_field(budget: Budget, cost: Cost) -> str | None:
    """The budget field ``cost`` breaks the most (relative to its limit)."""
    broken = {
        k: v for k, v in budget.violations(cost.metrics()).items() if v > 0 and k in _LAYER_SHARE
    }
    return max(broken, key=broken.__getitem__) if broken else None


def _allowed_ratios(dim: Dimension) -> list[float]:
    """The prune ratios a dimension allows, ascending (a continuous one on its step grid)."""
    spec = dim.spec
    if spec.choices is not None:
        return sorted(float(c) for c in spec.choices)
    low, high = float(spec.low), float(spec.high)
    step = float(spec.step) if spec.step else (high - low) / 16 or 1.0
    count = round((high - low) / step)
    return [min(low + i * step, high) for i in range(count + 1)]


def _pruned(
    space: ResolvedSpace, params: Mapping[str, Any], shares: Mapping[str, float], factor: float
) -> dict[str, Any]:
    """``params`` with each prunable layer at the largest allowed ratio not above
    min(1, ``factor`` x its share / the largest share) x the space's deepest ratio:
    up to factor 1 the cut is proportional to the shares; beyond it the layers with
    the largest shares stay at the deepest cut and the others keep deepening."""
    top = max(shares.values(), default=0.0)
    out = dict(params)
    for dim in space.free_dimensions:
        if dim.field != "prune_ratio" or dim.layer is None:
            continue
        allowed = _allowed_ratios(dim)
        share = shares.get(dim.layer, 0.0) / top if top > 0 else 0.0
        wanted = min(1.0, factor * share) * allowed[-1]
        below = [r for r in allowed if r <= wanted + 1e-9] or allowed[:1]
        out[dim.name] = nearest_allowed(dim, below[-1])
    return out


def _deepest_factor(shares: Mapping[str, float]) -> float:
    """The factor at which every layer with a share is at the deepest cut."""
    positive = [v for v in shares.values() if v > 0]
    return max(positive) / min(positive) if positive else 1.0


def _shares(
    cost: Cost, field: str, weight_counts: Mapping[str, int] | None
) -> list[dict[str, float]]:
    """Each share kind's per-layer weights of the cut (the capacity-aware one only with
    ``weight_counts``)."""
    by_cost: dict[str, float] = {}
    for layer in cost.layers:
        by_cost[layer.name] = by_cost.get(layer.name, 0.0) + _LAYER_SHARE[field](layer)
    out = [by_cost]
    if weight_counts:
        out.append(
            {
                name: value / weight_counts[name]
                for name, value in by_cost.items()
                if weight_counts.get(name, 0) > 0
            }
        )
    return out


def budget_fill_params(
    space: ResolvedSpace,
    chip: ChipSpec,
    budget: Budget,
    cost_of: CostFn,
    weight_counts: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Parameter sets of the budget-filling anchors (possibly none), narrowest first.

    ``cost_of(config)`` costs a configuration on the main chip (per-layer
    breakdown included). ``weight_counts`` (the teacher's weights per layer name)
    adds a capacity-aware fill per width (see the module docstring). Nothing is
    returned when the space has no per-layer pruning, when every uniform width
    fits (nothing to fill) or none does, or when even the deepest pruning the
    space allows does not fit.
    """
    if not any(d.field == "prune_ratio" for d in space.free_dimensions):
        return []
    costed: dict[Any, Cost] = {}  # the bisections land on the same grid points: cost each once

    def cost_once(config: TrialConfig) -> Cost:
        key = config_key(config)
        if key not in costed:
            costed[key] = cost_of(config)
        return costed[key]

    bits = default_bits(chip)
    fits_uniform: list[dict[str, Any]] = []
    breaks_uniform: list[tuple[dict[str, Any], Cost]] = []
    for width in uniform_widths(space):  # ascending: a wider uniform model costs more
        params = uniform_params(space, width, bits)
        cost = cost_once(space.config_from_params(params))
        if _feasible(budget, cost):
            fits_uniform.append(params)
            breaks_uniform = []  # only the widths above the widest fit count
        else:
            breaks_uniform.append((params, cost))
            if fits_uniform and len(breaks_uniform) == FILL_WIDTHS:
                break
    if not fits_uniform:
        return []
    seen = {config_key(space.config_from_params(p)) for p in fits_uniform}
    out: list[dict[str, Any]] = []
    for params, cost in breaks_uniform:
        field = _binding_field(budget, cost)
        if field is None:
            continue
        for shares in _shares(cost, field, weight_counts):

            def fits(factor: float, params: Mapping[str, Any] = params, shares=shares) -> bool:
                config = space.config_from_params(_pruned(space, params, shares, factor))
                return _feasible(budget, cost_once(config))

            deepest = _deepest_factor(shares)
            if not fits(deepest):
                continue  # even the deepest cut the space allows does not fit

            def factor(u: float, deepest: float = deepest) -> float:
                return u * deepest**u  # 0 -> 0, 1 -> deepest, increasing

            low, high = 0.0, 1.0
            for _ in range(BISECTION_STEPS):
                middle = (low + high) / 2
                low, high = (low, middle) if fits(factor(middle)) else (middle, high)
            candidate = _pruned(space, params, shares, factor(high))
            key = config_key(space.config_from_params(candidate))
            if key not in seen:
                seen.add(key)
                out.append(candidate)
    return out


def enqueue_budget_fill(
    study: Any, space: ResolvedSpace, fills: list[dict[str, Any]], *, numeric: bool
) -> int:
    """Enqueue ``fills`` (from :func:`budget_fill_params`) on ``study``; returns how many."""
    return enqueue_marked(study, space, fills, BUDGET_FILL_ATTR, numeric=numeric)

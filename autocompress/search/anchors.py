"""Known starting points and one key per configuration.

- :func:`anchor_configs`: the uniform-scaling configurations a practitioner tries
  first — every width multiplier of the space with every layer at the chip's
  default bit-width, no pruning, dense — plus the teacher at int8. They are
  enqueued before the sampler's own proposals, so the search front can never
  be worse than uniform scaling at equal epochs, and the sampler starts from
  known points.
- :func:`cheapest_params`: the cheapest corner of the space (least width, deepest
  pruning, fewest bits, sparse where the space allows it). Enqueued after the
  uniform anchors unless it is one of them: the front then reaches the low end of
  the cost range from the start (the uniform widths stop at the narrowest width),
  and the sampler knows the whole feasible range.
- :func:`config_key`: a canonical text key of a :class:`TrialConfig`; two trials
  with the same key are the same model, trained once per run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from autocompress.core.trial_config import TrialConfig
from autocompress.hardware.spec import ChipSpec
from autocompress.search.resolve import Dimension, ResolvedSpace

#: Digits kept when floats enter a key (sampled floats differ in the last bits).
KEY_DIGITS = 6

# KD settings of an anchor when the space lets them vary: the fine-tune defaults.
_ANCHOR_KD = {"kd_temperature": 4.0, "kd_alpha": 0.7}


def config_key(config: TrialConfig | Mapping[str, Any]) -> str:
    """Canonical JSON of a configuration (sorted keys, rounded floats, defaults dropped)."""
    data = config.to_dict() if isinstance(config, TrialConfig) else dict(config)
    data = TrialConfig.from_dict(data).to_dict()  # one normal form (types, defaults, order)

    def canonical(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, float):
            rounded = round(value, KEY_DIGITS)
            return int(rounded) if rounded == int(rounded) else rounded
        if isinstance(value, Mapping):
            return {str(k): canonical(v) for k, v in sorted(value.items())}
        if isinstance(value, (list, tuple)):
            return [canonical(v) for v in value]
        return value

    data["prune_ratios"] = {k: v for k, v in data.get("prune_ratios", {}).items() if v > 0}
    data["sparsity"] = {k: v for k, v in data.get("sparsity", {}).items() if v != "none"}
    return json.dumps(canonical(data), sort_keys=True, separators=(",", ":"))


def default_bits(chip: ChipSpec) -> int:
    """The chip's default deployment bit-width: 8 where it runs int8, else its smallest width."""
    common = sorted(set(chip.weight_bits_supported) & set(chip.activation_bits_supported))
    if 8 in common:
        return 8
    above = [b for b in common if b >= 8]
    return above[0] if above else (common[-1] if common else 8)


def nearest_allowed(dim: Dimension, wanted: Any) -> Any:
    """``wanted`` if the dimension allows it, else its nearest allowed value."""
    spec = dim.spec
    if spec.choices is not None:
        choices = list(spec.choices)
        if wanted in choices:
            return wanted
        numeric = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        if numeric and isinstance(wanted, (int, float)):
            return min(numeric, key=lambda c: (abs(float(c) - float(wanted)), c))
        return choices[0]
    value = min(max(float(wanted), float(spec.low)), float(spec.high))
    if spec.step:
        steps = round((value - float(spec.low)) / spec.step)
        value = min(float(spec.low) + steps * spec.step, float(spec.high))
    return value


def _widths(dim: Dimension | None) -> list[float]:
    if dim is None:
        return [1.0]
    spec = dim.spec
    if spec.choices is not None:
        return sorted(float(c) for c in spec.choices)
    low, high = float(spec.low), float(spec.high)
    return sorted({nearest_allowed(dim, v) for v in (low, (low + high) / 2, high)})


def anchor_params(space: ResolvedSpace, chip: ChipSpec) -> list[dict[str, Any]]:
    """Parameter sets (free dimensions only, values as the space spells them) of the anchors.

    Order: widths from the smallest up at the chip's default bits, then the
    teacher at int8 (when different). Duplicates are dropped.
    """
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    plans = [(w, default_bits(chip)) for w in uniform_widths(space)]
    plans.append((1.0, 8))
    for width, bits in plans:
        params = uniform_params(space, width, bits)
        key = config_key(space.config_from_params(params))
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


def uniform_widths(space: ResolvedSpace) -> list[float]:
    """The widths uniform scaling tries: every choice of the space (or its low, mid, high)."""
    free = {d.name: d for d in space.free_dimensions}
    return _widths(free.get("width_multiplier"))


def uniform_params(space: ResolvedSpace, width: float, bits: int) -> dict[str, Any]:
    """The free parameters of one uniform-scaling model: ``width``, every layer at ``bits``,
    no pruning, dense, the fine-tune's KD settings (each snapped to what the space allows)."""
    params: dict[str, Any] = {}
    for dim in space.free_dimensions:
        if dim.field == "width_multiplier":
            wanted: Any = width
        elif dim.field == "prune_ratio":
            wanted = 0.0
        elif dim.field in ("weight_bits", "activation_bits"):
            wanted = bits
        elif dim.field == "sparsity":
            wanted = "none"
        else:
            wanted = _ANCHOR_KD.get(dim.field, 0.0)
        params[dim.name] = nearest_allowed(dim, wanted)
    return params


def cheapest_params(space: ResolvedSpace) -> dict[str, Any]:
    """The free parameters of the cheapest corner of the space: the least width, the
    deepest pruning, the fewest bits, the first sparse pattern (when the space has one)
    and the fine-tune's KD settings (KD does not change what a model costs)."""
    params: dict[str, Any] = {}
    for dim in space.free_dimensions:
        spec = dim.spec
        if dim.field in _ANCHOR_KD:
            params[dim.name] = nearest_allowed(dim, _ANCHOR_KD[dim.field])
        elif spec.choices is not None:
            if dim.field == "sparsity":
                sparse = [c for c in spec.choices if c != "none"]
                params[dim.name] = sparse[0] if sparse else "none"
            elif dim.field == "prune_ratio":
                params[dim.name] = max(spec.choices)
            else:
                params[dim.name] = min(spec.choices)
        else:
            params[dim.name] = spec.high if dim.field == "prune_ratio" else spec.low
    return params


def enqueue_cheapest(study: Any, space: ResolvedSpace, chip: ChipSpec, *, numeric: bool) -> bool:
    """Enqueue the cheapest corner (marked :data:`CHEAPEST_ATTR`) unless it is one of
    the uniform anchors; returns whether it was. The caller checks that it fits the
    budget."""
    params = cheapest_params(space)
    key = config_key(space.config_from_params(params))
    if key in {config_key(c) for c in anchor_configs(space, chip)}:
        return False
    enqueue_marked(study, space, [params], CHEAPEST_ATTR, numeric=numeric)
    return True


def anchor_configs(space: ResolvedSpace, chip: ChipSpec) -> list[TrialConfig]:
    """The anchors as configurations (see :func:`anchor_params`)."""
    return [space.config_from_params(p) for p in anchor_params(space, chip)]


def encode_params(
    space: ResolvedSpace, params: Mapping[str, Any], *, numeric: bool
) -> dict[str, Any]:
    """``params`` as :func:`~autocompress.search.study.suggest_config` asks for them.

    With ``numeric`` every choice dimension is asked as the index of its choice
    (an integer), so that a Gaussian process sees ordered numbers.
    """
    if not numeric:
        return dict(params)
    out: dict[str, Any] = {}
    for dim in space.free_dimensions:
        value = params[dim.name]
        if dim.spec.choices is not None:
            out[dim.name] = ordered_choices(dim.spec.choices).index(value)
        else:
            out[dim.name] = value
    return out


def enqueue_anchors(study: Any, space: ResolvedSpace, chip: ChipSpec, *, numeric: bool) -> int:
    """Enqueue the anchors on ``study`` (an Optuna study); returns how many."""
    return enqueue_marked(study, space, anchor_params(space, chip), ANCHOR_ATTR, numeric=numeric)


def enqueue_marked(
    study: Any,
    space: ResolvedSpace,
    param_sets: Sequence[Mapping[str, Any]],
    attr: str,
    *,
    numeric: bool,
) -> int:
    """Enqueue ``param_sets`` on ``study``, each marked with the user attribute ``attr``
    (already enqueued ones are skipped); returns how many were given."""
    for params in param_sets:
        study.enqueue_trial(
            encode_params(space, params, numeric=numeric),
            user_attrs={attr: True},
            skip_if_exists=True,
        )
    return len(param_sets)


ANCHOR_ATTR = "autocompress:anchor"
#: Study user attribute that marks the cheapest-corner anchor.
CHEAPEST_ATTR = "autocompress:cheapest"


def ordered_choices(choices: Sequence[Any]) -> list[Any]:
    """Choices in the order a numeric encoding indexes them: increasing when all are numbers."""
    values = list(choices)
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in values):
        return sorted(values)
    return values

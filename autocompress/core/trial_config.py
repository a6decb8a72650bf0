"""The configuration of one trial: what the sampler chose, as plain data.

A :class:`TrialConfig` is what the search hands the compression engine and what
the run directory records; report and export rebuild a student from it.
Layer names are the qualified module names of the *teacher*
(``model.named_modules()``), e.g. ``"layer1.0.conv1"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TRIAL_CONFIG_VERSION = 1


@dataclass(frozen=True)
class TrialConfig:
    """One point of the search space.

    Attributes:
        width_multiplier: fraction of every prunable layer's channels the
            student keeps before per-layer pruning (1.0 = teacher width).
        prune_ratios: layer name -> fraction of that layer's output channels
            removed on top of the width multiplier (0.0 = keep all).
        weight_bits: layer name -> weight bit-width (2..16); a layer absent
            here keeps float weights.
        activation_bits: layer name -> bit-width of the layer's input
            activations (2..16); absent = float.
        sparsity: layer name -> semi-structured pattern such as ``"2:4"``.
        kd_temperature: distillation softmax temperature.
        kd_alpha: weight of the distillation loss (1 - alpha on the hard labels).
    """

    width_multiplier: float = 1.0
    prune_ratios: Mapping[str, float] = field(default_factory=dict)
    weight_bits: Mapping[str, int] = field(default_factory=dict)
    activation_bits: Mapping[str, int] = field(default_factory=dict)
    sparsity: Mapping[str, str] = field(default_factory=dict)
    kd_temperature: float = 4.0
    kd_alpha: float = 0.7

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a type and version tag."""
        data = dataclasses.asdict(self)
        for key in ("prune_ratios", "weight_bits", "activation_bits", "sparsity"):
            data[key] = dict(sorted(dict(getattr(self, key)).items()))
        return {"type": "TrialConfig", "version": TRIAL_CONFIG_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        data = dict(data)
        data.pop("type", None)
        version = data.pop("version", TRIAL_CONFIG_VERSION)
        if version != TRIAL_CONFIG_VERSION:
            raise ValueError(f"TrialConfig version {version} is not supported")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrialConfig fields: {sorted(unknown)}")
        return cls(
            width_multiplier=float(data.get("width_multiplier", 1.0)),
            prune_ratios={k: float(v) for k, v in dict(data.get("prune_ratios", {})).items()},
            weight_bits={k: int(v) for k, v in dict(data.get("weight_bits", {})).items()},
            activation_bits={k: int(v) for k, v in dict(data.get("activation_bits", {})).items()},
            sparsity={k: str(v) for k, v in dict(data.get("sparsity", {})).items()},
            kd_temperature=float(data.get("kd_temperature", 4.0)),
            kd_alpha=float(data.get("kd_alpha", 0.7)),
        )

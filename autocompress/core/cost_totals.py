"""The cost totals of one trial on one chip, as a run records them (``trials.jsonl``).

:class:`CostTotals` is typed (units in the field names) and also reads as a mapping of
metric name -> value (``totals["latency_ms"]``, ``{**totals, **metrics}``), the shape the
budget checks, Pareto fronts and tables take. Unset totals are absent from the mapping.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, eq=False)
class CostTotals(Mapping[str, float]):
    """Totals of one inference on one chip (``hardware.cost.Cost`` without its layers).

    Attributes:
        latency_ms / energy_mj / power_mw / peak_memory_kb / model_size_kb: the totals.
        macs: multiply-accumulates of one inference.
        extra: totals this version has no field for (kept, so newer files stay readable).
    """

    latency_ms: float | None = None
    energy_mj: float | None = None
    power_mw: float | None = None
    peak_memory_kb: float | None = None
    model_size_kb: float | None = None
    macs: float | None = None
    extra: Mapping[str, float] = field(default_factory=dict)

    def _named(self) -> dict[str, float]:
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "extra" and getattr(self, f.name) is not None
        }
        out.update(self.extra)
        return out

    def __getitem__(self, key: str) -> float:
        return self._named()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._named())

    def __len__(self) -> int:
        return len(self._named())

    def __repr__(self) -> str:
        return f"CostTotals({self._named()!r})"

    def to_dict(self) -> dict[str, float]:
        """metric name -> value (the ``trials.jsonl`` form)."""
        return self._named()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CostTotals:
        """Totals from metric name -> number; ``ValueError`` naming a value that is no number."""
        if isinstance(data, CostTotals):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"expected an object of numbers, got {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        extra: dict[str, float] = {}
        for name, number in data.items():
            if (
                isinstance(number, bool)
                or not isinstance(number, (int, float))
                or math.isnan(number)
            ):
                raise ValueError(f"{name} must be a number, got {number!r}")
            (values if name in known else extra)[str(name)] = number
        return cls(**values, extra=extra)


__all__ = ["CostTotals"]

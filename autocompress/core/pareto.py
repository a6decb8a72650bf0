"""Pareto fronts and hypervolume over named metrics.

Senses come from :data:`autocompress.core.budget.METRIC_SENSE` (``max`` for
accuracy, ``min`` for costs). Points are mappings metric -> value; a point
missing an objective is never on the front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from autocompress.core.budget import METRIC_SENSE


def _as_minimised(
    point: Mapping[str, float], objectives: Sequence[str]
) -> tuple[float, ...] | None:
    values = []
    for name in objectives:
        value = point.get(name)
        if value is None:
            return None
        values.append(-float(value) if METRIC_SENSE.get(name, "min") == "max" else float(value))
    return tuple(values)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (all minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_front(points: Sequence[Mapping[str, float]], objectives: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order (duplicates all kept)."""
    vectors = [_as_minimised(p, objectives) for p in points]
    front = []
    for i, v in enumerate(vectors):
        if v is None:
            continue
        if not any(w is not None and dominates(w, v) for j, w in enumerate(vectors) if j != i):
            front.append(i)
    return front


def front_numbers(
    points: Mapping[int, Mapping[str, float]], objectives: Sequence[str]
) -> list[int]:
    """Trial numbers on the Pareto front of ``points`` (trial number -> metrics), ascending.

    The one front rule of a run: the search's ``pareto.json`` and ``load_report`` both
    call it on the trials they judge feasible.
    """
    numbers = list(points)
    return sorted(numbers[i] for i in pareto_front([points[n] for n in numbers], objectives))


def hypervolume(
    points: Sequence[Mapping[str, float]],
    objectives: Sequence[str],
    reference: Mapping[str, float],
) -> float:
    """Hypervolume dominated by ``points`` up to ``reference`` (a point worse than all).

    Exact (recursive slicing); fine for the few hundred points of a search.
    Points that do not dominate the reference contribute nothing.
    """
    ref = _as_minimised(reference, objectives)
    if ref is None:
        raise ValueError("reference must give every objective")
    vectors = []
    for p in points:
        v = _as_minimised(p, objectives)
        if v is not None and all(x < r for x, r in zip(v, ref, strict=True)):
            vectors.append(v)
    return _hv(vectors, ref)


def _hv(vectors: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if not vectors:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(v[0] for v in vectors)
    # Slice along the last objective: sweep its distinct values in ascending order.
    vectors = sorted(set(vectors), key=lambda v: v[-1])
    volume = 0.0
    for k, v in enumerate(vectors):
        upper = vectors[k + 1][-1] if k + 1 < len(vectors) else ref[-1]
        depth = upper - v[-1]
        if depth <= 0:
            continue
        volume += depth * _hv([w[:-1] for w in vectors[: k + 1]], ref[:-1])
    return volume

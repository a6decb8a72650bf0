"""How well predicted latencies match measured ones: the figures ``calibrate`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ErrorSummary:
    """Agreement of predictions with measurements.

    Attributes:
        rows: number of (prediction, measurement) pairs.
        median_abs_pct: median of |predicted − measured| / measured, in %.
        within_10_pct / within_25_pct: share of rows within ±10 % / ±25 %, in %.
        spearman: Spearman rank correlation (NaN with fewer than 2 rows or no spread).
    """

    rows: int
    median_abs_pct: float
    within_10_pct: float
    within_25_pct: float
    spearman: float

    def to_dict(self) -> dict[str, float]:
        """Rounded, YAML/JSON-ready."""
        return {
            key: (round(value, 4) if isinstance(value, float) and np.isfinite(value) else value)
            for key, value in asdict(self).items()
        }


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two equal-length sequences (NaN if undefined)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def abs_pct_errors(predicted: Sequence[float], measured: Sequence[float]) -> np.ndarray:
    """|predicted − measured| / measured × 100, per row."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    return np.abs(p - m) / m * 100.0


def summarize(predicted: Sequence[float], measured: Sequence[float]) -> ErrorSummary:
    """The :class:`ErrorSummary` of predictions against measurements."""
    errors = abs_pct_errors(predicted, measured)
    if errors.size == 0:
        nan = float("nan")
        return ErrorSummary(0, nan, nan, nan, nan)
    return ErrorSummary(
        rows=int(errors.size),
        median_abs_pct=float(np.median(errors)),
        within_10_pct=float((errors <= 10.0).mean() * 100.0),
        within_25_pct=float((errors <= 25.0).mean() * 100.0),
        spearman=spearman(predicted, measured),
    )


__all__ = ["ErrorSummary", "abs_pct_errors", "spearman", "summarize"]

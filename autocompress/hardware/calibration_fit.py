"""Fit a chip's calibration knobs to measured latencies: robust least squares on log latency.

The cost model's latency of one network is, per fused layer ``l``,

    t = T + Σ_l [ max(c_l / (e · d^[l depthwise]), m_l / b) + L ]

(``L_e`` instead of ``L`` for pool/element-wise layers)

where ``c_l`` is the layer's compute time at the datasheet peak (alignment
padding and sparsity included), ``m_l`` its DRAM time at the theoretical
bandwidth, and the six knobs are

- ``e`` — effective compute efficiency (fraction of the datasheet peak;
  above 1 when the published peak understates the chip),
- ``b`` — bandwidth efficiency,
- ``d`` — depthwise efficiency,
- ``L`` — launch overhead per conv/linear layer (µs), and ``L_e`` per pooling /
  element-wise layer (``+ L_e`` instead of ``+ L`` for those; toolchains often run
  concatenations in place and fuse pooling, so the data may put it far below ``L``),
- ``T`` — overhead per inference (µs): the runtime call, input/output conversion,
  a DSP remote call. Published measurements show it as a floor that small
  networks cannot go below (≈ 1 ms on the QCS6490, ≈ 0.3 ms on the Snapdragon
  8 Gen 2); without it the fit charges that floor to every layer's launch and
  then predicts deep networks too slow.

:func:`row_features` turns one measured configuration into the arrays
``c, m, depthwise`` once (the expensive part: layer extraction); evaluating a
knob vector is then a few numpy operations, so the fit takes milliseconds.
Rows may come from several chips of one NPU family (features per row are
computed on that row's chip, so a clock difference is in ``c``): the knobs are
then shared.

The fit minimises, over the logarithms x of the knobs within their bounds,

    Σ_rows ρ((log t̂ − log t) / σ)  +  ½ (x − x₀)ᵀ Σ⁻¹ (x − x₀)

(σ = 0.1: about 10 % measurement scatter across toolchain versions). ρ is the
Cauchy (Lorentzian) loss ρ(z) = ½ c² log(1 + (z/c)²) with c = 2.385, the
textbook constant at 95 % efficiency for Gaussian scatter: a row within a few σ
counts as in least squares, a row many σ off (a vendor table's row for a
different model variant, a network the cost model gets structurally wrong) has
its influence fade instead of pulling every knob by a constant amount, as a
Huber loss lets it. The second term is a prior at the datasheet values x₀:
independent widths ``s_k`` = log 3 per knob (log 10 for ``T``, whose prior
centre is a generic 300 µs when the spec has none: the geometric middle of the
0.1–1 ms per-call overheads of NPU runtimes), plus one *common time scale*
shared by the knobs, of width log 1.4: Σ = diag(s_k²) + s_t² v vᵀ with
v = (−1, −1, 0, +1, +1, +1) (compute and bandwidth efficiency down, launch and
inference overheads up: every time of the network longer by one factor). The
datasheet's figures are estimates that miss together — a board slower than its
datasheet (clocks, DRAM speed, runtime) is slower everywhere — so one measured
row that is 30 % slower than predicted moves every knob a little along v rather
than the single most sensitive one a lot; rows of varied models then separate
the knobs (the width is the spread of the datasheet knobs' common misses on the
bundled chips: :data:`COMMON_SCALE_LOG_WIDTH`). A chip with two measured models
still gets a well-posed fit: the data move the knobs they can see and leave the
others near the datasheet. It runs
damped Gauss-Newton (Levenberg-Marquardt) with an analytic Jacobian,
iteratively re-weighted residuals and projection on the bounds, from three
starting points, and keeps the best. numpy only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autocompress.hardware.cost_model import cost_layers
from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.spec import ChipSpec

RESIDUAL_SCALE = 0.1
"""σ of the log-latency residuals (≈ 10 % scatter between toolchain versions and boards)."""
CAUCHY_SCALE = 2.385
"""c of the Cauchy loss, in σ: the standard constant for 95 % efficiency under Gaussian
scatter (a row 2.4 σ off has half the weight of one on the curve; 10 σ off, 5 %)."""
PRIOR_LOG_SCALE = math.log(3.0)
"""Width of the prior around the datasheet value, in log units (a factor of 3)."""
COMMON_SCALE_LOG_WIDTH = math.log(1.4)
"""Width of the shared time-scale term of the prior: the datasheet's times may all be off
by one factor of about 1.4, on top of each knob's own factor of 3. An empirical-Bayes
figure: the root mean square, over the five bundled chip families, of the log of the
median factor by which the datasheet knobs miss that family's measurements is 0.31
(×1.37; 0.27–0.34 leaving any one family out; bench/RESULTS.md)."""
COMMON_SCALE_DIRECTION = (-1.0, -1.0, 0.0, 1.0, 1.0, 1.0)
"""Per knob (order of :data:`KNOBS`), the log change that makes every time longer by one
log unit: efficiencies down, overheads up (depthwise is relative to compute: 0)."""
DEFAULT_INFERENCE_OVERHEAD_US = 300.0
"""Prior centre of ``inference_overhead_us`` for a spec that gives none (0): the geometric
middle of the 0.1–1 ms per-call overheads of NPU runtimes (one figure for every chip; of
30, 100 and 300 µs tried on the bundled rows, 300 transferred best: bench/RESULTS.md)."""
INFERENCE_PRIOR_LOG_SCALE = math.log(10.0)
"""Width of the ``inference_overhead_us`` prior: a factor of 10 (no datasheet gives it)."""


@dataclass(frozen=True)
class Knob:
    """One fitted parameter: its ChipSpec field, its bounds, its unit and its prior width."""

    name: str
    lower: float
    upper: float
    unit: str
    prior_log_scale: float = PRIOR_LOG_SCALE


KNOBS: tuple[Knob, ...] = (
    Knob("compute_efficiency", 0.02, 4.0, "fraction of datasheet peak"),
    Knob("bandwidth_efficiency", 0.05, 1.0, "fraction of theoretical DRAM bandwidth"),
    Knob("depthwise_efficiency", 0.01, 1.0, "extra factor on depthwise convolutions"),
    Knob("launch_overhead_us", 0.1, 500.0, "µs per fused conv/linear layer"),
    Knob("element_launch_overhead_us", 0.01, 500.0, "µs per pooling/element-wise layer"),
    Knob("inference_overhead_us", 1.0, 20000.0, "µs per inference", INFERENCE_PRIOR_LOG_SCALE),
)
KNOB_NAMES = tuple(knob.name for knob in KNOBS)


@dataclass(frozen=True)
class RowFeatures:
    """One measured configuration in the form the fit evaluates quickly.

    Attributes:
        compute_s: per layer, compute time at the datasheet peak (efficiency 1).
        memory_s: per layer, DRAM time at the theoretical bandwidth.
        depthwise: per layer, True for a depthwise convolution.
        n_mac_layers / n_element_layers: conv/linear layers and the others (pool, element-wise).
    """

    compute_s: np.ndarray
    memory_s: np.ndarray
    depthwise: np.ndarray
    n_mac_layers: int = 0
    n_element_layers: int = 0


def unit_spec(chip: ChipSpec) -> ChipSpec:
    """``chip`` with every knob neutral: efficiencies 1, no launch overhead."""
    return dataclasses.replace(
        chip,
        compute_efficiency=1.0,
        bandwidth_efficiency=1.0,
        depthwise_efficiency=1.0,
        launch_overhead_us=0.0,
        element_launch_overhead_us=0.0,
        inference_overhead_us=0.0,
    )


def row_features(layers: Sequence[LayerDescriptor], chip: ChipSpec) -> RowFeatures:
    """The per-layer compute and memory times of ``layers`` on ``chip`` at neutral knobs."""
    cost = cost_layers(layers, unit_spec(chip))
    return RowFeatures(
        compute_s=np.array([item.compute_ms * 1e-3 for item in cost.layers]),
        memory_s=np.array([item.memory_ms * 1e-3 for item in cost.layers]),
        depthwise=np.array([layer.is_depthwise for layer in layers], dtype=bool),
        n_mac_layers=sum(layer.kind.value in ("conv", "linear") for layer in layers),
        n_element_layers=sum(layer.kind.value not in ("conv", "linear") for layer in layers),
    )


def datasheet_knobs(chip: ChipSpec) -> dict[str, float]:
    """The knob values a spec carries (the starting point and prior of a fit)."""
    values = {name: getattr(chip, name) for name in KNOB_NAMES}
    if values["element_launch_overhead_us"] is None:
        values["element_launch_overhead_us"] = chip.launch_overhead_us
    return {name: float(value) for name, value in values.items()}


def predict_ms(features: RowFeatures, knobs: dict[str, float]) -> float:
    """Latency (ms) of one configuration with these knob values."""
    rate = np.where(features.depthwise, knobs["depthwise_efficiency"], 1.0)
    rate = rate * knobs["compute_efficiency"]
    busy = np.maximum(features.compute_s / rate, features.memory_s / knobs["bandwidth_efficiency"])
    launches_us = (
        features.n_mac_layers * knobs["launch_overhead_us"]
        + features.n_element_layers * knobs["element_launch_overhead_us"]
        + knobs.get("inference_overhead_us", 0.0)
    )
    total_s = float(busy.sum()) + launches_us * 1e-6
    return total_s * 1e3


@dataclass(frozen=True)
class FitResult:
    """Fitted knobs and what the fit saw.

    Attributes:
        knobs: fitted value per knob name.
        start: the datasheet values the fit started from (and its prior).
        loss: the final objective value.
        iterations: Gauss-Newton steps taken (best start).
        at_bound: knob names that ended on a bound (the data wanted more).
    """

    knobs: dict[str, float]
    start: dict[str, float]
    loss: float
    iterations: int
    at_bound: tuple[str, ...]


def _robust_weights(z: np.ndarray) -> np.ndarray:
    """IRLS weights ρ'(z)/z of the Cauchy loss."""
    return 1.0 / (1.0 + (z / CAUCHY_SCALE) ** 2)


def _robust_loss(z: np.ndarray) -> float:
    """Σ ½ c² log(1 + (z/c)²): quadratic near 0, logarithmic far out."""
    return float((0.5 * CAUCHY_SCALE**2 * np.log1p((z / CAUCHY_SCALE) ** 2)).sum())


def prior_precision() -> np.ndarray:
    """Σ⁻¹ of the knobs' log prior: independent widths plus the common time scale."""
    widths = np.array([k.prior_log_scale for k in KNOBS])
    direction = np.array(COMMON_SCALE_DIRECTION)
    covariance = np.diag(widths**2) + COMMON_SCALE_LOG_WIDTH**2 * np.outer(direction, direction)
    return np.linalg.inv(covariance)


def _prior_centre(start: dict[str, float]) -> np.ndarray:
    """Log prior centres: the datasheet values, clipped to the bounds; a launch overhead
    below 1 µs counts as 1 µs and a missing (0) inference overhead as the generic default."""
    values = []
    for knob in KNOBS:
        value = float(start.get(knob.name, 0.0) or 0.0)
        if knob.name == "inference_overhead_us" and value <= 0:
            value = DEFAULT_INFERENCE_OVERHEAD_US
        elif knob.unit.startswith("µs"):
            value = max(value, 1.0)
        values.append(min(max(value, knob.lower), knob.upper))
    return np.log(values)


class _Problem:
    """Every row's layers stacked once: residuals and their Jacobian in a few array operations."""

    def __init__(self, features: Sequence[RowFeatures], measured_ms: Sequence[float]) -> None:
        self.target = np.log(np.asarray(measured_ms, dtype=float))
        self.compute = np.concatenate([f.compute_s for f in features])
        self.memory = np.concatenate([f.memory_s for f in features])
        self.depthwise = np.concatenate([f.depthwise for f in features]).astype(bool)
        self.row_of = np.concatenate(
            [np.full(f.compute_s.shape[0], i) for i, f in enumerate(features)]
        ).astype(np.intp)
        self.n_mac = np.array([f.n_mac_layers for f in features], dtype=float)
        self.n_element = np.array([f.n_element_layers for f in features], dtype=float)
        self.n_rows = len(features)

    def _sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.row_of, weights=values, minlength=self.n_rows)

    def residuals(self, x: np.ndarray, *, jacobian: bool = False):
        """(z, J): z = (log t̂ − log t) / σ per row; J = dz/dx (only with ``jacobian``)."""
        e, b, d, launch, element, inference = np.exp(x)
        compute_t = self.compute / np.where(self.depthwise, e * d, e)
        memory_t = self.memory / b
        bound = compute_t >= memory_t
        busy = np.where(bound, compute_t, memory_t)
        fixed = np.stack(
            [self.n_mac * launch, self.n_element * element, np.full(self.n_rows, inference)]
        )
        total_s = self._sum(busy) + fixed.sum(axis=0) * 1e-6
        z = (np.log(total_s * 1e3) - self.target) / RESIDUAL_SCALE
        if not jacobian:
            return z, None
        compute_bound = np.where(bound, compute_t, 0.0)
        columns = np.column_stack(
            [
                -self._sum(compute_bound),
                -self._sum(np.where(bound, 0.0, memory_t)),
                -self._sum(np.where(self.depthwise, compute_bound, 0.0)),
                *(fixed * 1e-6),
            ]
        )
        return z, columns / (total_s * RESIDUAL_SCALE)[:, None]


def fit_knobs(
    features: Sequence[RowFeatures],
    measured_ms: Sequence[float],
    start: dict[str, float],
    *,
    max_iterations: int = 200,
) -> FitResult:
    """Fit the six knobs to measured latencies (see the module docstring).

    Args:
        features: one :class:`RowFeatures` per measurement (of one chip, or of chips of
            one NPU family: the knobs are shared).
        measured_ms: the measured latencies, same order.
        start: datasheet knob values (start and prior centre); clipped to the bounds.

    Returns:
        The :class:`FitResult` of the best of three starting points.
    """
    if len(features) != len(measured_ms) or not features:
        raise ValueError("features and measured_ms must be non-empty and of equal length")
    problem = _Problem(features, measured_ms)
    lower = np.log([k.lower for k in KNOBS])
    upper = np.log([k.upper for k in KNOBS])
    prior = _prior_centre(start)
    prior_curvature = prior_precision()

    def loss(x: np.ndarray) -> float:
        offset = x - prior
        return _robust_loss(problem.residuals(x)[0]) + 0.5 * float(
            offset @ prior_curvature @ offset
        )

    def run(x: np.ndarray) -> tuple[np.ndarray, float, int]:
        x = np.clip(x, lower, upper)
        current = loss(x)
        damping = 1e-2
        iterations = 0
        for _ in range(max_iterations):
            iterations += 1
            r, jac = problem.residuals(x, jacobian=True)
            w = _robust_weights(r)
            hessian = jac.T @ (w[:, None] * jac) + prior_curvature
            gradient = jac.T @ (w * r) + prior_curvature @ (x - prior)
            improved, previous = False, current
            step = np.zeros_like(x)
            for _ in range(12):
                step = np.linalg.solve(hessian + damping * np.diag(np.diag(hessian)), -gradient)
                candidate = np.clip(x + step, lower, upper)
                value = loss(candidate)
                if value < current - 1e-12:
                    x, current, improved = candidate, value, True
                    damping = max(damping / 3.0, 1e-6)
                    break
                damping *= 4.0
            converged = previous - current < 1e-7 * (1.0 + current)
            if not improved or converged or np.max(np.abs(step)) < 1e-7:
                break
        return x, current, iterations

    # The prior, and the two ways one row can be explained: slower compute with shorter
    # launches, or the reverse.
    starts = [prior.copy()]
    for compute_shift, launch_shift in ((-1.0, 1.5), (1.0, -1.5)):
        shifted = prior.copy()
        shifted[0] += compute_shift
        shifted[3:6] -= launch_shift
        starts.append(shifted)
    best = min((run(x0) for x0 in starts), key=lambda item: item[1])
    x, value, iterations = best
    at_bound = tuple(
        k.name
        for k, v, lo, hi in zip(KNOBS, x, lower, upper, strict=True)
        if v <= lo + 1e-9 or v >= hi - 1e-9
    )
    return FitResult(
        knobs={name: float(math.exp(value)) for name, value in zip(KNOB_NAMES, x, strict=True)},
        start=dict(start),
        loss=value,
        iterations=iterations,
        at_bound=at_bound,
    )


__all__ = [
    "CAUCHY_SCALE",
    "COMMON_SCALE_DIRECTION",
    "COMMON_SCALE_LOG_WIDTH",
    "DEFAULT_INFERENCE_OVERHEAD_US",
    "INFERENCE_PRIOR_LOG_SCALE",
    "KNOBS",
    "KNOB_NAMES",
    "PRIOR_LOG_SCALE",
    "RESIDUAL_SCALE",
    "FitResult",
    "Knob",
    "RowFeatures",
    "datasheet_knobs",
    "fit_knobs",
    "predict_ms",
    "prior_precision",
    "row_features",
    "unit_spec",
]

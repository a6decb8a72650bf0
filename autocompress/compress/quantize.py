"""Fake quantization with per-layer bit-widths, in a chip's scheme.

Weights are quantized per output channel or per tensor, symmetric or
asymmetric (``chip.quantization``); activations (a layer's *input*) per
tensor, with ranges tracked by an exponential moving average (EMA) of the
batch min/max. With ``logarithmic`` (HiSilicon NNIE) a value is coded as sign +
log2 magnitude on a grid of ``1/log_steps_per_octave`` octave below a
reference maximum. Gradients pass straight through (STE, zero outside the
clipping range for affine quantization). This is plain PyTorch, not
``torch.ao.quantization``.

:class:`QuantConv2d` and :class:`QuantLinear` replace a model's convolutions
and linear layers in place (same qualified names). Each carries the
attributes the cost model's layer extractor reads — ``weight_bits``,
``activation_bits`` (32 = float) and ``sparsity_pattern`` (``"2:4"`` or None) —
and :meth:`QuantMixin.quant_params` gives the export everything it needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autocompress.core.errors import ConfigError
from autocompress.hardware.op_kinds import FLOAT_BITS
from autocompress.hardware.spec import QuantGranularity, QuantizationScheme

MIN_BITS, MAX_BITS = 2, 16


@dataclass(frozen=True)
class LayerQuantization:
    """How one layer is quantized (bits :data:`FLOAT_BITS` = 32 = left in float).

    The one record of a layer's quantization scheme: the fake-quantized layers are
    built from it, and the ONNX export reads it back (``QuantMixin.quantization``)
    beside the scales the layer learnt (:class:`autocompress.export.qdq.LayerQDQ`).
    """

    weight_bits: int = FLOAT_BITS
    activation_bits: int = FLOAT_BITS
    weight_symmetric: bool = True
    activation_symmetric: bool = False
    per_channel: bool = True
    logarithmic: bool = False
    log_steps_per_octave: int = 16
    ema_momentum: float = 0.9


def check_bits(bits: int, *, layer: str, what: str) -> int:
    """Validate a bit-width (2..16, or 32 for float); raise ConfigError naming the layer."""
    bits = int(bits)
    if bits != FLOAT_BITS and not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(
            f"{what} bits for layer {layer!r} must be between {MIN_BITS} and {MAX_BITS} "
            f"(or {FLOAT_BITS} for float), got {bits}"
        )
    return bits


def integer_range(bits: int, symmetric: bool) -> tuple[int, int]:
    """(qmin, qmax) of a ``bits``-bit integer: signed when symmetric, unsigned otherwise."""
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def affine_qparams(
    low: torch.Tensor, high: torch.Tensor, bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale (float32) and zero point (int32) mapping [low, high] onto ``bits`` integers.

    The range is widened to contain 0 so that zero (padding, ReLU, pruned
    weights) is exactly representable.
    """
    qmin, qmax = integer_range(bits, symmetric)
    low = torch.minimum(low.float(), torch.zeros_like(low, dtype=torch.float32))
    high = torch.maximum(high.float(), torch.zeros_like(high, dtype=torch.float32))
    if symmetric:
        scale = torch.maximum(-low, high) / qmax
        scale = scale.clamp_min(1e-8)
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        scale = ((high - low) / (qmax - qmin)).clamp_min(1e-8)
        zero_point = (qmin - torch.round(low / scale)).clamp(qmin, qmax).to(torch.int32)
    return scale, zero_point


def fake_quantize_affine(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int,
    symmetric: bool,
    axis: int | None = None,
) -> torch.Tensor:
    """Quantize-dequantize ``x`` (STE gradient, zero outside the clipping range).

    ``axis`` None: one scale for the tensor; else one scale per index of that axis.
    """
    qmin, qmax = integer_range(bits, symmetric)
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(
            x, scale.reshape(()).float(), zero_point.reshape(()).to(torch.int32), qmin, qmax
        )
    if x.is_cuda:
        return fake_quantize_per_channel_no_sync(x, scale, zero_point, axis, qmin, qmax)
    return torch.fake_quantize_per_channel_affine(
        x, scale.float(), zero_point.to(torch.int32), axis, qmin, qmax
    )


def fake_quantize_per_channel_no_sync(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int, qmin: int, qmax: int
) -> torch.Tensor:
    """``torch.fake_quantize_per_channel_affine`` without its host-side argument check.

    The ATen op reads the zero points back to the CPU to check their range, a device
    synchronisation in every training step, which rules out CUDA-graph capture of the
    step (per-channel weights: rk3566, rk3588, Orin Nano). Same arithmetic as the ATen kernel
    (``clamp(nearbyint(x · (1/s)) + z, qmin, qmax) - z) · s``, in float32) and the same
    gradient (``x``'s, masked to the clipping range; none for the scale).
    """
    shape = tuple(-1 if d == axis else 1 for d in range(x.dim()))
    s = scale.detach().float().reshape(shape)
    z = zero_point.detach().to(torch.int32).float().reshape(shape)
    xf = x.float()
    q = torch.round(xf * torch.reciprocal(s)) + z
    inside = (q >= qmin) & (q <= qmax)
    out = (q.clamp(qmin, qmax) - z) * s
    passed = torch.where(inside, xf, torch.zeros_like(xf))  # d out / d x: the STE mask
    return (passed + (out - passed).detach()).to(x.dtype)


def log_levels(bits: int) -> int:
    """Number of non-zero magnitudes of a ``bits``-bit sign + log2-magnitude code."""
    return 2 ** (bits - 1) - 1


def log_codes(x: torch.Tensor, reference: torch.Tensor, bits: int, steps: int) -> torch.Tensor:
    """Signed integer codes of the logarithmic scheme.

    Code ``m`` in 1..L (L = 2^(bits-1) - 1) stands for ``reference * 2**((m - L) / steps)``;
    ``-m`` for its negative, ``0`` for zero. ``reference`` broadcasts against ``x``.
    """
    levels = log_levels(bits)
    ratio = x.abs().float() / reference.float().clamp_min(1e-12)
    exponent = torch.round(-torch.log2(ratio.clamp_min(1e-30)) * steps)  # 0 = the reference
    # below half a step under the smallest level: rounds to zero
    underflow = exponent > (levels - 1) + 0.5 * steps
    magnitude = (levels - exponent.clamp(0, levels - 1)).masked_fill(underflow, 0)
    return (torch.sign(x.float()) * magnitude).to(torch.int32)


def log_decode(codes: torch.Tensor, reference: torch.Tensor, bits: int, steps: int) -> torch.Tensor:
    """Values of :func:`log_codes` codes."""
    levels = log_levels(bits)
    magnitude = codes.abs().float()
    value = reference.float() * torch.exp2((magnitude - levels) / steps)
    return torch.where(codes == 0, torch.zeros_like(value), torch.sign(codes.float()) * value)


def fake_quantize_log(
    x: torch.Tensor, reference: torch.Tensor, bits: int, steps: int
) -> torch.Tensor:
    """Quantize-dequantize onto the sign + log2 grid (straight-through gradient)."""
    with torch.no_grad():
        q = log_decode(log_codes(x, reference, bits, steps), reference, bits, steps).to(x.dtype)
    return x + (q - x).detach()


#: Learned step sizes (LSQ) are used for weights of at most this many bits.
LSQ_MAX_WEIGHT_BITS = 4
#: Smallest step a learned step size may take (kept positive).
MIN_STEP = 1e-8


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in the forward pass, gradient multiplied by ``scale`` in the backward pass."""
    scaled = x * scale
    return (x - scaled).detach() + scaled


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer; the gradient passes straight through."""
    return (torch.round(x) - x).detach() + x


def lsq_fake_quantize(
    x: torch.Tensor,
    step: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int,
    symmetric: bool,
    axis: int | None = None,
) -> torch.Tensor:
    """Quantize-dequantize with a *learned* step (LSQ, Esser et al. 2020).

    ``(clamp(round(x / s) + z, qmin, qmax) - z) · s``; ``x`` and ``s`` both get
    gradients (rounding is straight-through; the step's gradient is scaled by
    ``1 / sqrt(N · qmax)`` as in the paper, N = elements per step). The step is
    clamped to at least :data:`MIN_STEP`; ``zero_point`` is a fixed integer.
    """
    qmin, qmax = integer_range(bits, symmetric)
    if axis is None:
        per_step = x.numel()
        shape: tuple[int, ...] = ()
    else:
        per_step = x.numel() // max(1, x.shape[axis])
        shape = tuple(-1 if d == axis else 1 for d in range(x.dim()))
    g = 1.0 / ((per_step * max(qmax, 1)) ** 0.5)
    s = grad_scale(step, g).clamp_min(MIN_STEP).reshape(shape).to(x.dtype)
    z = zero_point.reshape(shape).to(x.dtype)
    q = torch.clamp(round_ste(x / s) + z, qmin, qmax)
    return (q - z) * s


class QuantMixin:
    """Shared state and behaviour of :class:`QuantConv2d` and :class:`QuantLinear`.

    Attributes (read by ``autocompress.hardware.extract.extract_layers``):
        weight_bits, activation_bits: bit-widths; 32 means float (not quantized).
        sparsity_pattern: ``"2:4"`` when a semi-structured mask is applied, else None.
    Buffers: ``act_min`` / ``act_max`` (EMA range of the input), ``act_calibrated``,
    and ``sparsity_mask`` when sparse.
    """

    weight: nn.Parameter
    bias: nn.Parameter | None
    act_min: torch.Tensor
    act_max: torch.Tensor
    act_calibrated: torch.Tensor
    sparsity_mask: torch.Tensor | None

    def _init_quant(self, quant: LayerQuantization) -> None:
        self.weight_bits = int(quant.weight_bits)
        self.activation_bits = int(quant.activation_bits)
        self.weight_symmetric = bool(quant.weight_symmetric)
        self.activation_symmetric = bool(quant.activation_symmetric)
        self.per_channel = bool(quant.per_channel)
        self.logarithmic = bool(quant.logarithmic)
        self.log_steps_per_octave = int(quant.log_steps_per_octave)
        self.ema_momentum = float(quant.ema_momentum)
        self.sparsity_pattern: str | None = None
        self.calibrating = False
        self.recalibrating_bn = False
        self._calibrated = False
        self.bn: nn.BatchNorm2d | nn.BatchNorm1d | None = None
        self.register_buffer("act_min", torch.zeros(()))  # type: ignore[attr-defined]
        self.register_buffer("act_max", torch.zeros(()))  # type: ignore[attr-defined]
        self.register_buffer("act_calibrated", torch.zeros(()))  # type: ignore[attr-defined]
        self.register_buffer("sparsity_mask", None)  # type: ignore[attr-defined]
        # learned step sizes (LSQ): None until enable_learned_steps(); see that method
        self.weight_log_step: nn.Parameter | None = None
        self.act_log_step: nn.Parameter | None = None
        self.register_buffer("weight_step_zero_point", None)  # type: ignore[attr-defined]
        self.register_buffer("act_step_zero_point", None)  # type: ignore[attr-defined]

    # -- state dict: loading ranges marks the layer calibrated -----------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        mask_key = prefix + "sparsity_mask"
        if mask_key in state_dict and self.sparsity_mask is None:
            self.sparsity_mask = torch.empty_like(state_dict[mask_key])
        for kind in ("weight", "act"):  # learned steps saved: make room for them
            key = f"{prefix}{kind}_log_step"
            if key in state_dict and getattr(self, f"{kind}_log_step") is None:
                self._make_step(kind, torch.ones_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]
        self._calibrated = bool(self.act_calibrated.item() > 0)

    @property
    def weight_quantized(self) -> bool:
        return self.weight_bits != FLOAT_BITS

    @property
    def activation_quantized(self) -> bool:
        return self.activation_bits != FLOAT_BITS

    @property
    def quantization(self) -> LayerQuantization:
        """This layer's scheme as the :class:`LayerQuantization` it was built from."""
        return LayerQuantization(
            weight_bits=self.weight_bits,
            activation_bits=self.activation_bits,
            weight_symmetric=self.weight_symmetric,
            activation_symmetric=self.activation_symmetric,
            per_channel=self.per_channel,
            logarithmic=self.logarithmic,
            log_steps_per_octave=self.log_steps_per_octave,
            ema_momentum=self.ema_momentum,
        )

    def scheme_name(self, *, weights: bool) -> str:
        """``"logarithmic"``, ``"symmetric"`` or ``"asymmetric"``."""
        if self.logarithmic:
            return "logarithmic"
        symmetric = self.weight_symmetric if weights else self.activation_symmetric
        return "symmetric" if symmetric else "asymmetric"

    # -- weights --------------------------------------------------------------------------
    def attach_bn(self, bn: nn.BatchNorm2d | nn.BatchNorm1d) -> None:
        """Take over the batch-norm that follows this layer (folded in every forward).

        Its running statistics are frozen (used as in deployment); its affine
        ``weight``/``bias`` stay trainable. :func:`recalibrate_batch_norms`
        re-estimates the statistics (e.g. after pruning).
        """
        self.bn = bn  # registers the submodule

    def masked_weight(self) -> torch.Tensor:
        """The (unfolded) float weight with the sparsity mask applied."""
        if self.sparsity_mask is None:
            return self.weight
        return self.weight * self.sparsity_mask.to(self.weight.dtype)

    def folded_weight_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Float weight (masked) and bias with the attached batch-norm folded in."""
        weight, bias = self.masked_weight(), self.bias
        bn = self.bn
        if bn is None:
            return weight, bias
        assert bn.running_var is not None and bn.running_mean is not None
        factor = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            factor = factor * bn.weight
        shift = -bn.running_mean * factor
        if bn.bias is not None:
            shift = shift + bn.bias
        weight = weight * factor.reshape((-1,) + (1,) * (weight.dim() - 1)).to(weight.dtype)
        bias = shift if bias is None else bias * factor + shift
        return weight, bias

    def weight_qparams(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero_point) of a (folded) weight: one per output channel, or one element.

        For the logarithmic scheme the scale is the reference magnitude (the
        largest absolute weight) and the zero point is 0. With a learned step
        (:meth:`enable_learned_steps`) it is that step and its fixed zero point.
        """
        if self.weight_log_step is not None:
            zero = self.weight_step_zero_point
            assert zero is not None
            step = torch.exp(self.weight_log_step.detach().float()).clamp_min(MIN_STEP)
            return step, zero.to(torch.int32)
        with torch.no_grad():
            flat = weight.detach().reshape(weight.shape[0], -1).float()
            if self.logarithmic or self.weight_symmetric:  # one reduction: the largest |w|
                peak = flat.abs().amax(dim=1) if self.per_channel else flat.abs().max().reshape(1)
                if self.logarithmic:
                    ref = peak.clamp_min(1e-12)
                    return ref, torch.zeros_like(ref, dtype=torch.int32)
                scale = (peak / integer_range(self.weight_bits, True)[1]).clamp_min(1e-8)
                return scale, torch.zeros_like(scale, dtype=torch.int32)
            if self.per_channel:
                low, high = flat.amin(dim=1), flat.amax(dim=1)
            else:
                low, high = flat.min().reshape(1), flat.max().reshape(1)
            return affine_qparams(low, high, self.weight_bits, self.weight_symmetric)

    def quantize_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """Fake-quantize a (folded) weight in this layer's scheme and bits."""
        if not self.weight_quantized:
            return weight
        if self.weight_log_step is not None:
            assert self.weight_step_zero_point is not None
            return lsq_fake_quantize(
                weight,
                torch.exp(self.weight_log_step),
                self.weight_step_zero_point,
                self.weight_bits,
                self.weight_symmetric,
                axis=0 if self.per_channel else None,
            )
        scale, zero_point = self.weight_qparams(weight)
        if self.logarithmic:
            shape = (-1,) + (1,) * (weight.dim() - 1)
            return fake_quantize_log(
                weight, scale.reshape(shape), self.weight_bits, self.log_steps_per_octave
            )
        axis = 0 if self.per_channel else None
        return fake_quantize_affine(
            weight, scale, zero_point, self.weight_bits, self.weight_symmetric, axis=axis
        )

    def deployed_weight_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the layer computes with: BN folded, masked, weight fake-quantized."""
        weight, bias = self.folded_weight_bias()
        return self.quantize_weight(weight), bias

    def quantized_weight(self) -> torch.Tensor:
        """The deployed weight (see :meth:`deployed_weight_bias`)."""
        return self.deployed_weight_bias()[0]

    def _forward_recalibrating(self, x: torch.Tensor, op) -> torch.Tensor:
        """Unfolded float layer + BN in batch-statistics mode (updates running stats)."""
        assert self.bn is not None
        return self.bn(op(x, self.masked_weight(), self.bias))

    # -- activations ----------------------------------------------------------------------
    def _observe(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            low, high = torch.aminmax(x.detach())
            low, high = low.float(), high.float()
            if not self._calibrated:
                self.act_min.copy_(low)
                self.act_max.copy_(high)
                self.act_calibrated.fill_(1.0)
                self._calibrated = True
            else:
                m = self.ema_momentum
                self.act_min.mul_(m).add_(low, alpha=1 - m)
                self.act_max.mul_(m).add_(high, alpha=1 - m)

    def activation_qparams(
        self, low: torch.Tensor | None = None, high: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero_point) of the input activations (scalars).

        From the EMA range, or from ``low``/``high`` when given.
        """
        if self.act_log_step is not None and low is None and high is None:
            zero = self.act_step_zero_point
            assert zero is not None
            step = torch.exp(self.act_log_step.detach().float()).clamp_min(MIN_STEP).reshape(())
            return step, zero.to(torch.int32).reshape(())
        low = self.act_min if low is None else low
        high = self.act_max if high is None else high
        if self.logarithmic:
            ref = torch.maximum(low.abs(), high.abs()).float().clamp_min(1e-12)
            return ref, torch.zeros((), dtype=torch.int32, device=ref.device)
        return affine_qparams(low, high, self.activation_bits, self.activation_symmetric)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantize the layer's input (per tensor); updates the EMA range when training.

        In eval mode a layer never calibrated uses the batch's own range (and
        stores nothing).
        """
        if not self.activation_quantized:
            return x
        if self.act_log_step is not None and not self.calibrating:
            assert self.act_step_zero_point is not None
            return lsq_fake_quantize(
                x,
                torch.exp(self.act_log_step),
                self.act_step_zero_point,
                self.activation_bits,
                self.activation_symmetric,
            )
        if self.training or self.calibrating:  # type: ignore[attr-defined]
            self._observe(x)
            scale, zero_point = self.activation_qparams()
        elif not self._calibrated:
            with torch.no_grad():
                low, high = torch.aminmax(x.detach())
            scale, zero_point = self.activation_qparams(low.float(), high.float())
        else:
            scale, zero_point = self.activation_qparams()
        if self.logarithmic:
            return fake_quantize_log(x, scale, self.activation_bits, self.log_steps_per_octave)
        return fake_quantize_affine(
            x, scale, zero_point, self.activation_bits, self.activation_symmetric
        )

    # -- learned step sizes (LSQ) ---------------------------------------------------------
    def _make_step(self, kind: str, step: torch.Tensor) -> None:
        zero = torch.zeros(step.shape, dtype=torch.int32, device=step.device)
        log_step = torch.log(step.detach().float().clamp_min(MIN_STEP))
        setattr(self, f"{kind}_log_step", nn.Parameter(log_step))
        setattr(self, f"{kind}_step_zero_point", zero)

    def enable_learned_steps(self, *, weights: bool, activations: bool) -> list[str]:
        """Turn the current (calibrated) quantization grid into learned step sizes.

        Weights: the min/max step of the folded weight becomes a trainable
        step (one per output channel or one), its zero point fixed.
        Activations of at most 8 bits ("learned clipping"): the calibrated EMA
        range becomes a trainable step plus a fixed zero point, so the clipping
        range ``[(qmin - z)·s, (qmax - z)·s]`` is learned. Steps are stored as
        their natural log (``weight_log_step`` / ``act_log_step``): always
        positive, and an optimizer's update is a *relative* change of the step,
        whatever its magnitude (AdamW at lr 1e-3 would otherwise move a 16-bit
        step of 1e-4 by ten times itself per update). Only affine (not
        logarithmic) quantized parts are converted; call after calibration.
        Returns what was converted (``"weight"``, ``"activation"``).
        """
        done: list[str] = []
        if self.logarithmic:
            return done
        if weights and self.weight_quantized and self.weight_log_step is None:
            with torch.no_grad():
                folded, _ = self.folded_weight_bias()
                scale, zero = self.weight_qparams(folded)
            self._make_step("weight", scale)
            assert self.weight_step_zero_point is not None
            self.weight_step_zero_point.copy_(zero.to(torch.int32))
            done.append("weight")
        if (
            activations
            and self.activation_quantized
            and self.activation_bits <= 8
            and self.act_log_step is None
            and self._calibrated
        ):
            with torch.no_grad():
                scale, zero = self.activation_qparams()
            self._make_step("act", scale.reshape(()))
            assert self.act_step_zero_point is not None
            self.act_step_zero_point.copy_(zero.to(torch.int32).reshape(()))
            done.append("activation")
        return done

    def activation_range(self) -> tuple[float, float]:
        """(min, max) the input activations are clipped to."""
        if self.act_log_step is None:
            return float(self.act_min), float(self.act_max)
        scale, zero = self.activation_qparams()
        qmin, qmax = integer_range(self.activation_bits, self.activation_symmetric)
        return float((qmin - zero) * scale), float((qmax - zero) * scale)

    # -- export ---------------------------------------------------------------------------
    def quant_params(self) -> dict[str, Any]:
        """Everything an exporter needs to write this layer's quantization.

        Everything refers to the *deployed* layer: the attached batch-norm is
        folded in (``module.weight`` alone is the unfolded float weight; use
        ``weight``/``bias`` here, or :meth:`deployed_weight_bias`).

        Returns a dict of plain numbers, strings and CPU tensors:

        - ``weight_bits``, ``activation_bits``: ints (32 = float, not quantized);
        - ``weight_scheme``, ``activation_scheme``: ``"symmetric"``, ``"asymmetric"``
          or ``"logarithmic"``; ``weight_granularity``: ``"per_channel"`` / ``"per_tensor"``;
        - ``weight_scale`` (float32, one per output channel or shape (1,)) and
          ``weight_zero_point`` (int32, same shape); ``weight_qmin``/``weight_qmax``;
          ``real = (q - zero_point) * scale``. For logarithmic weights the scale is
          the reference magnitude and codes follow :func:`log_codes`;
        - ``weight_int``: the integer codes (int32, shape of the weight), masked;
        - ``weight``: the dequantized float weight the layer computes with
          (batch-norm folded in, sparsity mask applied);
        - ``bias``: float bias (BN folded in) or None — kept in float (int32 on chips);
        - ``activation_scale`` (float), ``activation_zero_point`` (int),
          ``activation_qmin``/``activation_qmax``, ``activation_range`` (min, max);
        - ``log_steps_per_octave`` (int, or None when not logarithmic);
        - ``sparsity_pattern``: ``"2:4"`` or None.
        """
        with torch.no_grad():
            folded, folded_bias = self.folded_weight_bias()
            weight = folded.detach().float()
            params: dict[str, Any] = {
                "weight_bits": self.weight_bits,
                "activation_bits": self.activation_bits,
                "weight_scheme": self.scheme_name(weights=True),
                "activation_scheme": self.scheme_name(weights=False),
                "weight_granularity": (
                    QuantGranularity.PER_CHANNEL.value
                    if self.per_channel
                    else QuantGranularity.PER_TENSOR.value
                ),
                "log_steps_per_octave": self.log_steps_per_octave if self.logarithmic else None,
                "sparsity_pattern": self.sparsity_pattern,
                "bias": None if folded_bias is None else folded_bias.detach().float().cpu(),
                "weight": self.quantized_weight().detach().float().cpu(),
            }
            if self.weight_quantized:
                scale, zero_point = self.weight_qparams(weight)
                shape = (-1,) + (1,) * (weight.dim() - 1)
                if self.logarithmic:
                    ref = scale.reshape(shape) if self.per_channel else scale.reshape(())
                    codes = log_codes(weight, ref, self.weight_bits, self.log_steps_per_octave)
                    qmin, qmax = -log_levels(self.weight_bits), log_levels(self.weight_bits)
                else:
                    qmin, qmax = integer_range(self.weight_bits, self.weight_symmetric)
                    s = scale.reshape(shape) if self.per_channel else scale.reshape(())
                    z = zero_point.reshape(shape) if self.per_channel else zero_point.reshape(())
                    codes = (torch.round(weight / s) + z).clamp(qmin, qmax).to(torch.int32)
                params.update(
                    weight_scale=scale.cpu(),
                    weight_zero_point=zero_point.cpu(),
                    weight_qmin=qmin,
                    weight_qmax=qmax,
                    weight_int=codes.cpu(),
                )
            if self.activation_quantized:
                scale, zero_point = self.activation_qparams()
                if self.logarithmic:
                    qmin, qmax = -log_levels(self.activation_bits), log_levels(self.activation_bits)
                else:
                    qmin, qmax = integer_range(self.activation_bits, self.activation_symmetric)
                params.update(
                    activation_scale=float(scale),
                    activation_zero_point=int(zero_point),
                    activation_qmin=qmin,
                    activation_qmax=qmax,
                    activation_range=self.activation_range(),
                )
        return params

    def extra_repr(self) -> str:  # type: ignore[override]
        base = super().extra_repr()  # type: ignore[misc]
        sparse = f", sparsity={self.sparsity_pattern}" if self.sparsity_pattern else ""
        scheme = self.scheme_name(weights=True)
        return f"{base}, w{self.weight_bits}a{self.activation_bits} {scheme}{sparse}"


class QuantConv2d(QuantMixin, nn.Conv2d):
    """An ``nn.Conv2d`` with fake-quantized weights and input (see :class:`QuantMixin`)."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d, quant: LayerQuantization) -> QuantConv2d:
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        new._init_quant(quant)
        with torch.no_grad():
            new.weight.copy_(conv.weight)
            if conv.bias is not None and new.bias is not None:
                new.bias.copy_(conv.bias)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        if self.recalibrating_bn and self.bn is not None:
            return self._forward_recalibrating(x, self._conv_forward)
        weight, bias = self.deployed_weight_bias()
        return self._conv_forward(x, weight, bias)


class QuantLinear(QuantMixin, nn.Linear):
    """An ``nn.Linear`` with fake-quantized weights and input (see :class:`QuantMixin`)."""

    @classmethod
    def from_float(cls, linear: nn.Linear, quant: LayerQuantization) -> QuantLinear:
        new = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        new._init_quant(quant)
        with torch.no_grad():
            new.weight.copy_(linear.weight)
            if linear.bias is not None and new.bias is not None:
                new.bias.copy_(linear.bias)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        if self.recalibrating_bn and self.bn is not None:
            return self._forward_recalibrating(x, F.linear)
        weight, bias = self.deployed_weight_bias()
        return F.linear(x, weight, bias)


QUANT_TYPES = (QuantConv2d, QuantLinear)


def layer_quantization(
    scheme: QuantizationScheme, weight_bits: int, activation_bits: int
) -> LayerQuantization:
    """The :class:`LayerQuantization` of a layer on a chip with ``scheme``."""
    return LayerQuantization(
        weight_bits=weight_bits,
        activation_bits=activation_bits,
        weight_symmetric=scheme.weight_symmetric,
        activation_symmetric=scheme.activation_symmetric,
        per_channel=scheme.weight_granularity == QuantGranularity.PER_CHANNEL,
        logarithmic=scheme.logarithmic,
        log_steps_per_octave=scheme.log_steps_per_octave,
    )


def fake_quantize(
    model: nn.Module,
    scheme: QuantizationScheme,
    weight_bits: Mapping[str, int],
    activation_bits: Mapping[str, int],
) -> nn.Module:
    """Replace every Conv2d / Linear of ``model`` in place by its quantized twin.

    Layers absent from ``weight_bits`` / ``activation_bits`` keep float (32)
    weights / inputs but still become Quant* modules, so every layer carries
    the ``weight_bits`` / ``activation_bits`` / ``sparsity_pattern`` attributes.
    """
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear) and not isinstance(module, QUANT_TYPES)
    ]
    for name, module in targets:
        quant = layer_quantization(
            scheme,
            check_bits(weight_bits.get(name, FLOAT_BITS), layer=name, what="weight"),
            check_bits(activation_bits.get(name, FLOAT_BITS), layer=name, what="activation"),
        )
        if isinstance(module, nn.Conv2d):
            new: nn.Module = QuantConv2d.from_float(module, quant)
        else:
            new = QuantLinear.from_float(module, quant)
        new.train(module.training)
        _set_submodule(model, name, new)
    return model


def quantized_layers(model: nn.Module) -> Iterator[tuple[str, QuantMixin]]:
    """(name, layer) of every quantized-capable layer in ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, QUANT_TYPES):
            yield name, module


def set_calibrating(model: nn.Module, on: bool) -> None:
    """Make quantized layers update their activation ranges even in eval mode."""
    for _, layer in quantized_layers(model):
        layer.calibrating = on


@torch.no_grad()
def calibrate_activations(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 256, batches: int = 4
) -> None:
    """Initialise activation ranges from a few batches (eval mode, EMA observers on)."""
    was_training = model.training
    model.eval()
    set_calibrating(model, True)
    try:
        for start in range(0, min(len(images), batch_size * batches), batch_size):
            model(images[start : start + batch_size])
    finally:
        set_calibrating(model, False)
        model.train(was_training)


@torch.no_grad()
def recalibrate_batch_norms(
    model: nn.Module, images: torch.Tensor, *, batch_size: int = 256, batches: int = 4
) -> int:
    """Re-estimate the running statistics of every attached batch-norm from data.

    After pruning, the statistics a BN learned no longer match its (thinner)
    input; a few forward passes with batch statistics fix that before the
    folded weights are fine-tuned. Returns the number of BNs re-estimated.
    """
    layers = [layer for _, layer in quantized_layers(model) if layer.bn is not None]
    if not layers:
        return 0
    was_training = model.training
    model.eval()
    saved = []
    for layer in layers:
        bn = layer.bn
        assert bn is not None
        saved.append(bn.momentum)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
        bn.train()
        layer.recalibrating_bn = True
    try:
        for start in range(0, min(len(images), batch_size * batches), batch_size):
            model(images[start : start + batch_size])
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            assert layer.bn is not None
            layer.bn.momentum = momentum
            layer.bn.eval()
            layer.recalibrating_bn = False
        model.train(was_training)
    return len(layers)


def enable_learned_steps(
    model: nn.Module, *, max_weight_bits: int = LSQ_MAX_WEIGHT_BITS, activations: bool = True
) -> dict[str, list[str]]:
    """LSQ step sizes for weights of at most ``max_weight_bits`` bits and learned activation
    clipping on every quantized input (see :meth:`QuantMixin.enable_learned_steps`).

    Call after calibration (BN re-estimated, activation ranges observed).
    Returns layer name -> what was converted (layers with nothing converted left out).
    """
    out: dict[str, list[str]] = {}
    for name, layer in quantized_layers(model):
        done = layer.enable_learned_steps(
            weights=layer.weight_bits <= max_weight_bits, activations=activations
        )
        if done:
            out[name] = done
    return out


def make_room_for_learned_steps(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Create the learned-step parameters a saved ``state_dict`` holds (before loading it)."""
    for name, layer in quantized_layers(model):
        prefix = f"{name}." if name else ""
        for kind in ("weight", "act"):
            key = f"{prefix}{kind}_log_step"
            if key in state_dict and getattr(layer, f"{kind}_log_step") is None:
                layer._make_step(kind, torch.ones_like(state_dict[key]))


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


__all__ = [
    "FLOAT_BITS",
    "QUANT_TYPES",
    "LayerQuantization",
    "QuantConv2d",
    "QuantLinear",
    "QuantMixin",
    "affine_qparams",
    "calibrate_activations",
    "check_bits",
    "enable_learned_steps",
    "fake_quantize",
    "fake_quantize_affine",
    "fake_quantize_log",
    "fake_quantize_per_channel_no_sync",
    "integer_range",
    "layer_quantization",
    "log_codes",
    "log_decode",
    "lsq_fake_quantize",
    "make_room_for_learned_steps",
    "quantized_layers",
    "recalibrate_batch_norms",
]

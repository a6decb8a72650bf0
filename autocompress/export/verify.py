"""Check an exported ONNX file before it is declared done.

``onnx.checker`` (full check, with shape inference), then onnxruntime runs it on
held-out images and it is compared with the PyTorch student in two ways:

1. **Layer by layer, exact up to float rounding.** Every conv/linear layer's
   input tensor is read out of onnxruntime, and the PyTorch student runs with
   each layer's input *forced* to onnxruntime's (so both compute every layer
   from the same quantized tensors; Swin's window-attention input, quantized with
   float ops before the attention, is forced as its ``qkv`` layer's input). Then a
   layer's own quantized input may differ from onnxruntime's only where float32
   rounding (~1e-6 relative) pushed a value across a rounding boundary: by one
   quantization step, plus
   :data:`FLOAT_TOLERANCE` of the tensor's magnitude. The logits (with the last
   layer's input forced) must agree to :data:`FLOAT_TOLERANCE` of their
   magnitude; and onnxruntime's value before each quantizer may differ from a
   float64 run of the student from the same inputs by at most
   :data:`FLOAT_TOLERANCE` of the tensor's magnitude on average (an export that
   computes something else, e.g. float weights where the student quantizes them,
   shows there long before it moves a value by a step). A wrong scale, zero point
   or weight in any layer, or a dropped or extra op, breaks this at the first
   layer it touches — whatever the accuracy.
2. **Top-1 agreement, against the model's own noise.** Free-running, those
   one-step flips build up with depth (the MobileNetV2 students of a digits run
   agree 75–96 % with their own, correct, exports). How much is what the model's
   quantization implies: the PyTorch student runs again with the float error
   measured in (1) — per layer, shuffled across the batch — added before each
   layer's quantizer, and its agreement with the clean PyTorch run is the expected
   agreement. The export
   must reach it minus a statistical margin (:func:`agreement_bound`), and its
   accuracy on the labels likewise that of the simulation. A fixed
   ``min_agreement`` replaces the derived bound when given.

Anything failing raises :class:`~autocompress.core.errors.ExportError`.

The gate runs onnxruntime with basic graph optimizations, which execute the
graph as written (Q/DQ as float ops), i.e. the reference semantics of the
file. onnxruntime's extended optimizations fuse DQ -> Conv -> Q into integer
kernels (bias rounded to int32, requantized outputs), the way an integer NPU
runs it; that agreement is measured too and reported (``optimized_*``), not gated.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from autocompress.compress.quantize import QuantMixin, quantized_layers
from autocompress.core.errors import ExportError
from autocompress.export.onnx_files import session_source

#: Float32 error allowed between PyTorch and onnxruntime computing one layer from the same
#: inputs, relative to the largest magnitude of the tensor (measured on MobileNetV2 students:
#: at most 2e-4, 5e-5 on average; onnxruntime's conv kernels round at up to ~1e-5 where
#: PyTorch's round at 1e-8, so PyTorch's own rounding cannot serve as the bound).
FLOAT_TOLERANCE = 1e-3
#: Allowed mean signed error of a quantized input, in steps (a systematic one-step offset,
#: e.g. a zero point applied on one side only, shows as ~1; rounding flips average ~0).
MAX_MEAN_STEP_ERROR = 0.05
#: Allowed part of a quantized input's difference that grows with the value, as steps at the
#: tensor's peak (the least-squares slope of ONNX − PyTorch against PyTorch's values). A
#: quantization scale off by a factor (1 + e) gives e · peak / step, ~0.77 steps at e = 0.003
#: with 8-bit inputs, while every value stays within one step; rounding flips are not
#: correlated with the value (a correct MobileNetV2 student: below 0.01).
MAX_SCALE_ERROR_STEPS = 0.25
#: Standard deviations of the margin below the simulated agreement.
MARGIN_SIGMAS = 4.0
#: PyTorch runs with injected float noise per image (the expected agreement's sample).
SIMULATION_RUNS = 2
#: At most this many of the checked images are compared layer by layer and simulated.
SIMULATED_IMAGES = 512


@dataclass(frozen=True)
class LayerCheck:
    """One layer's input, PyTorch vs onnxruntime, with its upstream quantized tensors forced equal.

    Attributes:
        name: the layer.
        quantized: its input is quantized (errors in steps) or float (errors relative).
        error: largest difference; in quantization steps, or relative to the tensor's
            largest magnitude for a float input.
        allowed: the largest difference accepted.
        mismatch_fraction: fraction of elements that differ at all (rounding flips).
        mean_error: mean signed difference in steps (quantized affine inputs).
        scale_error: the part of the difference that grows with the value, as steps at the
            tensor's peak (a wrong quantization scale; quantized affine inputs), at most
            :data:`MAX_SCALE_ERROR_STEPS`.
        float_error: onnxruntime's mean absolute float32 error before the quantizer, against
            a float64 run of the student from the same inputs, relative to the tensor's
            largest magnitude; at most :data:`FLOAT_TOLERANCE`.
        torch_float_error: PyTorch's float32 error measured the same way (for comparison:
            the two differ by the runtimes' kernels, e.g. 1e-8 vs 9e-6 on a stride-2 stem).
    """

    name: str
    quantized: bool
    error: float
    allowed: float
    mismatch_fraction: float
    mean_error: float
    float_error: float
    torch_float_error: float = 0.0
    scale_error: float = 0.0

    @property
    def float_ok(self) -> bool:
        """onnxruntime's float32 result is within float rounding of the exact one."""
        return self.float_error <= FLOAT_TOLERANCE

    @property
    def ok(self) -> bool:
        mean_ok = abs(self.mean_error) <= MAX_MEAN_STEP_ERROR + (self.allowed - 1.0)
        scale_ok = self.scale_error <= MAX_SCALE_ERROR_STEPS
        quantized_ok = not self.quantized or (mean_ok and scale_ok)
        return self.error <= self.allowed and quantized_ok and self.float_ok


@dataclass(frozen=True)
class ExportCheck:
    """How the ONNX file compares with the PyTorch student on held-out data.

    Attributes:
        images: number of images compared.
        top1_agreement: fraction of images with the same arg-max class.
        max_abs_error: largest absolute logit difference.
        mean_abs_error: mean absolute logit difference.
        onnx_accuracy / torch_accuracy: top-1 accuracy of each on those images (when labels given).
        onnxruntime_version: the runtime that ran it.
        optimized_top1_agreement / optimized_max_abs_error: the same with all
            onnxruntime optimizations (integer-fused kernels), for information.
        min_agreement: the agreement the export had to reach (derived, or the fixed override).
        tolerance: how ``min_agreement`` was derived (method, simulated agreement, margin).
        layers: the layer-by-layer check (layers compared, the worst one, logits error).
    """

    images: int
    top1_agreement: float
    max_abs_error: float
    mean_abs_error: float
    onnx_accuracy: float | None
    torch_accuracy: float | None
    onnxruntime_version: str
    optimized_top1_agreement: float | None = None
    optimized_max_abs_error: float | None = None
    min_agreement: float | None = None
    tolerance: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def check_onnx_file(path: Path) -> None:
    """``onnx.checker.check_model(full_check=True)``; failures become ExportError."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{path}: the ONNX checker rejected the export: {exc}") from None


def _session(source: Path | str | bytes, level, path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort  # heavy: loads only when an export is checked

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    try:
        model = source if isinstance(source, bytes) else str(source)
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"{path}: onnxruntime cannot load the export: {exc}") from None


@dataclass(frozen=True)
class _Tap:
    """Where a layer's input lives in the ONNX graph."""

    name: str
    layer: QuantMixin
    feed: str  # the tensor the Conv/Gemm/MatMul reads (after Q/DQ)
    raw: str  # the tensor before the quantizer (== feed for a float input)
    hooked: str = ""  # the module whose first argument is that input ("": the layer itself)


def _taps(proto: onnx.ModelProto, model: nn.Module) -> list[_Tap]:
    """The graph tensors of every layer of ``model`` that the ONNX graph computes."""
    by_name = {node.name: node for node in proto.graph.node if node.name}
    consumers: dict[str, onnx.NodeProto] = {}
    for node in proto.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1:
            consumers.setdefault(node.input[1], node)
    inputs = {i.name for i in proto.graph.input}
    taps = []
    for name, layer in quantized_layers(model):
        node = consumers.get(f"{name}.weight_dequantized") or consumers.get(f"{name}.weight")
        quantizer = by_name.get(f"{name}/input_fq_div"), by_name.get(f"{name}/input_fq_mul")
        if node is None and None not in quantizer:
            # a routed window attention's input, quantized with its qkv's quantizer (float ops,
            # see export.onnx_model): forced too, or a rounding flip there, different in each
            # run, would reach every later layer through the residual stream
            raw, feed = quantizer[0].input[0], quantizer[1].output[0]  # type: ignore[union-attr]
            taps.append(_Tap(name, layer, feed, raw, hooked=name.rpartition(".")[0]))
            continue
        if node is None:
            continue  # read functionally (attention projections) or never run (aux heads)
        feed = node.input[0]
        raw = feed
        for first in (f"{name}/input_clip", f"{name}/input_q", f"{name}/input_log_0"):
            if first in by_name:
                raw = by_name[first].input[0]
                break
        if feed in inputs and raw in inputs:
            continue  # the model's own input: nothing to force
        taps.append(_Tap(name, layer, feed, raw))
    return taps


def _with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    extra = onnx.ModelProto()
    extra.CopyFrom(proto)
    present = {o.name for o in extra.graph.output} | {i.name for i in extra.graph.input}
    for name in dict.fromkeys(names):
        if name not in present:
            extra.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    return extra


class _Stats:
    """Running per-layer statistics of the forced comparison."""

    def __init__(self) -> None:
        self.error = 0.0
        self.allowed = math.inf
        self.mismatched = 0
        self.elements = 0
        self.signed = 0.0
        self.float_error = 0.0
        self.torch_float_error = 0.0
        self.float_elements = 0
        self.quantized = False
        self.cross = 0.0  # sum of (ONNX - PyTorch) x PyTorch, in steps x values
        self.square = 0.0  # sum of PyTorch's values squared
        self.peak_steps = 0.0  # the largest |value| in steps

    def result(self, name: str) -> LayerCheck:
        n = max(self.elements, 1)
        return LayerCheck(
            name=name,
            quantized=self.quantized,
            error=self.error,
            allowed=self.allowed,
            mismatch_fraction=self.mismatched / n,
            mean_error=self.signed / n,
            float_error=self.float_error / max(self.float_elements, 1),
            torch_float_error=self.torch_float_error / max(self.float_elements, 1),
            scale_error=abs(self.cross / self.square) * self.peak_steps if self.square else 0.0,
        )


def _compare_input(
    tap: _Tap, raw: torch.Tensor, ours: torch.Tensor, theirs: torch.Tensor, stats: _Stats
) -> None:
    """Fold one batch of layer ``tap``'s input (ours: PyTorch's, theirs: onnxruntime's) in."""
    layer = tap.layer
    peak = float(theirs.abs().max().clamp_min(1e-30))
    raw_peak = float(raw.abs().max().clamp_min(1e-30))
    difference = theirs - ours
    stats.elements += difference.numel()
    stats.mismatched += int((difference != 0).sum())
    if not layer.activation_quantized:
        stats.error = max(stats.error, float(difference.abs().max()) / peak)
        stats.allowed = FLOAT_TOLERANCE
        return
    stats.quantized = True
    if layer.logarithmic:
        # one code apart: a ratio of 2**(1/steps) between neighbouring magnitudes (codes are
        # compared by value: near zero the codes of a log grid are too fine to count)
        # (and a flip to or from zero, below the smallest level, is one code too)
        relative_step = 2.0 ** (1.0 / layer.log_steps_per_octave) - 1.0
        larger = torch.maximum(ours.abs(), theirs.abs())
        one_code = torch.where((ours == 0) | (theirs == 0), larger, relative_step * larger)
        steps_off = difference.abs() / (one_code + FLOAT_TOLERANCE * raw_peak)
        allowed = 1.0 + 1e-6
    else:
        step = float(layer.activation_qparams()[0])
        steps_off = difference / step
        stats.signed += float(steps_off.sum())
        values = ours.double() / step  # in steps: the slope of steps_off against them
        stats.cross += float((steps_off.double() * values).sum())
        stats.square += float((values * values).sum())
        stats.peak_steps = max(stats.peak_steps, float(values.abs().max()))
        steps_off = steps_off.abs()
        allowed = 1.0 + FLOAT_TOLERANCE * raw_peak / step
    stats.error = max(stats.error, float(steps_off.max()))
    stats.allowed = min(stats.allowed, allowed)


class _Forcing:
    """Forward pre-hooks on every tapped layer: force its input to a given tensor, or add noise.

    ``reference`` is a float64 copy of the student: forced the same way, it gives each
    layer's exact input, against which both float32 runs' rounding errors are measured.
    """

    def __init__(self, taps: list[_Tap], model: nn.Module, reference: nn.Module) -> None:
        self.taps = taps
        self.mode = "off"
        self.forced: dict[str, torch.Tensor] = {}
        self.raw: dict[str, torch.Tensor] = {}
        self.exact: dict[str, torch.Tensor] = {}
        self.noise: dict[str, torch.Tensor] = {}
        self.stats = {t.name: _Stats() for t in taps}
        self.generator = torch.Generator().manual_seed(0)
        self.called: set[str] = set()
        self.handles = [
            (model.get_submodule(t.hooked) if t.hooked else t.layer).register_forward_pre_hook(
                self._hook(t)
            )
            for t in taps
        ] + [
            reference.get_submodule(t.hooked or t.name).register_forward_pre_hook(
                self._exact_hook(t)
            )
            for t in taps
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def _exact_hook(self, tap: _Tap):  # type: ignore[no-untyped-def]
        def hook(module, args):  # type: ignore[no-untyped-def]
            if self.mode != "exact" or tap.name in self.called or not args:
                return None
            self.called.add(tap.name)
            theirs = self.forced.get(tap.name)
            if theirs is None or theirs.shape != args[0].shape:
                return None
            self.exact[tap.name] = args[0].detach()
            return (theirs.double(), *args[1:])

        return hook

    def _hook(self, tap: _Tap):  # type: ignore[no-untyped-def]
        def hook(module, args):  # type: ignore[no-untyped-def]
            if self.mode in ("off", "exact") or tap.name in self.called or not args:
                return None
            self.called.add(tap.name)  # a layer run twice is compared on its first call
            x = args[0]
            if self.mode == "force":
                theirs = self.forced.get(tap.name)
                if theirs is None or theirs.shape != x.shape:
                    return None
                ours = tap.layer.quantize_input(x)
                raw = self.raw[tap.name]
                if raw.shape == x.shape:
                    self.noise[tap.name] = raw - x
                    exact = self.exact.get(tap.name)
                    if exact is not None and exact.shape == x.shape:
                        _float_errors(raw, x, exact, self.stats[tap.name])
                _compare_input(tap, raw, ours, theirs, self.stats[tap.name])
                return (theirs, *args[1:])
            delta = self.noise.get(tap.name)
            if delta is None or delta.shape != x.shape:
                return None
            flat = delta.reshape(-1)
            shuffled = flat[torch.randperm(flat.numel(), generator=self.generator)]
            return (x + shuffled.reshape(x.shape), *args[1:])

        return hook

    def run(self, model: nn.Module, batch: torch.Tensor, mode: str) -> np.ndarray:
        self.mode, self.called = mode, set()
        try:
            return model(batch).float().cpu().numpy()
        finally:
            self.mode = "off"


def _float_errors(
    raw: torch.Tensor, ours: torch.Tensor, exact: torch.Tensor, stats: _Stats
) -> None:
    """onnxruntime's and PyTorch's float32 error on a layer's input (before its quantizer),
    against the float64 result from the same forced upstream tensors."""
    peak = float(exact.abs().max().clamp_min(1e-30))
    stats.float_error += float((raw.double() - exact).abs().sum()) / peak
    stats.torch_float_error += float((ours.double() - exact).abs().sum()) / peak
    stats.float_elements += exact.numel()


def agreement_bound(
    images: int, simulated_disagreements: int, simulated_images: int
) -> tuple[float, float]:
    """(expected disagreement count, allowed count) for ``images`` exported-model predictions.

    The simulation's rate (Laplace-smoothed, so a simulation without flips still allows a
    few) predicts ``expected``; ``allowed`` adds :data:`MARGIN_SIGMAS` standard deviations
    of a count with that rate, widened by the simulation's own sampling error, plus
    ``MARGIN_SIGMAS`` images (a Poisson-tail guard for rates near zero).
    """
    rate = (simulated_disagreements + 1) / (simulated_images + 2)
    expected = images * rate
    spread = math.sqrt(images * rate * (1 - rate) * (1 + images / max(simulated_images, 1)))
    return expected, expected + MARGIN_SIGMAS * spread + MARGIN_SIGMAS


def _spread(count: int, pick: int) -> np.ndarray:
    """``pick`` indices spread evenly over ``range(count)`` (a stratified sample stays so)."""
    if pick >= count:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, pick).round().astype(np.int64))


def compare_with_torch(
    path: Path,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    batch_size: int = 128,
    min_agreement: float | None = None,
    simulated_images: int = SIMULATED_IMAGES,
) -> ExportCheck:
    """Run ``path`` with onnxruntime and ``model`` with PyTorch on ``images``; compare.

    See the module docstring for the checks. The agreement is measured on every image;
    the layer-by-layer check and the noise simulation on ``simulated_images`` of them,
    spread evenly. ``min_agreement`` None derives the agreement to reach from the
    model's own float noise; a number fixes it instead.

    Raises ExportError when onnxruntime cannot run the file, a layer or the logits
    differ beyond float rounding, or the agreement (or accuracy) is below its bound.
    """
    import onnxruntime as ort  # heavy: loads only when an export is checked

    proto = onnx.load(str(path))
    model = model.eval()
    taps = _taps(proto, model)
    basic = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    reference = _session(path, basic, path)
    with tempfile.TemporaryDirectory(prefix="autocompress-check-") as spill:
        # over 2 GiB the tapped copy cannot be bytes: it goes to a file with external data
        extra = _with_outputs(proto, [n for t in taps for n in (t.feed, t.raw)])
        tapped = _session(session_source(extra, Path(spill) / "tapped.onnx"), basic, path)
        del extra
    optimized = _session(path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, path)
    input_name = reference.get_inputs()[0].name
    output_names = [o.name for o in tapped.get_outputs()]

    def run(session, batch: torch.Tensor) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
        try:
            return session.run(None, {input_name: batch.numpy()})
        except Exception as exc:
            raise ExportError(f"{path}: onnxruntime failed to run the export: {exc}") from None

    onnx_logits, optimized_logits, torch_logits = [], [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].float().cpu()
            onnx_logits.append(run(reference, batch)[0])
            optimized_logits.append(run(optimized, batch)[0])
            torch_logits.append(model(batch).float().cpu().numpy())
    ours, fused, theirs = map(np.concatenate, (onnx_logits, optimized_logits, torch_logits))
    n = len(ours)
    predicted = theirs.argmax(1)

    subset = _spread(n, simulated_images)
    exact_model = copy.deepcopy(model).double().eval()
    forcing = _Forcing(taps, model, exact_model)
    forced_logits, tapped_logits = [], []
    simulated: list[list[np.ndarray]] = [[] for _ in range(SIMULATION_RUNS)]
    try:
        with torch.no_grad():
            for start in range(0, len(subset), batch_size):
                batch = images[torch.from_numpy(subset[start : start + batch_size])]
                batch = batch.float().cpu()
                outputs = run(tapped, batch)
                values = dict(zip(output_names, outputs, strict=True))
                values.setdefault(input_name, batch.numpy())
                tapped_logits.append(outputs[0])
                forcing.forced = {t.name: torch.from_numpy(values[t.feed]) for t in taps}
                forcing.raw = {t.name: torch.from_numpy(values[t.raw]) for t in taps}
                forcing.noise, forcing.exact = {}, {}
                forcing.run(exact_model, batch.double(), "exact")
                forced_logits.append(forcing.run(model, batch, "force"))
                for runs in simulated:
                    runs.append(forcing.run(model, batch, "noise"))
    finally:
        forcing.remove()
    clean = predicted[subset]  # PyTorch's own predictions on the simulated images
    sim_predictions = [np.concatenate(r).argmax(1) for r in simulated]
    sim_disagreements = sum(int((p != clean).sum()) for p in sim_predictions)
    sim_images = len(subset) * SIMULATION_RUNS
    expected, allowed = agreement_bound(n, sim_disagreements, sim_images)
    difference = np.abs(ours - theirs)
    agreement = float((ours.argmax(1) == predicted).mean())
    if min_agreement is None:
        threshold = max(0.0, 1.0 - allowed / max(n, 1))
        tolerance = {
            "method": "simulated",
            "how": (
                "agreement of the PyTorch student with itself when the float error measured "
                "per layer (onnxruntime vs PyTorch, upstream quantized tensors forced equal) is "
                f"shuffled and added before each layer's quantizer ({SIMULATION_RUNS} runs on "
                f"{len(subset)} images), minus {MARGIN_SIGMAS:g} standard deviations"
            ),
        }
    else:
        threshold = float(min_agreement)
        tolerance = {"method": "fixed", "how": "min_agreement given"}
    tolerance |= {
        "simulated_agreement": 1.0 - sim_disagreements / max(sim_images, 1),
        "simulated_images": len(subset),
        "simulated_runs": SIMULATION_RUNS,
        "expected_disagreements": expected,
        "allowed_disagreements": allowed,
        "margin_sigmas": MARGIN_SIGMAS,
    }
    onnx_accuracy = torch_accuracy = None
    if labels is not None:
        truth = labels.cpu().numpy()
        onnx_accuracy = float((ours.argmax(1) == truth).mean())
        torch_accuracy = float((predicted == truth).mean())
        # the simulation's accuracy change on its images, applied to PyTorch's on all of them
        sub_truth = truth[subset]
        change = np.mean([(p == sub_truth).mean() for p in sim_predictions]) - float(
            (clean == sub_truth).mean()
        )
        tolerance["simulated_accuracy"] = torch_accuracy + float(change)

    ours_subset = np.concatenate(tapped_logits)
    forced = np.concatenate(forced_logits)
    layers = [forcing.stats[t.name].result(t.name) for t in taps if forcing.stats[t.name].elements]
    # a layer in the graph whose PyTorch input had another shape (or that never ran) is not
    # compared; the layers after it still are, from onnxruntime's tensors
    skipped = [t.name for t in taps if not forcing.stats[t.name].elements]
    logits_peak = float(np.abs(ours_subset).max()) if ours_subset.size else 0.0
    logits_error = float(np.abs(forced - ours_subset).max()) if ours_subset.size else 0.0
    logits_allowed = FLOAT_TOLERANCE * max(logits_peak, 1e-30)
    worst = max(layers, key=lambda c: c.error / c.allowed, default=None)
    layer_summary: dict[str, Any] = {
        "how": (
            "each layer's input in PyTorch, computed from onnxruntime's upstream quantized "
            "tensors, vs onnxruntime's: within one quantization step plus "
            f"{FLOAT_TOLERANCE:g} of the tensor's magnitude (float inputs: {FLOAT_TOLERANCE:g} "
            f"relative), and onnxruntime's mean float32 error before each quantizer, against a "
            f"float64 run of the student, at most {FLOAT_TOLERANCE:g} of the tensor's magnitude; "
            "logits likewise"
        ),
        "compared": len(layers),
        "not_compared": skipped,
        "float_tolerance": FLOAT_TOLERANCE,
        "worst": asdict(worst) if worst is not None else None,
        "mismatch_fraction": (
            sum(c.mismatch_fraction for c in layers) / len(layers) if layers else 0.0
        ),
        "largest_float_error": max((c.float_error for c in layers), default=0.0),
        "largest_torch_float_error": max((c.torch_float_error for c in layers), default=0.0),
        "logits_error": logits_error,
        "logits_allowed": logits_allowed,
    }
    check = ExportCheck(
        images=n,
        top1_agreement=agreement,
        max_abs_error=float(difference.max()),
        mean_abs_error=float(difference.mean()),
        onnx_accuracy=onnx_accuracy,
        torch_accuracy=torch_accuracy,
        onnxruntime_version=ort.__version__,
        optimized_top1_agreement=float((fused.argmax(1) == predicted).mean()),
        optimized_max_abs_error=float(np.abs(fused - theirs).max()),
        min_agreement=threshold,
        tolerance=tolerance,
        layers=layer_summary,
    )
    _raise_on_failure(path, check, layers, logits_error, logits_allowed, allowed)
    return check


def _raise_on_failure(  # type: ignore[no-untyped-def]
    path: Path, check: ExportCheck, layers, logits_error, logits_allowed, allowed
) -> None:
    hint = "The export was not declared done; please report this as a bug."
    for layer in layers:  # graph order: the first layer that breaks is the one to look at
        if not layer.ok:
            unit = "quantization steps" if layer.quantized else "of its magnitude (relative)"
            growing = (
                f"growing with the value by {layer.scale_error:.3g} steps at its peak (allowed "
                f"{MAX_SCALE_ERROR_STEPS:g}: a wrong scale), "
                if layer.quantized
                else ""
            )
            raise ExportError(
                f"{path}: layer {layer.name!r} computes a different input in ONNX than in "
                f"PyTorch from the same upstream tensors: off by {layer.error:.3g} {unit} "
                f"(allowed {layer.allowed:.3g}), mean {layer.mean_error:+.3g} steps, {growing}"
                f"{layer.mismatch_fraction:.1%} of its elements differ; mean float error "
                f"{layer.float_error:.2g} of its magnitude against float64 (allowed "
                f"{FLOAT_TOLERANCE:g}; PyTorch's float32: {layer.torch_float_error:.2g})",
                hint=hint,
            )
    if logits_error > logits_allowed:
        raise ExportError(
            f"{path}: the ONNX logits differ from PyTorch's computed from the same last-layer "
            f"input by {logits_error:.3g} (allowed {logits_allowed:.3g}, "
            f"{FLOAT_TOLERANCE:g} of their magnitude)",
            hint=hint,
        )
    n = check.images
    threshold = check.min_agreement or 0.0
    simulated = check.tolerance.get("simulated_agreement")
    if check.top1_agreement < threshold:
        raise ExportError(
            f"{path}: the ONNX export disagrees with the PyTorch student: top-1 agreement "
            f"{check.top1_agreement:.2%} on {n} held-out images (need >= {threshold:.2%}; "
            f"PyTorch with the measured float noise agrees {simulated:.2%} with itself), "
            f"max logit error {check.max_abs_error:.4g}",
            hint=hint,
        )
    sim_accuracy = check.tolerance.get("simulated_accuracy")
    if check.tolerance.get("method") == "simulated" and sim_accuracy is not None:
        lowest = sim_accuracy - (allowed - check.tolerance["expected_disagreements"]) / max(n, 1)
        if (check.onnx_accuracy or 0.0) < lowest:
            raise ExportError(
                f"{path}: the ONNX export is less accurate than its quantization noise implies: "
                f"{check.onnx_accuracy:.2%} on {n} held-out images, PyTorch "
                f"{check.torch_accuracy:.2%}, PyTorch with the measured float noise "
                f"{sim_accuracy:.2%} (need >= {lowest:.2%})",
                hint=hint,
            )

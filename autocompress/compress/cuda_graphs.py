"""CUDA graphs for the training step of a model: one replay instead of thousands of launches.

A fake-quantized student is hundreds of small kernels per forward and backward
(fold the batch-norm, observe the range, quantize weights and inputs, per
layer). On a large GPU an eager epoch of a ResNet-18 student at batch 512 is
therefore bound by the CPU launching kernels, not by the GPU (issue 10: about
4× a bare bf16 epoch), and ``torch.compile`` pays for itself only on long runs
because every trial's pruned shapes differ and are compiled anew.

:func:`capture_training_graphs` records the model's forward and backward once
(``torch.cuda.make_graphed_callables``: a few warm-up passes, then a capture,
well under a second) and replays them for every batch of the same shape.
The loss, the optimizer step and the data pipeline stay eager; they are a
handful of kernels. The model's Python ``forward`` is replaced by the replay
while the model is in training mode, and :meth:`TrainingGraphs.release`
restores it, so evaluation, export and saving see the plain module.

What a capture requires of the model, and what autocompress's models meet:
static shapes (the training loop only draws full batches), no CPU
synchronisation in the training forward (activation ranges are tensors,
updated in place), no hooks on the top module. A model that synchronises
is found before any capture (one eager step under
``torch.cuda.set_sync_debug_mode("error")``) and trains eagerly. No garbage
collection runs during a capture (an earlier graph freed mid-capture breaks
it). If a capture fails anyway, the training continues eagerly, the reason
is returned (never raised) and no capture is tried again in that process.

``AUTOCOMPRESS_CUDA_GRAPHS=0`` turns graphs off (to compare, or to debug a
model).
"""

from __future__ import annotations

import contextlib
import gc
import os
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Environment variable that turns CUDA graphs off when set to 0 / false / no / off.
CUDA_GRAPHS_ENV = "AUTOCOMPRESS_CUDA_GRAPHS"


def cuda_graphs_enabled() -> bool:
    """False when :data:`CUDA_GRAPHS_ENV` says off; True otherwise."""
    value = os.environ.get(CUDA_GRAPHS_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


@dataclass
class TrainingGraphs:
    """The captured forward/backward of one model (or why there is none).

    Attributes:
        active: the model's training forward replays a CUDA graph.
        reason: one line saying why not (empty when active).
    """

    model: nn.Module | None
    active: bool
    reason: str = ""
    _patched: bool = field(default=False, repr=False)

    def release(self) -> None:
        """Give the model its own ``forward`` back and free the graphs' memory."""
        if self._patched and self.model is not None:
            self.model.__dict__.pop("forward", None)  # the instance attribute the capture set
            self._patched = False
            self.model = None
            gc.collect()  # the graphs live in reference cycles: free them now, not mid-capture
        self.active = False
        self.model = None


def capture_training_graphs(
    model: nn.Module, sample: torch.Tensor, *, dtype: torch.dtype | None = torch.bfloat16
) -> TrainingGraphs:
    """Capture ``model``'s training forward and backward for inputs shaped like ``sample``.

    ``model`` must be on the sample's CUDA device and in training mode;
    ``dtype`` is the autocast dtype the training step uses (None: no autocast).
    Returns a :class:`TrainingGraphs`; call its ``release()`` when training ends.
    The warm-up passes run forward/backward on ``sample`` without touching
    ``.grad`` or the weights (activation observers and batch-norm statistics
    see the sample a few more times).
    """
    if sample.device.type != "cuda":
        return TrainingGraphs(None, False, "not on a CUDA device")
    if not cuda_graphs_enabled():
        return TrainingGraphs(None, False, f"{CUDA_GRAPHS_ENV}=0")
    if "forward" in model.__dict__:
        return TrainingGraphs(None, False, "the model's forward is already replaced")
    if not model.training:
        return TrainingGraphs(None, False, "the model is not in training mode")
    if _CAPTURE_BROKEN:
        return TrainingGraphs(None, False, f"an earlier capture failed ({_CAPTURE_BROKEN[0]})")

    blocker = _synchronising_op(model, sample, dtype)
    if blocker:  # a capture would fail, and a failed capture can leave CUDA unusable
        return TrainingGraphs(
            None, False, f"the training step synchronises with the CPU ({blocker})"
        )
    state = _snapshot_grads(model)
    _quiet_stream_mismatch_warning()
    try:
        with _capture_autocast(dtype), _no_collection(sample.device):
            torch.cuda.make_graphed_callables(
                model, (sample.detach(),), num_warmup_iters=3, allow_unused_input=True
            )
    except Exception as exc:  # a model that cannot be captured trains eagerly
        model.__dict__.pop("forward", None)
        _restore_grads(model, state)
        _CAPTURE_BROKEN.append(_first_line(exc, 160))  # never capture again in this process
        return TrainingGraphs(None, False, f"capture failed ({_CAPTURE_BROKEN[-1]})")
    _restore_grads(model, state)
    return TrainingGraphs(model, True, "", _patched=True)


#: The reason of a capture that failed in this process (then no capture is tried again).
_CAPTURE_BROKEN: list[str] = []


def _synchronising_op(model: nn.Module, sample: torch.Tensor, dtype: torch.dtype | None) -> str:
    """Where one eager forward/backward of ``model`` on ``sample`` synchronises the
    CPU with the GPU (what a capture cannot record), or "" if it does not.

    Runs under ``torch.cuda.set_sync_debug_mode("error")``; gradients go to
    ``torch.autograd.grad``, so ``.grad`` and the weights are untouched.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.synchronize(sample.device)
    with warnings.catch_warnings():
        # torch's own notes on this probe are not the user's business: "Synchronization
        # debug mode is a prototype feature", and autograd's first backward on its
        # device thread "Attempting to run cuBLAS, but there was no current CUDA context"
        warnings.filterwarnings("ignore", message="Synchronization debug mode")
        warnings.filterwarnings("ignore", message="Attempting to run cuBLAS")
        torch.cuda.set_sync_debug_mode("error")
        try:
            with _capture_autocast(dtype):
                outputs = [o for o in _tensors(model(sample.detach())) if o.requires_grad]
            if outputs and params:
                torch.autograd.grad(
                    outputs,
                    params,
                    grad_outputs=[torch.ones_like(o) for o in outputs],
                    allow_unused=True,
                )
        except RuntimeError as exc:
            return _where(exc)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    return ""


def _tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _tensors(item)]
    return []


def _where(exc: BaseException) -> str:
    """The innermost frame of the error outside torch, and its first line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/torch/" not in f.filename]
    place = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{place}: {_first_line(exc, 120)}"


def _first_line(exc: BaseException, limit: int) -> str:
    """An error's first line (its type's name if it has no text), at most ``limit`` characters."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def _capture_autocast(dtype: torch.dtype | None) -> torch.autocast:
    """The autocast context of a capture: autocast's weight-cast cache must be off while
    capturing (PyTorch's CUDA graph notes)."""
    return torch.autocast(
        device_type="cuda",
        dtype=dtype or torch.float32,
        enabled=dtype is not None,
        cache_enabled=False,
    )


class InferenceGraph:
    """A frozen model's no-grad forward (e.g. the teacher on augmented batches), replayed.

    Calls with the captured input shape replay the graph and return a fresh
    copy of the output; other shapes, or a capture that failed, run the model
    eagerly. ``active`` says which.
    """

    def __init__(
        self, model: nn.Module, sample: torch.Tensor, *, dtype: torch.dtype | None = torch.bfloat16
    ) -> None:
        self.model = model
        self.active = False
        self.reason = ""
        self._shape = tuple(sample.shape)
        if sample.device.type != "cuda":
            self.reason = "not on a CUDA device"
            return
        if not cuda_graphs_enabled():
            self.reason = f"{CUDA_GRAPHS_ENV}=0"
            return
        if _CAPTURE_BROKEN:
            self.reason = f"an earlier capture failed ({_CAPTURE_BROKEN[0]})"
            return
        self._input = sample.detach().clone()
        try:
            stream = torch.cuda.Stream(device=sample.device)
            stream.wait_stream(torch.cuda.current_stream(sample.device))
            with torch.cuda.stream(stream), torch.no_grad(), _capture_autocast(dtype):
                for _ in range(2):  # warm-up: cudnn picks its kernels outside the capture
                    model(self._input)
            torch.cuda.current_stream(sample.device).wait_stream(stream)
            self._graph = torch.cuda.CUDAGraph()
            with (
                _no_collection(sample.device),
                torch.cuda.graph(self._graph),
                torch.no_grad(),
                _capture_autocast(dtype),
            ):
                self._output = model(self._input)
            self.active = True
        except Exception as exc:  # eager forwards instead
            torch.cuda.synchronize(sample.device)
            _CAPTURE_BROKEN.append(_first_line(exc, 160))  # never capture again in this process
            self.reason = f"capture failed ({_CAPTURE_BROKEN[-1]})"

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> Any:
        if not self.active or tuple(x.shape) != self._shape:
            return self.model(x)
        self._input.copy_(x)
        self._graph.replay()
        return _cloned(self._output)


def _cloned(output: object) -> object:
    """A fresh copy of a replayed graph's output: a tensor, or a tuple / list of them."""
    if isinstance(output, torch.Tensor):
        return output.clone()
    if isinstance(output, tuple) and hasattr(output, "_fields"):  # a named tuple
        return type(output)(*(_cloned(item) for item in output))
    if isinstance(output, tuple | list):
        return type(output)(_cloned(item) for item in output)
    return output


@contextlib.contextmanager
def _no_collection(device: torch.device) -> Iterator[None]:
    """No garbage collection while capturing.

    An earlier trial's graphs sit in reference cycles (the autograd function
    class ``make_graphed_callables`` builds); when the collector destroys them
    in the middle of a capture, their memory is freed with a call that a
    capture forbids, the capture fails, and CUDA stays unusable for the
    process. So: collect first, outside the capture, then pause the collector.
    """
    gc.collect()
    torch.cuda.synchronize(device)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _quiet_stream_mismatch_warning() -> None:
    """The capture's warm-up runs on a side stream, so the first eager backward
    after it warns that the gradient accumulators' stream differs (harmless: the
    accumulation synchronises once). Turn that one warning off."""
    quiet = getattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch", None)
    if quiet is not None:
        quiet(False)


def _snapshot_grads(model: nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in model.parameters()]


def _restore_grads(model: nn.Module, grads: list[torch.Tensor | None]) -> None:
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g


__all__ = [
    "CUDA_GRAPHS_ENV",
    "InferenceGraph",
    "TrainingGraphs",
    "capture_training_graphs",
    "cuda_graphs_enabled",
]

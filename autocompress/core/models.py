"""Models by name: torchvision architectures, a small CNN for the digits, or a user's own.

``build_model`` is the one place a model name is turned into an ``nn.Module``:

- a torchvision classification model name (``resnet18``, ``mobilenet_v2`` …),
  optionally with a small-input stem for 32×32 images (CIFAR-style);
- ``small_cnn``, a compact CNN fit for 8×8 digits or small images;
- ``fc_cnn``, two convolutions and a wide fully connected hidden layer: its
  cost on an NPU is mostly streaming that layer's weights, so compression
  changes its latency several-fold (the embedded default's model);
- ``path/to/file.py:function`` — a user's function returning an ``nn.Module``
  (called with ``num_classes=`` when it accepts it).

No weights are downloaded: models start randomly initialised; a trained
checkpoint is loaded separately (``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from autocompress.core.errors import (
    AutocompressError,
    CheckpointError,
    ConfigError,
    UnknownNameError,
    UntrustedModelCodeError,
)

_LOCAL_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model factory under ``name`` (called with ``num_classes``, ``in_channels``)."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _LOCAL_MODELS[name] = factory
        return factory

    return decorator


@register_model("small_cnn")
def small_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 32) -> nn.Module:
    """A compact CNN (three conv blocks + classifier) for 8×8 to 32×32 inputs."""
    c1, c2, c3 = width, width * 2, width * 4
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1, bias=False),
        nn.BatchNorm2d(c1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False),
        nn.BatchNorm2d(c2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1, bias=False),
        nn.BatchNorm2d(c3),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c3, num_classes),
    )


@register_model("fc_cnn")
def fc_cnn(
    num_classes: int = 10, in_channels: int = 1, width: int = 32, hidden: int = 2048
) -> nn.Module:
    """Two conv blocks, a 4×4 average pool and a wide hidden layer (``hidden`` units).

    Weight-bound on NPUs: at width 32 the hidden layer holds 2.1 M of the 2.1 M
    weights, so slimming or pruning it, or its bit-width, moves latency a lot
    (rockchip/rv1126 at int8: 0.18 ms at width 0.25, 0.57 ms at width 1.0)
    while training stays cheap on a CPU (about 0.6 s an epoch of the digits).
    """
    c1, c2 = width, width * 2
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1, bias=False),
        nn.BatchNorm2d(c1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False),
        nn.BatchNorm2d(c2),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(c2 * 16, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


def torchvision_model_names() -> list[str]:
    """Classification model names torchvision provides."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def known_model_names() -> list[str]:
    """Every name ``build_model`` accepts (besides ``file.py:function``)."""
    return sorted(set(_LOCAL_MODELS) | set(torchvision_model_names()))


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds an architecture: stored beside every checkpoint.

    Attributes:
        name: a registered name, a torchvision name or ``path/to/file.py:function``.
        num_classes: classifier outputs.
        in_channels: input image channels.
        small_input: replace a torchvision stem with one for 32×32 images.
    """

    name: str
    num_classes: int = 1000
    in_channels: int = 3
    small_input: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(
            name=str(data["name"]),
            num_classes=int(data.get("num_classes", 1000)),
            in_channels=int(data.get("in_channels", 3)),
            small_input=bool(data.get("small_input", False)),
        )

    def build(self) -> nn.Module:
        return build_model(
            self.name,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            small_input=self.small_input,
        )


def build_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
) -> nn.Module:
    """Build a randomly initialised model by name (see module docstring)."""
    if ":" in name and name.split(":", 1)[0].endswith(".py"):
        return _build_user_model(name, num_classes=num_classes)
    if name in _LOCAL_MODELS:
        return _LOCAL_MODELS[name](num_classes=num_classes, in_channels=in_channels)
    names = torchvision_model_names()
    if name not in names:
        raise UnknownNameError(
            "model",
            name,
            known_model_names(),
            list_hint="Use a torchvision classification model name (e.g. resnet18, "
            "mobilenet_v2), 'small_cnn', or path/to/file.py:function for your own model.",
        )
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3:
        _replace_first_conv(model, in_channels=in_channels)
    if small_input:
        _use_small_input_stem(model)
    return model


def _first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            return parent, child, module
    raise ConfigError("the model has no Conv2d layer to adapt to the input")


def _replace_first_conv(
    model: nn.Module, *, in_channels: int, stride: int | None = None, kernel_size: int | None = None
) -> None:
    parent, child, conv = _first_conv(model)
    k = kernel_size or conv.kernel_size[0]
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=k,
        stride=stride if stride is not None else conv.stride,
        padding=k // 2,
        bias=conv.bias is not None,
    )
    setattr(parent, child, new)


def _use_small_input_stem(model: nn.Module) -> None:
    """CIFAR-style stem: a 3×3 stride-1 first conv and no early max-pool."""
    _parent, _child, conv = _first_conv(model)
    if conv.kernel_size[0] >= 7:  # ResNet-like: 7×7/2 conv then 3×3/2 max-pool
        _replace_first_conv(model, in_channels=conv.in_channels, stride=1, kernel_size=3)
        if isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
            model.maxpool = nn.Identity()
    else:  # MobileNet-like 3×3/2 stem: keep the kernel, drop the stride
        _replace_first_conv(model, in_channels=conv.in_channels, stride=1, kernel_size=3)


def _build_user_model(spec: str, *, num_classes: int) -> nn.Module:
    from autocompress.core.model_code import check_model_code

    path_text, _, func_name = spec.rpartition(":")
    path = Path(path_text)
    check_model_code(spec)  # a name read from someone's file is imported only when trusted
    if not path.is_file():
        raise ConfigError(f"model file {path_text!r} does not exist (from --model {spec!r})")
    module_name = f"autocompress_user_model_{abs(hash(path.resolve()))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"cannot import {path_text!r} as a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report, don't crash
        raise ConfigError(f"importing {path_text!r} failed: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise ConfigError(f"{path_text!r} has no function {func_name!r}")
    kwargs = {}
    if "num_classes" in inspect.signature(factory).parameters:
        kwargs["num_classes"] = num_classes
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise ConfigError(f"{spec} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


CHECKPOINT_FORMAT = "autocompress-model"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, spec: ModelSpec, extra: dict | None = None
) -> Path:
    """Save ``model``'s weights with the :class:`ModelSpec` that rebuilds it (atomic write).

    ``extra`` holds plain data only (numbers, strings, lists, dicts, tensors), e.g.
    accuracy, dataset name, normalisation; it must load with ``weights_only=True``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "spec": spec.to_dict(),
        "extra": dict(extra or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    save_payload_atomic(payload, path, what="the checkpoint")
    return path


def save_payload_atomic(payload: dict, path: Path, *, what: str) -> None:
    """``torch.save`` into memory, then write a temp file beside ``path`` and rename.

    A failed write (full disk, no permission, read-only) removes the temp file and
    raises a :class:`~autocompress.core.errors.WriteError` naming ``what`` and ``path``.
    """
    import io

    import torch

    from autocompress.core.file_writes import writing

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with writing(what, path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(buffer.getbuffer())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _first_line_without_advice(exc: BaseException) -> str:
    """The first line of a torch load error, without torch's advice to unpickle code."""
    text = str(exc)
    line = text.splitlines()[0] if text else ""
    for marker in ("weights_only", "Weights only load failed", "re-running `torch.load`"):
        if marker in line:
            return "not a weights-only checkpoint"
    return line


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelSpec, dict]:
    """Rebuild the model saved by :func:`save_checkpoint` (``weights_only=True``).

    Returns ``(model, spec, extra)`` with the model in eval mode on the CPU.

    Raises:
        CheckpointError: the file is missing or corrupt, is not an autocompress
            checkpoint, or its weights do not match the architecture (names the
            missing / unexpected keys or the mismatched shapes).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read (corrupt or not a PyTorch file): "
            f"{type(exc).__name__}: {_first_line_without_advice(exc)}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not an autocompress model checkpoint (no format tag "
            f"{CHECKPOINT_FORMAT!r}); save one with `autocompress train --out`"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {payload.get('version')}, "
            f"this autocompress reads version {CHECKPOINT_VERSION}"
        )
    try:
        spec = ModelSpec.from_dict(payload["spec"])
        state = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is incomplete: {exc}") from None
    try:
        model = spec.build()
    except UntrustedModelCodeError:
        raise
    except AutocompressError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} names model {spec.name!r} that cannot be built: {exc}"
        ) from None
    load_state_dict_checked(model, state, source=str(path))
    model.eval()
    return model, spec, dict(payload.get("extra") or {})


def checkpoint_model_name(path: str | os.PathLike[str]) -> str | None:
    """The model name a checkpoint (teacher or student file) names, read without building it
    (None when the file is missing or unreadable)."""
    import torch

    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(payload, dict):
        return None
    spec = payload.get("spec") or payload.get("teacher_spec")
    name = spec.get("name") if isinstance(spec, dict) else None
    return str(name) if name is not None else None


def load_state_dict_checked(model: nn.Module, state: dict, *, source: str) -> None:
    """``model.load_state_dict(state)`` with a :class:`CheckpointError` that says what differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state
        and hasattr(state[k], "shape")
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {_few(shapes)}")
    if problems:
        raise CheckpointError(
            f"checkpoint {source!r} does not match the architecture: " + "; ".join(problems)
        )
    model.load_state_dict(state)


def _few(items: list[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{f', … ({len(items) - n} more)' if len(items) > n else ''}]"


__all__ = [
    "ModelSpec",
    "build_model",
    "count_parameters",
    "fc_cnn",
    "known_model_names",
    "load_checkpoint",
    "load_state_dict_checked",
    "register_model",
    "save_checkpoint",
    "small_cnn",
]

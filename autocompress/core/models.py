"""Models by name: torchvision architectures, a small CNN for the digits, or a user's own.

``build_model`` is the one place a model name is turned into an ``nn.Module``:

- a torchvision classification model name (``resnet18``, ``mobilenet_v2`` …),
  optionally with a small-input stem for 32×32 images (CIFAR-style);
- ``small_cnn``, a compact CNN fit for 8×8 digits or small images;
- ``fc_cnn``, two convolutions and a wide fully connected hidden layer: its
  cost on an NPU is mostly streaming that layer's weights, so compression
  changes its latency several-fold (the embedded default's model);
- ``path/to/file.py:function`` — a user's function returning an ``nn.Module``
  (called with ``num_classes=`` / ``in_channels=`` when it accepts them, plus
  ``model_args``; see :mod:`autocompress.core.model_files`).

No weights are downloaded: models start randomly initialised; a trained
checkpoint is loaded separately (``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.core.errors import (
    AutocompressError,
    CheckpointError,
    ConfigError,
    UnknownNameError,
    UntrustedModelCodeError,
)
from autocompress.core.file_writes import writing
from autocompress.core.model_files import (
    build_file_model,
    is_file_model,
    register_sources_near,
    resolve_model_file,
)
from autocompress.core.weights import (
    detached_state,
    find_state_dict,
    match_keys,
    plain_message,
    read_weights_file,
    with_metadata,
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

    Weight-bound on NPUs: the hidden layer holds nearly all the weights (2.1 M at
    the default 2048 units, 8.4 M at the 8192 the default search uses), so slimming
    or pruning it, or its bit-width, moves latency a lot. On rockchip/rv1126 at
    int8, with its shipped calibration, uniform widths 0.25 and 1.0 cost 0.19 and
    0.44 ms at 2048 units, 0.24 and 1.19 ms at 8192, while training stays cheap on
    a CPU (about a second an epoch of the digits at 8192).
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
    import torchvision  # seconds to import: only when a torchvision name is looked up

    return sorted(torchvision.models.list_models(module=torchvision.models))


SMALL_INPUT_MAX_PX = 64


def auto_small_input(name: str, input_hw: Sequence[int]) -> bool:
    """What ``small_input`` left automatic means for model ``name`` on images of ``input_hw``.

    The one rule (training a teacher, the search and ``spaces show`` all use it): the
    small-input stem goes on torchvision models, the only ones :func:`build_model`
    replaces a stem of, when the image is at most :data:`SMALL_INPUT_MAX_PX` pixels a
    side. ``small_cnn``, ``fc_cnn``, other registered models and ``file.py:function``
    models get False, so a checkpoint's :class:`ModelSpec` says what was built.
    """
    return has_small_input_stem(name) and max(int(s) for s in input_hw) <= SMALL_INPUT_MAX_PX


def has_small_input_stem(name: str) -> bool:
    """``small_input`` changes what :func:`build_model` builds: a torchvision model's stem."""
    return name not in _LOCAL_MODELS and not is_file_model(name)


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
        model_args: keyword arguments of the model function (``--model-arg key=value``).
        source_sha256: for ``file.py:function`` models, the SHA-256 of the file
            (the file is found by it, see :mod:`autocompress.core.model_files`).
    """

    name: str
    num_classes: int = 1000
    in_channels: int = 3
    small_input: bool = False
    model_args: Mapping[str, Any] = field(default_factory=dict)
    source_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_args"] = dict(self.model_args)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        sha = data.get("source_sha256")
        return cls(
            name=str(data["name"]),
            num_classes=int(data.get("num_classes", 1000)),
            in_channels=int(data.get("in_channels", 3)),
            small_input=bool(data.get("small_input", False)),
            model_args=dict(data.get("model_args") or {}),
            source_sha256=str(sha) if sha else None,
        )

    @classmethod
    def for_model(
        cls,
        name: str,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        model_args: Mapping[str, Any] | None = None,
    ) -> ModelSpec:
        """A spec for ``name``; a ``file.py:function`` gets its resolved path and hash."""
        sha = None
        if is_file_model(name):
            name, sha = resolve_model_file(name)
        return cls(name, num_classes, in_channels, small_input, dict(model_args or {}), sha)

    def same_architecture(self, other: ModelSpec) -> bool:
        """Same model function and arguments (a model file by content, wherever it lies)."""
        if is_file_model(self.name) and is_file_model(other.name):
            if self.source_sha256 is not None and other.source_sha256 is not None:
                same_code = self.source_sha256 == other.source_sha256
            else:
                same_code = self.name == other.name
            same_name = self.name.rpartition(":")[2] == other.name.rpartition(":")[2]
            return same_code and same_name and dict(self.model_args) == dict(other.model_args)
        return self.name == other.name and dict(self.model_args) == dict(other.model_args)

    def build(self) -> nn.Module:
        return build_model(
            self.name,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            small_input=self.small_input,
            model_args=self.model_args,
            source_sha256=self.source_sha256,
        )


#: torchvision models that warn (FutureWarning) when ``init_weights`` is left None, and
#: then use init_weights=True: it is passed explicitly (same weights, no warning).
_WARNS_WITHOUT_INIT_WEIGHTS = ("googlenet", "inception_v3")


def build_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    model_args: Mapping[str, Any] | None = None,
    source_sha256: str | None = None,
) -> nn.Module:
    """Build a randomly initialised model by name (see module docstring).

    ``model_args`` are extra keyword arguments of the model function
    (``small_cnn(width=…)``, torchvision's ``width_mult=`` / ``dropout=`` …).
    """
    kwargs = dict(model_args or {})
    if is_file_model(name):
        return build_file_model(
            name,
            num_classes=num_classes,
            in_channels=in_channels,
            model_args=kwargs,
            sha256=source_sha256,
        )
    if name in _LOCAL_MODELS:
        return _call_factory(
            name, _LOCAL_MODELS[name], num_classes=num_classes, in_channels=in_channels, **kwargs
        )
    names = torchvision_model_names()
    if name not in names:
        raise UnknownNameError(
            "model",
            name,
            known_model_names(),
            list_hint="Use a torchvision classification model name (e.g. resnet18, "
            "mobilenet_v2), 'small_cnn', or path/to/file.py:function for your own model.",
        )
    import torchvision  # seconds to import: only for torchvision models

    if name in _WARNS_WITHOUT_INIT_WEIGHTS:  # torchvision's default, without its FutureWarning
        kwargs.setdefault("init_weights", True)
    model = _call_factory(
        name,
        lambda **kw: torchvision.models.get_model(name, weights=None, **kw),
        num_classes=num_classes,
        **kwargs,
    )
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


def _call_factory(name: str, factory: Callable[..., nn.Module], **kwargs: Any) -> nn.Module:
    try:
        return factory(**kwargs)
    except TypeError as exc:
        extra = sorted(set(kwargs) - {"num_classes", "in_channels"})
        raise ConfigError(
            f"model {name!r} cannot be built with {', '.join(extra) or 'these arguments'}: {exc}",
            hint="Check the --model-arg names against the model function's parameters.",
        ) from None


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
        "state_dict": detached_state(model),
    }
    save_payload_atomic(payload, path, what="the checkpoint")
    return path


def save_payload_atomic(payload: dict, path: Path, *, what: str) -> None:
    """``torch.save`` into memory, then write a temp file beside ``path`` and rename.

    A failed write (full disk, no permission, read-only) removes the temp file and
    raises a :class:`~autocompress.core.errors.WriteError` naming ``what`` and ``path``.
    """
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


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelSpec, dict]:
    """Rebuild the model saved by :func:`save_checkpoint` (``weights_only=True``).

    Returns ``(model, spec, extra)`` with the model in eval mode on the CPU.

    Raises:
        CheckpointError: the file is missing or corrupt, is not an autocompress
            checkpoint, or its weights do not match the architecture (names the
            missing / unexpected keys or the mismatched shapes).
    """
    path = Path(path)
    payload = read_tagged_file(
        path,
        tag=CHECKPOINT_FORMAT,
        version=CHECKPOINT_VERSION,
        what="checkpoint",
        not_tagged=f"is not an autocompress model checkpoint (no format tag "
        f"{CHECKPOINT_FORMAT!r}); save one with `autocompress train --out`",
    )
    try:
        spec = ModelSpec.from_dict(payload["spec"])
        state = payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is incomplete: {exc}") from None
    model = build_for_file(spec, path)
    load_state_dict_checked(model, state, source=str(path))
    model.eval()
    return model, spec, dict(payload.get("extra") or {})


def read_tagged_file(
    path: str | os.PathLike[str], *, tag: str, version: int, what: str, not_tagged: str
) -> dict[str, Any]:
    """The payload of a file autocompress wrote with ``{"format": tag, "version": version}``.

    The one reader of autocompress's weight files (model checkpoints here, trained
    students in :mod:`autocompress.compress.student`): ``weights_only=True``, the format
    tag and the version checked.

    Args:
        what: names the file in messages (``checkpoint``, ``student file``).
        not_tagged: the message's end when the tag is not ``tag`` (``is not …``).

    Raises:
        CheckpointError: missing, unreadable, another format or another version.
    """
    payload = read_weights_file(path, what=what)
    if not isinstance(payload, dict) or payload.get("format") != tag:
        raise CheckpointError(f"{str(path)!r} {not_tagged}")
    if payload.get("version") != version:
        raise CheckpointError(
            f"{what} {str(path)!r} has version {payload.get('version')}, "
            f"this autocompress reads version {version}"
        )
    return payload


def build_for_file(
    spec: ModelSpec, path: str | os.PathLike[str], *, what: str = "checkpoint"
) -> nn.Module:
    """A fresh model of ``spec`` to load the weights of file ``path`` into.

    A ``file.py:function`` model is found near ``path`` too (a run's or an export's
    ``model_source/`` copy).

    Raises:
        CheckpointError: the model ``spec`` names cannot be built (names ``what`` and ``path``).
        UntrustedModelCodeError: its code may not be imported.
    """
    register_sources_near(Path(path))
    try:
        return spec.build()
    except UntrustedModelCodeError:
        raise
    except AutocompressError as exc:
        raise CheckpointError(
            f"{what} {str(path)!r} names model {spec.name!r} that cannot be built: {exc}"
        ) from None


def is_autocompress_checkpoint(payload: Any) -> bool:
    """True for what :func:`save_checkpoint` writes."""
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


def peek_checkpoint(path: str | os.PathLike[str]) -> ModelSpec | None:
    """The :class:`ModelSpec` of an autocompress checkpoint, ``None`` for other weight files.

    Raises:
        CheckpointError: the file is unreadable or a pickled model (see
            :func:`autocompress.core.weights.read_weights_file`).
    """
    payload = read_weights_file(path)
    if is_autocompress_checkpoint(payload):
        try:
            return ModelSpec.from_dict(payload["spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {str(path)!r} is incomplete: {exc}") from None
    find_state_dict(payload, str(path))
    return None


def load_weights(
    path: str | os.PathLike[str], spec: ModelSpec
) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """The model of ``spec`` with the weights of ``path``: an autocompress checkpoint or
    any file :mod:`autocompress.core.weights` reads (plain or wrapped state dict).

    Returns ``(model, spec, info)`` in eval mode on the CPU; ``info`` says what was
    read (``format``, ``key``, ``stripped_prefixes``; an autocompress checkpoint's
    ``extra``: what it was trained on).

    Raises:
        CheckpointError: unreadable, a pickled model, an autocompress checkpoint of
            another architecture, or weights that do not fit (names layers and shapes).
    """
    path = Path(path)
    payload = read_weights_file(path)
    if is_autocompress_checkpoint(payload):
        model, given, _extra = load_checkpoint(path)
        if not given.same_architecture(spec):
            raise CheckpointError(
                f"teacher {str(path)!r} is a {given.name!r} model, "
                f"the search was asked for {spec.name!r}",
                hint=f"Pass --model {given.name} (or leave --model out with --teacher).",
            )
        return model, given, {"format": CHECKPOINT_FORMAT, "extra": dict(_extra)}
    state, key = find_state_dict(payload, str(path))
    model = build_for_file(spec, path)
    state, stripped = match_keys(state, model)
    load_state_dict_checked(model, state, source=str(path))
    model.eval()
    return model, spec, {"format": "state_dict", "key": key, "stripped_prefixes": stripped}


def checkpoint_model_name(path: str | os.PathLike[str]) -> str | None:
    """The model name a checkpoint (teacher or student file) names, read without building it
    (None when the file is missing or unreadable)."""
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
            f"checkpoint {source!r} does not match the architecture: " + "; ".join(problems),
            hint=_shape_hint(own, state, shapes),
        )
    try:
        model.load_state_dict(with_metadata(state, model))
    except (RuntimeError, AssertionError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {source!r} does not load into the architecture: "
            f"{type(exc).__name__}: {plain_message(str(exc)).strip().splitlines()[0]}"
        ) from None


def _shape_hint(own: Mapping[str, Any], state: Mapping[str, Any], shapes: Sequence[str]) -> str:
    if not shapes:
        return "Is --model the architecture these weights were trained with (and --model-arg)?"
    keys = [k for k in own if k.endswith("weight") and getattr(own[k], "ndim", 0) >= 2]
    if keys and keys[-1] in state and state[keys[-1]].shape[0] != own[keys[-1]].shape[0]:
        return (
            f"The classifier {keys[-1]!r} has {state[keys[-1]].shape[0]} outputs in the "
            f"checkpoint and {own[keys[-1]].shape[0]} in the model: the data's class count "
            "differs from the checkpoint's."
        )
    if keys and keys[0] in state and state[keys[0]].shape[1:2] != own[keys[0]].shape[1:2]:
        return (
            f"The first layer {keys[0]!r} takes {state[keys[0]].shape[1]} input channels in the "
            f"checkpoint and {own[keys[0]].shape[1]} in the model (grayscale vs RGB images?)."
        )
    return "Is --model the architecture these weights were trained with (and --model-arg)?"


def _few(items: list[str], n: int = 4) -> str:
    shown = ", ".join(items[:n])
    return f"[{shown}{f', … ({len(items) - n} more)' if len(items) > n else ''}]"


__all__ = [
    "SMALL_INPUT_MAX_PX",
    "ModelSpec",
    "auto_small_input",
    "build_for_file",
    "build_model",
    "count_parameters",
    "fc_cnn",
    "has_small_input_stem",
    "is_autocompress_checkpoint",
    "known_model_names",
    "load_checkpoint",
    "load_state_dict_checked",
    "load_weights",
    "peek_checkpoint",
    "read_tagged_file",
    "register_model",
    "save_checkpoint",
    "small_cnn",
]

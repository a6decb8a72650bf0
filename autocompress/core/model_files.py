"""A user's own model: ``path/to/file.py:function``, identified by resolved path and content.

A model file is known by its resolved path and the SHA-256 of its bytes, so the same
file given by a relative and an absolute path is one model, and a run keeps working
after the working directory changes or the original file moves: every run keeps a
copy under ``<run>/model_source/<file name>`` and :func:`find_model_source` finds a
file by its hash (the original when unchanged, else a registered copy).

The function is called with ``num_classes=`` and ``in_channels=`` when it accepts
them (or ``**kwargs``), plus the user's keyword arguments (``--model-arg key=value``).
"""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from autocompress.core.errors import ConfigError
from autocompress.core.file_hash import file_sha256
from autocompress.core.model_code import check_model_code

#: Folder of a run (and of an export) that keeps the model source.
MODEL_SOURCE_DIR = "model_source"

# content hash -> a readable file with that content (filled as files are seen)
_SOURCE_BY_HASH: dict[str, Path] = {}


def is_file_model(name: str) -> bool:
    """True for ``path/to/file.py:function`` names."""
    return ":" in name and name.rpartition(":")[0].endswith(".py")


def resolve_model_file(name: str) -> tuple[str, str]:
    """``(resolved name, sha256)`` of ``file.py:function``; the path made absolute.

    Raises:
        ConfigError: the file does not exist.
    """
    path_text, _, func = name.rpartition(":")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"model file {path_text!r} does not exist (from --model {name!r})",
            hint="Give path/to/file.py:function, the function returning your nn.Module.",
        )
    resolved = path.resolve()
    digest = file_sha256(resolved)
    _remember(digest, resolved)
    return f"{resolved}:{func}", digest


def _remember(digest: str, path: Path) -> None:
    known = _SOURCE_BY_HASH.get(digest)
    if known is None or not known.is_file():
        _SOURCE_BY_HASH[digest] = path


def register_model_sources(folder: Path) -> None:
    """Make the ``.py`` files in ``folder`` (a run's ``model_source/``) findable by hash."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.py")):
        try:
            _remember(file_sha256(path), path.resolve())
        except OSError:
            continue


def register_sources_near(path: Path, levels: int = 3) -> None:
    """Register ``model_source/`` folders of ``path``'s parents (a run or export folder)."""
    folder = Path(path).resolve().parent
    for _ in range(levels):
        register_model_sources(folder / MODEL_SOURCE_DIR)
        if folder.parent == folder:
            break
        folder = folder.parent


def find_model_source(name: str, sha256: str | None) -> Path:
    """The file to import for ``name`` whose content hash is ``sha256``.

    The path in ``name`` when it exists and (if a hash is known) still has that
    content; else a copy with that content seen before (a run's ``model_source/``).

    Raises:
        ConfigError: no file with that content is found.
    """
    path_text = name.rpartition(":")[0]
    path = Path(path_text).expanduser()
    if sha256 is None:
        if path.is_file():
            return path
        raise ConfigError(f"model file {path_text!r} does not exist (from model {name!r})")
    if path.is_file():
        try:
            if file_sha256(path) == sha256:
                return path
        except OSError:
            pass
    copy = _SOURCE_BY_HASH.get(sha256)
    if copy is not None and copy.is_file():
        return copy
    changed = " has changed since" if path.is_file() else " is gone since"
    raise ConfigError(
        f"model file {path_text!r}{changed} this model was made (sha256 {sha256[:12]}…), "
        f"and no copy with that content was found",
        hint=f"Run from a run directory that holds {MODEL_SOURCE_DIR}/{path.name}, or restore "
        "the original file.",
    )


def keep_model_source(name: str, folder: Path) -> Path:
    """Copy the model file of ``name`` into ``folder/model_source/`` (returns the copy)."""
    path_text = name.rpartition(":")[0]
    source = Path(path_text)
    destination = folder / MODEL_SOURCE_DIR / source.name
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not destination.exists() or file_sha256(destination) != file_sha256(source):
        shutil.copyfile(source, destination)
    register_model_sources(destination.parent)
    return destination


def _import(path: Path, sha256: str | None) -> Any:
    digest = sha256 or file_sha256(path)
    module_name = f"autocompress_user_model_{digest[:16]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"cannot import {str(path)!r} as a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report, don't crash
        del sys.modules[module_name]
        raise ConfigError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from None
    return module


def _call_arguments(
    factory: Any, spec: str, *, num_classes: int, in_channels: int, model_args: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """Keyword arguments for ``factory`` and which of num_classes/in_channels it takes."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs: dict[str, Any] = {}
    passed: set[str] = set()
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if key in parameters or (var_kw and key not in model_args):
            kwargs[key] = value
            passed.add(key)
    for key, value in model_args.items():
        if key in ("num_classes", "in_channels"):
            raise ConfigError(
                f"--model-arg {key}=… is set from the data; leave it out (model {spec!r})"
            )
        if key not in parameters and not var_kw:
            known = [p for p in parameters if p not in ("num_classes", "in_channels")]
            raise ConfigError(
                f"{spec} has no parameter {key!r} (from --model-arg {key}={value})",
                hint=f"Its parameters: {', '.join(known) or 'none'}.",
            )
        kwargs[key] = value
    return kwargs, passed


def build_file_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    model_args: Mapping[str, Any] | None = None,
    sha256: str | None = None,
) -> nn.Module:
    """Import the file of ``name`` (found by content, see :func:`find_model_source`) and
    call its function; the result is checked against ``num_classes`` / ``in_channels``
    when the function does not take them.

    Raises:
        ConfigError: the file, function or arguments are wrong, the function raised,
            returned no ``nn.Module``, or its input/output layers do not fit the data.
    """
    path = find_model_source(name, sha256)
    check_model_code(name, path)  # a name read from someone's file is imported only when trusted
    func_name = name.rpartition(":")[2]
    module = _import(path, sha256)
    factory = getattr(module, func_name, None)
    if not callable(factory):
        functions = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise ConfigError(
            f"{str(path)!r} has no function {func_name!r}",
            hint=f"Functions in it: {', '.join(functions[:12]) or 'none'}.",
        )
    kwargs, passed = _call_arguments(
        factory,
        name,
        num_classes=num_classes,
        in_channels=in_channels,
        model_args=dict(model_args or {}),
    )
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise ConfigError(f"{name} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name} returned {type(model).__name__}, not a torch.nn.Module")
    check_model_io(
        model,
        name,
        num_classes=None if "num_classes" in passed else num_classes,
        in_channels=None if "in_channels" in passed else in_channels,
    )
    return model


def _weighted_layers(model: nn.Module) -> Iterable[tuple[str, nn.Module]]:
    for layer_name, module in model.named_modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            yield layer_name, module


def check_model_io(
    model: nn.Module, name: str, *, num_classes: int | None, in_channels: int | None
) -> None:
    """ConfigError when the first layer's input channels or the last layer's outputs
    (in definition order) differ from the data's; ``None`` skips a check."""
    layers = list(_weighted_layers(model))
    if not layers:
        return
    if in_channels is not None:
        first_name, first = layers[0]
        have = first.in_channels if hasattr(first, "in_channels") else first.in_features
        if isinstance(first, nn.Conv2d) and have != in_channels:
            raise ConfigError(
                f"model {name}: its first layer {first_name!r} ({type(first).__name__}, weight "
                f"{tuple(first.weight.shape)}) takes {have} input channels, the images have "
                f"{in_channels}",
                hint="Let the function take in_channels=, or use images with "
                f"{have} channel{'s' if have != 1 else ''}.",
            )
    if num_classes is not None:
        last_name, last = layers[-1]
        have = last.out_features if isinstance(last, nn.Linear) else last.out_channels
        if have != num_classes:
            raise ConfigError(
                f"model {name}: its last layer {last_name!r} ({type(last).__name__}, weight "
                f"{tuple(last.weight.shape)}) has {have} outputs, the data has {num_classes} "
                "classes",
                hint="Let the function take num_classes=, or set the classifier's outputs.",
            )


__all__ = [
    "MODEL_SOURCE_DIR",
    "build_file_model",
    "check_model_io",
    "file_sha256",
    "find_model_source",
    "is_file_model",
    "keep_model_source",
    "register_model_sources",
    "register_sources_near",
    "resolve_model_file",
]

"""What ``calibrate`` keeps on disk so that a second run needs neither torch nor torchvision.

Importing torch and torchvision takes seconds (torchvision pulls in ``torch._dynamo``),
more than the whole fit. Once every measured model's layers are cached, a run only
needs the model names to check the CSV against and the versions that key the cache:
both are read here without importing either library.

Files under ``$AUTOCOMPRESS_CACHE`` (default ``~/.cache/autocompress``):

- ``layers/<hash>.json`` — one configuration's layer descriptors
  (:func:`autocompress.hardware.calibration_run.measured_layers`);
- ``layers/model-names-<hash>.json`` — the names ``--model`` accepts, keyed by the
  autocompress, torch and torchvision versions. It only ever confirms a name: a name
  missing from it is checked against torchvision itself.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

from autocompress.core.version import __version__

LAYER_CACHE_VERSION = 2
"""Bumped when the layer descriptors' JSON changes (2: versions read from package metadata)."""


def cache_root() -> Path:
    """``$AUTOCOMPRESS_CACHE`` or ``~/.cache/autocompress``."""
    root = os.environ.get("AUTOCOMPRESS_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "autocompress"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def library_versions() -> tuple[str, str, str]:
    """(autocompress, torch, torchvision) versions, from package metadata (no import)."""
    return (__version__, _package_version("torch"), _package_version("torchvision"))


def layers_cache_path(key: tuple) -> Path:
    """The cache file of one configuration's layers (a library upgrade changes the name)."""
    text = repr((LAYER_CACHE_VERSION, library_versions(), key))
    return cache_root() / "layers" / (hashlib.sha256(text.encode()).hexdigest()[:32] + ".json")


def _names_path() -> Path:
    digest = hashlib.sha256(repr(library_versions()).encode()).hexdigest()[:16]
    return cache_root() / "layers" / f"model-names-{digest}.json"


def _cached_names() -> frozenset[str]:
    try:
        return frozenset(json.loads(_names_path().read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return frozenset()


def builtin_model_names() -> frozenset[str]:
    """torchvision classification names and autocompress's own models (imports torch)."""
    from autocompress.core.models import _LOCAL_MODELS, torchvision_model_names

    names = frozenset(torchvision_model_names()) | frozenset(_LOCAL_MODELS)
    try:
        path = _names_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(sorted(names)), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        pass  # a read-only cache folder only costs speed
    return names


def is_builtin_model(name: str) -> bool:
    """Whether ``name`` is a torchvision classifier or an autocompress model; the cached
    list answers yes without importing torch, anything else asks torchvision."""
    return name in _cached_names() or name in builtin_model_names()


__all__ = [
    "LAYER_CACHE_VERSION",
    "builtin_model_names",
    "cache_root",
    "is_builtin_model",
    "layers_cache_path",
    "library_versions",
]

"""What ``calibrate`` keeps on disk so that a second run needs neither torch nor torchvision.

Importing torch and torchvision takes seconds (torchvision pulls in ``torch._dynamo``),
more than the whole fit. Once every measured model's layers are cached, a run only
needs the model names to check the CSV against and the versions that key the cache:
both are read here without importing either library.

Files under ``$AUTOCOMPRESS_CACHE`` (default ``~/.cache/autocompress``):

- ``layers/<hash>.json`` — one configuration's layer descriptors
  (:func:`autocompress.hardware.calibration_layers.measured_layers`);
- ``layers/model-names-<hash>.json`` — the names ``--model`` accepts, keyed by the
  autocompress, torch and torchvision versions. It only ever confirms a name: a name
  missing from it is checked against torchvision itself.

Both are keyed by the library versions and by :func:`extraction_digest`, a hash of the
source files that decide what a layer descriptor holds, so an upgrade or an edit of
the extraction code leaves old entries unused instead of wrong.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

from autocompress.core.version import __version__

LAYER_CACHE_VERSION = 3
"""Bumped when the layer descriptors' JSON changes (2: versions read from package metadata;
3: keyed by the extraction source digest too)."""

EXTRACTION_SOURCES = (
    "hardware/extract.py",
    "hardware/extract_hooks.py",
    "hardware/layer_draft.py",
    "hardware/op_kinds.py",
    "hardware/layers.py",
    "hardware/calibration_layers.py",
    "core/models.py",
)
"""The files (under the ``autocompress`` package) whose code decides a measured
configuration's layer descriptors: model construction, tracing, fusion, the descriptor."""

_DIGEST: list[str] = []


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


def extraction_digest() -> str:
    """SHA-256 (16 hex digits) of the :data:`EXTRACTION_SOURCES` (read once per process;
    ``"unknown"`` when one cannot be read, e.g. a package without its ``.py`` files)."""
    if not _DIGEST:
        package = Path(__file__).resolve().parents[1]
        digest = hashlib.sha256()
        try:
            for name in EXTRACTION_SOURCES:
                digest.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
            _DIGEST.append(digest.hexdigest()[:16])
        except OSError:
            _DIGEST.append("unknown")
    return _DIGEST[0]


def cache_identity() -> tuple[int, tuple[str, str, str], str]:
    """What every cached layer table is keyed by besides its configuration: the cache
    format, the (autocompress, torch, torchvision) versions and the extraction digest."""
    return (LAYER_CACHE_VERSION, library_versions(), extraction_digest())


def layers_cache_path(key: tuple) -> Path:
    """The cache file of one configuration's layers (a library upgrade or an edit of the
    extraction code changes the name)."""
    text = repr((*cache_identity(), key))
    return cache_root() / "layers" / (hashlib.sha256(text.encode()).hexdigest()[:32] + ".json")


def _names_path() -> Path:
    digest = hashlib.sha256(repr(cache_identity()).encode()).hexdigest()[:16]
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
    list or the shipped layer tables' list answer yes without importing torch, anything
    else asks torchvision."""
    from autocompress.hardware.layer_tables import shipped_model_names

    return name in _cached_names() or name in shipped_model_names() or name in builtin_model_names()


__all__ = [
    "EXTRACTION_SOURCES",
    "LAYER_CACHE_VERSION",
    "builtin_model_names",
    "cache_identity",
    "cache_root",
    "extraction_digest",
    "is_builtin_model",
    "layers_cache_path",
    "library_versions",
]

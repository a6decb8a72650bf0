"""The layer descriptors of a measured configuration, as ``calibrate`` needs them.

Extracting a model's layers needs torch and torchvision (seconds to import) and a
traced forward pass per model, and it is the slow part of calibrating. So
:func:`measured_layers` looks in four places, cheapest first:

1. memory (this process);
2. the user cache, ``$AUTOCOMPRESS_CACHE/layers/<hash>.json``
   (:mod:`autocompress.hardware.calibration_cache`);
3. the shipped layer tables (:mod:`autocompress.hardware.layer_tables`): the
   configurations of the bundled measurement files, extracted when the package
   was built and used only while torch, torchvision and the extraction code are
   the ones they were extracted with;
4. extraction (:func:`autocompress.hardware.extract.extract_layers`), then
   written to the user cache.

Every cache key holds the torch and torchvision versions and a digest of the
extraction source (:func:`~autocompress.hardware.calibration_cache.extraction_digest`),
so an upgrade or a change to the extraction code makes old entries unused, never wrong.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

from autocompress.core.errors import ConfigError
from autocompress.hardware.calibration_cache import is_builtin_model, layers_cache_path
from autocompress.hardware.calibration_csv import Measurement
from autocompress.hardware.layer_tables import shipped_layers
from autocompress.hardware.layers import LayerDescriptor, LayerKind

_LAYER_CACHE: dict[tuple, list[LayerDescriptor]] = {}


def measurement_key(measurement: Measurement) -> tuple:
    """(model, input shape, width multiplier, weight bits, activation bits)."""
    return (*measurement.key, measurement.weight_bits, measurement.activation_bits)


def _construct(measurement: Measurement):
    from autocompress.core.models import (
        build_model,
        small_cnn,
    )  # torch: only when a layer is not cached

    width = measurement.width_multiplier
    channels = measurement.input_shape[0]
    if width == 1.0:
        return build_model(measurement.model, num_classes=1000, in_channels=channels)
    if measurement.model == "small_cnn":
        return small_cnn(num_classes=1000, in_channels=channels, width=max(1, round(32 * width)))
    if measurement.model == "mobilenet_v2":
        import torchvision  # only when a layer is not cached

        return torchvision.models.get_model("mobilenet_v2", weights=None, width_mult=width)
    raise ConfigError(
        f"line {measurement.line}: width_multiplier {width} is supported for mobilenet_v2 and "
        f"small_cnn only, not {measurement.model!r}"
    )


def _build(measurement: Measurement):
    """The measured model, on the ``meta`` device when it can be (shapes only, no weights to
    initialise: several times faster for big models), else on the CPU."""
    import torch  # only when a layer is not cached

    try:
        with torch.device("meta"):
            return _construct(measurement)
    except (NotImplementedError, RuntimeError):  # a constructor that computes with tensors
        return _construct(measurement)


def extract_measured(measurement: Measurement) -> list[LayerDescriptor]:
    """Build the measured model and extract its layers (no cache: imports torch)."""
    from autocompress.hardware.extract import extract_layers  # torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torchvision init-weight notices
        module = _build(measurement)
    return extract_layers(
        module,
        measurement.input_shape,
        weight_bits=measurement.weight_bits,
        activation_bits=measurement.activation_bits,
    )


def _layers_to_json(layers: list[LayerDescriptor]) -> str:
    return json.dumps(layers_to_rows(layers))


def layers_to_rows(layers: list[LayerDescriptor]) -> list[dict]:
    """Layer descriptors as JSON-ready dicts (the layer kind by its value)."""
    rows = []
    for layer in layers:
        row = dataclasses.asdict(layer)
        row["kind"] = layer.kind.value
        rows.append(row)
    return rows


def layers_from_rows(rows: list[dict]) -> list[LayerDescriptor]:
    """Layer descriptors from :func:`layers_to_rows` dicts (data only: never runs code)."""
    tuples = {"kernel_size", "stride", "dilation", "input_hw", "output_hw", "fused_ops"}
    layers = []
    for row in rows:
        values = {k: tuple(v) if k in tuples else v for k, v in row.items()}
        values["kind"] = LayerKind(values["kind"])
        layers.append(LayerDescriptor(**values))
    return layers


def _layers_from_json(text: str) -> list[LayerDescriptor]:
    """Layer descriptors from the cache's JSON (data only: a cache file never runs code)."""
    return layers_from_rows(json.loads(text))


def measured_layers(measurement: Measurement) -> list[LayerDescriptor]:
    """Layer descriptors of a measured configuration (memory, user cache, shipped tables,
    else extraction; see the module docstring)."""
    key = measurement_key(measurement)
    layers = _LAYER_CACHE.get(key)
    if layers is not None:
        return layers
    cache_file = layers_cache_path(key) if is_builtin_model(measurement.model) else None
    if cache_file is not None and cache_file.is_file():
        try:
            layers = _layers_from_json(cache_file.read_text(encoding="utf-8"))
        except Exception:  # a damaged or foreign cache entry: extract again
            layers = None
    if layers is None and cache_file is not None:
        layers = shipped_layers(key)
    if layers is None:
        layers = extract_measured(measurement)
        if cache_file is not None:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                temporary = cache_file.with_suffix(".tmp")
                temporary.write_text(_layers_to_json(layers), encoding="utf-8")
                temporary.replace(cache_file)
            except OSError:
                pass  # a read-only cache folder only costs speed
    _LAYER_CACHE[key] = layers
    return layers


__all__ = [
    "extract_measured",
    "layers_from_rows",
    "layers_to_rows",
    "measured_layers",
    "measurement_key",
]

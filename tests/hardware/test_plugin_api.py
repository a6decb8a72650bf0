"""The stable plugin surface, ``autocompress.plugin``.

Every name resolves, none silently disappears, and the deep import paths that older
plugin docs taught still give the very same objects.
"""

from __future__ import annotations

import importlib

import pytest

import autocompress.plugin as plugin_api

# Names third-party plugins may rely on. Removing one is a breaking change: add, never drop.
STABLE_NAMES = {
    "COMPUTE_KINDS",
    "COMPUTE_OPS",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "ChipBudgets",
    "ChipSpec",
    "Cost",
    "LayerCost",
    "LayerDescriptor",
    "LayerKind",
    "OnnxGraphNames",
    "OnnxNode",
    "QuantGranularity",
    "QuantizationScheme",
    "card_compute_layers",
    "cost_layers",
    "dram_bandwidth_gbps",
    "dram_energy_pj_per_byte",
    "effective_bits",
    "energy_sources",
    "hookimpl",
    "integer_mac_pj_45nm",
    "mac_energy_pj",
    "mac_energy_table",
    "macs_per_cycle",
    "map_modules_to_nodes",
    "node_energy_factor",
    "peak_tops",
    "read_graph_names",
    "sram_energy_pj_per_byte",
    "validate_chip_spec",
}

# Where the plugin guide of release 0.1 told plugins to import from.
LEGACY_PATHS = {
    "autocompress.hardware.spec": [
        "ChipSpec",
        "ChipBudgets",
        "QuantizationScheme",
        "QuantGranularity",
    ],
    "autocompress.hardware.hookspecs": ["hookimpl"],
    "autocompress.hardware.cost": ["Cost", "LayerCost"],
    "autocompress.hardware.cost_model": ["cost_layers"],
    "autocompress.hardware.layers": ["LayerDescriptor", "LayerKind"],
    "autocompress.hardware.figures": [
        "dram_bandwidth_gbps",
        "dram_energy_pj_per_byte",
        "energy_sources",
        "mac_energy_table",
        "macs_per_cycle",
        "peak_tops",
        "sram_energy_pj_per_byte",
    ],
    "autocompress.hardware.onnx_names": [
        "card_compute_layers",
        "map_modules_to_nodes",
        "read_graph_names",
    ],
    "autocompress.hardware.validate": ["validate_chip_spec"],
}


def test_all_lists_the_stable_names_and_each_resolves() -> None:
    missing = STABLE_NAMES - set(plugin_api.__all__)
    assert not missing, f"names dropped from autocompress.plugin: {sorted(missing)}"
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name


def test_all_has_no_duplicates_and_nothing_private() -> None:
    assert len(plugin_api.__all__) == len(set(plugin_api.__all__))
    assert not [name for name in plugin_api.__all__ if name.startswith("_")]


@pytest.mark.parametrize(("module", "names"), sorted(LEGACY_PATHS.items()))
def test_legacy_deep_imports_are_the_same_objects(module: str, names: list[str]) -> None:
    legacy = importlib.import_module(module)
    for name in names:
        assert getattr(legacy, name) is getattr(plugin_api, name), f"{module}.{name}"

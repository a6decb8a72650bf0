"""The chip-plugin contract, as pytest test cases a plugin's own tests subclass.

Usage, in the plugin's ``tests/test_contract.py``::

    import acme_npu
    from autocompress.testing import ChipPluginContract

    class TestAcmePlugin(ChipPluginContract):
        plugin = acme_npu                     # the module (or object) with the hooks
        expected_chip_ids = ("acme/npu1",)    # optional: chips that must be there

Every test below then runs against that plugin, registered alone in a fresh
:class:`~autocompress.hardware.plugins.ChipRegistry` (no entry points loaded),
and costs a real torchvision network with the real cost model. Needs pytest
(the kit is imported only by tests; ``import autocompress`` never imports it).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest

from autocompress.hardware.cost import Cost
from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.plugins import ChipRegistry
from autocompress.hardware.spec import ChipSpec
from autocompress.hardware.validate import validate_chip_spec

PUBLISHED_FIGURES = (
    "npu_clock_mhz",
    "peak_tops_by_bits",
    "weight_bits_supported",
    "activation_bits_supported",
    "dram_bandwidth_gbps",
    "energy_per_mac_pj_by_bits",
    "quantization",
)
"""Fields whose figure must name its source in ``ChipSpec.sources``."""

SAMPLE_CARD: dict[str, Any] = {
    "layers": [
        {"name": "features.0.0", "weight_bits": 8, "activation_bits": 8, "out_channels": 16},
        {
            "name": "features.1.conv.0.0",
            "weight_bits": 16,
            "activation_bits": 16,
            "out_channels": 16,
        },
        {"name": "classifier.1", "weight_bits": 8, "activation_bits": 8, "out_channels": 10},
    ],
    "input_shape": [3, 32, 32],
    "normalization": {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]},
}
"""A deploy card of the shape ``autocompress export`` writes (keys plugins may read)."""


def _vendor_key(vendor: str) -> str:
    return "".join(ch for ch in vendor.lower() if ch.isalnum())


def _probe_model() -> Any:
    """A small real torchvision network: regular, depthwise, 1x1 convs, residual adds, linear."""
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5).eval()


@functools.lru_cache(maxsize=4)
def _probe_layers(input_shape: tuple[int, int, int]) -> list[LayerDescriptor]:
    """Descriptors of the probe network, extracted once per process (they are immutable)."""
    from autocompress.hardware.extract import extract_layers

    return extract_layers(_probe_model(), input_shape)


def _finite_positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


class ChipPluginContract:
    """Subclass as ``class TestMyPlugin(ChipPluginContract)`` and set ``plugin``."""

    plugin: ClassVar[Any] = None
    """The plugin module or object (what the entry point points at)."""
    plugin_name: ClassVar[str | None] = None
    """Name to register it under (default: the module's ``__name__``)."""
    expected_chip_ids: ClassVar[tuple[str, ...]] = ()
    """Chip ids the plugin must contribute (others are allowed)."""
    probe_input_shape: ClassVar[tuple[int, int, int]] = (3, 32, 32)

    # -- fixtures -----------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def chip_registry(cls) -> ChipRegistry:
        if cls.plugin is None:
            pytest.fail(f"{cls.__name__}: set `plugin = <your plugin module>`")
        registry = ChipRegistry(autoload=False)
        registry.register(cls.plugin, cls._name())
        return registry

    @pytest.fixture(scope="class")
    @classmethod
    def contract_chips(cls, chip_registry: ChipRegistry) -> list[ChipSpec]:
        return chip_registry.chips()

    @pytest.fixture(scope="class")
    @classmethod
    def probe_layers(cls) -> list[LayerDescriptor]:
        return _probe_layers(cls.probe_input_shape)

    @classmethod
    def _name(cls) -> str:
        return cls.plugin_name or getattr(cls.plugin, "__name__", type(cls.plugin).__name__)

    @staticmethod
    def _cost(layers: list[LayerDescriptor], chip: ChipSpec, w: int, a: int) -> Cost:
        from autocompress.hardware.cost_model import cost_layers

        return cost_layers([layer.with_precision(w, a) for layer in layers], chip)

    # -- the contract -------------------------------------------------------------------------

    def test_registers_without_problems(self, chip_registry: ChipRegistry) -> None:
        problems = [str(p) for p in chip_registry.problems()]
        assert problems == [], "the plugin has problems:\n" + "\n".join(problems)

    def test_contributes_chips(self, contract_chips: list[ChipSpec]) -> None:
        assert contract_chips, "autocompress_chips() returned no valid chip"
        ids = {chip.chip_id for chip in contract_chips}
        missing = sorted(set(self.expected_chip_ids) - ids)
        assert not missing, f"expected chips not contributed: {missing}"

    def test_specs_are_valid(self, chip_registry: ChipRegistry) -> None:
        hook = chip_registry.hook_functions(self._name()).get("autocompress_chips")
        assert hook is not None, "the plugin does not implement autocompress_chips"
        for spec in hook():
            assert validate_chip_spec(spec) == [], f"{getattr(spec, 'chip_id', spec)!r}"

    def test_chip_ids_unique_and_prefixed_by_vendor(self, chip_registry: ChipRegistry) -> None:
        specs = chip_registry.hook_functions(self._name())["autocompress_chips"]()
        ids = [spec.chip_id for spec in specs]
        assert len(ids) == len(set(ids)), f"duplicate chip ids: {ids}"
        for spec in specs:
            assert spec.vendor_key == _vendor_key(spec.vendor), (
                f"{spec.chip_id!r}: the id's prefix must be the vendor "
                f"({_vendor_key(spec.vendor)!r}/...)"
            )

    def test_budgets_positive(self, contract_chips: list[ChipSpec]) -> None:
        for chip in contract_chips:
            for name, value in dataclasses.asdict(chip.budgets).items():
                assert _finite_positive(value), f"{chip.chip_id}: budgets.{name} = {value!r}"

    def test_sources_cover_published_figures(self, contract_chips: list[ChipSpec]) -> None:
        for chip in contract_chips:
            missing = [f for f in (*PUBLISHED_FIGURES, *chip.unverified) if f not in chip.sources]
            assert not missing, f"{chip.chip_id}: no source for {missing}"

    def test_every_supported_bit_width_is_costable(
        self, contract_chips: list[ChipSpec], probe_layers: list[LayerDescriptor]
    ) -> None:
        for chip in contract_chips:
            for w in chip.weight_bits_supported:
                for a in chip.activation_bits_supported:
                    cost = self._cost(probe_layers, chip, w, a)
                    where = f"{chip.chip_id} w{w}a{a}"
                    assert cost.chip_id == chip.chip_id, where
                    for metric, value in cost.metrics().items():
                        assert _finite_positive(value), f"{where}: {metric} = {value!r}"
                    assert len(cost.layers) == len(probe_layers), where

    def test_fewer_bits_never_slower_or_costlier(
        self, contract_chips: list[ChipSpec], probe_layers: list[LayerDescriptor]
    ) -> None:
        for chip in contract_chips:
            widths = sorted(set(chip.weight_bits_supported) & set(chip.activation_bits_supported))
            costs = {bits: self._cost(probe_layers, chip, bits, bits) for bits in widths}
            for low, high in itertools.pairwise(widths):
                where = f"{chip.chip_id}: {low}-bit vs {high}-bit"
                assert costs[low].latency_ms <= costs[high].latency_ms * (1 + 1e-9), where
                assert costs[low].energy_mj <= costs[high].energy_mj * (1 + 1e-9), where
                assert costs[low].model_size_kb < costs[high].model_size_kb, where

    def test_cost_override_is_consistent(
        self,
        chip_registry: ChipRegistry,
        contract_chips: list[ChipSpec],
        probe_layers: list[LayerDescriptor],
    ) -> None:
        """``autocompress_estimate_cost`` (if any) answers its own chips with sane totals."""
        if "autocompress_estimate_cost" not in chip_registry.hook_functions(self._name()):
            pytest.skip("the plugin has no whole-model cost override (autocompress_estimate_cost)")
        answered = []
        for chip in contract_chips:
            layers = [layer.with_precision(8, 8) for layer in probe_layers]
            cost = chip_registry.override_cost(chip, layers)
            if cost is None:
                continue
            answered.append(chip.chip_id)
            assert cost.chip_id == chip.chip_id
            for metric, value in cost.metrics().items():
                assert _finite_positive(value), f"{chip.chip_id}: override {metric} = {value!r}"
        if not answered:
            pytest.skip("autocompress_estimate_cost answered none of the plugin's chips (w8a8)")

    def test_hooks_return_none_for_foreign_chips(
        self,
        chip_registry: ChipRegistry,
        contract_chips: list[ChipSpec],
        probe_layers: list[LayerDescriptor],
        tmp_path: Path,
    ) -> None:
        foreign = dataclasses.replace(
            contract_chips[0], chip_id="contract-test/foreign", vendor="Contract-Test"
        )
        hooks = chip_registry.hook_functions(self._name())
        layers = [layer.with_precision(8, 8) for layer in probe_layers]
        calls = {
            "autocompress_estimate_cost": {"chip": foreign, "layers": layers},
            "autocompress_layer_cost": {"chip": foreign, "layer": layers[0]},
            "autocompress_check_layers": {"chip": foreign, "layers": layers},
            "autocompress_export_step": {
                "chip": foreign,
                "export_dir": tmp_path,
                "onnx_path": tmp_path / "model.onnx",
                "card": dict(SAMPLE_CARD, chip_id=foreign.chip_id),
            },
        }
        for hook_name, kwargs in calls.items():
            if hook_name in hooks:
                assert hooks[hook_name](**kwargs) is None, f"{hook_name} answered a foreign chip"
        assert list(tmp_path.iterdir()) == [], "an export step wrote files for a foreign chip"

    def test_layer_checks_are_well_formed(
        self,
        chip_registry: ChipRegistry,
        contract_chips: list[ChipSpec],
        probe_layers: list[LayerDescriptor],
    ) -> None:
        """``autocompress_check_layers`` (if any) names real layers, with a reason each."""
        if "autocompress_check_layers" not in chip_registry.hook_functions(self._name()):
            pytest.skip("the plugin has no legality hook")
        from autocompress.hardware.legality import VERDICTS

        names = {layer.name for layer in probe_layers}
        for chip in contract_chips:
            for w in chip.weight_bits_supported:
                for a in chip.activation_bits_supported:
                    layers = [layer.with_precision(w, a) for layer in probe_layers]
                    issues = chip_registry.check_layers(chip, layers)
                    for issue in issues:
                        assert issue.layer in names, (
                            f"{chip.chip_id}: unknown layer {issue.layer!r}"
                        )
                        assert issue.reason.strip(), f"{chip.chip_id}: empty reason"
                        assert issue.verdict in VERDICTS

    def test_export_step_writes_inside_export_dir(
        self, chip_registry: ChipRegistry, contract_chips: list[ChipSpec], tmp_path: Path
    ) -> None:
        if "autocompress_export_step" not in chip_registry.hook_functions(self._name()):
            pytest.skip("the plugin has no export step (autocompress_export_step)")
        written: list[Path] = []
        for chip in contract_chips:
            export_dir = tmp_path / chip.chip_id.replace("/", "_")
            export_dir.mkdir()
            card = dict(SAMPLE_CARD, chip_id=chip.chip_id)
            # The ONNX file is absent on purpose: export steps must cope (write defensively).
            paths = chip_registry.run_export_steps(
                chip, export_dir, export_dir / "model.onnx", card
            )
            for path in paths:
                assert path.is_file() and path.stat().st_size > 0, f"{chip.chip_id}: {path}"
                assert export_dir.resolve() in path.resolve().parents, f"{chip.chip_id}: {path}"
            written.extend(paths)
        if not written:
            pytest.skip("autocompress_export_step wrote nothing for any of the plugin's chips")

    def test_default_chip_is_one_of_its_own(
        self, chip_registry: ChipRegistry, contract_chips: list[ChipSpec]
    ) -> None:
        """``autocompress_default_chip`` (if any) names None or a chip of this plugin."""
        hook = chip_registry.hook_functions(self._name()).get("autocompress_default_chip")
        if hook is None:
            pytest.skip("the plugin declares no default chip")
        answer = hook()
        assert answer is None or answer in {chip.chip_id for chip in contract_chips}, (
            f"autocompress_default_chip named {answer!r}, which is not one of its chips"
        )

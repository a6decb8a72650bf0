"""The plugin facade: discovery, isolation of broken plugins, caching, per-chip hooks."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import autocompress
from autocompress.core.errors import PluginError, UnknownNameError
from autocompress.hardware import plugins
from autocompress.hardware.cost import Cost
from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.plugins import ChipRegistry

BUNDLED_CHIP_IDS = {
    "rockchip/rv1126",
    "rockchip/rv1109",
    "rockchip/rk3588",
    "rockchip/rk3566",
    "hisilicon/hi3519a",
    "hisilicon/hi3559a",
    "ambarella/cv22",
    "nvidia/orin-nano",
    "qualcomm/qcs6490",
    "qualcomm/sm8550",
}


def _spec(chip_id: str, **changes):
    """A valid spec (rv1126's figures) under another id."""
    import autocompress_rockchip.chips as rockchip

    base = rockchip.rockchip_chips()[0]
    vendor = chip_id.split("/")[0].capitalize()
    return dataclasses.replace(base, chip_id=chip_id, vendor=vendor, **changes)


class ChipsPlugin:
    """A plugin object contributing fixed specs."""

    def __init__(self, *specs):
        self.specs = list(specs)

    @hookimpl
    def autocompress_chips(self):
        return self.specs


class RaisingPlugin:
    @hookimpl
    def autocompress_chips(self):
        raise RuntimeError("datasheet not found")


def _layer() -> LayerDescriptor:
    return LayerDescriptor(
        name="conv",
        kind=LayerKind.CONV,
        in_channels=16,
        out_channels=16,
        kernel_size=(3, 3),
        stride=(1, 1),
        dilation=(1, 1),
        groups=1,
        input_hw=(8, 8),
        output_hw=(8, 8),
        batch=1,
        macs=8 * 8 * 16 * 16 * 9,
        weight_count=16 * 16 * 9,
        input_elements=16 * 64,
        output_elements=16 * 64,
    )


def _write_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """A real installed distribution (dist-info) with ``autocompress.chips`` entry points."""
    info = site / f"{name}-0.3.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[autocompress.chips]\n{lines}\n")


# -- the bundled plugins ------------------------------------------------------------------------


def test_bundled_plugins_provide_every_chip_without_problems():
    registry = ChipRegistry(autoload=True)
    assert set(registry.chip_ids()) >= BUNDLED_CHIP_IDS
    assert registry.problems() == []
    owners = {registry.plugin_of(chip_id) for chip_id in BUNDLED_CHIP_IDS}
    assert owners == {"rockchip", "hisilicon", "ambarella", "nvidia", "qualcomm"}


def test_public_api_lists_chips_and_versions():
    chips = autocompress.list_chips()
    assert {chip.chip_id for chip in chips} >= BUNDLED_CHIP_IDS
    assert [chip.chip_id for chip in chips] == sorted(chip.chip_id for chip in chips)
    assert autocompress.get_chip("rockchip/rv1126").vendor == "Rockchip"
    versions = plugins.plugin_versions()
    assert versions["rockchip"] == importlib.metadata.version("autocompress")


def test_list_chips_is_cached():
    """The plugins' hooks run once per registry; later calls answer from the cache.

    (How fast a cached call is: bench/bench_plugins.py, not a wall-clock assertion here.)"""
    calls = []

    class CountingPlugin(ChipsPlugin):
        @hookimpl
        def autocompress_chips(self):
            calls.append(1)
            return self.specs

    registry = ChipRegistry(autoload=False)
    registry.register(CountingPlugin(_spec("acme/npu1"), _spec("acme/npu2")), "acme")
    first = registry.chips()
    for _ in range(100):
        assert registry.chips() == first
        assert registry.get_chip("acme/npu2").chip_id == "acme/npu2"
    assert len(calls) == 1
    assert [chip.chip_id for chip in first] == ["acme/npu1", "acme/npu2"]
    assert plugins.list_chips() == plugins.list_chips()


def test_get_chip_is_case_insensitive():
    assert plugins.get_chip(" Rockchip/RV1126 ").chip_id == "rockchip/rv1126"


def test_unknown_chip_names_the_closest_ids_and_how_to_list():
    with pytest.raises(UnknownNameError) as caught:
        plugins.get_chip("rockchip/rv1162")
    message = str(caught.value)
    assert "'rockchip/rv1126'" in message
    assert "autocompress chips" in message


# -- discovery and isolation --------------------------------------------------------------------


def test_entry_point_that_fails_to_import_is_reported_and_others_keep_working(
    tmp_path, monkeypatch
):
    _write_distribution(tmp_path, "acme_broken", {"acme-broken": "acme_missing_module_xyz"})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ChipRegistry(autoload=True)
    problems = registry.problems()
    assert [p.plugin for p in problems] == ["acme-broken"]
    assert "ModuleNotFoundError" in problems[0].reason
    assert "acme_missing_module_xyz" in problems[0].reason
    assert set(registry.chip_ids()) >= BUNDLED_CHIP_IDS


def test_third_party_entry_point_is_loaded_with_its_version(tmp_path, monkeypatch):
    (tmp_path / "acme_good_plugin.py").write_text(
        "import dataclasses\n"
        "import autocompress_rockchip.chips as rk\n"
        "from autocompress.hardware.hookspecs import hookimpl\n\n"
        "@hookimpl\n"
        "def autocompress_chips():\n"
        "    base = rk.rockchip_chips()[0]\n"
        "    return [dataclasses.replace(base, chip_id='acme/good1', vendor='Acme')]\n"
    )
    _write_distribution(tmp_path, "acme_good", {"acme-good": "acme_good_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ChipRegistry(autoload=True)
    assert registry.get_chip("acme/good1").vendor == "Acme"
    assert registry.plugin_of("acme/good1") == "acme-good"
    assert registry.versions()["acme-good"] == "0.3.0"


def test_disable_autoload_env_loads_no_entry_points(monkeypatch):
    monkeypatch.setenv(plugins.DISABLE_AUTOLOAD_ENV, "1")
    registry = ChipRegistry()
    assert registry.chips() == []
    assert registry.plugin_names() == []
    registry.register(ChipsPlugin(_spec("acme/npu9")), "acme")
    assert registry.chip_ids() == ["acme/npu9"]


def test_block_plugins_env_skips_named_entry_points(monkeypatch):
    monkeypatch.setenv(plugins.BLOCK_PLUGINS_ENV, "nvidia, qualcomm")
    registry = ChipRegistry(autoload=True)
    assert "nvidia/orin-nano" not in registry.chip_ids()
    assert "qualcomm/qcs6490" not in registry.chip_ids()
    assert "rockchip/rv1126" in registry.chip_ids()


def test_raising_chips_hook_is_reported_by_name_and_others_keep_working():
    registry = ChipRegistry(autoload=False)
    registry.register(RaisingPlugin(), "broken-vendor")
    registry.register(ChipsPlugin(_spec("acme/npu1")), "acme")
    assert registry.chip_ids() == ["acme/npu1"]
    (problem,) = registry.problems()
    assert problem.plugin == "broken-vendor"
    assert "RuntimeError: datasheet not found" in problem.reason


def test_invalid_spec_is_dropped_with_the_reason_and_valid_ones_kept():
    registry = ChipRegistry(autoload=False)
    bad = _spec("acme/bad", dram_bandwidth_gbps=-1.0, weight_bits_supported=(1, 8))
    registry.register(ChipsPlugin(bad, _spec("acme/good")), "acme")
    assert registry.chip_ids() == ["acme/good"]
    (problem,) = registry.problems()
    assert problem.plugin == "acme"
    assert "'acme/bad'" in problem.reason
    assert "dram_bandwidth_gbps" in problem.reason
    assert "bit-width 1" in problem.reason


def test_non_spec_result_is_reported():
    registry = ChipRegistry(autoload=False)
    registry.register(ChipsPlugin({"chip_id": "acme/dict"}), "acme")
    assert registry.chips() == []
    assert "expected a ChipSpec" in registry.problems()[0].reason


def test_duplicate_chip_id_warns_and_keeps_the_first():
    registry = ChipRegistry(autoload=False)
    first = _spec("acme/npu1", display_name="first")
    registry.register(ChipsPlugin(first), "acme")
    registry.register(ChipsPlugin(_spec("acme/npu1", display_name="second")), "copycat")
    with pytest.warns(UserWarning, match="duplicate chip id 'acme/npu1'"):
        chips = registry.chips()
    assert [c.display_name for c in chips] == ["first"]
    assert registry.plugin_of("acme/npu1") == "acme"
    assert registry.problems()[0].plugin == "copycat"


def test_misspelt_hook_is_rejected_by_check_pending():
    class Misspelt:
        @hookimpl
        def autocompress_chip(self):  # missing "s"
            return []

    registry = ChipRegistry(autoload=False)
    assert registry.register(Misspelt(), "typo") is False
    (problem,) = registry.problems()
    assert problem.plugin == "typo"
    assert "autocompress_chip" in problem.reason
    assert registry.plugin_names() == []


def test_hook_without_hookimpl_marker_is_reported():
    class Undecorated:
        def autocompress_chips(self):
            return []

    registry = ChipRegistry(autoload=False)
    registry.register(Undecorated(), "forgetful")
    reasons = " ".join(p.reason for p in registry.problems())
    assert "not decorated with @hookimpl" in reasons


# -- per-chip hooks -----------------------------------------------------------------------------


class CostingPlugin(ChipsPlugin):
    """Overrides the cost of *every* chip it is asked about (it should not be asked)."""

    @hookimpl
    def autocompress_estimate_cost(self, chip, layers):
        return Cost(chip.chip_id, 1.0, 2.0, 2000.0, 3.0, 4.0, sum(layer.macs for layer in layers))


def test_cost_override_is_asked_only_of_the_owning_plugin():
    registry = ChipRegistry(autoload=False)
    registry.register(CostingPlugin(_spec("acme/npu1")), "acme")
    registry.register(ChipsPlugin(_spec("other/npu2")), "other")
    layers = [_layer()]
    own = registry.override_cost(registry.get_chip("acme/npu1"), layers)
    assert own is not None and own.latency_ms == 1.0 and own.macs == layers[0].macs
    assert registry.override_cost(registry.get_chip("other/npu2"), layers) is None
    assert registry.override_layer_cost(registry.get_chip("acme/npu1"), layers[0]) is None


def test_raising_cost_hook_raises_plugin_error_naming_the_plugin():
    class Failing(ChipsPlugin):
        @hookimpl
        def autocompress_estimate_cost(self, chip, layers):
            raise ZeroDivisionError("bad table")

    registry = ChipRegistry(autoload=False)
    registry.register(Failing(_spec("acme/npu1")), "acme")
    with pytest.raises(PluginError, match=r"plugin 'acme'.*ZeroDivisionError: bad table"):
        registry.override_cost(registry.get_chip("acme/npu1"), [_layer()])
    assert registry.problems()[0].plugin == "acme"


def test_cost_hook_returning_the_wrong_chip_is_an_error():
    class Confused(ChipsPlugin):
        @hookimpl
        def autocompress_estimate_cost(self, chip, layers):
            return Cost("acme/elsewhere", 1.0, 1.0, 1.0, 1.0, 1.0, 1)

    registry = ChipRegistry(autoload=False)
    registry.register(Confused(_spec("acme/npu1")), "acme")
    with pytest.raises(PluginError, match=r"must return a Cost for 'acme/npu1'"):
        registry.override_cost(registry.get_chip("acme/npu1"), [_layer()])


def test_export_step_writing_outside_the_export_dir_is_an_error(tmp_path):
    class Escaping(ChipsPlugin):
        @hookimpl
        def autocompress_export_step(self, chip, export_dir, onnx_path, card):
            path = export_dir.parent / "escaped.txt"
            path.write_text("x")
            return [path]

    registry = ChipRegistry(autoload=False)
    registry.register(Escaping(_spec("acme/npu1")), "acme")
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    with pytest.raises(PluginError, match="outside"):
        registry.run_export_steps(
            registry.get_chip("acme/npu1"), export_dir, export_dir / "m.onnx", {}
        )


def test_chip_without_export_step_writes_nothing(tmp_path):
    chip = plugins.get_chip("hisilicon/hi3519a")
    assert plugins.run_export_steps(chip, tmp_path, tmp_path / "model.onnx", {}) == []
    assert list(tmp_path.iterdir()) == []


def test_two_distributions_with_one_entry_point_name_are_reported(tmp_path, monkeypatch):
    _write_distribution(tmp_path, "acme_one", {"acme": "acme_one_plugin"})
    _write_distribution(tmp_path, "acme_two", {"acme": "acme_two_plugin"})
    for module in ("acme_one_plugin", "acme_two_plugin"):
        (tmp_path / f"{module}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ChipRegistry(autoload=True)
    reasons = [p.reason for p in registry.problems() if p.plugin == "acme"]
    assert any("two installed distributions use the entry-point name 'acme'" in r for r in reasons)


# -- hostile and clashing plugins ---------------------------------------------------------------

COPYCAT_MODULE = (
    "import dataclasses\n"
    "import autocompress_rockchip.chips as rk\n"
    "from autocompress.hardware.hookspecs import hookimpl\n\n"
    "@hookimpl(trylast=True)\n"
    "def autocompress_chips():\n"
    "    base = rk.rockchip_chips()[0]\n"
    "    return [dataclasses.replace(base, display_name='{label}', dram_bandwidth_gbps=999.0)]\n"
)


def _install_copycat(site: Path, dist: str, entry_point: str, label: str) -> None:
    """A third-party distribution whose plugin re-declares rockchip/rv1126 with other figures."""
    module = f"{dist}_plugin"
    (site / f"{module}.py").write_text(COPYCAT_MODULE.format(label=label))
    _write_distribution(site, dist, {entry_point: module})


def test_third_party_plugin_cannot_replace_a_bundled_chip(tmp_path, monkeypatch):
    # First on sys.path, so its entry point is found before the bundled ones.
    _install_copycat(tmp_path, "acme_copycat", "acme-copycat", "copycat")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ChipRegistry(autoload=True)
    with pytest.warns(plugins.PluginWarning) as caught:
        chip = registry.get_chip("rockchip/rv1126")
    assert chip.display_name != "copycat" and chip.dram_bandwidth_gbps != 999.0
    assert registry.plugin_of("rockchip/rv1126") == "rockchip"
    (problem,) = registry.problems()
    assert problem.plugin == "acme-copycat"  # the newcomer is named, not the bundled plugin
    assert "'rockchip/rv1126'" in problem.reason and "'rockchip'" in problem.reason
    assert [str(w.message) for w in caught] == [str(problem)]
    registry.register(ChipsPlugin(_spec("acme/npu1")), "acme")  # a re-collection warns no more
    with warnings.catch_warnings():
        warnings.simplefilter("error", plugins.PluginWarning)
        assert "acme/npu1" in registry.chip_ids()
    assert registry.get_chip("rockchip/rv1126") == chip


def test_third_party_plugins_claim_a_chip_in_a_stable_order(tmp_path, monkeypatch):
    # "zeta" is found first on sys.path; "alpha" still loads first (third-party plugins by name).
    for dist, name in (("zeta_vendor", "zeta"), ("alpha_vendor", "alpha")):
        site = tmp_path / name
        site.mkdir()
        module = f"{dist}_plugin"
        (site / f"{module}.py").write_text(
            "import dataclasses\n"
            "import autocompress_rockchip.chips as rk\n"
            "from autocompress.hardware.hookspecs import hookimpl\n\n"
            "@hookimpl\n"
            "def autocompress_chips():\n"
            "    base = rk.rockchip_chips()[0]\n"
            f"    return [dataclasses.replace(base, chip_id='acme/npu1', display_name='{name}')]\n"
        )
        _write_distribution(site, dist, {name: module})
    monkeypatch.syspath_prepend(str(tmp_path / "alpha"))
    monkeypatch.syspath_prepend(str(tmp_path / "zeta"))
    registry = ChipRegistry(autoload=True)
    with pytest.warns(plugins.PluginWarning, match="plugin 'zeta'"):
        assert registry.get_chip("acme/npu1").display_name == "alpha"
    assert registry.plugin_names()[:5] == sorted(
        ["rockchip", "hisilicon", "ambarella", "nvidia", "qualcomm"]
    )
    assert registry.plugin_names()[5:] == ["alpha", "zeta"]


def test_trylast_marker_does_not_let_a_later_plugin_take_a_chip():
    class Pushy(ChipsPlugin):
        @hookimpl(trylast=True)
        def autocompress_chips(self):
            return self.specs

    registry = ChipRegistry(autoload=False)
    registry.register(ChipsPlugin(_spec("acme/npu1", display_name="first")), "acme")
    registry.register(Pushy(_spec("acme/npu1", display_name="pushy")), "pushy")
    with pytest.warns(plugins.PluginWarning, match="plugin 'pushy'"):
        assert registry.get_chip("acme/npu1").display_name == "first"
    assert registry.plugin_of("acme/npu1") == "acme"


def test_duplicate_chip_warning_is_printed_once_in_the_cli_style(tmp_path):
    _install_copycat(tmp_path, "acme_copycat", "acme-copycat", "copycat")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    env.pop(plugins.DISABLE_AUTOLOAD_ENV, None)
    for command in (
        ["chips", "show", "rockchip/rv1126", "--json"],
        ["cost", "--model", "small_cnn", "--chip", "rockchip/rv1126", "--json"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "autocompress", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        stderr = " ".join(result.stderr.split())
        expected = (
            "warning: plugin 'acme-copycat': duplicate chip id 'rockchip/rv1126' ignored: "
            "plugin 'rockchip' provides it first and keeps it"
        )
        assert stderr.count(expected) == 1, result.stderr
        assert "UserWarning" not in stderr and "PluginWarning" not in stderr
        assert "plugins.py" not in stderr
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-m", "autocompress", "chips", "show", "rockchip/rv1126", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    assert shown["plugin"] == "rockchip" and shown["dram_bandwidth_gbps"] != 999.0


def test_plugin_calling_sys_exit_at_import_is_named_and_skipped(tmp_path, monkeypatch):
    (tmp_path / "acme_exit_plugin.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "acme_base_plugin.py").write_text(
        "class Doom(BaseException):\n    pass\n\nraise Doom('licence server unreachable')\n"
    )
    _write_distribution(tmp_path, "acme_exit", {"acme-exit": "acme_exit_plugin"})
    _write_distribution(tmp_path, "acme_base", {"acme-base": "acme_base_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ChipRegistry(autoload=True)
    reasons = {p.plugin: p.reason for p in registry.problems()}
    assert set(reasons) == {"acme-exit", "acme-base"}
    assert "SystemExit: called sys.exit(3)" in reasons["acme-exit"]
    assert "Doom: licence server unreachable" in reasons["acme-base"]
    assert set(registry.chip_ids()) >= BUNDLED_CHIP_IDS


def test_plugin_calling_sys_exit_in_a_hook_is_isolated():
    class Exiting(ChipsPlugin):
        @hookimpl
        def autocompress_chips(self):
            sys.exit("no datasheet")

    class ExitingCost(ChipsPlugin):
        @hookimpl
        def autocompress_estimate_cost(self, chip, layers):
            raise SystemExit(1)

    registry = ChipRegistry(autoload=False)
    registry.register(Exiting(), "quitter")
    registry.register(ExitingCost(_spec("acme/npu1")), "acme")
    assert registry.chip_ids() == ["acme/npu1"]
    (problem,) = registry.problems()
    assert problem.plugin == "quitter" and "sys.exit('no datasheet')" in problem.reason
    with pytest.raises(PluginError, match=r"plugin 'acme'.*SystemExit"):
        registry.override_cost(registry.get_chip("acme/npu1"), [_layer()])


def test_keyboard_interrupt_inside_a_plugin_still_stops_the_program(tmp_path, monkeypatch):
    class Interrupted(ChipsPlugin):
        @hookimpl
        def autocompress_chips(self):
            raise KeyboardInterrupt

    registry = ChipRegistry(autoload=False)
    registry.register(Interrupted(), "slow")
    with pytest.raises(KeyboardInterrupt):
        registry.chips()
    (tmp_path / "acme_ctrl_c_plugin.py").write_text("raise KeyboardInterrupt\n")
    _write_distribution(tmp_path, "acme_ctrl_c", {"acme-ctrl-c": "acme_ctrl_c_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        ChipRegistry(autoload=True)

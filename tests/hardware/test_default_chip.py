"""The default chip: configuration, else the first plugin that declares one (no vendor in core)."""

from __future__ import annotations

import dataclasses

import pytest

from autocompress.core.errors import ConfigError
from autocompress.hardware import plugins
from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.plugins import DEFAULT_CHIP_ENV, ChipRegistry


def _spec(chip_id: str):
    import autocompress_rockchip.chips as rockchip

    base = rockchip.rockchip_chips()[0]
    return dataclasses.replace(base, chip_id=chip_id, vendor=chip_id.split("/")[0].capitalize())


class Plugin:
    def __init__(self, chip_ids, default=None):
        self.specs, self.default = [_spec(c) for c in chip_ids], default

    @hookimpl
    def autocompress_chips(self):
        return self.specs

    @hookimpl
    def autocompress_default_chip(self):
        return self.default


def test_bundled_plugins_make_rv1126_the_default(monkeypatch):
    from autocompress.search.settings import SearchSettings

    monkeypatch.delenv(DEFAULT_CHIP_ENV, raising=False)
    assert plugins.default_chip_id() == "rockchip/rv1126"
    assert SearchSettings().chips == ("rockchip/rv1126",)


def test_the_environment_overrides_the_plugins(monkeypatch):
    from autocompress.search.settings import SearchSettings

    monkeypatch.setenv(DEFAULT_CHIP_ENV, "NVIDIA/orin-nano")
    assert SearchSettings().chips == ("nvidia/orin-nano",)
    monkeypatch.setenv(DEFAULT_CHIP_ENV, "nvidia/orin-nanoo")
    with pytest.raises(ConfigError, match=f"{DEFAULT_CHIP_ENV}='nvidia/orin-nanoo'.*did you mean"):
        plugins.default_chip_id()


def test_first_plugin_in_load_order_wins_and_only_for_its_own_chips(monkeypatch):
    monkeypatch.delenv(DEFAULT_CHIP_ENV, raising=False)
    registry = ChipRegistry(autoload=False)
    registry.register(Plugin(["acme/a1", "acme/a2"], default="zeta/z1"), "acme")  # not its chip
    registry.register(Plugin(["zeta/z1", "zeta/z2"], default="zeta/z2"), "zeta")
    registry.register(Plugin(["beta/b1"], default="beta/b1"), "beta")
    assert registry.default_chip_id() == "zeta/z2"
    assert any("not one of its chips" in p.reason for p in registry.problems())


def test_without_a_declaration_the_first_chip_id_and_without_chips_none(monkeypatch):
    monkeypatch.delenv(DEFAULT_CHIP_ENV, raising=False)
    registry = ChipRegistry(autoload=False)
    assert registry.default_chip_id() is None
    registry.register(Plugin(["zeta/z1", "acme/a1"]), "plain")
    assert registry.default_chip_id() == "acme/a1"

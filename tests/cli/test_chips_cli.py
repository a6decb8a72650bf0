"""`autocompress chips` and `autocompress chips show ID`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from autocompress.cli import cli
from autocompress.core.errors import UnknownNameError
from autocompress.hardware import plugins
from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.plugins import ChipRegistry


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_table_lists_every_bundled_chip(runner):
    result = runner.invoke(cli, ["chips"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for chip_id in ("rockchip/rv1126", "hisilicon/hi3519a", "nvidia/orin-nano", "qualcomm/sm8550"):
        assert chip_id in result.output
    assert "int8 TOPS" in result.output


def test_json_lists_every_chip_with_its_plugin(runner):
    result = runner.invoke(cli, ["chips", "--json"])
    assert result.exit_code == 0
    chips = {chip["chip_id"]: chip for chip in json.loads(result.stdout)}
    rv1126 = chips["rockchip/rv1126"]
    assert rv1126["plugin"] == "rockchip"
    assert rv1126["peak_tops_by_bits"] == {"8": 2.0, "16": 0.2}
    assert rv1126["quantization"]["weight_granularity"] == "per_tensor"
    assert rv1126["budgets"]["latency_ms"] > 0
    assert chips["hisilicon/hi3519a"]["quantization"]["logarithmic"] is True


def test_show_prints_figures_with_sources(runner):
    result = runner.invoke(cli, ["chips", "show", "nvidia/orin-nano"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "dram_bandwidth_gbps" in result.output
    assert "68 GB/s" in result.output  # the datasheet source is shown next to the figure
    as_json = json.loads(runner.invoke(cli, ["chips", "show", "nvidia/orin-nano", "--json"]).stdout)
    assert as_json["sparsity_patterns"] == ["2:4"]
    assert "sources" in as_json and "unverified" in as_json


def test_unknown_chip_is_a_user_error(runner):
    result = runner.invoke(cli, ["chips", "show", "rockchip/rv1162"])
    assert isinstance(result.exception, UnknownNameError)
    assert "rockchip/rv1126" in str(result.exception)


def test_broken_plugin_is_a_warning_on_stderr_and_the_rest_still_lists(runner, monkeypatch):
    class Broken:
        @hookimpl
        def autocompress_chips(self):
            raise OSError("cannot read chip table")

    registry = ChipRegistry(autoload=True)
    registry.register(Broken(), "acme-broken")
    monkeypatch.setattr(plugins, "_default", registry)
    result = runner.invoke(cli, ["chips", "--json"])
    assert result.exit_code == 0
    stderr = " ".join(result.stderr.split())  # rich wraps long lines
    assert "plugin 'acme-broken'" in stderr
    assert "OSError: cannot read chip table" in stderr
    assert any(chip["chip_id"] == "rockchip/rv1126" for chip in json.loads(result.stdout))

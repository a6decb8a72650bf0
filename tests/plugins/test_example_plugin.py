"""examples/custom_chip_plugin installs with pip and shows up in `autocompress chips`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autocompress.testing import ChipPluginContract

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_chip_plugin"


@pytest.fixture(scope="module")
def installed_target(tmp_path_factory) -> Path:
    """The example installed for real by pip, into a target folder (the venv stays clean)."""
    work = tmp_path_factory.mktemp("example")
    source = work / "source"
    # Build from a copy so that pip's build/ and *.egg-info never land in the repository.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def _autocompress(target: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("AUTOCOMPRESS_DISABLE_PLUGIN_AUTOLOAD", None)
    return subprocess.run(
        [sys.executable, "-m", "autocompress", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_example_is_listed_by_autocompress_chips(installed_target):
    assert (installed_target / "autocompress_acme" / "__init__.py").is_file()
    result = _autocompress(installed_target, "chips", "--json")
    assert result.returncode == 0, result.stderr
    chips = {chip["chip_id"]: chip for chip in json.loads(result.stdout)}
    assert chips["acme/npu1"]["plugin"] == "acme"
    assert "rockchip/rv1126" in chips  # the bundled plugins are still there
    assert "warning" not in result.stderr

    shown = _autocompress(installed_target, "chips", "show", "acme/npu1")
    assert shown.returncode == 0, shown.stderr
    assert "Acme NPU1" in shown.stdout


def test_without_the_install_the_chip_is_unknown(tmp_path):
    result = _autocompress(tmp_path, "chips", "show", "acme/npu1")
    assert result.returncode == 2
    assert "unknown chip 'acme/npu1'" in result.stderr
    assert "Traceback" not in result.stderr


sys.path.insert(0, str(EXAMPLE / "src"))
import autocompress_acme  # noqa: E402  (the example's source, for its contract run)

sys.path.remove(str(EXAMPLE / "src"))


class TestExamplePluginContract(ChipPluginContract):
    plugin = autocompress_acme
    plugin_name = "acme"
    expected_chip_ids = ("acme/npu1",)

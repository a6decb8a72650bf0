"""``--device auto``: one rule (training.resolve_device), which the search's pick_device uses."""

from __future__ import annotations

import pytest
import torch

from autocompress.compress.training import resolve_device
from autocompress.core.errors import ConfigError
from autocompress.search.context import pick_device


def test_auto_means_cuda_when_visible_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert pick_device("auto") == expected
    assert pick_device("cpu") == "cpu"


@pytest.mark.parametrize("device", ["gpu", "tpu:0"])
def test_an_unknown_device_is_refused_by_both(device):
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(device)
    with pytest.raises(ConfigError, match="unknown device"):
        pick_device(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_without_cuda_is_refused():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pick_device("cuda")

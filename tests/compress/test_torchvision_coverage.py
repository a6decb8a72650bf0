"""Every torchvision classifier through cost -> prune -> quantize -> export.

A fast subset runs in the default ``pytest``; the whole list is under the ``models``
marker (``pytest -m models tests/compress/test_torchvision_coverage.py``, minutes per
model on a CPU). docs/models.md is the generated table of the same probe
(bench/models_coverage.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from autocompress.core.models import torchvision_model_names

_spec = importlib.util.spec_from_file_location(
    "_models_coverage", Path(__file__).resolve().parents[2] / "bench" / "models_coverage.py"
)
_coverage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_coverage)

FAST = ("mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1")


def _params():
    for name in torchvision_model_names():
        marks = [] if name in FAST else [pytest.mark.models]
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))
def test_model_goes_through_cost_prune_quantize_export(name):
    row = _coverage.probe(name)
    assert "build" not in row, row
    assert row["cost"] == "ok", row
    assert row["prune"].startswith("ok"), row.get("prune_trace", row)
    assert row["export"].startswith("ok"), row
    assert row["quantized_layers"] == row["weight_layers"], row

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
    assert row["train"] == "ok", row


def test_parallel_runs_keep_a_time_limit_per_model_and_in_total():
    rows = _coverage.run_models(
        ["squeezenet1_1", "resnet18", "alexnet"],
        jobs=2,
        threads=1,
        timeout_s=2.0,  # not even enough to import torch and build the model
        total_timeout_s=2.5,  # the third starts after 2 s: less than a second left
    )
    assert set(rows) == {"squeezenet1_1", "resnet18", "alexnet"}
    # the heaviest two first (resnet18, alexnet); squeezenet1_1 is left for after 2 s
    assert rows["resnet18"]["build"] == rows["alexnet"]["build"] == "timed out after 2 s", rows
    assert rows["squeezenet1_1"]["build"] == ("not run: the total time limit (2 s) was reached"), (
        rows
    )
    text = _coverage.table([rows[n] for n in ("alexnet", "resnet18", "squeezenet1_1")])
    body = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]
    assert body[-3:] == ["| alexnet", "| resnet18", "| squeezenet1_1"]  # the given order


def test_the_heaviest_models_start_first():
    names = ["resnet18", "vit_h_14", "squeezenet1_1", "vit_b_16"]
    assert _coverage.heaviest_first(names) == ["vit_h_14", "vit_b_16", "resnet18", "squeezenet1_1"]
    # an earlier run's seconds come first; a model it has none for (timed out) counts as longest
    earlier = {"resnet18": 9.0, "vit_b_16": 3.0, "squeezenet1_1": 20.0}
    order = _coverage.heaviest_first(names, earlier)
    assert order == ["vit_h_14", "squeezenet1_1", "resnet18", "vit_b_16"]


def test_an_earlier_table_gives_the_seconds_of_the_models_that_finished(tmp_path):
    path = tmp_path / "models.md"
    rows = [
        {"model": "resnet18", "input": 32, "cost": "ok", "seconds": 9.5},
        {"model": "vit_h_14", "build": "timed out after 240 s"},
    ]
    path.write_text(_coverage.table(rows, ["vgg11"]))
    assert _coverage.previous_seconds(path) == {"resnet18": 9.5}
    assert _coverage.previous_seconds(tmp_path / "absent.md") == {}
